"""One-shot GPU check: scan kernels, inference, ptlflow, training and tests on a CUDA device.

Phases, each guarded (an exception is recorded, the next phase runs) and with a soft time
budget; the JSON and the log are rewritten after EVERY phase, so a run killed by the outer
``timeout`` keeps what it measured:

    env        nvidia-smi -L, torch / CUDA versions, the device, mamba_ssm, the scan backend
    matmul     bf16, fp32 and TF32 8192^3 matmuls (the peak the FLOP shares refer to)
    scan       auto-chosen scan backend vs the sequential oracle; time at the paper shape
    inference  FrameScorer per preset x model: frames/s fp32 and bf16, PSNR drift, memory
    ptlflow    rapidflow / raft_small via raystack.flow.create_flow: pairs/s, CPU vs device
    training   StreamTrainer steps (no Ray): clips/s of small and paper FP and FR
    pytest     the CUDA-relevant test files that need none of ray/duckdb/boto3/moto

No Ray, duckdb, boto3, decord or av is imported (tests/test_gpu_check.py runs the quick mode
with those imports blocked). On the device machine (wheels of ptlflow's missing pure-Python
deps and pytorch-msssim in .whl/, carried as ``carry=[".whl"]``), the command
is (``timeout_s`` 540: the wrapper stops the check at 450 s):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD \
        PYTHONUNBUFFERED=1 && bash bench/gpu_check.sh

It writes $OUT/gpu_check.json, $OUT/gpu_check.log, $OUT/pytest.txt and (the wrapper)
$OUT/nvidia-smi.txt; copy the JSON to bench/results/gpu_check.json. Here, on the CPU, in
under two minutes:

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/gpu_check.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

import torch  # noqa: E402
from gpu_common import Ctx  # noqa: E402
from gpu_report import summary_lines  # noqa: E402

# name -> (soft budget in seconds on the device, module, function); quick mode divides by 4
PHASES: dict[str, tuple[float, str, str]] = {
    "env": (30, "gpu_kernels", "phase_env"),
    "matmul": (30, "gpu_kernels", "phase_matmul"),
    "scan": (40, "gpu_kernels", "phase_scan"),
    "inference": (120, "gpu_models", "phase_inference"),
    "ptlflow": (45, "gpu_flow", "phase_ptlflow"),
    "training": (75, "gpu_models", "phase_training"),
    "pytest": (80, "gpu_pytest", "phase_pytest"),
}


def default_out_dir() -> Path:
    """$OUT on the device machine, else bench/results."""
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench/results"


def phase_function(name: str) -> Callable[[Ctx], dict[str, Any]]:
    """The phase's function, imported only now: a module that fails to import costs one phase."""
    import importlib

    _, module, func = PHASES[name]
    return getattr(importlib.import_module(module), func)


def run_phase(name: str, fn: Callable[[Ctx], dict[str, Any]], ctx: Ctx, budget: float
              ) -> dict[str, Any]:
    """Run one phase under its budget; an exception becomes ``status: error`` with its tail."""
    ctx.deadline = time.monotonic() + budget
    t = time.perf_counter()
    try:
        result, status, error = fn(ctx), "ok", None
    except Exception as e:
        result, status = None, "error"
        error = "".join(traceback.format_exception(e))[-3000:]
    finally:
        if ctx.cuda:
            torch.cuda.empty_cache()
    return {"status": status, "seconds": round(time.perf_counter() - t, 2),
            "budget_s": round(budget, 1), "result": result, "error": error}


def write_doc(doc: dict[str, Any], path: Path) -> None:
    """Write atomically, so a kill mid-write leaves the previous phase's JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


class Log:
    """Prints and appends to the log file, so the log comes back even if stdout does not."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        with self.path.open("a") as f:
            f.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU test run")
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    ap.add_argument("--total-s", type=float, default=420, help="wall budget of all phases")
    ap.add_argument("--out-dir", type=Path, default=None, help="default: $OUT or bench/results")
    args = ap.parse_args(argv)

    wanted = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PHASES))
    if unknown:
        ap.error(f"unknown phases {unknown}; choose from {list(PHASES)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda but torch sees no CUDA device; use --device cpu --quick")
    out_dir = args.out_dir or default_out_dir()
    json_path = out_dir / "gpu_check.json"
    log = Log(out_dir / "gpu_check.log")
    from machine_info import machine

    ctx = Ctx(device=torch.device(args.device), quick=args.quick, out_dir=out_dir)
    doc: dict[str, Any] = {"machine": machine(), "args": {"device": args.device,
                                                          "quick": args.quick,
                                                          "phases": wanted}, "phases": {}}
    start = time.monotonic()
    for name in wanted:
        budget = PHASES[name][0] / (4 if args.quick else 1)
        budget = max(0.0, min(budget, args.total_s - (time.monotonic() - start)))
        log(f"== {name} (budget {budget:.0f} s)")
        try:
            fn = phase_function(name)
        except Exception as e:  # a phase module that does not even import
            doc["phases"][name] = {"status": "error", "seconds": 0.0, "budget_s": budget,
                                   "result": None, "error": f"{type(e).__name__}: {e}"}
        else:
            doc["phases"][name] = run_phase(name, fn, ctx, budget)
        rec = doc["phases"][name]
        log(f"   {rec['status']} in {rec['seconds']} s")
        if rec["error"]:
            log(rec["error"])
        doc["total_s"] = round(time.monotonic() - start, 1)
        write_doc(doc, json_path)
    for line in summary_lines(doc):
        log(line)
    log(f"wrote {json_path}")
    return 0 if all(p["status"] == "ok" for p in doc["phases"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
