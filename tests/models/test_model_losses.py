"""FP and FR losses: hand-computed values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from raystack.models import losses


def test_charbonnier_hand_values():
    x = torch.tensor([0.0, 4e-3])
    expected = (1e-3 + math.sqrt(16e-6 + 1e-6)) / 2
    assert float(losses.charbonnier(x, eps=1e-3)) == pytest.approx(expected, rel=1e-6)


def test_motion_difference_uses_per_pixel_flow_magnitudes():
    pred = torch.zeros(1, 2, 1, 2)
    pred[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # |pred| = 5 at pixel 0, 0 at pixel 1
    target = torch.zeros(1, 2, 1, 2)  # |target| = 0 everywhere
    expected = (math.sqrt(25 + 1e-6) + 1e-3) / 2
    assert float(losses.motion_difference_loss(pred, target)) == pytest.approx(expected, rel=1e-6)
    # Eq. (7): with O_{t-1}, the magnitudes are those of the motion differences.
    prev = pred.clone()
    value = losses.motion_difference_loss(pred, target, prev_flow=prev)
    assert float(value) == pytest.approx(expected, rel=1e-6)  # |0| vs |-(3,4)| = 5
    assert float(losses.motion_difference_loss(pred, pred, prev_flow=prev)) == pytest.approx(1e-3)


def test_gradient_loss_hand_case_and_invariance():
    target = torch.tensor([[0.0, 1.0, 1.0]]).view(1, 1, 1, 3)
    pred = torch.zeros(1, 1, 1, 3)
    # x-differences: target |1|,|0|; pred 0,0 -> mean 0.5; no y-differences (height 1).
    value = losses.gradient_loss(pred, target)
    assert float(value) == pytest.approx(0.5)
    img = torch.rand(2, 3, 8, 8)
    assert float(losses.gradient_loss(img + 0.3, img)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("size", [16, 8])  # 8 < the 11x11 window: the window shrinks to 7
def test_ssim_is_differentiable_on_two_channel_flow(size):
    torch.manual_seed(0)
    target = torch.rand(2, 2, size, size) * 2 - 1
    pred = (target + 0.2 * torch.randn_like(target)).clamp(-1, 1).requires_grad_(True)
    value = losses.ssim(pred, target)
    assert float(losses.ssim(target, target)) == pytest.approx(1.0, abs=1e-5)
    assert 0 < float(value.detach()) < 1
    (1 - value).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_ssim_refuses_images_too_small():
    with pytest.raises(ValueError, match="too small"):
        losses.ssim(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2))


def test_fp_and_fr_totals_are_the_weighted_sums():
    torch.manual_seed(0)
    vq = torch.tensor(0.7)
    pred, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    total, parts = losses.fp_loss(pred, target, vq)
    assert float(total.detach()) == pytest.approx(parts["l2"] + parts["vq"] + parts["gd"], rel=1e-6)
    pred, target, prev = (torch.rand(2, 2, 16, 16) for _ in range(3))
    pred.requires_grad_(True)
    total, parts = losses.fr_loss(pred, target, vq, prev_flow=prev)
    assert float(total.detach()) == pytest.approx(
        parts["l2"] + parts["vq"] + parts["ssim"] + 0.01 * parts["md"], rel=1e-6
    )
    total.backward()
    assert pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown task"):
        losses.task_loss("seg", pred, target, vq)
    with pytest.raises(ValueError, match="must both be"):
        losses.fp_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5), vq)
