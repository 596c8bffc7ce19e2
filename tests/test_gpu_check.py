"""bench/gpu_check.py: its quick CPU mode end to end with the GPU machine's missing packages
blocked, a failing phase that does not stop the others, and the report arithmetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from gpu_check import run_phase, write_doc  # noqa: E402
from gpu_common import Ctx, flop_share  # noqa: E402
from gpu_pytest import summary_line  # noqa: E402
from gpu_report import summary_lines  # noqa: E402

# What the GPU machine lacks: the check must not import any of it.
BLOCKER = '''
import sys
# None in sys.modules: `import x` raises ModuleNotFoundError and importlib.util.find_spec(x)
# returns None, exactly as for a package that is not installed.
for name in ("ray", "duckdb", "boto3", "botocore", "decord", "av", "moto", "mamba_ssm",
             "sklearn", "prompt_toolkit"):
    sys.modules[name] = None
'''


@pytest.mark.timeout(120)
def test_quick_cpu_run_without_the_missing_packages(tmp_path):
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCKER)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(block), str(ROOT)])}
    env.pop("OUT", None)
    proc = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--device", "cpu", "--quick", "--out-dir",
         str(out), "--phases", "env,matmul,scan,inference,ptlflow,training"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=110, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "gpu_check.json").read_text())
    phases = doc["phases"]
    assert list(phases) == ["env", "matmul", "scan", "inference", "ptlflow", "training"]
    assert all(p["status"] == "ok" for p in phases.values())
    assert "halted; None in sys.modules" in phases["env"]["result"]["mamba_ssm"]  # blocked
    scan = phases["scan"]["result"]
    assert scan["fwd_max_abs_err"] < 1e-4 and max(scan["grad_max_abs_err"].values()) < 1e-3
    rows = phases["inference"]["result"]["rows"]
    assert [r["model"] for r in rows] == ["vqmau_fp.tiny", "vqmau_fr.tiny", "m2s2l.tiny"]
    for r in rows:
        assert r["fp32"]["frames_per_s"] > 0 and r["amp"]["amp"] == "bfloat16"
        assert 0 <= r["max_abs_psnr_diff_db"] < 1.0 and r["gflops_per_frame"] > 0
        assert r["fp32"]["share_of_bf16_matmul"] > 0
    train_rows = phases["training"]["result"]["rows"]
    assert [r["clips_per_s"] > 0 for r in train_rows] == [True] * 4
    assert [(r["task"], r["amp"], r["precision"]) for r in train_rows] == [
        ("fp", "off", "float32"), ("fp", "auto", "float32"),  # tiny on a CPU: float32
        ("fr", "off", "float32"), ("fr", "auto", "float32")]
    assert "gpu_check.json" in (out / "gpu_check.log").read_text()


def test_a_failing_phase_is_recorded_and_the_json_written(tmp_path):
    ctx = Ctx(device=torch.device("cpu"), quick=True)

    def broken(ctx):
        msg = "kernel exploded"
        raise RuntimeError(msg)

    rec = run_phase("broken", broken, ctx, budget=5)
    assert rec["status"] == "error" and "kernel exploded" in rec["error"]
    assert rec["result"] is None and rec["budget_s"] == 5
    doc = {"phases": {"broken": rec, "fine": run_phase("fine", lambda c: {"x": 1}, ctx, 5)}}
    write_doc(doc, tmp_path / "g.json")
    assert json.loads((tmp_path / "g.json").read_text())["phases"]["fine"]["result"] == {"x": 1}
    lines = summary_lines(doc)
    assert lines[1].split()[:2] == ["broken", "error"] and lines[2].split()[:2] == ["fine", "ok"]


def test_flop_share_and_pytest_summary():
    assert flop_share(2e9, 50.0, 1e12) == pytest.approx(0.1)
    assert flop_share(2e9, 50.0, None) is None and flop_share(2e9, 50.0, 0.0) is None
    assert summary_line("x\n\n12 passed, 3 skipped in 4.20s\n") == "12 passed, 3 skipped in 4.20s"
    assert summary_line("") == ""
