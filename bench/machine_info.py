"""What every benchmark result records about where it ran: machine, date, commit.

    from machine_info import machine           # bench/ is on sys.path when a bench runs
    doc["machine"] = machine(decord=decord.__version__)

Figures are only comparable within one result file: the machine is shared and noisy, so
the 1-minute load average is kept too.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                             check=False).stdout
    except OSError:
        return None
    return out.strip()


def _ram_gib() -> float | None:
    try:
        kib = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    except (OSError, IndexError):
        return None
    return round(int(kib) / 2**20, 1)


def machine(**extra: Any) -> dict[str, Any]:
    """CPU, CPUs available, RAM, Python and torch versions, git commit and whether the
    tree was dirty, UTC date, allocator setting and load average, plus ``extra``."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "git_commit": _git("rev-parse", "HEAD") or None,
        "git_dirty": bool(_git("status", "--porcelain")),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return {**info, **extra}


def save_results(name: str, doc: dict[str, Any], argv: list[str] | None = None) -> Path:
    """Write ``bench/results/<name>.json``: ``doc`` after the machine and the command that
    made it (``argv``, default ``sys.argv``); print and return its path."""
    import json
    import shlex
    import sys

    args = sys.argv if argv is None else argv
    out = ROOT / "bench" / "results" / f"{name}.json"
    full = {"machine": machine(), "command": " ".join(shlex.quote(a) for a in args), **doc}
    out.write_text(json.dumps(full, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return out
