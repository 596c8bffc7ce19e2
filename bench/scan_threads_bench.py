"""How the native SS2D scan scales from 1 to 2 threads under each OpenMP idle-wait setting.

The folded four-path scan (``cross_scan_fn``) runs its own threads beside torch's OpenMP
pool. After a parallel torch op libgomp's idle threads spin before they sleep; while they
spin, the kernel's second thread shares a core with one. Each setting runs in a fresh
interpreter (libgomp reads its environment when torch loads it) and times the kernel's
forward and backward, with the torch ops around it, at 1 and 2 threads:

- ``libgomp default``: ``GOMP_SPINCOUNT=300000``, libgomp's own default spin;
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE``, idle threads sleep at once;
- ``raystack``: :data:`raystack.threads.OMP_SPIN`, what raystack's entry points set.

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/scan_threads_bench.py

Printed and written to ``bench/results/<name>.json`` (median of ``--reps`` calls).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

SHAPES = ((8, 128, 16, 16), (8, 64, 32, 32))  # (batch, channels, h, w) of small-preset stages


def measure(reps: int) -> dict:
    """In this process: median forward and backward ms per shape and thread count."""
    import statistics
    import time

    import torch

    from raystack.ops.cross_scan import cross_scan_fn

    out = {}
    for b, d, h, w in SHAPES:
        gen = torch.Generator().manual_seed(0)
        n = 16
        u = torch.randn(b, d, h, w, generator=gen).requires_grad_()
        delta = (0.5 * torch.randn(b, 4, d, h * w, generator=gen)).requires_grad_()
        a = (-torch.rand(4 * d, n, generator=gen) - 0.5).requires_grad_()
        bb = torch.randn(b, 4, n, h * w, generator=gen).requires_grad_()
        cc = torch.randn(b, 4, n, h * w, generator=gen).requires_grad_()
        dd = torch.randn(4 * d, generator=gen).requires_grad_()
        bias = (0.1 * torch.randn(4 * d, generator=gen)).requires_grad_()
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fwd, bwd = [], []
            for i in range(reps + 2):
                t0 = time.perf_counter()
                y = cross_scan_fn(u, delta, a, bb, cc, dd, bias, delta_softplus=True)
                t1 = time.perf_counter()
                y.sum().backward()
                t2 = time.perf_counter()
                if i >= 2:  # warm-up: library load, allocator
                    fwd.append(t1 - t0)
                    bwd.append(t2 - t1)
            out[f"{b}x{d}x{h}x{w}/{threads}"] = {"fwd_ms": 1e3 * statistics.median(fwd),
                                                 "bwd_ms": 1e3 * statistics.median(bwd)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=8)
    p.add_argument("--name", default="scan_threads")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.reps)))
        return

    from machine_info import machine

    from raystack.threads import OMP_SPIN

    settings = {"libgomp default": {"GOMP_SPINCOUNT": "300000"},
                "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "raystack": dict(OMP_SPIN)}
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    results = {}
    for name, env in settings.items():
        done = subprocess.run([sys.executable, __file__, "--child", "--reps", str(args.reps)],
                              env={**base, **env, "PYTHONPATH": str(ROOT)}, check=True,
                              capture_output=True, text=True)
        results[name] = {"env": env, "times": json.loads(done.stdout.strip().splitlines()[-1])}

    print(f"{'setting':16s} {'shape':14s} {'fwd 1T':>8s} {'fwd 2T':>8s} {'x':>5s} "
          f"{'bwd 1T':>8s} {'bwd 2T':>8s} {'x':>5s}")
    for name, r in results.items():
        for b, d, h, w in SHAPES:
            key = f"{b}x{d}x{h}x{w}"
            one, two = r["times"][f"{key}/1"], r["times"][f"{key}/2"]
            print(f"{name:16s} {key:14s} {one['fwd_ms']:8.1f} {two['fwd_ms']:8.1f} "
                  f"{one['fwd_ms'] / two['fwd_ms']:5.2f} {one['bwd_ms']:8.1f} "
                  f"{two['bwd_ms']:8.1f} {one['bwd_ms'] / two['bwd_ms']:5.2f}")
    command = " ".join(["bench/scan_threads_bench.py", *sys.argv[1:]])
    doc = {"machine": machine(), "command": command, "reps": args.reps, "results": results}
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
