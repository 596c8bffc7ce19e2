"""Vector quantiser at the VQ-MaU bottleneck (VQ-VAE, van den Oord et al. 2017).

Each bottleneck feature vector is replaced by its nearest codebook entry (L2). Training
signal, exactly the paper's eq. (2) with mean-squared norms:

    L_vq = ||sg(z_e) - z_q||^2 + beta * ||z_e - sg(z_q)||^2,   beta = 0.25

and the straight-through estimator ``z_e + sg(z_q - z_e)`` carries the decoder's gradient
to the encoder (the public code returns z_q itself, so its encoder gets no gradient through
the bottleneck). The codebook learns from the first loss term, not by EMA updates: that is
what the paper describes, and it keeps the quantiser a plain differentiable module that
DDP and checkpoints handle without extra buffers.

    vq = VectorQuantizer(num_codes=50, code_dim=512)
    z_q, loss, stats = vq(torch.randn(2, 8, 8, 512))   # z_q (2, 8, 8, 512); stats["perplexity"]
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation of channels-last features with a straight-through gradient."""

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float = 0.25,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.beta = beta
        # VQ-VAE's init: small codes near the origin, so early assignments follow the
        # direction of the features and every code starts close enough to be picked.
        self.codebook = nn.Parameter(
            torch.empty(num_codes, code_dim, **factory_kwargs).uniform_(
                -1.0 / num_codes, 1.0 / num_codes
            )
        )

    def forward(
        self, z_e: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Quantise ``z_e`` (..., code_dim).

        Returns:
            ``(z_q, vq_loss, stats)``: z_q has z_e's shape and carries the straight-through
            gradient; vq_loss is a scalar; stats holds ``indices`` (z_e's shape without the
            last axis), ``usage`` (fraction of the K codes used in this batch) and
            ``perplexity`` (exp of the entropy of code frequencies: K when all are used
            evenly, 1 when the codebook has collapsed to one code).
        """
        if z_e.shape[-1] != self.code_dim:
            msg = f"VectorQuantizer: last axis {z_e.shape[-1]} != code_dim {self.code_dim}"
            raise ValueError(msg)
        flat = z_e.reshape(-1, self.code_dim)
        # Distances in fp32 even under autocast: an argmin over bf16 distances of
        # near-equal codes flips assignments from run to run.
        with torch.autocast(device_type=z_e.device.type, enabled=False):
            f32 = flat.float()
            cb = self.codebook.float()
            dist = f32.pow(2).sum(1, keepdim=True) - 2.0 * f32 @ cb.t() + cb.pow(2).sum(1)
            indices = dist.argmin(dim=1)  # (m,)
            z_q = F.embedding(indices, cb).view(z_e.shape)
            z = z_e.float()
            codebook_loss = F.mse_loss(z_q, z.detach())
            commitment_loss = F.mse_loss(z, z_q.detach())
            vq_loss = codebook_loss + self.beta * commitment_loss
        z_q = (z + (z_q - z).detach()).to(z_e.dtype)  # straight-through estimator
        with torch.no_grad():
            counts = torch.bincount(indices, minlength=self.num_codes).float()
            probs = counts / counts.sum().clamp_min(1.0)
            entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
            stats = {
                "indices": indices.view(z_e.shape[:-1]),
                "usage": (counts > 0).float().mean(),
                "perplexity": entropy.exp(),
            }
        return z_q, vq_loss, stats
