"""M²S²L parts: memory read/update semantics, MS-VSS, temporal Mamba blocks, decomposition."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from raystack.models.m2s2l.decompose import FeatureDecomposition
from raystack.models.m2s2l.losses import separation_loss
from raystack.models.m2s2l.memory import MemoryBank, memory_losses, memory_read, memory_update
from raystack.models.m2s2l.spatial import MSVSSBlock, MultiScaleSpatialEncoder, resize_grid
from raystack.models.m2s2l.temporal import (
    MultiScaleTemporalEncoder,
    TemporalEncoder,
    TemporalMambaBlock,
    causal_depthwise_conv1d,
    frame_differences,
)


def _unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape), dim=-1)


# --- memory (MNAD) ----------------------------------------------------------------------


def test_memory_read_is_softmax_attention_over_items():
    torch.manual_seed(0)
    q, items = _unit(7, 8), _unit(5, 8)
    read, w = memory_read(q, items)
    for k in range(7):
        logits = torch.tensor([float(q[k] @ items[m]) for m in range(5)])
        expected_w = torch.exp(logits) / torch.exp(logits).sum()
        torch.testing.assert_close(w[k], expected_w)
        torch.testing.assert_close(read[k], (expected_w[:, None] * items).sum(0))


def _update_reference(q: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """MNAD's update rule written out item by item, the way the paper states it."""
    scores = q @ items.t()
    v = torch.exp(scores) / torch.exp(scores).sum(dim=0, keepdim=True)  # softmax over queries
    nearest = scores.argmax(dim=1)
    new = items.clone()
    for m in range(items.shape[0]):
        chosen = [k for k in range(q.shape[0]) if nearest[k] == m]
        if not chosen:
            continue
        top = max(float(v[k, m]) for k in chosen)
        moved = items[m] + sum(float(v[k, m]) / top * q[k] for k in chosen)
        new[m] = moved / moved.norm()
    return new


def test_memory_update_follows_mnad_rule():
    torch.manual_seed(1)
    q, items = _unit(40, 16), _unit(6, 16)
    new = memory_update(q, items)
    torch.testing.assert_close(new, _update_reference(q, items))
    torch.testing.assert_close(new.norm(dim=1), torch.ones(6))


def test_memory_update_moves_items_toward_their_queries_and_leaves_the_rest():
    items = torch.eye(4)[:3]  # e0, e1, e2 in R^4
    # Two queries near e0, one near e1, none near e2.
    q = F.normalize(torch.tensor([[1.0, 0.0, 0.0, 0.6], [1.0, 0.0, 0.0, 0.4],
                                  [0.0, 1.0, 0.0, -0.5]]), dim=1)
    new = memory_update(q, items)
    assert torch.equal(new[2], items[2])  # no query chose e2
    for m, mine in ((0, q[:2].mean(0)), (1, q[2])):
        assert F.cosine_similarity(new[m], mine, dim=0) > F.cosine_similarity(items[m], mine,
                                                                                dim=0)
    # The query with the largest update weight counts fully (v / max v = 1) for e1.
    torch.testing.assert_close(new[1], F.normalize(items[1] + q[2], dim=0))


def test_memory_losses_compactness_and_separateness():
    items = torch.eye(3)
    q = F.normalize(torch.tensor([[1.0, 0.2, 0.0], [0.1, 1.0, 0.5]]), dim=1)
    compact, separate, dist = memory_losses(q, items, margin=1.0)
    pos = items[[0, 1]]
    neg = items[[1, 2]]
    torch.testing.assert_close(compact, ((q - pos) ** 2).mean())
    expected = torch.clamp((q - pos).norm(dim=1) - (q - neg).norm(dim=1) + 1.0, min=0).mean()
    torch.testing.assert_close(separate, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dist, ((q - pos) ** 2).sum(dim=1))


def test_memory_bank_updates_only_in_training_and_items_get_no_gradient():
    torch.manual_seed(2)
    bank = MemoryBank(num_items=5, dim=8)
    assert [n for n, _ in bank.named_parameters()] == []  # items are a buffer
    x = torch.randn(2, 3, 3, 8, requires_grad=True)
    before = bank.items.clone()
    bank.eval()
    out = bank(x)
    assert torch.equal(bank.items, before)
    assert out.read.shape == out.query.shape == (2, 3, 3, 8) and out.distance.shape == (2,)
    bank.train()
    out = bank(x)
    q = F.normalize(x.detach().reshape(-1, 8), dim=1)
    torch.testing.assert_close(bank.items, memory_update(q, before))
    # The read used the items from before the update, and the backward still works after
    # the in-place update of the buffer.
    torch.testing.assert_close(out.read.reshape(-1, 8), memory_read(q, before)[0])
    (out.read.sum() + out.compact + out.separate).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # Distance per sample: mean over its locations of the squared distance to the nearest.
    d = memory_losses(q, before)[2].reshape(2, 9).mean(1)
    torch.testing.assert_close(out.distance, d)


# --- spatial ----------------------------------------------------------------------------


def test_msvss_block_adds_parallel_multi_kernel_convs_to_a_vss_block():
    torch.manual_seed(0)
    block = MSVSSBlock(16, kernels=(3, 5, 7), d_state=4)
    assert [c.kernel_size for c in block.dwconvs] == [(3, 3), (5, 5), (7, 7)]
    assert all(c.groups == 16 for c in block.dwconvs)  # depth-wise
    x = torch.randn(2, 6, 6, 16)
    assert block(x).shape == x.shape
    plain = MSVSSBlock(16, kernels=(), d_state=4)
    assert not hasattr(plain, "dwconvs")
    torch.testing.assert_close(plain(x), plain.vss(x))


def test_multi_scale_spatial_encoder_weights_and_grid():
    torch.manual_seed(0)
    enc = MultiScaleSpatialEncoder(3, 16, patch_sizes=(4, 8, 16), depths=(1, 1, 1), grid=(8, 8),
                                   d_state=4)
    f, w = enc(torch.randn(2, 3, 32, 32))
    assert f.shape == (2, 8, 8, 16) and w.shape == (2, 3)
    torch.testing.assert_close(w.sum(1), torch.ones(2))
    single = MultiScaleSpatialEncoder(3, 16, patch_sizes=(8,), depths=(1,), grid=(8, 8),
                                      d_state=4)
    assert single.importance is None
    f1, w1 = single(torch.randn(1, 3, 32, 32))
    assert f1.shape == (1, 8, 8, 16) and torch.equal(w1, torch.ones(1, 1))
    x = torch.randn(1, 2, 2, 4)
    assert resize_grid(x, (2, 2)) is x and resize_grid(x, (4, 4)).shape == (1, 4, 4, 4)


# --- temporal ---------------------------------------------------------------------------


def test_frame_differences_are_halved_and_in_range():
    frames = torch.tensor([-1.0, 1.0, 0.0]).reshape(1, 3, 1, 1, 1).expand(1, 3, 3, 2, 2)
    d = frame_differences(frames)
    assert d.shape == (1, 2, 3, 2, 2)
    torch.testing.assert_close(d[0, :, 0, 0, 0], torch.tensor([1.0, -0.5]))


@pytest.mark.parametrize("length", [1, 2, 8, 13])
def test_causal_depthwise_conv1d_equals_mambas_grouped_conv(length):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)
    x = torch.randn(5, length, 6, requires_grad=True)
    want = conv(x.transpose(1, 2))[..., :length].transpose(1, 2)
    got = causal_depthwise_conv1d(x, conv.weight, conv.bias)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(want)
    grads_want = torch.autograd.grad(want, (x, conv.weight, conv.bias), g)
    grads_got = torch.autograd.grad(got, (x, conv.weight, conv.bias), g)
    for a, b in zip(grads_got, grads_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # causal: nothing after step t reaches output t
    x2 = x.detach().clone()
    x2[:, -1] += 100.0
    torch.testing.assert_close(causal_depthwise_conv1d(x2, conv.weight, None)[:, :-1],
                               causal_depthwise_conv1d(x.detach(), conv.weight, None)[:, :-1])


def test_temporal_mamba_block_is_causal_and_scale_specific():
    torch.manual_seed(0)
    block = TemporalMambaBlock(16, window=4, d_state=4)
    x = torch.randn(3, 4, 16)
    y = block(x)
    x2 = x.clone()
    x2[:, 2:] += torch.randn(3, 2, 16)  # change only the later steps
    y2 = block(x2)
    torch.testing.assert_close(y[:, :2], y2[:, :2])
    assert not torch.allclose(y[:, 2:], y2[:, 2:])
    for w in (2, 8):
        dt = F.softplus(TemporalMambaBlock(16, window=w, d_state=4).dt_proj.bias)
        lo, hi = 0.25 / w, min(2.0 / w, 1.0)
        assert dt.min() >= lo * (1 - 1e-4) and dt.max() <= hi * (1 + 1e-4)
    short = F.softplus(TemporalMambaBlock(16, window=2).dt_proj.bias).mean()
    long = F.softplus(TemporalMambaBlock(16, window=8).dt_proj.bias).mean()
    assert short > long  # short windows start with faster-forgetting states


def test_temporal_encoders_positional_encoding_and_attention_fusion():
    torch.manual_seed(0)
    enc = TemporalEncoder(3, 16, window=3, patch_size=4, d_state=4)
    assert enc.pos.shape == (3, 16)
    torch.testing.assert_close(enc.pos[0, 1::2], torch.ones(8))  # cos(0) = 1 at init
    assert enc(torch.randn(2, 3, 3, 16, 16)).shape == (2, 4, 4, 16)
    with pytest.raises(ValueError, match="window=3"):
        enc(torch.randn(2, 2, 3, 16, 16))
    ms = MultiScaleTemporalEncoder(3, 16, windows=(1, 2, 3), patch_size=4, grid=(8, 8),
                                   d_state=4)
    f, a = ms(torch.randn(2, 3, 3, 16, 16))
    assert f.shape == (2, 8, 8, 16) and a.shape == (2, 3, 8, 8)
    torch.testing.assert_close(a.sum(1), torch.ones(2, 8, 8))


# --- decomposition ----------------------------------------------------------------------


def test_decomposition_gates_split_common_and_residual():
    torch.manual_seed(0)
    dec = FeatureDecomposition(8)
    f = torch.randn(2, 3, 3, 8)
    c, a, m = dec(f)
    r = f - c
    # Gates lie in (0, 1): each part keeps the sign of its source and a smaller magnitude.
    assert torch.all(c * f >= 0) and torch.all(c.abs() <= f.abs())
    assert torch.all(a.abs() <= r.abs()) and torch.all(m.abs() <= r.abs())
    assert torch.all(a * r >= 0) and torch.all(m * r >= 0)


def test_separation_loss_is_zero_for_orthogonal_parts_and_one_for_parallel():
    e = torch.eye(3).reshape(1, 1, 3, 3)
    parts = {"common": e[..., 0, :], "appearance": e[..., 1, :], "motion": e[..., 2, :]}
    assert float(separation_loss(parts)) == pytest.approx(0.0, abs=1e-7)
    same = {k: e[..., 0, :] * (i + 1) for i, k in enumerate(parts)}
    assert float(separation_loss(same)) == pytest.approx(1.0, abs=1e-6)
    assert float(separation_loss({"shared": e[..., 0, :]})) == 0.0
    assert math.isfinite(float(separation_loss({k: torch.zeros(1, 3) for k in parts})))


def test_separation_loss_equals_squared_cosine_similarity_in_value_and_gradient():
    torch.manual_seed(0)
    parts = {k: torch.randn(2, 3, 4, 16, requires_grad=True)
             for k in ("common", "appearance", "motion")}
    parts["motion"].data[0, 0, 0] = 0.0  # a zero vector: the eps clamp, as F's
    want = sum(F.cosine_similarity(parts[a], parts[b], dim=-1, eps=1e-6).pow(2).mean()
               for a, b in (("appearance", "motion"), ("common", "appearance"),
                            ("common", "motion"))) / 3
    got = separation_loss(parts)
    torch.testing.assert_close(got, want)
    for g, w in zip(torch.autograd.grad(got, list(parts.values())),
                    torch.autograd.grad(want, list(parts.values())), strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("depth", [1, 2])
def test_temporal_encoders_last_step_equals_the_full_blocks_last_step(depth):
    torch.manual_seed(0)
    enc = TemporalEncoder(3, 16, window=4, patch_size=4, depth=depth, d_state=4)
    diffs = torch.randn(2, 4, 3, 16, 16)
    got = enc(diffs)
    # The long way: every block over every step, then the last step.
    x = enc.embed(diffs.flatten(0, 1))
    gh, gw = x.shape[1:3]
    x = x.reshape(2, 4, gh, gw, 16).permute(0, 2, 3, 1, 4).reshape(-1, 4, 16) + enc.pos
    want = enc.norm(enc.blocks(x)[:, -1].reshape(2, gh, gw, 16))
    torch.testing.assert_close(got, want)
    params = list(enc.parameters())
    g_got = torch.autograd.grad(got.square().sum(), params, allow_unused=True)
    g_want = torch.autograd.grad(want.square().sum(), params, allow_unused=True)
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    last = enc.blocks[-1]
    torch.testing.assert_close(last(x, last_only=True), last(x)[:, -1])


def test_causal_depthwise_conv1d_under_bf16_keeps_float32_parameter_gradients():
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)
    x = torch.randn(5, 8, 6)
    want = causal_depthwise_conv1d(x, conv.weight, conv.bias)
    got = causal_depthwise_conv1d(x.bfloat16().requires_grad_(), conv.weight, conv.bias)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.detach(), rtol=0.05, atol=0.05)
    got.float().sum().backward()
    assert conv.weight.grad.dtype == torch.float32 and conv.bias.grad.dtype == torch.float32
    assert torch.isfinite(conv.weight.grad).all()
