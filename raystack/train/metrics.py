"""Per-epoch metrics of a stream's training: sums over DDP ranks, codebook use, validation.

Validation reports the loss and PSNR of the held-out normal clips beside the PSNR of the
trivial answer on the same clips (copy-last, or zero flow for FR) and the gain over it:
a model is only worth training where it beats that baseline.

    val = validate(module, data.val, task="fp", device=dev, batch_size=8)
    val  # {"val_loss", "val_psnr", "val_baseline_psnr", "val_gain_db"}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from raystack.models.losses import trivial_prediction
from raystack.models.vqmau import VQMaU

# What the model must beat on the same clips: copying the last frame, or zero flow.
BASELINE_NAMES = {"fr": "zero flow"}


def baseline_name(task: str) -> str:
    """``"copy-last"`` for frame predictors (FP, M2S2L), ``"zero flow"`` for FR."""
    return BASELINE_NAMES.get(task, "copy-last")


class Reducer:
    """Sums tensors over DDP ranks; in one process it returns them as they are."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist if dist.is_available() and dist.is_initialized() else None

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.dist is None:
            return x
        x = x.clone()
        self.dist.all_reduce(x)
        return x


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A training batch on ``device``."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class CodebookUse:
    """Counts of the VQ codes a VQ-MaU picks over an epoch; nothing for models without VQ.

    ``metrics()`` gives ``codebook_usage`` (share of codes used) and
    ``codebook_perplexity`` (exp of the entropy of the code frequencies), global over ranks.
    """

    def __init__(self, module: nn.Module) -> None:
        has_vq = isinstance(module, VQMaU) and module.vq is not None
        self.codes = module.config.codebook_size if has_vq else 0
        self.counts = torch.zeros(max(self.codes, 1), dtype=torch.float64)

    def add(self, output: Any) -> None:
        """Count the codes of one forward ``output`` (a ``VQMaUOutput``)."""
        if self.codes:
            self.counts += torch.bincount(output.vq_stats["indices"].flatten().cpu(),
                                          minlength=self.codes).double()

    def metrics(self, reducer: Reducer) -> dict[str, float]:
        if not self.codes:
            return {}
        counts = reducer.sum(self.counts)
        probs = counts / counts.sum().clamp_min(1.0)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
        return {"codebook_usage": float((counts > 0).double().mean()),
                "codebook_perplexity": float(torch.exp(entropy))}


@torch.no_grad()
def validate(
    module: nn.Module, val: Any, *, task: str, device: torch.device, batch_size: int,
    rank: int = 0, world_size: int = 1, reducer: Reducer | None = None,
) -> dict[str, float]:
    """Mean loss and PSNR over the held-out clips ``val`` (each worker scores its share).

    Args:
        module: the unwrapped model (a :class:`~raystack.models.contract.TrainableModel`).
        val: the held-out :class:`~raystack.train.data.ClipSet`.
        task: names the trivial answer the PSNR is compared with.
        batch_size: the global batch; each of the ``world_size`` workers takes its share.

    Returns:
        ``{"val_loss", "val_psnr", "val_baseline_psnr", "val_gain_db"}``, or ``{}`` without
        held-out clips.
    """
    from raystack.scoring import psnr

    if len(val) == 0:
        return {}
    per_worker = max(1, batch_size // world_size)
    idx = np.arange(len(val))[rank::world_size]
    sums = torch.zeros(4, dtype=torch.float64)  # loss * n, psnr sum, baseline sum, n
    module.eval()
    try:
        for s in range(0, len(idx), per_worker):
            batch = to_device(val.batch(idx[s : s + per_worker]), device)
            out = module(batch["x"])
            loss, _ = module.loss(out, batch)
            k = len(batch["x"])
            base = psnr(trivial_prediction(task, batch), batch["y"])
            sums += torch.tensor([float(loss) * k, float(psnr(out.pred, batch["y"]).sum()),
                                  float(base.sum()), k], dtype=torch.float64)
    finally:
        module.train()
    sums = (reducer or Reducer()).sum(sums)
    n = max(float(sums[3]), 1.0)
    val_psnr, base_psnr = float(sums[1]) / n, float(sums[2]) / n
    return {"val_loss": float(sums[0]) / n, "val_psnr": val_psnr,
            "val_baseline_psnr": base_psnr, "val_gain_db": val_psnr - base_psnr}
