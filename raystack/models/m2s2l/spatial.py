"""Multi-scale spatial normality learning of M²S²L (paper II-B).

- :class:`MSVSSBlock`: a VSS block (LayerNorm -> SS2D, residual; the repo's
  :class:`~raystack.models.nvss.NVSSBlock` without its NE branch) plus, in parallel on the
  same input, depth-wise convolutions of several kernel sizes summed and mixed by a
  point-wise projection: ``out = x + SS2D(LN(x)) + Proj(GELU(sum_k DWConv_k(LN'(x))))``.
- :class:`SpatialEncoder`: patch embedding at one patch size, then MS-VSS blocks.
- :class:`MultiScaleSpatialEncoder`: three encoders (fine, medium, coarse patches), each
  map resized to the common grid and summed with adaptive (input-dependent, softmax over
  scales) importance weights, eq. (3).

    enc = MultiScaleSpatialEncoder(3, 256, patch_sizes=(8, 16, 32), depths=(2, 2, 2),
                                   grid=(32, 32))
    f, w = enc(torch.randn(2, 3, 256, 256))   # f (2, 32, 32, 256); w (2, 3) sums to 1
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from raystack.models.nvss import NVSSBlock, drop_path
from raystack.models.patches import PatchEmbed


def resize_grid(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of channels-last maps (b, h, w, c) -> (b, *grid, c); no-op if equal."""
    if tuple(x.shape[1:3]) == tuple(grid):
        return x
    y = F.interpolate(rearrange(x, "b h w c -> b c h w"), size=tuple(grid), mode="bilinear",
                      align_corners=False)
    return rearrange(y, "b c h w -> b h w c")


class MSVSSBlock(nn.Module):
    """Multi-Scale VSS block: VSS branch plus parallel multi-kernel depth-wise convs.

    With ``kernels=()`` it is exactly the plain VSS block (the ablation without
    multi-scale spatial learning).
    """

    def __init__(
        self,
        d_model: int,
        kernels: tuple[int, ...] = (3, 5, 7),
        d_state: int = 16,
        d_conv: int = 3,
        expand: int = 2,
        dt_rank: int | None = None,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.drop_path = drop_path
        # The VSS block of the repo, NE branch off: LN -> SS2D with its own residual.
        self.vss = NVSSBlock(
            d_model, d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank,
            drop_path=drop_path, use_ne=False, norm_eps=norm_eps, **factory_kwargs,
        )
        self.kernels = tuple(kernels)
        if self.kernels:
            self.conv_norm = nn.LayerNorm(d_model, eps=norm_eps, **factory_kwargs)
            # Depth-wise: each kernel size sees a different neighbourhood at the cost of
            # k*k weights per channel; the point-wise projection then mixes channels, which
            # depth-wise convolutions alone never do.
            self.dwconvs = nn.ModuleList(
                nn.Conv2d(d_model, d_model, k, padding=k // 2, groups=d_model, **factory_kwargs)
                for k in self.kernels
            )
            self.conv_proj = nn.Linear(d_model, d_model, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, h, w, c) -> (b, h, w, c)."""
        if not self.kernels:
            return self.vss(x)
        h = rearrange(self.conv_norm(x), "b h w c -> b c h w")
        local = sum(conv(h) for conv in self.dwconvs)  # (b, c, h, w)
        local = self.conv_proj(F.gelu(rearrange(local, "b c h w -> b h w c")))
        # Parallel branches: both read x; vss(x) already holds x + SS2D(LN(x)).
        return self.vss(x) + drop_path(local, self.drop_path, self.training)


class SpatialEncoder(nn.Module):
    """Patch embedding at one granularity followed by MS-VSS blocks and a final LayerNorm."""

    def __init__(
        self,
        in_chans: int,
        d_model: int,
        patch_size: int,
        depth: int = 2,
        kernels: tuple[int, ...] = (3, 5, 7),
        drop_paths: tuple[float, ...] | None = None,
        d_state: int = 16,
        d_conv: int = 3,
        expand: int = 2,
        dt_rank: int | None = None,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.patch_size = patch_size
        self.embed = PatchEmbed(in_chans, d_model, patch_size, norm_eps=norm_eps, **factory_kwargs)
        rates = drop_paths if drop_paths is not None else (0.0,) * depth
        self.blocks = nn.Sequential(*(
            MSVSSBlock(d_model, kernels, d_state=d_state, d_conv=d_conv, expand=expand,
                       dt_rank=dt_rank, drop_path=p, norm_eps=norm_eps, **factory_kwargs)
            for p in rates
        ))
        self.norm = nn.LayerNorm(d_model, eps=norm_eps, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in_chans, H, W) -> (b, H/p, W/p, d_model)."""
        return self.norm(self.blocks(self.embed(x)))


class MultiScaleSpatialEncoder(nn.Module):
    """Spatial encoders at several patch sizes fused on a common grid by importance weights.

    The weights are adaptive: per sample, a linear score of each scale's globally pooled
    feature plus a per-scale bias, softmax over scales (eq. 3's alpha_s). With one scale
    there is nothing to weigh and no scoring layer is built.
    """

    def __init__(
        self,
        in_chans: int,
        d_model: int,
        patch_sizes: tuple[int, ...],
        depths: tuple[int, ...],
        grid: tuple[int, int],
        kernels: tuple[int, ...] = (3, 5, 7),
        drop_path: float = 0.0,
        d_state: int = 16,
        d_conv: int = 3,
        expand: int = 2,
        dt_rank: int | None = None,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.grid = tuple(grid)
        self.encoders = nn.ModuleList()
        for p, depth in zip(patch_sizes, depths, strict=True):
            # Stochastic depth grows linearly with depth inside each encoder.
            rates = tuple(torch.linspace(0.0, drop_path, depth).tolist())
            self.encoders.append(SpatialEncoder(
                in_chans, d_model, p, depth, kernels, rates, d_state=d_state, d_conv=d_conv,
                expand=expand, dt_rank=dt_rank, norm_eps=norm_eps, **factory_kwargs,
            ))
        n = len(self.encoders)
        # No bias: a shared offset cancels in the softmax; scale_bias holds the per-scale one.
        self.importance = nn.Linear(d_model, 1, bias=False, **factory_kwargs) if n > 1 else None
        # Per-scale bias of the importance score: lets training prefer a scale globally.
        self.scale_bias = (
            nn.Parameter(torch.zeros(n, **factory_kwargs)) if n > 1 else None
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, in_chans, H, W) -> fused (b, gh, gw, d_model), weights (b, n_scales)."""
        feats = torch.stack([resize_grid(enc(x), self.grid) for enc in self.encoders], dim=1)
        if self.importance is None:
            return feats[:, 0], feats.new_ones(feats.shape[0], 1)
        # feats: (b, s, gh, gw, c); one score per (sample, scale) from the pooled map.
        scores = self.importance(feats.mean(dim=(2, 3))).squeeze(-1) + self.scale_bias  # (b, s)
        weights = scores.softmax(dim=1)
        return torch.einsum("bs,bshwc->bhwc", weights, feats), weights
