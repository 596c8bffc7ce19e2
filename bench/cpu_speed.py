"""Timing helpers shared by the model benchmarks: matmul peak, forward time, scan backend.

    from cpu_speed import matmul_flops, scan_implementation, time_forward
    peak = matmul_flops(2)["flops_per_s_median"]
    t = time_forward(model, x, scan_sites=[ss2d_mod], min_time=20, min_reps=3, max_reps=20)

A model's FLOP share is its FLOPs per second over an fp32 matmul's, measured in the same
run with the same threads: the machine is shared, so only same-run ratios mean anything.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from types import ModuleType

import torch

from raystack.ops import selective_scan as scan_mod

# the scan entry points a model module may call (SS2D's folded path calls cross_scan_fn)
SCAN_ENTRIES = ("selective_scan_fn", "cross_scan_fn")


def scan_implementation() -> str:
    """The backend ``selective_scan_fn`` picks for CPU tensors here (native, torch, ...)."""
    return str(scan_mod.scan_backend(torch.zeros(1, 1, 8), 16))


def matmul_flops(threads: int, n: int = 2048, reps: int = 10) -> dict:
    """FLOP/s of an fp32 n x n matmul on ``threads`` torch threads (median and best)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    best, med = min(times), statistics.median(times)
    return {"n": n, "threads": threads, "median_s": med, "best_s": best,
            "flops_per_s_median": 2 * n**3 / med, "flops_per_s_best": 2 * n**3 / best}


def time_forward(model, x, *, scan_sites: Sequence[ModuleType], min_time: float,
                 min_reps: int, max_reps: int) -> dict:
    """Forward times of ``model(x)`` in inference mode after one warm-up, and the time
    spent inside the scans: each module in ``scan_sites`` has its ``selective_scan_fn``
    (and SS2D's folded ``cross_scan_fn``) wrapped for the duration (the modules that
    imported the functions by name)."""
    scan_time = [0.0]
    real = [(site, name, getattr(site, name)) for site in scan_sites
            for name in SCAN_ENTRIES if hasattr(site, name)]

    def timed(fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            y = fn(*args, **kwargs)
            scan_time[0] += time.perf_counter() - t
            return y
        return wrapper

    for site, name, fn in real:
        setattr(site, name, timed(fn))
    times, scans = [], []
    try:
        with torch.inference_mode():
            model(x)  # warm-up: allocator, oneDNN primitive caches
            start = time.perf_counter()
            while len(times) < min_reps or (time.perf_counter() - start < min_time
                                            and len(times) < max_reps):
                scan_time[0] = 0.0
                t = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t)
                scans.append(scan_time[0])
    finally:
        for site, name, fn in real:
            setattr(site, name, fn)
    return {"reps": len(times), "median_s": statistics.median(times), "min_s": min(times),
            "scan_median_s": statistics.median(scans)}
