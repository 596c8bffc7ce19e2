"""The matmul SSIM and the elementwise flow magnitude against what they replaced:
pytorch-msssim's SSIM and ``torch.linalg.vector_norm`` (values and gradients)."""

from __future__ import annotations

import pytest
import torch
from pytorch_msssim import ssim as msssim

from raystack.models.losses import flow_magnitude, ssim
from raystack.models.ssim import ssim_fast


@pytest.mark.parametrize(("shape", "win"), [((2, 2, 32, 32), 11), ((1, 3, 16, 24), 11),
                                            ((3, 2, 9, 12), 9), ((1, 1, 5, 7), 5)])
def test_ssim_fast_matches_pytorch_msssim(shape, win):
    gen = torch.Generator().manual_seed(0)
    y = torch.rand(shape, generator=gen)
    x = (y + 0.2 * torch.randn(shape, generator=gen)).clamp(0, 1)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    got = ssim_fast(xa, y, win=win)
    want = msssim(xb, y, data_range=1.0, win_size=win)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert got.item() < 0.99  # a real difference: the comparison can fail
    got.backward()
    want.backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-7)


def test_loss_ssim_is_pytorch_msssim_on_model_range():
    gen = torch.Generator().manual_seed(1)
    pred, target = torch.rand(2, 2, 20, 20, generator=gen) * 2 - 1, torch.zeros(2, 2, 20, 20)
    want = msssim((pred + 1) / 2, (target + 1) / 2, data_range=1.0, win_size=11)
    torch.testing.assert_close(ssim(pred, target), want, rtol=1e-5, atol=1e-6)


def test_flow_magnitude_matches_vector_norm_with_zero_motion():
    gen = torch.Generator().manual_seed(2)
    flow = torch.randn(2, 2, 6, 5, generator=gen)
    flow[0, :, 1, 1] = 0.0  # zero motion: the norm's gradient is 0 there
    a, b = flow.clone().requires_grad_(), flow.clone().requires_grad_()
    got, want = flow_magnitude(a), torch.linalg.vector_norm(b, dim=1)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-12)
    cot = torch.randn(got.shape, generator=gen)
    (got * cot).sum().backward()
    (want * cot).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    assert torch.isfinite(a.grad).all() and (a.grad[0, :, 1, 1] == 0).all()
