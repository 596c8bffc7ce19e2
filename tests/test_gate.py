"""The gate's pure math: the statistic in px, the mask, the floor, the filled score."""

from __future__ import annotations

import numpy as np
import pytest

from raystack.gate import calibrate_floor, gate_mask, motion_px, px_from_motion_psnr, trivial_psnr


def test_motion_psnr_and_px_are_one_statistic():
    import torch

    from raystack.scoring import motion_psnr

    flow = np.zeros((1, 2, 32, 32), np.float32)
    flow[0, 0, 8:12, 8:12] = 0.15  # 1.5 px in model range (px / 10) over a 4x4 patch
    got = motion_px(flow, np.array([[0, 0, 32, 32]]))
    want = px_from_motion_psnr(motion_psnr(torch.from_numpy(flow)).numpy())
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-5)
    # A uniform 1.5 px flow fills every patch: its RMS is 1.5 px exactly.
    np.testing.assert_allclose(motion_px(np.full((1, 2, 32, 32), 0.15, np.float32) /
                                         np.sqrt(2), np.array([[0, 0, 32, 32]])), [[1.5]],
                               rtol=1e-4)
    assert motion_px(np.zeros((2, 2, 32, 32), np.float32), np.array([[0, 0, 32, 32]])).max() < 1e-3


def test_tiles_each_get_their_own_statistic():
    flow = np.zeros((3, 2, 32, 64), np.float32)
    flow[1, :, :, 40:] = 0.2  # frame 1 moves in the right tile only
    stat = motion_px(flow, np.array([[0, 0, 32, 32], [32, 0, 64, 32]]))
    assert stat.shape == (3, 2)
    assert (stat[1, 1] > 1.0) and (stat[[0, 1, 2], [0, 0, 0]] < 1e-3).all()
    assert gate_mask(stat, 0.5).tolist() == [[True, True], [True, False], [True, True]]
    assert not gate_mask(stat, None).any()


def test_floor_is_a_low_quantile_of_normal_frames():
    stats = np.r_[np.linspace(1.0, 5.0, 99), np.nan]
    assert calibrate_floor(stats, 0.01) == pytest.approx(np.quantile(stats[:-1], 0.01))
    with pytest.raises(ValueError, match="low quantile"):
        calibrate_floor(stats, 0.9)
    with pytest.raises(ValueError, match="no normal frame"):
        calibrate_floor(np.array([np.nan]))


def test_trivial_scores_are_the_tasks_cheap_answers():
    from raystack.scoring import psnr_np

    rng = np.random.default_rng(0)
    prev = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    cur = prev + rng.normal(0, 0.01, prev.shape).astype(np.float32)
    flow = rng.normal(0, 0.05, (2, 2, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(trivial_psnr("fp", prev, cur, flow), psnr_np(prev, cur),
                               rtol=1e-5)  # copy-last
    np.testing.assert_allclose(trivial_psnr("fr", prev, cur, flow),
                               psnr_np(np.zeros_like(flow), flow), rtol=1e-5)  # zero flow
    np.testing.assert_allclose(trivial_psnr("m2s2l_mot", prev, cur, None),
                               psnr_np(np.zeros_like(cur), (cur - prev) / 2), rtol=1e-5)
    assert trivial_psnr("fp", prev, cur, None, "patch").shape == (2,)
