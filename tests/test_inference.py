"""FrameScorer: alignment of streams, batching, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raystack.flow import rescale_flow
from raystack.inference import FrameScorer
from raystack.models import create_model, get_config, save_checkpoint
from raystack.models.vqmau import VQMaU, VQMaUOutput
from raystack.scoring import psnr_np


class _Oracle(VQMaU):
    """A tiny VQ-MaU with a deterministic forward: FP returns the last input frame, FR half
    its input. Its ``score_batch`` is VQ-MaU's own, so the windows it is given are checked."""

    def __init__(self, **overrides):
        super().__init__(get_config(f"vqmau_{overrides.get('task', 'fp')}.tiny", **overrides))

    def forward(self, x):
        pred = x[:, -3:] if self.config.task == "fp" else 0.5 * x
        return VQMaUOutput(pred, x.new_zeros(()), {})


def _clip(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = rng.uniform(-1, 1, (n, 64, 64, 3)).astype(np.float32)
    flows = rng.uniform(-1, 1, (n - 1, 2, 64, 64)).astype(np.float32)
    return frames, flows


def test_streams_are_aligned_on_the_same_target_frames():
    frames, flows = _clip(9)
    scorer = FrameScorer({"fp": _Oracle(in_frames=3), "fr": _Oracle(task="fr")}, batch_size=4)
    assert scorer.streams == ("fp", "fr", "diff", "motion") and scorer.context == 3
    assert scorer.needs_flow
    assert scorer.img_size == (64, 64)
    out = scorer.score(frames, flows)
    chw = frames.transpose(0, 3, 1, 2)
    targets = np.arange(3, 9)
    np.testing.assert_allclose(out["fp"].psnr, psnr_np(chw[targets - 1], chw[targets]), rtol=1e-5)
    fr_in = rescale_flow(flows[targets - 1], scorer.models["fr"].config.flow_scale)
    np.testing.assert_allclose(out["fr"].psnr, psnr_np(0.5 * fr_in, fr_in), rtol=1e-5)
    assert out["fp"].psnr.dtype == np.float32 and out["fr"].psnr.shape == (6,)
    # The trivial streams on the same frames: copy-last PSNR, and worst-patch flow.
    np.testing.assert_allclose(out["diff"].psnr, psnr_np(chw[targets - 1], chw[targets]), rtol=1e-5)
    assert out["motion"].psnr.shape == (6,) and np.isfinite(out["motion"].psnr).all()


def test_baseline_streams_and_regions():
    from raystack.scoring import motion_psnr, patch_psnr

    frames, flows = _clip(6)
    frames[:] = 0.0
    frames[4, 10:18, 20:28] = 1.0  # a small thing appears in frame 4
    flows[:] = 0.0
    flows[2, :, 40:48, 40:48] = 0.8  # a small fast thing moves into frame 3
    scorer = FrameScorer({"fp": _Oracle(in_frames=2)}, region="patch")
    out = scorer.score(frames, flows)  # targets 2..5
    assert out["diff"].psnr.argmin() == 2 and out["motion"].psnr.argmin() == 1
    whole = FrameScorer({"fp": _Oracle(in_frames=2)}).score(frames, flows)
    # The worst 8x8 window sees the 8x8 change undiluted; the whole frame does not.
    assert out["diff"].psnr[2] < whole["diff"].psnr[2] - 15
    # The scorer carries each worst patch's box: on the new thing, and the moving one.
    assert out["diff"].box.shape == (4, 4) and out["diff"].box.dtype == np.int32
    # (8-px windows at stride 4 cannot hold the square at y 10..18 whole: they cover most)
    x0, y0, x1, y1 = out["diff"].box[2]
    assert x0 <= 20 and x1 >= 28 and y0 <= 12 and y1 >= 16
    x0, y0, x1, y1 = out["motion"].box[1]
    assert x0 <= 40 and x1 >= 48 and y0 <= 40 and y1 >= 48
    assert whole["diff"].box is None and out["fp"].box.shape == (4, 4)
    big = torch.zeros(1, 2, 64, 64)
    big[..., :16, :16] = 0.5
    assert motion_psnr(big) < motion_psnr(big * 0.5)
    assert torch.allclose(patch_psnr(big, big, 8), torch.tensor([100.0]))
    with pytest.raises(ValueError, match="region"):
        FrameScorer({"fp": _Oracle(in_frames=2)}, region="tile")


def test_fr_alone_has_context_one_and_short_clips_give_empty_scores():
    frames, flows = _clip(4)
    scorer = FrameScorer({"fr": _Oracle(task="fr")})
    assert scorer.context == 1
    assert scorer.score(frames, flows)["fr"].psnr.shape == (3,)
    fp = FrameScorer({"fp": _Oracle(in_frames=4)}, baselines=False)
    assert fp.score(frames)["fp"].psnr.shape == (0,)


def test_batch_size_does_not_change_scores_of_a_real_model():
    torch.manual_seed(0)
    model = create_model("vqmau_fp.tiny", in_frames=2)
    frames, _ = _clip(6)
    a = FrameScorer({"fp": model}, batch_size=1, baselines=False).score(frames)["fp"].psnr
    b = FrameScorer({"fp": model}, batch_size=3, baselines=False).score(frames)["fp"].psnr
    assert a.shape == (4,)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_from_checkpoints_names_streams_by_task(tmp_path):
    torch.manual_seed(0)
    fp = create_model("vqmau_fp.tiny", in_frames=2).eval()
    fr = create_model("vqmau_fr.tiny").eval()
    p_fp = save_checkpoint(tmp_path / "fp.pt", fp, preset="vqmau_fp.tiny", data_fingerprint="d")
    p_fr = save_checkpoint(tmp_path / "fr.pt", fr, preset="vqmau_fr.tiny", data_fingerprint="d")
    scorer = FrameScorer.from_checkpoints([str(p_fr), p_fp], batch_size=2)
    assert scorer.streams == ("fr", "fp", "diff", "motion") and scorer.context == 2
    assert len(scorer.checkpoints["fp"]["sha256"]) == 64
    frames, flows = _clip(5)
    out = scorer.score(frames, flows)
    with torch.inference_mode():
        x = torch.from_numpy(rescale_flow(flows[1:4], fr.config.flow_scale))
        direct = fr(x).pred.numpy()
    np.testing.assert_allclose(out["fr"].psnr, psnr_np(direct, x.numpy()), rtol=1e-4)
    with pytest.raises(ValueError, match="two fp checkpoints"):
        FrameScorer.from_checkpoints([p_fp, p_fp])


def test_bad_clips_are_refused():
    scorer = FrameScorer({"fp": _Oracle(in_frames=2), "fr": _Oracle(task="fr")})
    frames, flows = _clip(4)
    with pytest.raises(ValueError, match="needs flows"):
        scorer.score(frames)
    with pytest.raises(ValueError, match=r"frames must be \(T, 64, 64, 3\)"):
        scorer.score(frames[:, :32], flows)
    with pytest.raises(ValueError, match="flows must be"):
        scorer.score(frames, flows[:2])
    with pytest.raises(ValueError, match="amp"):
        FrameScorer({"fp": _Oracle()}, amp="int8")


def test_every_family_scores_exactly_its_own_psnr_by_hand():
    """Frozen expectation: each stream equals the PSNR recomputed by hand from the model's
    own forward on the same windows (seeded tiny models, batches that split the clip)."""
    from raystack.scoring import motion_psnr, psnr

    models = {}
    for key, name in (("fp", "vqmau_fp.tiny"), ("fr", "vqmau_fr.tiny"), ("m2s2l", "m2s2l.tiny")):
        torch.manual_seed(7)
        models[key] = create_model(name).eval()
    ctx = max(models["fp"].config.in_frames, 1, models["m2s2l"].config.context)
    frames, flows = _clip(ctx + 7, seed=3)
    flows *= 0.3
    out = FrameScorer(dict(models), batch_size=3).score(frames, flows)
    assert tuple(out) == ("fp", "fr", "m2s2l_app", "m2s2l_mot", "diff", "motion")

    chw = torch.from_numpy(frames).permute(0, 3, 1, 2)
    targets = np.arange(ctx, len(frames))
    t = models["fp"].config.in_frames
    with torch.inference_mode():
        x = torch.stack([chw[i - t : i].reshape(-1, 64, 64) for i in targets])
        want = {"fp": (psnr(models["fp"](x).pred, chw[targets]), None)}
        f = torch.from_numpy(rescale_flow(flows[targets - 1], models["fr"].config.flow_scale))
        want["fr"] = (psnr(models["fr"](f).pred, f), None)
        c = models["m2s2l"].config.context
        win = torch.stack([chw[i - c : i + 1] for i in targets])
        m = models["m2s2l"](win[:, :-1])
        d = m.distance
        want["m2s2l_app"] = (psnr(m.pred, win[:, -1]),
                             (d["common"] + d["appearance"]) / 2)
        want["m2s2l_mot"] = (psnr(m.motion, (win[:, -1] - win[:, -2]) * 0.5),
                             (d["common"] + d["motion"]) / 2)
    want["diff"] = (psnr(chw[targets - 1], chw[targets]), None)
    want["motion"] = (motion_psnr(torch.from_numpy(flows[targets - 1])), None)
    for s, (p, a) in want.items():
        got_p, got_a = out[s].psnr, out[s].aux
        assert got_p.dtype == np.float32 and got_p.shape == (len(targets),)
        np.testing.assert_allclose(got_p, p.numpy(), rtol=1e-4, err_msg=s)
        if a is None:
            assert got_a is None, s
        else:
            np.testing.assert_allclose(got_a, a.numpy(), rtol=1e-4, err_msg=s)


def test_scorer_leaves_the_thread_count_alone_and_refuses_non_contract_models():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        FrameScorer({"fp": _Oracle(in_frames=2)}).score(*_clip(4))
        assert torch.get_num_threads() == 1  # the process's entry point owns this setting
    finally:
        torch.set_num_threads(before)
    with pytest.raises(TypeError, match="does not implement"):
        FrameScorer({"fp": torch.nn.Identity()})


def test_score_tiles_scores_each_tile_as_its_own_crop():
    """Tiles are batched together, yet each scores as the crop of frames and flow it cuts."""
    rng = np.random.default_rng(3)
    big = rng.uniform(-1, 1, (7, 96, 160, 3)).astype(np.float32)
    big_flow = rng.uniform(-1, 1, (6, 2, 96, 160)).astype(np.float32)
    scorer = FrameScorer({"fp": _Oracle(in_frames=2), "fr": _Oracle(task="fr")},
                         batch_size=3, region="patch")
    boxes = np.array([[0, 0, 64, 64], [96, 32, 160, 96], [50, 10, 114, 74]])
    skip = np.zeros((5, 3), bool)
    skip[2, 1] = True
    out = scorer.score_tiles(big, big_flow, boxes, skip)
    for j, (x0, y0, x1, y1) in enumerate(boxes):
        one = scorer.score(big[:, y0:y1, x0:x1], big_flow[:, :, y0:y1, x0:x1])
        rows = ~skip[:, j]
        for s in scorer.streams:
            got = out[s].psnr[:, j]
            np.testing.assert_allclose(got[rows], one[s].psnr[rows], rtol=1e-5)
            assert np.isnan(got[~rows]).all()
            np.testing.assert_array_equal(out[s].box[rows, j], one[s].box[rows])
    with pytest.raises(ValueError, match="64x64"):
        scorer.score_tiles(big, big_flow, np.array([[0, 0, 70, 64]]))
    with pytest.raises(ValueError, match="skip"):
        scorer.score_tiles(big, big_flow, boxes, np.zeros((4, 3), bool))


def test_windows_of_consecutive_targets_are_views_equal_to_the_stacked_ones():
    """One tile over consecutive targets is cut as overlapping views of the clip, any
    other batch by stacking crops: the same windows either way."""
    rng = np.random.default_rng(5)
    frames = rng.uniform(-1, 1, (9, 48, 64, 3)).astype(np.float32)
    flows = rng.uniform(-1, 1, (8, 2, 48, 64)).astype(np.float32)
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)
    flow = torch.from_numpy(flows)
    from raystack.models.baselines import Baselines

    fp, fr = _Oracle(in_frames=3), _Oracle(task="fr")  # context 2 without flow, 1 with
    scorer = FrameScorer({"fp": fp, "fr": fr})
    box = np.array([8, 4, 40, 36])
    for m in (fp, fr, Baselines()):
        c = m.context
        run = [(i, box) for i in range(c + 1, c + 6)]
        win, fl = scorer._window(m, run, clip, flow)
        assert win.data_ptr() >= clip.data_ptr() and not win.is_contiguous()  # a view
        stacked, fl2 = scorer._window(m, run[::-1], clip, flow)  # not in order: stacked
        torch.testing.assert_close(win, stacked.flip(0), rtol=0, atol=0)
        assert (fl is None) == (not m.needs_flow) == (fl2 is None)
        if fl is not None:
            torch.testing.assert_close(fl, fl2.flip(0), rtol=0, atol=0)
        assert win.shape == (5, c + 1, 3, 32, 32)


def test_still_pairs_score_as_their_zero_flows_do():
    """``still`` (the change stage's unflowed pairs) gives the scores the zero flows give
    without it, gated or not, tiled or whole."""
    rng = np.random.default_rng(6)
    frames = rng.uniform(-1, 1, (10, 80, 96, 3)).astype(np.float32)
    flows = rng.uniform(-0.3, 0.3, (9, 2, 80, 96)).astype(np.float32)
    still = np.zeros(9, bool)
    still[[2, 3, 4, 7]] = True
    flows[still] = 0.0
    scorer = FrameScorer({"fp": _Oracle(in_frames=3), "fr": _Oracle(task="fr")},
                         region="patch")
    boxes = np.array([[0, 0, 64, 64], [32, 16, 96, 80]])
    n = len(frames) - scorer.context
    gated = np.zeros((n, 2), bool)
    gated[still[scorer.context - 1 :]] = True
    for g in (None, gated):
        a = scorer.score_tiles(frames, flows, boxes, gated=g, still=still)
        b = scorer.score_tiles(frames, flows, boxes, gated=g)
        for s in scorer.streams:
            np.testing.assert_array_equal(a[s].psnr, b[s].psnr)
            np.testing.assert_array_equal(a[s].box, b[s].box)
    with pytest.raises(ValueError, match="still must be"):
        scorer.score_tiles(frames, flows, boxes, still=still[:-1])
