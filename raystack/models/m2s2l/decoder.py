"""The two decoders of M²S²L (paper II-D): next frame from appearance, motion field from motion.

Both share one layout: a 1x1 projection of the concatenated inputs (features and memory
reads) to ``dim`` channels, then one stage per x2 upsampling (2x2 transposed conv, then
``convs`` 3x3 convs, each with BatchNorm and ReLU), then a 3x3 head and tanh, so outputs
live in the model range [-1, 1] of frames and of halved frame differences.

    dec = AppearanceDecoder(in_channels=1024, dim=256, dims=(128, 64, 32))
    frame = dec(torch.randn(2, 32, 32, 1024))   # (2, 3, 256, 256)
"""

from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange


def _conv_bn_relu(cin: int, cout: int, kernel: int, **factory_kwargs) -> list[nn.Module]:
    # BatchNorm follows, so the conv needs no bias.
    return [
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False, **factory_kwargs),
        nn.BatchNorm2d(cout, **factory_kwargs),
        nn.ReLU(inplace=True),
    ]


class _UpDecoder(nn.Module):
    """1x1 input projection, x2 upsampling stages, 3x3 head, tanh."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        dims: tuple[int, ...] = (128, 64, 32),
        convs: int = 1,
        out_channels: int = 3,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.proj = nn.Sequential(*_conv_bn_relu(in_channels, dim, 1, **factory_kwargs))
        stages = []
        prev = dim
        for width in dims:
            layers = [
                nn.ConvTranspose2d(prev, width, 2, stride=2, bias=False, **factory_kwargs),
                nn.BatchNorm2d(width, **factory_kwargs),
                nn.ReLU(inplace=True),
            ]
            for _ in range(convs):
                layers += _conv_bn_relu(width, width, 3, **factory_kwargs)
            stages.append(nn.Sequential(*layers))
            prev = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(prev, out_channels, 3, padding=1, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, h, w, in_channels) -> (b, out_channels, h * 2^stages, w * 2^stages) in [-1, 1]."""
        x = self.proj(rearrange(x, "b h w c -> b c h w"))
        return torch.tanh(self.head(self.stages(x)))


class AppearanceDecoder(_UpDecoder):
    """Predicts the next frame from [common, common read, appearance, appearance read]."""


class MotionDecoder(_UpDecoder):
    """Reconstructs the motion field (halved frame difference into the target frame) from
    [common, common read, motion, motion read]."""
