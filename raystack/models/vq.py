"""Vector quantiser at the VQ-MaU bottleneck (VQ-VAE, van den Oord et al. 2017).

Each bottleneck feature vector is replaced by its nearest codebook entry (L2). Training
signal, exactly the paper's eq. (2) with mean-squared norms:

    L_vq = ||sg(z_e) - z_q||^2 + beta * ||z_e - sg(z_q)||^2,   beta = 0.25

and the straight-through estimator ``z_e + sg(z_q - z_e)`` carries the decoder's gradient
to the encoder (the public code returns z_q itself, so its encoder gets no gradient through
the bottleneck). By default the codebook learns from the first loss term, as the paper
describes.

``ema=True`` (a named deviation, used by the CPU presets): the codebook is initialised from
the first batch of encoder outputs, follows them by exponential moving averages (VQ-VAE-2,
decay 0.99) instead of the loss, and codes no feature has chosen for a while restart at a
random feature of the current batch; the loss keeps only the commitment term. With the
paper's uniform init near the origin and loss updates, a few codes take every feature and
the codebook term (~1 with LayerNorm'd features) outweighs the prediction loss (~1e-3) by
three orders, so the encoder learns to please the quantiser instead of the decoder. Under
DDP the statistics are summed over workers, so every replica keeps the same codebook.

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
        ema: bool = False,
        decay: float = 0.99,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.beta = beta
        self.ema = ema
        self.decay = decay
        # VQ-VAE's init: small codes near the origin, so early assignments follow the
        # direction of the features and every code starts close enough to be picked.
        self.codebook = nn.Parameter(
            torch.empty(num_codes, code_dim, **factory_kwargs).uniform_(
                -1.0 / num_codes, 1.0 / num_codes
            ),
            requires_grad=not ema,
        )
        if ema:
            self.register_buffer("initialized", torch.zeros((), dtype=torch.bool, device=device))
            self.register_buffer("ema_count", torch.ones(num_codes, **factory_kwargs))
            self.register_buffer("ema_sum", self.codebook.detach().clone())

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """EMA step of the codebook on this batch (training only); returns new indices when
        the codebook was (re)initialised."""
        import torch.distributed as dist

        distributed = dist.is_available() and dist.is_initialized()

        def pick(n: int) -> torch.Tensor:
            # Random features of this batch, the same on every DDP worker (rank 0's).
            rows = flat[torch.randint(len(flat), (n,), device=flat.device)].contiguous()
            if distributed:
                dist.broadcast(rows, src=0)
            return rows

        if not bool(self.initialized):
            self.codebook.data.copy_(pick(self.num_codes))
            self.ema_sum.copy_(self.codebook.data)
            self.ema_count.fill_(1.0)
            self.initialized.fill_(True)
            return self._nearest(flat)
        counts = torch.bincount(indices, minlength=self.num_codes).to(flat.dtype)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, flat)
        if distributed:
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps a rarely used code from dividing by ~0.
        n = self.ema_count.sum()
        size = (self.ema_count + 1e-5) / (n + self.num_codes * 1e-5) * n
        self.codebook.data.copy_(self.ema_sum / size.unsqueeze(1))
        # A code chosen by under ~1% of a batch's share for ~100 steps is dead: restart it.
        dead = self.ema_count < 0.01 * n / self.num_codes
        if bool(dead.any()):
            fresh = pick(int(dead.sum()))
            self.codebook.data[dead] = fresh
            self.ema_sum[dead] = fresh
            self.ema_count[dead] = 1.0
        return indices

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        cb = self.codebook.float()
        dist = flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ cb.t() + cb.pow(2).sum(1)
        return dist.argmin(dim=1)

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
            indices = self._nearest(f32)  # (m,)
            if self.ema and self.training:
                indices = self._update(f32.detach(), indices)
            z_q = F.embedding(indices, self.codebook.float()).view(z_e.shape)
            z = z_e.float()
            commitment_loss = F.mse_loss(z, z_q.detach())
            if self.ema:  # the codebook follows the features; only the encoder commits
                vq_loss = self.beta * commitment_loss
            else:
                vq_loss = F.mse_loss(z_q, z.detach()) + self.beta * commitment_loss
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
