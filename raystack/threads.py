"""CPU threads a process may use; the process's entry point applies it, libraries do not.

    torch.set_num_threads(default_threads())   # e.g. in-process training
"""

from __future__ import annotations

import os


def default_threads() -> int:
    """Torch threads for this process: OMP_NUM_THREADS when set (Ray sets it per actor),
    else the CPUs this process may run on (its affinity mask, not the machine's count)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
