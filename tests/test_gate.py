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


@pytest.mark.parametrize(("h", "w", "patch"), [(64, 64, 8), (37, 53, 16), (128, 96, 5)])
def test_change_levels_is_the_worst_windows_rms_difference(h, w, patch):
    """Against the windows of the worst-patch scores (avg_pool2d at stride patch // 2, the
    side made even), in 8-bit levels; identical frames change by 0."""
    import torch
    import torch.nn.functional as F

    from raystack.gate import change_levels

    rng = np.random.default_rng(h)
    frames = rng.integers(0, 256, (4, h, w, 3), np.uint8)
    frames[2] = frames[1]
    frames[3] = frames[2]  # then a 6 x 6 spot changes
    frames[3, h // 3 : h // 3 + 6, w // 2 : w // 2 + 6] ^= 0x80
    got = change_levels(frames, patch)
    p = patch // 2 * 2
    t = torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2)
    sq = ((t[1:] - t[:-1]) ** 2).mean(1, keepdim=True)
    want = F.avg_pool2d(sq, p, p // 2).amax(dim=(1, 2, 3)).sqrt().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert got[1] == 0.0
    # a local change shows in full: the worst window, not the frame mean
    whole = float(sq[2].mean().sqrt())
    assert got[2] > 2 * whole


def test_change_levels_of_a_long_clip_are_each_pairs_own():
    """Pairs are computed in blocks stacked as one image: across block edges every pair
    still gets exactly the level it gets alone."""
    from raystack.gate import change_levels

    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (150, 24, 40, 3), np.uint8)
    frames[70] = frames[69]
    alone = np.array([change_levels(frames[i : i + 2], 8)[0] for i in range(149)])
    got = change_levels(frames, 8)
    np.testing.assert_array_equal(got, alone)
    assert got[69] == 0.0 and got.min() == 0.0


def test_change_levels_refuses_float_frames_and_needs_two():
    from raystack.gate import change_levels

    with pytest.raises(ValueError, match="need uint8"):
        change_levels(np.zeros((3, 8, 8, 3), np.float32), 4)
    assert change_levels(np.zeros((1, 8, 8, 3), np.uint8), 4).shape == (0,)



def _frames(changes):
    """uint8 frames whose pair i changes by exactly changes[i] levels everywhere."""
    v, out = 100, [np.full((16, 16, 3), 100, np.uint8)]
    for c in changes:
        v = v + c if v + c <= 255 else v - c
        out.append(np.full((16, 16, 3), v, np.uint8))
    return np.stack(out)


class _Flow:
    """'Flow' whose pair i (of ``frames``, found from the view it is given) is moving[i];
    records the (first pair, pairs) of each call."""

    def __init__(self, frames, moving):
        self.frames, self.moving, self.calls = frames, moving, []

    def __call__(self, view):
        base = self.frames.__array_interface__["data"][0]
        first = (view.__array_interface__["data"][0] - base) // self.frames.strides[0]
        n = len(view) - 1
        self.calls.append((first, n))
        out = np.zeros((n, 2, 16, 16), np.float32)
        for k in range(n):
            out[k] = self.moving[first + k]
        return out


def _run(changes, moving, floor=10.0, chunks=(None,)):
    from raystack.gate import ChangeStage

    stage = ChangeStage(floor, 4, verify=lambda f: bool(np.abs(f).max() < 0.5))
    frames = _frames(changes)
    flow = _Flow(frames, moving)
    still = []
    edges = [0, len(changes)] if chunks == (None,) else [0, *chunks, len(changes)]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        f, s = stage.flow(frames[a : b + 1], flow)
        # a skipped pair's flow is zero, a flowed one's is the backend's
        np.testing.assert_allclose(f[~s, 0, 0, 0], np.asarray(moving[a:b], np.float32)[~s])
        assert np.all(f[s] == 0)
        still += s.tolist()
    return np.array(still), flow


def test_change_stage_needs_a_verified_still_pair_before_it_skips_flow():
    # pairs 0-1 move, 2 is verified still (flowed), 3-5 change no more than 2: skipped;
    # 6 changes more (flowed, still: the level rises), 7 as much (skipped), 8 moves
    changes = [30, 30, 2, 1, 2, 0, 3, 3, 30, 2, 2]
    moving = [1, 1, 0, 0.1, 0, 0, 0.1, 0, 1, 0, 0]
    still, flow = _run(changes, moving)
    assert still.tolist() == [False, False, False, True, True, True, False, True, False,
                              False, True]
    # the two busy pairs went to the backend in one call
    assert flow.calls[0] == (0, 2)


def test_a_slow_mover_below_the_floor_is_flowed_until_the_flow_says_still():
    # every pair changes little (below the floor) but pairs 0-3 move: the flow keeps them
    changes = [3, 3, 3, 3, 3, 3]
    moving = [1, 1, 1, 1, 0, 0]
    still, _ = _run(changes, moving)
    assert still.tolist() == [False, False, False, False, False, True]


def test_a_still_pair_that_changes_above_the_floor_does_not_start_a_stretch():
    # a global flicker: big change, no motion
    changes = [40, 40, 40]
    moving = [0, 0, 0]
    still, _ = _run(changes, moving)
    assert not still.any()


def test_the_stretch_carries_across_calls_of_one_unit():
    changes = [30, 2, 1, 1, 1, 1]
    moving = [1, 0, 0, 0, 0, 0]
    still, _ = _run(changes, moving, chunks=(3,))
    assert still.tolist() == [False, False, True, True, True, True]


@pytest.mark.parametrize("region", ["frame", "patch"])
def test_trivial_fr_of_zero_flow_tiles_is_the_per_tile_answer(region):
    """Zero-flow tiles (frames the change stage gated, ``still``) take one shared value;
    it and the other tiles equal trivial_psnr tile by tile, and the answers without
    ``still`` (each computed)."""
    from raystack.gate import trivial_tiles

    rng = np.random.default_rng(3)
    frames = rng.uniform(-1, 1, (5, 16, 24, 3)).astype(np.float32)
    flows = rng.uniform(-0.2, 0.2, (4, 2, 16, 24)).astype(np.float32)
    flows[1] = 0.0  # frame 2 still
    flows[3, :, :, :12] = 0.0  # frame 4 still on its left tile only
    boxes = np.array([[0, 0, 12, 16], [12, 0, 24, 16]])
    gated = np.array([[True, True], [True, False], [True, True]])  # targets 2, 3, 4
    still = np.array([False, True, False, False])  # the change stage left pair 1 unflowed
    got = trivial_tiles("fr", frames, flows, boxes, gated, region, still=still)
    np.testing.assert_array_equal(got, trivial_tiles("fr", frames, flows, boxes, gated, region))
    for r, t in np.argwhere(gated):
        i = r + 2
        x0, y0, x1, y1 = boxes[t]
        want = trivial_psnr("fr", frames[i - 1 : i, y0:y1, x0:x1], frames[i : i + 1, y0:y1, x0:x1],
                            flows[i - 1 : i, :, y0:y1, x0:x1], region)[0]
        assert got[r, t] == pytest.approx(want, rel=1e-5)
    assert np.isnan(got[1, 1]) and got[0, 0] == got[2, 0] > got[1, 0]
