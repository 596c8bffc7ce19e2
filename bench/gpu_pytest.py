"""Phase g of bench/gpu_check.py: the CUDA-relevant test files, run by pytest on the device.

Chosen because none of them (nor tests/conftest.py, which imports moto only inside a
fixture) imports ray, duckdb, boto3, moto, decord or av at collection: the scan (its
``gpu``-marked tests run here and skip without mamba-ssm), the flow adapter, the model
contract and FrameScorer. The real-ptlflow tests run only when ptlflow imports (the
gpu_extras conftest collects them with RAYSTACK_GPU_EXTRAS=1). Each group is its own pytest
process with ``-x``, so one failure stops its group only; output goes to pytest.txt.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gpu_common import Ctx

ROOT = Path(__file__).resolve().parents[1]
GROUPS: dict[str, list[str]] = {
    "scan": ["tests/ops/test_selective_scan.py"],
    "flow_models": ["tests/test_flow.py", "tests/models/test_contract.py",
                    "tests/test_inference.py"],
    "ptlflow_real": ["tests/gpu_extras/test_ptlflow_real.py"],
}
# The quick (CPU test) run proves the mechanism on one fast selection.
QUICK_GROUPS = {"scan": ["tests/ops/test_selective_scan.py", "-k", "bad_env"]}


def summary_line(output: str) -> str:
    """pytest's last line, e.g. ``12 passed, 3 skipped in 4.20s``."""
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def pytest_command(files: list[str]) -> list[str]:
    # no xdist: the groups take ~15 s serially on 2 CPU cores, less than workers take to start
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x",
            "--timeout", "120", *files]


def phase_pytest(ctx: Ctx) -> dict[str, Any]:
    groups = dict(QUICK_GROUPS if ctx.quick else GROUPS)
    have_ptlflow = importlib.util.find_spec("ptlflow") is not None
    if not have_ptlflow:
        groups.pop("ptlflow_real", None)
    env = {**os.environ, "RAYSTACK_GPU_EXTRAS": "1" if have_ptlflow else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    log = (ctx.out_dir or ROOT / "bench/results") / "pytest.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    res: dict[str, Any] = {"ptlflow_tests": have_ptlflow, "groups": {}}
    for name, files in groups.items():
        left = ctx.left()
        if left < 15:
            res["groups"][name] = {"skipped": "phase budget spent"}
            continue
        cmd = pytest_command(files)
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=left, check=False)
            output, rc = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as e:
            output = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) \
                else (e.stdout or "")
            output, rc = output + f"\n[killed after {left:.0f} s: phase budget]", None
        with log.open("a") as f:
            f.write(f"==== {name}: {' '.join(cmd[1:])}\n{output}\n")
        res["groups"][name] = {"rc": rc, "summary": summary_line(output),
                               "seconds": round(time.perf_counter() - t, 1)}
    return res
