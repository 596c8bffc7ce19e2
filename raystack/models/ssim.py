"""Differentiable SSIM with the Gaussian blur as two matrix products.

The same quantity as pytorch-msssim's ``ssim`` (Gaussian window of ``win`` taps, sigma 1.5,
valid filtering, K = (0.01, 0.03), the mean over batch, channels and the valid map), but
the separable blur is a product with a banded (W, W - win + 1) matrix along each axis
instead of pytorch-msssim's grouped 1-D convolutions, and the five blurred maps (x, y, x^2,
y^2, xy) go through one product. Grouped convolutions of one channel each are slow
kernels on a CPU: SSIM with backward of an FR training batch (8, 2, 128, 128) took ~80 ms
of CPU time through them and ~35 ms here (one thread). tests/models/test_ssim.py
holds it against pytorch-msssim.

    value = ssim_fast(x, y, win=11)   # x, y (b, c, H, W) in [0, data_range]
"""

from __future__ import annotations

import torch

SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_window(win: int, sigma: float = SIGMA) -> torch.Tensor:
    """pytorch-msssim's normalised 1-D Gaussian of ``win`` taps (float32)."""
    coords = torch.arange(win, dtype=torch.float32) - win // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def blur_matrix(size: int, win: int, *, dtype: torch.dtype, device: torch.device
                ) -> torch.Tensor:
    """(size, size - win + 1) banded matrix M with (v @ M)[j] = sum_i g[i] v[j + i]: valid
    correlation with the window along the last axis."""
    g = gaussian_window(win).to(device=device, dtype=dtype)
    out = size - win + 1
    m = torch.zeros(size, out, dtype=dtype, device=device)
    cols = torch.arange(out, device=device)
    for i in range(win):
        m[cols + i, cols] = g[i]
    return m


def ssim_fast(x: torch.Tensor, y: torch.Tensor, *, win: int = 11,
              data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of (b, c, H, W) images ``x`` and ``y``; H and W at least ``win``."""
    h, w = x.shape[-2:]
    kw = {"dtype": x.dtype, "device": x.device}
    mw, mh = blur_matrix(w, win, **kw), blur_matrix(h, win, **kw)
    maps = torch.stack([x, y, x * x, y * y, x * y])  # (5, b, c, H, W)
    blurred = mh.t() @ (maps @ mw)  # (5, b, c, H', W')
    mu1, mu2, xx, yy, xy = blurred.unbind(0)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    cs_map = (2 * (xy - mu1_mu2) + c2) / ((xx - mu1_sq) + (yy - mu2_sq) + c2)
    ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return ssim_map.mean()
