"""Expected per-GPU frames/s of each preset on an H200, on paper (no GPU is lent now).

For each preset this counts, in one CPU forward of zeros through the path CUDA takes (SS2D
unfolded: the folded four-path kernel is the CPU's own; the meta device cannot enter the
models' fp32 autocast regions):

* FLOPs per frame: ``FlopCounterMode`` (convolutions, matrix products) with the scans
  replaced by zero-FLOP stand-ins and added analytically (``raystack.models.ss2d.scan_flops``),
  the same count as bench/model_bench.py and ``raystack.models.m2s2l.flops``;
* the selective scan's bytes per frame: every tensor the scan reads plus what it writes,
  fp32 (the scan stays fp32 under autocast), taken from the shapes the stand-ins receive,
  and its FLOPs per byte against the fp32 ridge point (which of the two bounds it);
* the other activations' bytes per frame: every non-view op's output, written once and read
  once, at 2 bytes (bf16 autocast): eager PyTorch fuses nothing, so this is the traffic the
  elementwise ops (norms, activations, adds) cost on top of the tensor-core work;
* the ops per forward (kernel launches), whose fixed cost is shared by a batch.

The expected time per frame is then a roofline sum with stated efficiencies (ASSUMED):
counted FLOPs at ``eta_tensor`` of the dense bf16 peak, plus the scan at the slower of its
bytes (``eta_hbm`` of HBM bandwidth) and its FLOPs (``eta_fp32`` of the fp32 peak), plus
the activation bytes at ``eta_hbm``, plus launches at ``launch_us`` each over the batch.
Peaks are NVIDIA's published H200 SXM figures (VENDOR_H200), not measurements. The CPU
figures measured here (bench/results/model.json, model_issue15.json) are printed beside:
the share of the same run's fp32 matmul that each preset reached on this CPU.

    .venv/bin/python bench/gpu_plan.py            # prints the table, writes gpu_plan.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

import raystack.models.m2s2l.temporal as temporal_mod  # noqa: E402
import raystack.models.ss2d as ss2d_mod  # noqa: E402
from raystack.inference import GPU_BATCH_SIZE  # noqa: E402
from raystack.models import create_model  # noqa: E402
from raystack.models.m2s2l.flops import analytic_scans  # noqa: E402

PRESETS = ("vqmau_fp.tiny", "vqmau_fr.tiny", "vqmau_fp.small", "vqmau_fr.small",
           "vqmau_fp.paper", "vqmau_fr.paper", "vqmau_fp.paper-avenue", "vqmau_fr.paper-avenue",
           "m2s2l.small", "m2s2l.paper")
# NVIDIA H200 SXM datasheet (vendor spec, dense, i.e. without 2:4 sparsity).
VENDOR_H200 = {"name": "NVIDIA H200 SXM (141 GB HBM3e)", "bf16_dense_flops": 989e12,
               "tf32_dense_flops": 494e12, "fp32_flops": 67e12, "hbm_bytes_per_s": 4.8e12,
               "memory_bytes": 141e9}
# ASSUMED efficiencies (what gpu_check's inference phase must confirm or replace).
ASSUMED = {"eta_tensor": 0.30, "eta_hbm": 0.60, "eta_fp32": 0.30, "launch_us": 5.0,
           "act_bytes_per_element": 2, "scan_bytes_per_element": 4}


class ActivationCounter(TorchDispatchMode):
    """Counts non-view ops and the elements their outputs hold."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False):
            self.ops += 1
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.elements += t.numel()
        return out


def _scan_bytes(calls: list[int]) -> dict[str, Any]:
    """Wrap the installed scan stand-ins so each call also records its tensors' elements."""
    saved = {}
    for site in (ss2d_mod, temporal_mod):
        for name in ("selective_scan_fn", "cross_scan_fn"):
            if hasattr(site, name):
                inner = getattr(site, name)

                def wrapped(*args, _inner=inner, **kwargs):
                    out = _inner(*args, **kwargs)
                    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
                    calls.append(sum(t.numel() for t in tensors) + out.numel())
                    return out

                saved[(site, name)] = inner
                setattr(site, name, wrapped)
    return saved


def count(name: str) -> dict[str, Any]:
    """FLOPs, scan bytes, activation bytes and ops of one frame of ``name``."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    for m in model.modules():
        if hasattr(m, "fold_directions"):
            m.fold_directions = False  # CUDA's path: explicit copies into mamba-ssm's scan
    c = model.config
    if hasattr(c, "context"):  # M2S2L: a clip of `context` frames scores one frame
        x = torch.zeros(1, c.context, c.in_channels, *c.img_size)
    else:
        x = torch.zeros(1, c.input_channels, *c.img_size)
    flops: list[int] = []
    scan_elements: list[int] = []
    counter = FlopCounterMode(display=False)
    acts = ActivationCounter()
    with torch.inference_mode(), analytic_scans(flops):
        saved = _scan_bytes(scan_elements)
        try:
            with counter, acts:
                model(x)
        finally:
            for (site, attr), fn in saved.items():
                setattr(site, attr, fn)
    return {"params": sum(p.numel() for p in model.parameters()), "img_size": list(c.img_size),
            "counted_flops": int(counter.get_total_flops()), "scan_flops": int(sum(flops)),
            "scan_elements": int(sum(scan_elements)), "activation_elements": acts.elements,
            "ops_per_forward": acts.ops}


def expected(c: dict[str, Any], batch: int, spec: dict[str, float], a: dict[str, float]
             ) -> dict[str, float]:
    """Seconds per frame, by part, under the assumed efficiencies; and the roofline bound."""
    scan_bytes = c["scan_elements"] * a["scan_bytes_per_element"]
    act_bytes = 2 * c["activation_elements"] * a["act_bytes_per_element"]  # write + read
    parts = {
        "tensor_s": c["counted_flops"] / (a["eta_tensor"] * spec["bf16_dense_flops"]),
        "scan_s": max(scan_bytes / (a["eta_hbm"] * spec["hbm_bytes_per_s"]),
                      c["scan_flops"] / (a["eta_fp32"] * spec["fp32_flops"])),
        "activation_s": act_bytes / (a["eta_hbm"] * spec["hbm_bytes_per_s"]),
        "launch_s": c["ops_per_forward"] * a["launch_us"] * 1e-6 / batch,
    }
    total = sum(parts.values())
    # The ceiling: every part at 100 % of its peak and perfectly overlapped, no launches.
    bound = max(c["counted_flops"] / spec["bf16_dense_flops"],
                (scan_bytes + act_bytes) / spec["hbm_bytes_per_s"],
                c["scan_flops"] / spec["fp32_flops"])
    return {**parts, "total_s": total, "frames_per_s": 1 / total,
            "ceiling_frames_per_s": 1 / bound, "scan_bytes": scan_bytes,
            "activation_bytes": act_bytes,
            # the scan's arithmetic intensity against the fp32 ridge point of the device
            "scan_flop_per_byte": c["scan_flops"] / scan_bytes if scan_bytes else 0.0,
            "fp32_ridge_flop_per_byte": spec["fp32_flops"] / spec["hbm_bytes_per_s"],
            "scan_bound": "flops" if c["scan_flops"] / (a["eta_fp32"] * spec["fp32_flops"])
            > scan_bytes / (a["eta_hbm"] * spec["hbm_bytes_per_s"]) else "bytes"}


def cpu_shares() -> dict[str, dict[str, float]]:
    """Per preset, the CPU frames/s and share of same-run fp32 matmul measured here (batch 4)."""
    out: dict[str, dict[str, float]] = {}
    path = ROOT / "bench/results/model.json"
    if path.exists():
        for r in json.loads(path.read_text())["results"]:
            if r["batch"] == 4:
                out[r["preset"]] = {"frames_per_s": r["frames_per_s"],
                                    "share_of_matmul": r["share_of_matmul"],
                                    "source": "bench/results/model.json"}
    path = ROOT / "bench/results/model_issue15.json"
    if path.exists():  # the newer scan kernels (issue 15's branch column)
        for r in json.loads(path.read_text())["summary"]:
            if r["batch"] == 4:
                out[r["preset"]] = {"frames_per_s": r["branch"]["frames_per_s"],
                                    "share_of_matmul": r["branch"]["share_of_matmul"],
                                    "source": "bench/results/model_issue15.json (branch)"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--batch", type=int, default=GPU_BATCH_SIZE,
                    help="frames per forward (default: the scorer's CUDA batch)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/gpu_plan.json"))
    args = ap.parse_args()
    from machine_info import machine

    cpu = cpu_shares()
    rows = []
    print(f"{VENDOR_H200['name']} (vendor): bf16 {VENDOR_H200['bf16_dense_flops'] / 1e12:.0f} "
          f"TFLOP/s dense, fp32 {VENDOR_H200['fp32_flops'] / 1e12:.0f} TFLOP/s, HBM "
          f"{VENDOR_H200['hbm_bytes_per_s'] / 1e12:.1f} TB/s; assumed {ASSUMED}; "
          f"batch {args.batch}")
    print(f"{'preset':22s} {'img':>7s} {'GFLOP/fr':>8s} {'scanGF':>6s} {'scanMB':>6s}"
          f" {'actMB':>6s} {'ops':>5s} {'tensor%':>7s} {'scan%':>5s} {'act%':>5s} {'launch%':>7s}"
          f" {'exp fr/s':>8s} {'ceil fr/s':>9s} {'CPU fr/s':>8s} {'CPU%mm':>6s}"
          f" {'scanF/B':>7s} {'scan bound':>10s}")
    for name in args.presets:
        c = count(name)
        e = expected(c, args.batch, VENDOR_H200, ASSUMED)
        row = {"preset": name, "batch": args.batch, **c, "expected": e, "cpu": cpu.get(name)}
        rows.append(row)
        share = {k: e[f"{k}_s"] / e["total_s"] * 100 for k in ("tensor", "scan", "activation",
                                                              "launch")}
        cp = cpu.get(name) or {}
        print(f"{name:22s} {'x'.join(map(str, c['img_size'])):>7s}"
              f" {(c['counted_flops'] + c['scan_flops']) / 1e9:8.3f} {c['scan_flops'] / 1e9:6.3f}"
              f" {e['scan_bytes'] / 1e6:6.1f} {e['activation_bytes'] / 1e6:6.1f}"
              f" {c['ops_per_forward']:5d} {share['tensor']:6.1f}% {share['scan']:4.1f}%"
              f" {share['activation']:4.1f}% {share['launch']:6.1f}% {e['frames_per_s']:8.0f}"
              f" {e['ceiling_frames_per_s']:9.0f} {cp.get('frames_per_s', float('nan')):8.2f}"
              f" {cp.get('share_of_matmul', float('nan')) * 100:5.1f}%"
              f" {e['scan_flop_per_byte']:7.1f} {e['scan_bound']:>10s}", flush=True)
    print(f"fp32 ridge point: {VENDOR_H200['fp32_flops'] / VENDOR_H200['hbm_bytes_per_s']:.1f} "
          "FLOP/byte (vendor peaks)")
    doc = {"machine": machine(), "device": VENDOR_H200, "assumed": ASSUMED, "batch": args.batch,
           "rows": rows,
           "notes": "Counted in a CPU forward (SS2D unfolded, as on CUDA); peaks are vendor "
                    "specs, efficiencies assumed, nothing here was measured on a GPU. CPU "
                    "columns: batch 4, this machine."}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
