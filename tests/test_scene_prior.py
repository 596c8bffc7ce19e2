"""The scene prior and its ``presence`` stream: fit, ratio, per-tile scores and boxes,
checkpoint records, and the FrameScorer that scores it."""

from __future__ import annotations

import numpy as np
import pytest

from raystack.scene_prior import (
    LEVELS,
    PERSIST,
    PRESENCE_STREAM,
    SCENE_KEY,
    ScenePrior,
    cell_shares,
    fit_scene_prior,
    foreground,
    persistent,
    presence_scores,
    presence_tail,
    prior_from_checkpoints,
)

H, W, CELL = 48, 64, 8


def _scene(n: int, seed: int = 0, walkers: bool = True) -> np.ndarray:
    """Textured ground, sensor noise, and a walker crossing the top band (rows 8-24) only."""
    rng = np.random.default_rng(seed)
    ground = (np.indices((H, W)).sum(0)[..., None] % 7 * 20 + 60).repeat(3, -1)
    frames = np.clip(ground + rng.normal(0, 2, (n, H, W, 3)), 0, 255)
    if walkers:
        for t in range(n):
            x = (3 * t + 11 * seed) % (W - 6)
            frames[t, 8:24, x:x + 6] = (200, 40, 40)
    return frames.astype(np.uint8)


def test_cell_shares_count_partial_cells_over_their_own_pixels():
    mask = np.zeros((1, 10, 10), bool)
    mask[0, 8:, 8:] = True  # the 2x2 corner cell of a 4-px grid
    shares = cell_shares(mask, 4)
    assert shares.shape == (1, 3, 3)
    assert shares[0, 2, 2] == 1.0 and shares[0, :2].sum() == 0


def test_foreground_ignores_noise_and_lighting_drift_but_not_a_person():
    frames = _scene(40, walkers=False)
    prior = fit_scene_prior([frames])
    darker = (frames[:5].astype(np.float32) * 0.8).astype(np.uint8)  # a cloud passes
    assert foreground(darker, prior.background, prior.noise).mean() < 0.01
    person = frames[:1].copy()
    person[0, 30:44, 20:26] = (30, 30, 200)
    assert foreground(person, prior.background, prior.noise)[0, 30:44, 20:26].all()


def test_persistent_share_is_the_smallest_over_the_last_frames():
    shares = np.array([0.5, 0.9, 0.2, 0.8, 0.8], np.float32)[:, None, None]
    np.testing.assert_allclose(persistent(shares, 3)[:, 0, 0], [0.5, 0.5, 0.2, 0.2, 0.2])


def _still(n: int, y: slice, x: slice) -> np.ndarray:
    """``n`` frames of the empty scene with one person standing at (y, x)."""
    frames = _scene(n, 7, walkers=False)
    frames[:, y, x] = (200, 40, 40)
    return frames


def test_someone_standing_where_nobody_stands_is_rare_where_people_wait_is_not():
    clips = [_scene(120, s) for s in range(3)]
    for c in clips:  # a bus stop: someone waits at (8..24, 40..48) a third of the time
        c[:40, 8:24, 40:48] = (200, 40, 40)
    prior = fit_scene_prior(clips, cell=CELL)
    assert prior.occupancy[1:3].max() > 0.05 and prior.occupancy[4:].max() < 0.01
    assert prior.exceed.shape == (6, 8, len(LEVELS)) and prior.frames == 360
    box = np.array([[0, 0, W, H]])
    empty = presence_tail(_scene(PERSIST, 7, walkers=False), prior)
    waits = presence_tail(_still(PERSIST, slice(8, 24), slice(40, 48)), prior)
    nobody = presence_tail(_still(PERSIST + 2, slice(30, 46), slice(30, 36)), prior)
    assert empty.shape == waits.shape == (1, 6, 8) and nobody.shape == (3, 6, 8)
    p_empty, _ = presence_scores(empty, prior, box)
    p_waits, _ = presence_scores(waits, prior, box)
    p_nobody, b = presence_scores(nobody, prior, box)
    assert p_empty[0, 0] == 0.0  # nothing rarer than normal: 0 dB
    # the floor: never seen in 360 normal frames
    assert p_nobody[0, 0] == pytest.approx(-10 * np.log10(361), rel=1e-5)
    assert p_nobody[0, 0] < p_waits[0, 0] < 0  # waiting there is common: ~ -5 dB
    assert p_waits[0, 0] > -10 * np.log10(4)
    x0, y0, x1, y1 = b[0, 0]  # the rarest cell lies on the person
    assert x0 < 36 and x1 > 30 and y0 < 46 and y1 > 30 and (x1 - x0, y1 - y0) == (8, 8)


def test_a_passer_by_is_not_persistent():
    prior = fit_scene_prior([_scene(120, s) for s in range(3)], cell=CELL)
    frames = _scene(PERSIST, 7, walkers=False)
    frames[-1, 30:46, 30:36] = (200, 40, 40)  # there for one frame only
    p, _ = presence_scores(presence_tail(frames, prior), prior, np.array([[0, 0, W, H]]))
    assert p[0, 0] == 0.0


def _slow_walker(n: int) -> np.ndarray:
    """The empty scene with a person crossing the bottom band at 1 px a frame, where the
    normal footage of ``_scene`` never has anyone."""
    frames = _scene(n, 7, walkers=False)
    for t in range(n):
        frames[t, 30:46, 2 + t:8 + t] = (200, 40, 40)
    return frames


def test_a_slow_walker_off_the_paths_is_not_persistent_for_a_second():
    clips = [_scene(120, s) for s in range(3)]
    box = np.array([[0, 0, W, H]])
    # an 8-px cell holds a 6-px-wide walker at 1 px a frame for ~13 frames: persistent
    # over a third of a second, not over a second
    for persist, rare in ((8, True), (24, False)):
        prior = fit_scene_prior(clips, cell=CELL, persist=persist)
        assert prior.persist == persist
        p, _ = presence_scores(presence_tail(_slow_walker(40), prior), prior, box)
        assert bool(p.min() < -10) is rare, (persist, p.min())
    standing = _still(PERSIST, slice(30, 46), slice(30, 36))
    prior = fit_scene_prior(clips, cell=CELL)
    p, _ = presence_scores(presence_tail(standing, prior), prior, box)
    assert p[-1, 0] == pytest.approx(-10 * np.log10(361), rel=1e-5)  # still found at 24


def test_a_recorded_prior_keeps_its_own_persistence():
    old = fit_scene_prior([_scene(60)], persist=8)  # the first priors' persistence
    back = ScenePrior.from_record(old.to_record())
    assert back.persist == 8
    np.testing.assert_array_equal(back.exceed, old.exceed)
    assert presence_tail(_scene(10, 1), back).shape[0] == 10 - 7
    from raystack.inference import FrameScorer
    from raystack.models import create_model

    model = create_model("vqmau_fp.tiny", in_frames=2)
    scene = np.repeat(_scene(30), 2, axis=1)[:, :64]
    assert FrameScorer({"fp": model}, scene_prior=fit_scene_prior([scene], persist=8)
                       ).context == 7
    assert FrameScorer({"fp": model}, scene_prior=fit_scene_prior([scene])).context == PERSIST - 1
    record = old.to_record()
    record["persist"] = 0
    with pytest.raises(ValueError, match="scene prior record"):
        ScenePrior.from_record(record)


def test_tiles_take_the_worst_cell_inside_them_with_a_box_in_tile_pixels():
    prior = fit_scene_prior([_scene(60)], cell=CELL)
    frames = _still(PERSIST, slice(34, 42), slice(50, 58))
    boxes = np.array([[0, 0, 32, 48], [32, 0, 64, 48]])
    psnr, box = presence_scores(presence_tail(frames, prior), prior, boxes)
    assert psnr[0, 1] < psnr[0, 0]
    assert box[0, 1].tolist() == [16, 32, 24, 40]  # the cell (48..56, 32..40) in tile 2


def test_frames_of_another_size_are_refused_naming_both():
    prior = fit_scene_prior([_scene(10)])
    with pytest.raises(ValueError, match="64x48 frames; these are 32x48"):
        presence_tail(np.zeros((PERSIST, 48, 32, 3), np.uint8), prior)
    with pytest.raises(ValueError, match=f"at least {PERSIST} frames"):
        presence_tail(np.zeros((2, 48, 64, 3), np.uint8), prior)


def test_fit_refuses_no_frames_and_mixed_sizes():
    with pytest.raises(ValueError, match="no normal frames"):
        fit_scene_prior([np.zeros((0, H, W, 3), np.uint8)])
    with pytest.raises(ValueError, match="one"):
        fit_scene_prior([_scene(3), np.zeros((3, 8, 8, 3), np.uint8)])


def test_record_round_trip_and_refusals():
    prior = fit_scene_prior([_scene(20)])
    back = ScenePrior.from_record(prior.to_record())
    np.testing.assert_array_equal(back.background, prior.background)
    np.testing.assert_array_equal(back.occupancy, prior.occupancy)
    np.testing.assert_array_equal(back.exceed, prior.exceed)
    assert back.cell == prior.cell and back.size == (H, W) and back.frames == 20
    with pytest.raises(ValueError, match="version"):
        ScenePrior.from_record({**prior.to_record(), "version": 99}, "x.pt")
    bad = {**prior.to_record(), "cell": prior.cell + 1}
    with pytest.raises(ValueError, match="inconsistent shapes"):
        ScenePrior.from_record(bad, "x.pt")
    infos = {"fr": {"path": "fr.pt", "extra": {}},
             "fp": {"path": "fp.pt", "extra": {SCENE_KEY: prior.to_record()}}}
    assert prior_from_checkpoints(infos, img_size=(H, W)).size == (H, W)
    assert prior_from_checkpoints({"fp": {"extra": {}}}) is None
    # A prior describes one kind of frame: whole frames at the model's size, or a tiled
    # scan's working frames. The other kind of scan does without it.
    assert prior_from_checkpoints(infos, tiles=True) is None
    assert prior_from_checkpoints(infos, img_size=(32, 32)) is None
    tiled = {"fp": {"path": "fp.pt", "extra": {SCENE_KEY: prior.to_record(tiles=True)}}}
    assert prior_from_checkpoints(tiled, tiles=True).size == (H, W)
    assert prior_from_checkpoints(tiled, img_size=(H, W)) is None


def test_frame_scorer_adds_presence_per_tile_and_skips_it_where_tiles_are_skipped():
    from raystack.inference import FrameScorer
    from raystack.models import create_model

    model = create_model("vqmau_fp.tiny", in_frames=2)  # 64x64, context 2
    prior = fit_scene_prior([np.repeat(_scene(30), 2, axis=1)[:, :64]])  # 64x64 scene
    scorer = FrameScorer({"fp": model}, region="patch", scene_prior=prior)
    assert scorer.streams == ("fp", "diff", "motion", PRESENCE_STREAM)
    assert scorer.learned_streams == ("fp",)
    assert scorer.context == PERSIST - 1  # presence reads PERSIST frames up to the target
    t = PERSIST + 4
    frames = np.repeat(_scene(t, 1), 2, axis=1)[:, :64].astype(np.float32) / 127.5 - 1
    flows = np.zeros((t - 1, 2, 64, 64), np.float32)
    out = scorer.score(frames, flows)
    n = t - (PERSIST - 1)
    assert out[PRESENCE_STREAM].psnr.shape == (n,) and out[PRESENCE_STREAM].box.shape == (n, 4)
    u8 = np.clip(np.rint((frames + 1) * 127.5), 0, 255).astype(np.uint8)
    want, _ = presence_scores(presence_tail(u8, prior), prior, np.array([[0, 0, 64, 64]]))
    np.testing.assert_allclose(out[PRESENCE_STREAM].psnr, want[:, 0])
    big = np.concatenate([frames, frames], axis=2)  # 64x128: presence needs its own size
    with pytest.raises(ValueError, match="scene prior fitted on 64x64"):
        scorer.score_tiles(big, np.zeros((t - 1, 2, 64, 128), np.float32),
                           np.array([[0, 0, 64, 64], [64, 0, 128, 64]]))
    skip = np.zeros((n, 1), bool)
    skip[1] = True
    tiled = scorer.score_tiles(frames, flows, np.array([[0, 0, 64, 64]]), skip=skip)
    assert np.isnan(tiled[PRESENCE_STREAM].psnr[1, 0]) and np.isfinite(tiled["diff"].psnr[0, 0])
    plain = FrameScorer({"fp": model}, region="frame", scene_prior=prior)
    assert plain.score(frames, flows)[PRESENCE_STREAM].box is None  # whole frame: no box
