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
