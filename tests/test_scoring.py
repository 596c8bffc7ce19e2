import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from raystack import scoring


def test_psnr_matches_definition():
    rng = np.random.default_rng(0)
    pred = rng.uniform(-1, 1, (3, 3, 8, 8)).astype(np.float32)
    target = rng.uniform(-1, 1, (3, 3, 8, 8)).astype(np.float32)
    mse = (((pred + 1) / 2 - (target + 1) / 2) ** 2).reshape(3, -1).mean(1)
    expected = 10 * np.log10(1 / mse)
    got = scoring.psnr(torch.from_numpy(pred), torch.from_numpy(target)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(scoring.psnr_np(pred, target), expected, rtol=1e-6)


def test_psnr_of_views_and_its_gradient_are_the_definitions():
    """The scan hands psnr channels-last windows of a clip; training differentiates it."""
    g = torch.Generator().manual_seed(4)
    clip = (torch.rand(5, 16, 12, 3, generator=g) * 2 - 1).permute(0, 3, 1, 2)  # NHWC memory
    pred, target = clip[:-1], clip[1:]
    assert not pred.is_contiguous()
    torch.testing.assert_close(scoring.psnr(pred, target),
                               scoring.psnr(pred.contiguous(), target.contiguous()))
    p = pred.contiguous().requires_grad_()
    (grad,) = torch.autograd.grad(scoring.psnr(p, target).sum(), p)
    q = pred.contiguous().requires_grad_()
    mse = (((q + 1) / 2 - (target + 1) / 2) ** 2).flatten(1).mean(1)
    (want,) = torch.autograd.grad((10 * torch.log10(1 / mse)).sum(), q)
    torch.testing.assert_close(grad, want)


def test_psnr_identical_is_capped_and_shape_checked():
    x = torch.zeros(1, 3, 4, 4)
    assert scoring.psnr(x, x).item() == pytest.approx(100.0)
    with pytest.raises(ValueError, match="shape"):
        scoring.psnr(x, torch.zeros(1, 3, 4, 5))


@pytest.mark.parametrize("n", [1, 5, 37, 200])
def test_smoothing_is_scipy_mirror(n):
    x = np.random.default_rng(n).normal(size=n)
    np.testing.assert_allclose(
        scoring.gaussian_smooth(x, 10.0), gaussian_filter1d(x, 10.0, mode="mirror", truncate=4)
    )
    np.testing.assert_array_equal(scoring.gaussian_smooth(x, 0), x)


def test_worst_patch_boxes_a_single_bright_square():
    """A perfect prediction but for one bright square: the worst patch sits on the square."""
    target = torch.zeros(2, 3, 64, 96)
    pred = target.clone()
    pred[0, :, 40:48, 56:64] = 1.0  # sample 0: an 8x8 square at x 56..64, y 40..48
    pred[1, :, 0:4, 90:96] = 1.0  # sample 1: in the top right corner
    psnr, box = scoring.worst_patch(pred, target, 16)
    assert box.shape == (2, 4) and box.dtype == torch.int64
    for b, (sx0, sy0, sx1, sy1) in enumerate([(56, 40, 64, 48), (90, 0, 96, 4)]):
        x0, y0, x1, y1 = box[b].tolist()
        # the square lies whole in two windows of equal error a row and a column: no more
        assert 16 <= x1 - x0 <= 24 and 16 <= y1 - y0 <= 24, box[b]
        assert x0 <= sx0 and y0 <= sy0 and x1 >= sx1 and y1 >= sy1, (b, box[b])
        assert 0 <= x0 and x1 <= 96 and 0 <= y0 and y1 <= 64
    torch.testing.assert_close(psnr, scoring.patch_psnr(pred, target, 16))
    # region_scores: the patch region carries the box, the whole frame has none.
    p, b = scoring.region_scores(pred, target, "patch")
    torch.testing.assert_close(p, scoring.region_psnr(pred, target, "patch"))
    assert b.shape == (2, 4)
    p, b = scoring.region_scores(pred, target, "frame")
    assert b is None
    torch.testing.assert_close(p, scoring.psnr(pred, target))


def test_worst_patch_box_grows_over_the_object_not_over_a_distant_one():
    """A car spans several windows: the box covers all of it (windows >= half the worst
    error, connected to the worst), not a second, unconnected blob elsewhere."""
    target = torch.zeros(1, 3, 64, 128)
    pred = target.clone()
    pred[0, :, 20:36, 16:72] = 0.6  # the car, 56 px long
    pred[0, :, 28:34, 30:38] = 1.0  # its brightest part: the worst window lies here
    pred[0, :, 44:60, 100:116] = 0.8  # a distant object, as strong as the car's body
    _, box = scoring.worst_patch(pred, target, 16)
    x0, y0, x1, y1 = box[0].tolist()
    assert x0 <= 16 and x1 >= 72 and y0 <= 20 and y1 >= 36, box
    assert x1 <= 88 and y1 <= 48, box  # not grown into the distant object
    _, one = scoring.worst_patch(pred, target, 16, grow=1.0)
    assert (one[0, 2] - one[0, 0]).item() == 16, one  # the worst window alone
    # A perfect prediction has no worst place: the box is the whole frame.
    _, whole = scoring.worst_patch(target, target, 16)
    assert whole[0].tolist() == [0, 0, 128, 64]


def test_motion_box_finds_the_moving_patch():
    flow = torch.zeros(1, 2, 64, 64)
    flow[..., 24:32, 8:16] = 0.9
    _, box = scoring.motion_scores(flow)
    x0, y0, x1, y1 = box[0].tolist()
    assert x0 <= 8 and x1 >= 16 and y0 <= 24 and y1 >= 32
