"""Feature decomposition of M²S²L (paper II-D): common, appearance- and motion-specific parts.

A learnable gate extracts the task-common part of the fused feature f; two more gates
extract the task-specific parts from what the common part leaves (the residual):

    c = sigmoid(G_c(f)) * f,   r = f - c,
    a = sigmoid(G_a(r)) * r,   m = sigmoid(G_m(r)) * r.

The gates are per channel and per location (a linear layer on the feature, then a
sigmoid), so what counts as common can change across the image. The separation loss
(``losses.separation_loss``) pushes the three parts apart.

    dec = FeatureDecomposition(256)
    c, a, m = dec(torch.randn(2, 32, 32, 256))   # three (2, 32, 32, 256) maps
"""

from __future__ import annotations

import torch
import torch.nn as nn


class FeatureDecomposition(nn.Module):
    """Gated split of a channels-last feature into common, appearance and motion parts."""

    def __init__(
        self,
        d_model: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.gate_common = nn.Linear(d_model, d_model, **factory_kwargs)
        self.gate_appearance = nn.Linear(d_model, d_model, **factory_kwargs)
        self.gate_motion = nn.Linear(d_model, d_model, **factory_kwargs)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(b, h, w, d) -> common, appearance, motion parts, each (b, h, w, d)."""
        common = torch.sigmoid(self.gate_common(f)) * f
        residual = f - common
        appearance = torch.sigmoid(self.gate_appearance(residual)) * residual
        motion = torch.sigmoid(self.gate_motion(residual)) * residual
        return common, appearance, motion
