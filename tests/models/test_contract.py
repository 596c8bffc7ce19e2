"""Every ``*.tiny`` preset honours the one model contract; so do the baseline streams.

One parametrised test per family (anomalib's ``test_models`` pattern): a family added to
the registry with a tiny preset is checked here without writing a test for it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raystack.inference import FrameScorer
from raystack.models import create_model, list_models, load_checkpoint, save_checkpoint
from raystack.models.baselines import Baselines
from raystack.models.contract import ScoringModel, StreamScores, TrainableModel
from raystack.scoring import BASELINE_STREAMS, copy_last_psnr, motion_psnr
from raystack.train.data import ClipSet, DecodedVideo

TINY = list_models("*.tiny")
B = 3


def test_every_family_has_a_tiny_preset():
    assert {"vqmau_fp.tiny", "vqmau_fr.tiny", "m2s2l.tiny"} <= set(TINY)


def _window(model: ScoringModel, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    h, w = model.img_size
    frames = torch.rand(B, model.context + 1, 3, h, w, generator=g) * 2 - 1
    flows = (torch.rand(B, model.context, 2, h, w, generator=g) * 2 - 1) * 0.3
    return frames, flows if model.needs_flow else None


def _train_batch(model: TrainableModel) -> dict[str, torch.Tensor]:
    """A batch in the family's training form, from the real data path (ClipSet)."""
    rng = np.random.default_rng(0)
    h, w = model.img_size
    n = model.context + B + 2
    video = DecodedVideo("v", rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8),
                         rng.uniform(-0.3, 0.3, (n - 1, 2, h, w)).astype(np.float16))
    clips = ClipSet([video], model.config.task, model.context, np.zeros(B, np.int64),
                    np.arange(n - B, n), getattr(model.config, "flow_scale", 10.0))
    return clips.batch(range(B))


def _assert_scores(scores: dict, model: ScoringModel) -> None:
    assert tuple(scores) == model.streams
    for s, v in scores.items():
        assert isinstance(v, StreamScores), s
        assert v.psnr.shape == (B,) and v.psnr.dtype == torch.float32, s
        assert torch.isfinite(v.psnr).all(), s
        assert v.aux is None or v.aux.shape == (B,), s


@pytest.mark.parametrize("name", TINY)
def test_tiny_preset_honours_the_contract(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    assert isinstance(model, TrainableModel) and isinstance(model, torch.nn.Module)
    assert isinstance(model.streams, tuple) and model.streams
    assert all(isinstance(s, str) for s in model.streams)
    assert not set(model.streams) & set(BASELINE_STREAMS)
    assert isinstance(model.context, int) and model.context >= 1
    assert isinstance(model.needs_flow, bool)
    assert model.img_size == tuple(model.config.img_size)

    # Training half: the loss of the family's own batches, and gradients from it.
    model.train()
    batch = _train_batch(model)
    total, parts = model.loss(model(batch["x"]), batch)
    assert total.dim() == 0 and torch.isfinite(total)
    assert parts["total"] == pytest.approx(float(total.detach()))
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    # Scoring half, then the same scores from the checkpoint.
    model.eval()
    frames, flows = _window(model)
    with torch.inference_mode():
        scores = model.score_batch(frames, flows)
    _assert_scores(scores, model)
    path = save_checkpoint(tmp_path / "m.pt", model, preset=name, data_fingerprint="x")
    loaded, _ = load_checkpoint(path)
    assert (loaded.streams, loaded.context, loaded.needs_flow) == (
        model.streams, model.context, model.needs_flow)
    with torch.inference_mode():
        again = loaded.score_batch(frames, flows)
    for s in scores:
        torch.testing.assert_close(again[s].psnr, scores[s].psnr, rtol=0, atol=0)
        if scores[s].aux is not None:
            torch.testing.assert_close(again[s].aux, scores[s].aux, rtol=0, atol=0)

    # Under region "patch" every stream says where its worst patch is; whole frame: nowhere.
    assert all(v.box is None for v in scores.values())
    with torch.inference_mode():
        patch = model.score_batch(frames, flows, region="patch")
    h, w = model.img_size
    for s, v in patch.items():
        assert v.box is not None and v.box.shape == (B, 4), s
        assert ((v.box[:, 0] >= 0) & (v.box[:, 2] <= w) & (v.box[:, 1] >= 0)
                & (v.box[:, 3] <= h) & (v.box[:, 2] > v.box[:, 0])).all(), s

    # A window of the wrong length is refused with the shape it needed.
    with pytest.raises(ValueError, match=r"\(B, |clips are"):
        model.score_batch(frames[:, 1:], None if flows is None else flows[:, 1:])

    # The scorer takes it like any other family, beside the baselines.
    scorer = FrameScorer({name: model}, batch_size=2)
    assert scorer.streams == model.streams + BASELINE_STREAMS
    t = model.context + 4
    clip = frames[0, :1].expand(t, -1, -1, -1).permute(0, 2, 3, 1).contiguous().numpy()
    out = scorer.score(clip, np.zeros((t - 1, 2, *model.img_size), np.float32))
    assert all(v.psnr.shape == (4,) for v in out.values())


def test_baselines_score_the_scoring_half_only():
    base = Baselines()
    assert isinstance(base, ScoringModel) and not isinstance(base, TrainableModel)
    assert not hasattr(base, "loss")  # nothing to learn: no parameters, no loss
    assert list(base.parameters()) == []
    assert (base.streams, base.context, base.needs_flow, base.img_size) == (
        BASELINE_STREAMS, 1, True, None)
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(B, 2, 3, 32, 48, generator=g) * 2 - 1
    flows = torch.rand(B, 1, 2, 32, 48, generator=g) * 2 - 1
    scores = base.score_batch(frames, flows, region="patch")
    assert tuple(scores) == BASELINE_STREAMS
    torch.testing.assert_close(scores["diff"].psnr,
                               copy_last_psnr(frames[:, 0], frames[:, 1], "patch"))
    torch.testing.assert_close(scores["motion"].psnr, motion_psnr(flows[:, 0]))
    assert scores["diff"].aux is None and scores["motion"].aux is None
    assert scores["diff"].box.shape == scores["motion"].box.shape == (B, 4)
    # motion is a worst-patch statistic in either region, but its box follows the region
    # like every stream's: none under "frame".
    whole = base.score_batch(frames, flows)
    assert whole["diff"].box is None and whole["motion"].box is None
    torch.testing.assert_close(whole["motion"].psnr, scores["motion"].psnr)
    with pytest.raises(ValueError, match="needs flows"):
        base.score_batch(frames, None)


@pytest.mark.parametrize("region", ["frame", "patch", "calibrated"])
def test_baselines_score_zero_flows_once_and_alike(region):
    """A still stretch's zero flows share one motion answer; it is the answer each would
    get alone, and the moving samples beside them keep their own."""
    base = Baselines()
    g = torch.Generator().manual_seed(2)
    frames = torch.rand(6, 2, 3, 32, 48, generator=g) * 2 - 1
    flows = torch.zeros(6, 1, 2, 32, 48)
    flows[1] = torch.rand(1, 2, 32, 48, generator=g) - 0.5
    flows[4, 0, :, 8:16, 8:16] = 0.7
    zero = ~flows.flatten(1).any(1)
    got = base.score_batch(frames, flows, region=region, zero=zero)["motion"]
    each = base.score_batch(frames, flows, region=region)["motion"]
    torch.testing.assert_close(got.psnr, each.psnr)
    for i in range(6):
        one = base.score_batch(frames[i : i + 1], flows[i : i + 1], region=region)["motion"]
        torch.testing.assert_close(got.psnr[i : i + 1], one.psnr)
        for name in ("box", "windows"):
            a, b = getattr(got, name), getattr(one, name)
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(a[i : i + 1], b)
    assert got.psnr[[0, 2, 3, 5]].eq(100.0).all() and got.psnr[[1, 4]].lt(60).all()
    still = base.score_batch(frames, torch.zeros_like(flows), region=region,
                             zero=torch.ones(6, dtype=torch.bool))["motion"]
    assert still.psnr.eq(100.0).all()
    # the flag is the change stage's word, taken as given: nothing re-reads the flows
    lie = zero.clone()
    lie[1] = True
    assert base.score_batch(frames, flows, region=region, zero=lie)["motion"].psnr[1] == 100.0
