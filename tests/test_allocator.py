"""raystack.allocator: glibc keeps a step's large temporaries for the next step."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from raystack.allocator import KEEP_BYTES, keep_freed_memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")

# Page faults per allocation of a 64 MiB tensor (allocated, filled, freed) in a fresh
# process, over 10 allocations after 10 of warm-up: as in training, the heap needs a few
# rounds before its freed chunks coalesce into one that fits torch's aligned request.
_PROBE = """
import json, os, resource, sys
from raystack.allocator import keep_freed_memory
done = keep_freed_memory() if sys.argv[1] == "keep" else {}
import torch
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    t = torch.empty(16 << 20)
    t.fill_(1.0)
for _ in range(10):
    step()
f0 = faults()
for _ in range(10):
    step()
print(json.dumps({"done": done, "faults": (faults() - f0) / 10}))
"""


def _probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_a_freed_large_tensor_is_reused_instead_of_faulted_in_again():
    default = _probe("default")
    kept = _probe("keep")
    assert kept["done"] == {"M_TRIM_THRESHOLD": KEEP_BYTES, "M_MMAP_THRESHOLD": KEEP_BYTES}
    # 64 MiB is 16,384 pages: by default every one faults again on every allocation.
    assert default["faults"] > 8000
    assert kept["faults"] < default["faults"] / 4


@glibc
def test_the_users_own_allocator_settings_win():
    assert keep_freed_memory({"MALLOC_MMAP_THRESHOLD_": "1", "MALLOC_TRIM_THRESHOLD_": "1"}) == {}
    assert keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1"}) == {}
    # Ray workers get the mmap threshold from WORKER_ENV: the trim threshold is still set.
    assert keep_freed_memory({"MALLOC_MMAP_THRESHOLD_": "4294967296"}) == {
        "M_TRIM_THRESHOLD": KEEP_BYTES}


def test_off_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert keep_freed_memory({}) == {}
