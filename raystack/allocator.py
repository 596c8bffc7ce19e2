"""glibc's allocator, set for a process that allocates the same large tensors step after step.

By default glibc maps every allocation of 32 MiB or more afresh and unmaps it on free, so
each training step faults in the pages of its large activations again (a 64 MiB tensor:
16,385 page faults and about 15 ms before it holds a number). Freed memory below the heap's
top is also handed back to the kernel once more than 128 KiB of it is free there.
:func:`keep_freed_memory` raises both limits to 1 GiB with ``mallopt``, so the next step
reuses the same pages. It works at run time, unlike ``MALLOC_MMAP_THRESHOLD_``, which glibc
reads only when the process starts (Ray workers get that from ``WORKER_ENV``; an
in-process ``raystack train`` is already running when it learns it will train).

The cost is memory: the process keeps up to its peak working set mapped after a step, as
torch's CUDA caching allocator does on a GPU.

    keep_freed_memory()   # {"M_MMAP_THRESHOLD": 1073741824, "M_TRIM_THRESHOLD": 1073741824}
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from collections.abc import Mapping

KEEP_BYTES = 1 << 30
# mallopt's parameter numbers (malloc.h), and the environment variables that set the same
# limits at start-up: a user's own choice wins.
_PARAMS = {"M_TRIM_THRESHOLD": (-1, "MALLOC_TRIM_THRESHOLD_"),
           "M_MMAP_THRESHOLD": (-3, "MALLOC_MMAP_THRESHOLD_")}


def keep_freed_memory(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """Raise glibc's mmap and trim thresholds to :data:`KEEP_BYTES` in this process.

    Returns the limits it set: none off glibc, none when ``GLIBC_TUNABLES`` names a malloc
    setting, and not a limit whose environment variable the user (or ``WORKER_ENV``) set.
    """
    environ = os.environ if environ is None else environ
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return {}
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return {}
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    done = {}
    for name, (param, env) in _PARAMS.items():
        if env not in environ and libc.mallopt(param, KEEP_BYTES) == 1:
            done[name] = KEEP_BYTES
    return done
