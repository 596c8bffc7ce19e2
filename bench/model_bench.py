"""Model inference speed on this CPU: frames/s, FLOPs per frame, share of measured matmul FLOP/s.

For each preset (VQ-MaU FP/FR, and M2S2L, e.g. ``m2s2l.paper``) and batch size: the median
wall time of a forward pass under ``torch.inference_mode`` (eval mode, fp32), the time
spent inside the scans (``selective_scan_fn`` and SS2D's folded ``cross_scan_fn``, measured
by wrapping them), the model's FLOPs per frame, and the achieved FLOP/s as a share of an
fp32 2048x2048 matmul measured in the same run with the same threads.

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` counts convolutions and matrix products
(elementwise work is free in its model) and cannot see inside the selective scan, so the
scan is replaced by a zero-FLOP stand-in while counting and its FLOPs are added analytically
(``raystack.models.ss2d.scan_flops``: ~ (8N + 2) per channel and step). A torch.profiler
table of the first preset's forward (batch 1) says where the time goes.

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/model_bench.py            # full run
    flock /tmp/raystack-cpu.lock .venv/bin/python bench/model_bench.py --batch 1  # quicker
    flock /tmp/raystack-cpu.lock .venv/bin/python bench/model_bench.py \
        --presets vqmau_fp.paper vqmau_fr.paper m2s2l.paper
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from unittest import mock

try:  # the entry point's settings, as raystack's CLI applies them: before torch loads
    from raystack.threads import short_omp_spin
except ImportError:  # an older tree on PYTHONPATH (bench/model_ab.py)
    pass
else:
    short_omp_spin()

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cpu_speed import SCAN_ENTRIES, matmul_flops, scan_implementation, time_forward  # noqa: E402

import raystack.models.m2s2l.temporal as temporal_mod  # noqa: E402
import raystack.models.ss2d as ss2d_mod  # noqa: E402
from raystack.models import create_model  # noqa: E402
from raystack.models.m2s2l.flops import analytic_scans  # noqa: E402

# the profiler label of every scan call (SS2D's, folded or not, and M2S2L's temporal one)
SCAN_LABEL = "ss2d_scan"
DEFAULT_PRESETS = ("vqmau_fp.paper", "vqmau_fr.paper", "vqmau_fp.small", "vqmau_fr.small",
                   "vqmau_fp.tiny", "vqmau_fr.tiny")


def machine() -> dict:
    from machine_info import machine as base

    return base()


def input_shape(config, batch: int) -> tuple[int, ...]:
    """One forward's input: VQ-MaU takes (b, channels, h, w), M2S2L clips of ``context``
    frames (b, t, 3, h, w); either way one frame is scored per batch element."""
    if hasattr(config, "context"):
        return (batch, config.context, config.in_channels, *config.img_size)
    return (batch, config.input_channels, *config.img_size)


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> dict:
    calls: list[int] = []
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), analytic_scans(calls), counter:
        model(x)
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts()["Global"].items()}
    counted = int(counter.get_total_flops())
    scan = int(sum(calls))
    b = x.shape[0]
    return {"counted_per_frame": counted / b, "scan_per_frame": scan / b,
            "total_per_frame": (counted + scan) / b,
            "by_op_per_frame": {k: v / b for k, v in by_op.items()}}


def _labelled(fn):
    def wrapper(*args, **kwargs):
        with torch.profiler.record_function(SCAN_LABEL):
            return fn(*args, **kwargs)

    return wrapper


def profile_ops(model, x, top: int = 12) -> dict:
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        for site in (ss2d_mod, temporal_mod):
            for entry in SCAN_ENTRIES:
                if hasattr(site, entry):
                    fn = _labelled(getattr(site, entry))
                    stack.enter_context(mock.patch.object(site, entry, fn))
        model(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model(x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    scan = sum(e.cpu_time_total for e in events if e.key == SCAN_LABEL)
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "total_ms": total / 1e3,
        "inside_selective_scan_ms": scan / 1e3,
        "top_self_ops": [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3,
                          "share": e.self_cpu_time_total / total, "calls": e.count} for e in rows],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 4])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=5.0, help="seconds of timed reps per case")
    ap.add_argument("--min-reps", type=int, default=3)
    ap.add_argument("--max-reps", type=int, default=50)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench/results/model.json"))
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    info = {"machine": machine(), "threads": args.threads, "scan": scan_implementation()}
    mm = matmul_flops(args.threads)
    peak = mm["flops_per_s_median"]
    print(f"scan: {info['scan']}")
    print(f"fp32 matmul 2048^3, {args.threads} threads: {peak / 1e9:.1f} GFLOP/s (median)")

    rows = []
    header = (f"{'preset':16s} {'img':>4s} {'b':>2s} {'params':>7s} {'GFLOP/fr':>8s}"
              f" {'scan%FL':>7s} {'ms/batch':>9s} {'frames/s':>8s} {'scan%t':>6s}"
              f" {'GFLOP/s':>7s} {'%matmul':>7s}")
    print(header)
    for name in args.presets:
        model = create_model(name).eval()
        c = model.config
        n_params = sum(p.numel() for p in model.parameters())
        flops = count_flops(model, torch.zeros(input_shape(c, 1)))
        for b in args.batch:
            x = torch.rand(input_shape(c, b)) * 2 - 1
            timing = time_forward(model, x, scan_sites=[ss2d_mod, temporal_mod],
                                  min_time=args.min_time, min_reps=args.min_reps,
                                  max_reps=args.max_reps)
            fps = b / timing["median_s"]
            achieved = flops["total_per_frame"] * fps
            row = {"preset": name, "img_size": list(c.img_size), "batch": b, "params": n_params,
                   "flops": flops, **timing, "frames_per_s": fps, "achieved_flops_per_s": achieved,
                   "share_of_matmul": achieved / peak,
                   "scan_time_share": timing["scan_median_s"] / timing["median_s"]}
            rows.append(row)
            print(f"{name:16s} {c.img_size[0]:4d} {b:2d} {n_params / 1e6:6.2f}M"
                  f" {flops['total_per_frame'] / 1e9:8.3f}"
                  f" {flops['scan_per_frame'] / flops['total_per_frame'] * 100:6.1f}%"
                  f" {timing['median_s'] * 1e3:9.1f} {fps:8.2f}"
                  f" {row['scan_time_share'] * 100:5.1f}% {achieved / 1e9:7.2f}"
                  f" {row['share_of_matmul'] * 100:6.1f}%", flush=True)

    profile = None
    if not args.no_profile:
        model = create_model(args.presets[0]).eval()
        profile = profile_ops(model, torch.rand(input_shape(model.config, 1)) * 2 - 1)
        profile["preset"] = args.presets[0]
        print(f"\nprofile of {args.presets[0]} (batch 1): {profile['total_ms']:.1f} ms self CPU, "
              f"{profile['inside_selective_scan_ms']:.1f} ms inside the scan")
        for op in profile["top_self_ops"]:
            print(f"  {op['op']:40s} {op['self_ms']:9.2f} ms {op['share'] * 100:5.1f}%"
                  f"  x{op['calls']}")

    out = {**info, "matmul": mm, "results": rows, "profile": profile,
           "notes": "FLOPs = FlopCounterMode (conv, mm, bmm) with the scan replaced by a "
                    "zero-FLOP stand-in, plus the scan's analytic FLOPs (8N+2 per channel-step)."}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
