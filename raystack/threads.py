"""CPU threads a process may use; the process's entry point applies it, libraries do not.

    torch.set_num_threads(default_threads())   # e.g. in-process training
    short_omp_spin()                           # first thing in an entry point, before torch
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

# After each parallel torch op, libgomp's idle threads spin for about 300,000 iterations
# (milliseconds) before they sleep. The native scan kernels run their own threads, which
# then share a core with a spinning OpenMP thread: on 2 cores the folded SS2D backward ran
# 1.3x faster on 2 threads than on 1 instead of 1.9x. A short spin keeps back-to-back torch
# ops quick and frees the core soon after (bench/results/train_omp_spin.json).
OMP_SPIN = {"GOMP_SPINCOUNT": "10000"}


def default_threads() -> int:
    """Torch threads for this process: OMP_NUM_THREADS when set (Ray sets it per actor),
    else the CPUs this process may run on (its affinity mask, not the machine's count)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def short_omp_spin(environ: MutableMapping[str, str] | None = None) -> bool:
    """Put :data:`OMP_SPIN` in this process's environment, for libgomp to read when torch
    loads it. Returns whether it was set: not when torch is already imported (too late), nor
    when the user chose ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` themselves."""
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or {"OMP_WAIT_POLICY", *OMP_SPIN} & set(environ):
        return False
    environ.update(OMP_SPIN)
    return True
