"""NVSS block of VADMamba: a VSS branch (LayerNorm -> SS2D) and a Non-negative Enhanced branch.

The paper (section II, Fig. 2c) names the two parts but gives no equation for how they
combine; we compose them as two pre-norm residual branches in sequence,

    y   = x + DropPath(SS2D(LN(x)))
    out = y + DropPath(NE(y)),      NE(y) = BN(Conv3x3(ReLU(Linear(LN(y)))))

which is the block of the public code and of Fig. 2c read top to bottom. The NE branch is
the paper's "pre-activation" layout ReLU -> Conv -> BN: the convolution sees non-negative
features. Its convolution is channels-first, so the branch permutes channels-last (b, h, w,
c) to (b, c, h, w) and back with a real permute; the public code reinterprets NCHW memory
as NHWC with ``view``, which scrambles pixels and channels. We do not copy that.

    block = NVSSBlock(d_model=64)
    y = block(torch.randn(2, 16, 16, 64))   # (b, h, w, c) -> (2, 16, 16, 64)
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from raystack.models.ss2d import SS2D


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero the whole residual branch of random samples, rescale the rest."""
    if p <= 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class NonNegativeEnhanced(nn.Module):
    """NE branch: LayerNorm, Linear, then ReLU -> Conv -> BN on channels-first features."""

    def __init__(
        self,
        d_model: int,
        kernel_size: int = 3,
        bias: bool = False,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=norm_eps, **factory_kwargs)
        self.proj = nn.Linear(d_model, d_model, bias=bias, **factory_kwargs)
        # BN right after the conv makes a conv bias redundant.
        self.conv = nn.Conv2d(
            d_model, d_model, kernel_size, padding=kernel_size // 2, bias=False, **factory_kwargs
        )
        self.bn = nn.BatchNorm2d(d_model, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, h, w, c) -> (b, h, w, c)."""
        x = self.proj(self.norm(x))
        x = rearrange(x, "b h w c -> b c h w")  # a real permute, not a view of NHWC memory
        x = self.bn(self.conv(F.relu(x)))
        return rearrange(x, "b c h w -> b h w c")


class NVSSBlock(nn.Module):
    """Non-negative Visual State Space block: VSS branch then NE branch, both residual."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 3,
        expand: int = 2,
        dt_rank: int | None = None,
        drop_path: float = 0.0,
        use_ne: bool = True,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.drop_path = drop_path
        self.norm = nn.LayerNorm(d_model, eps=norm_eps, **factory_kwargs)
        self.ss2d = SS2D(
            d_model, d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank,
            **factory_kwargs,
        )
        # The ablation "w/o NE" (paper Table II) removes the module, not just its output,
        # so parameter counts and FLOPs of the ablated model are honest.
        self.ne = (
            NonNegativeEnhanced(d_model, norm_eps=norm_eps, **factory_kwargs) if use_ne else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, h, w, c) -> (b, h, w, c)."""
        x = x + drop_path(self.ss2d(self.norm(x)), self.drop_path, self.training)
        if self.ne is not None:
            x = x + drop_path(self.ne(x), self.drop_path, self.training)
        return x
