"""FLOPs per frame of an M²S²L model: FlopCounterMode plus the scans counted analytically.

``torch.utils.flop_counter.FlopCounterMode`` counts matrix products and convolutions but
cannot see inside the selective scan (elementwise work and a recurrence in torch, or an
opaque CUDA kernel). While counting, every scan call (SS2D's, folded or not, and the
temporal blocks') is
replaced by a zero-FLOP stand-in that records ``ss2d.scan_flops`` (~ (8N + 2) FLOPs per
channel and step); both numbers are reported. The forward runs on a CPU model (not the
meta device: the scans' ``autocast(enabled=False)`` guard has no meta form).

    counts = count_flops(create_model("m2s2l.paper").eval())
    counts["total_per_frame"] / 1e9     # ~ 20 GFLOPs
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

import raystack.models.m2s2l.temporal as temporal_mod
import raystack.models.ss2d as ss2d_mod


@contextlib.contextmanager
def analytic_scans(calls: list[int]) -> Iterator[None]:
    """Replace the scans of SS2D and the TMB by stand-ins that append their FLOPs to ``calls``."""

    def scan(u, delta, A, B, C, D=None, z=None, **kwargs):
        b, d, length = u.shape
        calls.append(ss2d_mod.scan_flops(b, length, d, A.shape[1]))
        return u * D[:, None] if D is not None else u.clone()

    def cross_scan(u, delta, A, B, C, D=None, **kwargs):
        # SS2D's folded path: the same four scans of (b, 4d, h*w) as the unfolded one
        b, d, h, w = u.shape
        calls.append(ss2d_mod.scan_flops(b, h * w, delta.shape[1] * d, A.shape[1]))
        return u.permute(0, 2, 3, 1).clone()

    saved = (ss2d_mod.selective_scan_fn, ss2d_mod.cross_scan_fn, temporal_mod.selective_scan_fn)
    ss2d_mod.selective_scan_fn = temporal_mod.selective_scan_fn = scan
    ss2d_mod.cross_scan_fn = cross_scan
    try:
        yield
    finally:
        ss2d_mod.selective_scan_fn, ss2d_mod.cross_scan_fn, temporal_mod.selective_scan_fn = saved


def count_flops(model: torch.nn.Module, batch: int = 1) -> dict:
    """FLOPs of one forward per frame (per target frame), split into counted and scan FLOPs.

    Args:
        model: an M²S²L model (CPU or CUDA); counted in its current mode.
        batch: clips per forward; results are divided by it.

    Returns:
        ``{"counted_per_frame", "scan_per_frame", "total_per_frame", "by_op_per_frame",
        "by_module_per_frame"}`` (by module: the model's top-level children).
    """
    c = model.config
    param = next(model.parameters())
    x = torch.zeros(batch, c.context, c.in_channels, *c.img_size, device=param.device,
                    dtype=param.dtype)
    calls: list[int] = []
    counter = FlopCounterMode(display=False, depth=2)
    with torch.no_grad(), analytic_scans(calls), counter:
        model(x)
    flops = counter.get_flop_counts()
    by_op = {str(k): int(v) / batch for k, v in flops["Global"].items()}
    prefix = type(model).__name__ + "."
    by_module = {
        k[len(prefix):]: sum(int(v) for v in ops.values()) / batch
        for k, ops in flops.items() if k.startswith(prefix) and k.count(".") == 1
    }
    counted = int(counter.get_total_flops())
    scan = int(sum(calls))
    return {"counted_per_frame": counted / batch, "scan_per_frame": scan / batch,
            "total_per_frame": (counted + scan) / batch, "by_op_per_frame": by_op,
            "by_module_per_frame": by_module}
