"""VQ-MaU end to end: tiny presets train on CPU, ablations change the structure, paper sizes."""

from __future__ import annotations

import pytest
import torch

from raystack.errors import ConfigError
from raystack.models import create_model, get_config, list_models
from raystack.models.nvss import NonNegativeEnhanced
from raystack.models.presets import PAPER_PARAMS
from raystack.models.vq import VectorQuantizer


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _input(config, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, config.input_channels, *config.img_size) * 2 - 1


@pytest.mark.parametrize("name", list_models("vqmau_*.tiny"))
def test_tiny_forward_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name)
    c = model.config
    if c.residual:  # a zero head passes no gradient upstream; connectivity is what we test
        torch.nn.init.normal_(model.final.head.weight, std=0.02)
    model(_input(c))  # an EMA codebook initialises itself on the first training batch
    out = model(_input(c))
    assert out.pred.shape == (2, c.out_channels, *c.img_size)
    assert out.pred.abs().max() <= 1.0  # tanh / clamp: the model range
    assert out.vq_loss.dim() == 0 and out.vq_loss > 0
    assert 0 < out.vq_stats["usage"] <= 1
    assert 1 <= out.vq_stats["perplexity"] <= c.codebook_size
    (out.pred.square().mean() + out.vq_loss).backward()
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in trained if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []  # incl. vq.codebook (via the VQ loss, unless EMA) and every NE branch
    assert c.vq_ema == (not model.vq.codebook.requires_grad)


@pytest.mark.parametrize("name", ["vqmau_fp.tiny", "vqmau_fr.tiny"])
def test_an_untrained_residual_model_is_near_its_trivial_baseline(name):
    model = create_model(name).eval()
    plain = create_model(name, residual=False).eval()
    x = _input(model.config)
    trivial = x[:, -3:] if model.config.task == "fp" else torch.zeros_like(x)  # copy-last / 0
    err = (model(x).pred - trivial).abs().mean()
    assert err < 0.05  # the small head adds ~1% noise to the trivial answer...
    assert (plain(x).pred - trivial).abs().mean() > 4 * err  # ...the paper's output does not


def test_ema_codebook_starts_on_the_features_and_restarts_dead_codes():
    from raystack.models.vq import VectorQuantizer

    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, ema=True)
    feats = torch.randn(64, 4) + 5.0  # far from the paper's init near the origin
    vq(feats.view(1, 8, 8, 4))
    # Initialised from the batch: every code is one of the features.
    assert all(any(torch.equal(code, f) for f in feats) for code in vq.codebook.detach())
    for _ in range(300):  # the data moves away: codes follow it or restart on it
        _, _, stats = vq(torch.randn(1, 8, 8, 4) - 5.0)
    assert (vq.codebook.detach() < -3).all()  # no code left stranded at the old data
    assert float(stats["usage"]) >= 0.5  # and the codebook did not collapse to a few codes


def test_five_d_input_is_frames_stacked_on_channels():
    torch.manual_seed(0)
    model = create_model("vqmau_fp.tiny").eval()
    c = model.config
    clip = torch.rand(1, c.in_frames, 3, *c.img_size) * 2 - 1  # (b, t, c, H, W)
    stacked = clip.reshape(1, c.in_frames * 3, *c.img_size)
    assert torch.equal(model(clip).pred, model(stacked).pred)


def test_wrong_input_shape_names_the_expected_one():
    model = create_model("vqmau_fr.tiny")
    with pytest.raises(ValueError, match=r"expects input \(batch, 2, 64, 64\)"):
        model(torch.zeros(1, 3, 64, 64))


def test_ablation_switches_change_the_structure():
    full = create_model("vqmau_fp.tiny")
    no_ne = create_model("vqmau_fp.tiny", use_ne=False)
    no_vq = create_model("vqmau_fp.tiny", use_vq=False)
    t8 = create_model("vqmau_fp.tiny", in_frames=8)
    assert any(isinstance(m, NonNegativeEnhanced) for m in full.modules())
    assert not any(isinstance(m, NonNegativeEnhanced) for m in no_ne.modules())
    assert _n_params(no_ne) < _n_params(full)
    assert not any(isinstance(m, VectorQuantizer) for m in no_vq.modules())
    assert _n_params(full) - _n_params(no_vq) == 50 * 128  # the K x C codebook
    assert t8.patch_embed.proj.in_channels == 8 * 3
    out = no_vq(_input(no_vq.config, 1))
    assert float(out.vq_loss) == 0.0 and out.vq_stats == {}


def test_invalid_config_is_refused_with_the_field_named():
    with pytest.raises(ConfigError, match="img_size"):
        create_model("vqmau_fp.tiny", img_size=(60, 64))
    with pytest.raises(ConfigError, match="task"):
        get_config("vqmau_fp.tiny", task="seg")


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_paper_presets_match_the_paper_parameter_count(name):
    model = create_model(name, device="meta")  # no memory, no init cost
    n = _n_params(model)
    assert abs(n / PAPER_PARAMS[name] - 1) < 0.10, f"{name}: {n:,} vs {PAPER_PARAMS[name]:,.0f}"
    c = model.config
    assert c.img_size == (256, 256) and c.dims == (64, 128, 256, 512)
    assert c.codebook_size == (50 if c.task == "fp" else 10)
    assert c.in_frames == (16 if c.task == "fp" else 1)
