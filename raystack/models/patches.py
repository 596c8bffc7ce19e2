"""Resolution steps of the VQ-MaU U-Net (also M²S²L's patch embedding), channels-last.

PatchEmbed cuts (b, c, H, W) into p x p patches; PatchMerging halves the grid, PatchExpand
multiplies it; FinalProjection returns to full resolution and channels-first.

    x = PatchEmbed(12, 16, patch_size=4)(torch.randn(2, 12, 64, 64))   # (2, 16, 16, 16)
    PatchMerging(16, 32)(x).shape == (2, 8, 8, 32)
"""

from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> ``embed_dim`` channels, channels-last out."""

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        patch_size: int = 4,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.proj = nn.Conv2d(
            in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, **factory_kwargs
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, H, W) -> (b, H/p, W/p, embed_dim)."""
        return self.norm(rearrange(self.proj(x), "b c h w -> b h w c"))


class PatchMerging(nn.Module):
    """2x2 neighbourhoods concatenated (4c), normalised and projected: halves H and W."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=norm_eps, **factory_kwargs)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, h, w, c) -> (b, h/2, w/2, out_dim)."""
        x = rearrange(x, "b (h p1) (w p2) c -> b h w (p1 p2 c)", p1=2, p2=2)
        return self.reduction(self.norm(x))


class PatchExpand(nn.Module):
    """Linear to scale^2 * out_dim channels, then pixel-shuffle: multiplies H and W by scale."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        scale: int = 2,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False, **factory_kwargs)
        self.norm = nn.LayerNorm(out_dim, eps=norm_eps, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, h, w, dim) -> (b, h*scale, w*scale, out_dim)."""
        x = self.expand(x)
        x = rearrange(x, "b h w (p1 p2 c) -> b (h p1) (w p2) c", p1=self.scale, p2=self.scale)
        return self.norm(x)


class FinalProjection(nn.Module):
    """Back to full resolution: PatchExpand by the patch size to dim/4 channels, then a
    per-pixel linear map to the output channels (before the output map of :class:`VQMaU`)."""

    def __init__(
        self,
        dim: int,
        out_channels: int,
        patch_size: int = 4,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.up = PatchExpand(dim, dim // 4, scale=patch_size, norm_eps=norm_eps, **factory_kwargs)
        self.head = nn.Linear(dim // 4, out_channels, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, h, w, dim) -> (b, out_channels, h*p, w*p), unbounded."""
        return rearrange(self.head(self.up(x)), "b h w c -> b c h w")
