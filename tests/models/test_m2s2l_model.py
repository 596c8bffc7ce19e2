"""M²S²L end to end: shapes, gradients, ablations, scores, losses, budget, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raystack.errors import ConfigError
from raystack.models import create_model, get_config, list_models, load_checkpoint, save_checkpoint
from raystack.models.m2s2l import PRESETS
from raystack.models.m2s2l.decompose import FeatureDecomposition
from raystack.models.m2s2l.flops import count_flops
from raystack.models.m2s2l.losses import m2s2l_loss
from raystack.models.m2s2l.memory import MemoryBank
from raystack.models.m2s2l.presets import PAPER_GFLOPS, PAPER_PARAMS
from raystack.models.m2s2l.spatial import MSVSSBlock, SpatialEncoder
from raystack.models.m2s2l.temporal import ScaleAttention, TemporalEncoder
from raystack.scoring import psnr_np


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _clip(config, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, config.context + 1, 3, *config.img_size, generator=g) * 2 - 1


def test_presets_are_data_and_paper_is_ped2():
    names = list_models("m2s2l.*")
    assert names == ["m2s2l.avenue", "m2s2l.ped2", "m2s2l.shanghaitech", "m2s2l.small",
                     "m2s2l.tiny"]
    assert get_config("m2s2l.paper") == PRESETS["m2s2l.ped2"]
    alphas = {n: get_config(n).score_alpha for n in names if n not in ("m2s2l.small", "m2s2l.tiny")}
    assert alphas == {"m2s2l.ped2": 0.6, "m2s2l.avenue": 0.4, "m2s2l.shanghaitech": 0.5}
    # Same architecture for the three datasets: only the score weight differs.
    assert PRESETS["m2s2l.avenue"].replace(score_alpha=0.6) == PRESETS["m2s2l.ped2"]
    c = get_config("m2s2l.paper")
    assert (c.dim, c.img_size, c.context, c.task) == (256, (256, 256), 9, "m2s2l")


def test_tiny_forward_shapes_and_ranges():
    torch.manual_seed(0)
    model = create_model("m2s2l.tiny")
    c = model.config
    out = model(_clip(c)[:, :-1])
    assert out.pred.shape == out.motion.shape == (2, 3, *c.img_size)
    assert out.pred.abs().max() <= 1 and out.motion.abs().max() <= 1  # tanh: model range
    assert set(out.features) == {"common", "appearance", "motion"}
    assert all(f.shape == (2, *c.grid, c.dim) for f in out.features.values())
    assert set(out.distance) == {"common", "appearance", "motion"}
    assert out.spatial_weights.shape == (2, 3) and out.temporal_weights.shape == (2, 3, *c.grid)
    stacked = _clip(c)[:, :-1].reshape(2, c.context * 3, *c.img_size)
    assert model.eval()(stacked).pred.shape == (2, 3, *c.img_size)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = create_model("m2s2l.tiny")
    total, parts = model.training_loss(_clip(model.config))
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
    assert set(parts) == {"frame", "pixel", "gradient", "motion", "separation", "compact",
                          "separate", "total"}
    # Memory items are buffers moved by the update rule, not by gradients.
    assert all(not n.endswith("items") for n, _ in model.named_parameters())
    assert len([n for n, _ in model.named_buffers() if n.endswith("items")]) == 3


def test_training_updates_memory_and_eval_does_not():
    torch.manual_seed(0)
    model = create_model("m2s2l.tiny")
    clip = _clip(model.config)
    before = {n: b.clone() for n, b in model.named_buffers() if n.endswith("items")}
    model.train()(clip[:, :-1])
    after = {n: b.clone() for n, b in model.named_buffers() if n.endswith("items")}
    assert all(not torch.equal(before[n], after[n]) for n in before)
    with torch.inference_mode():
        model.eval()(clip[:, :-1])
    assert all(torch.equal(after[n], b) for n, b in model.named_buffers() if n in after)


@pytest.mark.parametrize(
    ("switch", "gone"),
    [
        ("multi_scale_spatial", ()),
        ("multi_scale_temporal", (ScaleAttention,)),
        ("decomposition", (FeatureDecomposition,)),
        ("memory", (MemoryBank,)),
    ],
)
def test_each_ablation_switch_removes_its_modules_and_still_runs(switch, gone):
    torch.manual_seed(0)
    full = create_model("m2s2l.tiny")
    ablated = create_model("m2s2l.tiny", **{switch: False})
    assert _n_params(ablated) < _n_params(full)
    for cls in gone:
        assert any(isinstance(m, cls) for m in full.modules())
        assert not any(isinstance(m, cls) for m in ablated.modules())
    c = ablated.config
    if switch == "multi_scale_spatial":
        encs = [m for m in ablated.modules() if isinstance(m, SpatialEncoder)]
        assert [e.patch_size for e in encs] == [c.patch_sizes[1]]  # the medium scale
        assert all(b.kernels == () for b in ablated.modules() if isinstance(b, MSVSSBlock))
        assert ablated.spatial.importance is None
    if switch == "multi_scale_temporal":
        encs = [m for m in ablated.modules() if isinstance(m, TemporalEncoder)]
        assert [e.window for e in encs] == [max(c.temporal_windows)]
        assert ablated.temporal.attention is None and c.context == full.config.context
    total, parts = ablated.training_loss(_clip(c))
    total.backward()
    missing = [n for n, p in ablated.named_parameters() if p.grad is None]
    assert missing == []
    scores = ablated.eval().score_batch(_clip(c))
    assert all(torch.isfinite(v.psnr).all() for v in scores.values())
    if switch == "memory":
        assert parts["compact"] == parts["separate"] == 0.0
        assert all(torch.isnan(v.aux).all() for v in scores.values())
    if switch == "decomposition":
        assert parts["separation"] == 0.0 and list(ablated.memories) == ["shared"]
        torch.testing.assert_close(scores["m2s2l_app"].aux, scores["m2s2l_mot"].aux)


def test_baseline_with_everything_off_runs():
    model = create_model("m2s2l.tiny", multi_scale_spatial=False, multi_scale_temporal=False,
                         decomposition=False, memory=False)
    out = model(_clip(model.config)[:, :-1])
    assert out.pred.shape == (2, 3, 64, 64) and out.features.keys() == {"shared"}


def test_score_batch_is_psnr_of_both_predictions_with_memory_distance_as_aux():
    torch.manual_seed(0)
    model = create_model("m2s2l.tiny").eval()
    clip = _clip(model.config, batch=3)
    with torch.inference_mode():
        scores = model.score_batch(clip)
        out = model(clip[:, :-1])
    assert model.streams == tuple(scores) == ("m2s2l_app", "m2s2l_mot")
    assert model.context == 5 and model.needs_flow is False
    target = clip[:, -1].numpy()
    motion = ((clip[:, -1] - clip[:, -2]) / 2).numpy()
    np.testing.assert_allclose(scores["m2s2l_app"].psnr.numpy(),
                               psnr_np(out.pred.numpy(), target), rtol=1e-5)
    np.testing.assert_allclose(scores["m2s2l_mot"].psnr.numpy(),
                               psnr_np(out.motion.numpy(), motion), rtol=1e-5)
    d = out.distance
    torch.testing.assert_close(scores["m2s2l_app"].aux, (d["common"] + d["appearance"]) / 2)
    torch.testing.assert_close(scores["m2s2l_mot"].aux, (d["common"] + d["motion"]) / 2)
    with pytest.raises(ValueError, match=r"M2S2L clips are \(batch, 6, 3, 64, 64\)"):
        model.score_batch(clip[:, 1:])
    with pytest.raises(ValueError, match="M2S2L expects input"):
        model(clip)


def test_loss_weights_come_from_the_config():
    torch.manual_seed(0)
    model = create_model("m2s2l.tiny")
    clip = _clip(model.config)
    out = model(clip[:, :-1])
    total, parts = m2s2l_loss(out, clip, model.config)
    expected = (parts["frame"] + parts["motion"] + 0.1 * parts["separation"]
                + 0.1 * parts["compact"] + 0.1 * parts["separate"])
    assert parts["total"] == pytest.approx(expected, rel=1e-5)
    assert parts["frame"] == pytest.approx(parts["pixel"] + parts["gradient"], rel=1e-5)
    only_frame = model.config.replace(w_motion=0, w_separation=0, w_compact=0, w_separate=0)
    t2, _ = m2s2l_loss(out, {"frames": clip}, only_frame)
    assert float(t2.detach()) == pytest.approx(parts["frame"], rel=1e-5)
    # The frame-prediction batch form {"x": stacked inputs, "y": target} gives the same loss.
    c = model.config
    fp_batch = {"x": clip[:, :-1].reshape(2, c.context * 3, *c.img_size), "y": clip[:, -1]}
    _, fp_parts = model.loss(out, fp_batch)
    assert fp_parts == pytest.approx(parts, rel=1e-6)
    with pytest.raises(ValueError, match="needs 'frames' or 'x' and 'y'"):
        model.loss(out, {"x": clip})


def _moving_square(config, batch: int = 2) -> torch.Tensor:
    """A bright square moving right over a smooth background: a learnable normal clip."""
    h, w = config.img_size
    yy, xx = torch.meshgrid(torch.arange(h * 1.0), torch.arange(w * 1.0), indexing="ij")
    frames = []
    for t in range(config.context + 1):
        img = 0.3 * torch.sin(xx / 9) * torch.cos(yy / 11)
        inside = (xx >= 10 + 3 * t) & (xx < 20 + 3 * t) & (yy >= 20) & (yy < 34)
        frames.append(torch.where(inside, torch.tensor(0.9), img).expand(3, h, w))
    return torch.stack(frames)[None].repeat(batch, 1, 1, 1, 1)


def test_a_few_adam_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = create_model("m2s2l.tiny")
    clip = _moving_square(model.config)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        total, _ = model.training_loss(clip)
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < 0.6 * losses[0]


def test_invalid_config_is_refused_with_the_field_named():
    with pytest.raises(ConfigError, match="grid_patch"):
        create_model("m2s2l.tiny", grid_patch=8)
    with pytest.raises(ConfigError, match="patch_sizes"):
        get_config("m2s2l.tiny", spatial_depths=(1, 1))
    with pytest.raises(ConfigError, match="score_alpha"):
        get_config("m2s2l.tiny", score_alpha=1.5)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("m2s2l.tiny", memory_items=4)
    model.train()(_clip(model.config)[:, :-1])  # move the memory items off their init
    model.eval()
    path = save_checkpoint(tmp_path / "m.pt", model, preset="m2s2l.tiny", data_fingerprint="x")
    loaded, info = load_checkpoint(path)
    assert info["family"] == "m2s2l" and info["task"] == "m2s2l" and info["preset"] == "m2s2l.tiny"
    assert loaded.config == model.config
    clip = _clip(model.config, seed=3)
    with torch.inference_mode():
        a, b = model.score_batch(clip), loaded.score_batch(clip)
    for s in a:
        torch.testing.assert_close(a[s].psnr, b[s].psnr)
        torch.testing.assert_close(a[s].aux, b[s].aux)


def test_paper_preset_parameter_count_within_15_percent():
    n = _n_params(create_model("m2s2l.paper", device="meta"))
    assert abs(n / PAPER_PARAMS - 1) < 0.15, f"{n:,} vs {PAPER_PARAMS:,.0f}"


def test_paper_preset_flops_within_15_percent():
    # Scans are counted analytically (stand-ins), so this forward takes ~2 s on 2 CPUs.
    torch.manual_seed(0)
    counts = count_flops(create_model("m2s2l.paper").eval())
    gflops = counts["total_per_frame"] / 1e9
    assert abs(gflops / PAPER_GFLOPS - 1) < 0.15, f"{gflops:.2f} GFLOPs"
    assert 0 < counts["scan_per_frame"] < counts["counted_per_frame"]
