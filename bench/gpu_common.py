"""What the phases of bench/gpu_check.py share: the run context, a timing loop, FLOP shares.

Every phase gets a :class:`Ctx` and returns a JSON-able dict. Budgets are soft: a phase
checks :meth:`Ctx.left` between cases and records the cases it skipped, because a hard
in-process timeout cannot stop a CUDA call halfway (the wrapper's ``timeout`` is the hard
stop, and the JSON written after every phase survives it).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Ctx:
    """One run: the device, quick (CPU test) sizes or not, and the current phase's deadline."""

    device: torch.device
    quick: bool
    out_dir: Path | None = None  # where phases write files besides the JSON (pytest.txt)
    deadline: float = float("inf")  # time.monotonic() at which the current phase should stop
    peaks: dict[str, float] = field(default_factory=dict)  # same-run matmul FLOP/s by dtype

    def left(self) -> float:
        """Seconds left in the current phase's budget."""
        return self.deadline - time.monotonic()

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)


def time_calls(fn: Callable[[], Any], ctx: Ctx, *, warmup: int = 1, min_reps: int = 2,
               max_reps: int = 20, min_time: float = 1.0) -> dict[str, float]:
    """Wall times of ``fn()`` (synchronised on CUDA) after ``warmup`` calls: at least
    ``min_reps``, then more while under ``min_time`` seconds of timed calls and ``max_reps``."""
    for _ in range(warmup):
        fn()
    ctx.sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time
                                    and len(times) < max_reps):
        t = time.perf_counter()
        fn()
        ctx.sync()
        times.append(time.perf_counter() - t)
    return {"reps": len(times), "mean_s": statistics.fmean(times),
            "median_s": statistics.median(times), "min_s": min(times)}


def flop_share(flops_per_item: float, items_per_s: float, peak_flops_per_s: float | None
               ) -> float | None:
    """Achieved FLOP/s (``flops_per_item * items_per_s``) over a measured peak; None without one."""
    if not peak_flops_per_s or peak_flops_per_s <= 0:
        return None
    return flops_per_item * items_per_s / peak_flops_per_s


def peak_memory_mib(ctx: Ctx) -> float | None:
    """Peak CUDA memory allocated since the last reset, in MiB; None off CUDA."""
    if not ctx.cuda:
        return None
    return torch.cuda.max_memory_allocated(ctx.device) / 2**20


def reset_memory(ctx: Ctx) -> None:
    if ctx.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(ctx.device)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)


def short_error(exc: BaseException) -> str:
    """``Type: message``, first 300 characters: enough to act on, small enough for a table."""
    return f"{type(exc).__name__}: {exc}"[:300]
