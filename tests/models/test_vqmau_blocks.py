"""Blocks of VQ-MaU checked against straightforward reimplementations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raystack.models.nvss import NonNegativeEnhanced, NVSSBlock
from raystack.models.patches import PatchExpand, PatchMerging
from raystack.models.ss2d import SS2D
from raystack.models.vq import VectorQuantizer
from raystack.ops.selective_scan import selective_scan_ref


def _ss2d_by_direction(m: SS2D, x: torch.Tensor) -> torch.Tensor:
    """SS2D written the slow way: four separate scans, each over its own pixel order."""
    b, h, w, _ = x.shape
    d, n, r = m.d_inner, m.d_state, m.dt_rank
    xi, z = m.in_proj(x).chunk(2, dim=-1)
    xi = F.silu(m.conv2d(xi.permute(0, 3, 1, 2)))
    flat = xi.reshape(b, d, h * w)  # row-major pixel index
    grid = torch.arange(h * w).view(h, w)
    rows, cols = grid.flatten(), grid.t().flatten()
    orders = [rows, cols, rows.flip(0), cols.flip(0)]
    A = -torch.exp(m.A_logs).view(4, d, n)
    Ds = m.Ds.view(4, d)
    bias = m.dt_projs_bias.view(4, d)
    y = torch.zeros_like(flat)
    for k, order in enumerate(orders):
        u = flat[:, :, order]
        proj = torch.einsum("bdl,cd->bcl", u, m.x_proj_weight[k])
        dt, B, C = proj.split([r, n, n], dim=1)
        dt = torch.einsum("brl,dr->bdl", dt, m.dt_projs_weight[k])
        yk = selective_scan_ref(u, dt, A[k], B, C, Ds[k], delta_bias=bias[k], delta_softplus=True)
        back = torch.empty_like(yk)
        back[:, :, order] = yk  # scan position -> pixel
        y = y + back
    y = y.view(b, d, h, w).permute(0, 2, 3, 1)
    return m.out_proj(m.out_norm(y) * F.silu(z))


def test_ss2d_equals_four_separate_direction_scans():
    torch.manual_seed(0)
    m = SS2D(d_model=8, d_state=4)
    x = torch.randn(2, 3, 5, 8)  # h != w catches any row/column mix-up
    torch.testing.assert_close(m(x), _ss2d_by_direction(m, x), rtol=1e-4, atol=1e-5)


def test_ss2d_init_follows_mamba():
    m = SS2D(d_model=32, d_state=16)
    assert m.dt_rank == 2 and m.d_inner == 64
    torch.testing.assert_close(m.A_logs[0].exp(), torch.arange(1.0, 17.0))
    assert torch.all(m.Ds == 1)
    dt = F.softplus(m.dt_projs_bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6


def test_ne_branch_is_a_true_channels_first_computation():
    torch.manual_seed(0)
    ne = NonNegativeEnhanced(d_model=6)
    with torch.no_grad():  # non-trivial BN statistics, then eval so they are used
        ne.bn.running_mean.uniform_(-0.5, 0.5)
        ne.bn.running_var.uniform_(0.5, 2.0)
        ne.bn.weight.uniform_(0.5, 1.5)
        ne.bn.bias.uniform_(-0.5, 0.5)
    ne.eval()
    x = torch.randn(2, 4, 5, 6)  # (b, h, w, c)
    # By hand, channels-first throughout: LayerNorm over C, the Linear as a 1x1 conv.
    xc = x.permute(0, 3, 1, 2)
    mu = xc.mean(1, keepdim=True)
    var = xc.var(1, unbiased=False, keepdim=True)
    xn = (xc - mu) / torch.sqrt(var + ne.norm.eps)
    xn = xn * ne.norm.weight[:, None, None] + ne.norm.bias[:, None, None]
    xl = F.conv2d(xn, ne.proj.weight[:, :, None, None])
    expected = F.batch_norm(
        F.conv2d(F.relu(xl), ne.conv.weight, padding=1), ne.bn.running_mean, ne.bn.running_var,
        ne.bn.weight, ne.bn.bias, eps=ne.bn.eps,
    ).permute(0, 2, 3, 1)
    torch.testing.assert_close(ne(x), expected, rtol=1e-5, atol=1e-5)
    # The public code's `view` of NCHW memory as NHWC is a different (wrong) function.
    wrong = ne.bn(ne.conv(F.relu(ne.proj(ne.norm(x)).permute(0, 3, 1, 2)))).contiguous()
    assert not torch.allclose(wrong.view(2, 4, 5, 6), expected)


def test_nvss_block_is_two_residual_branches():
    torch.manual_seed(0)
    block = NVSSBlock(d_model=8, d_state=4, drop_path=0.5).eval()  # drop path off in eval
    x = torch.randn(1, 4, 4, 8)
    y = x + block.ss2d(block.norm(x))
    torch.testing.assert_close(block(x), y + block.ne(y))
    plain = NVSSBlock(d_model=8, d_state=4, use_ne=False).eval()
    assert plain.ne is None
    torch.testing.assert_close(plain(x), x + plain.ss2d(plain.norm(x)))


def test_vq_straight_through_loss_and_usage():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=4, code_dim=3, beta=0.25)
    with torch.no_grad():
        vq.codebook.copy_(torch.eye(4, 3) * 2)
    z_e = torch.tensor([[2.1, 0.0, 0.0], [0.0, 1.9, 0.1], [1.8, 0.2, 0.0]]).view(1, 3, 1, 3)
    z_e.requires_grad_(True)
    z_q, loss, stats = vq(z_e)
    expected_q = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [2.0, 0, 0]]).view(1, 3, 1, 3)
    torch.testing.assert_close(z_q.detach(), expected_q)
    assert stats["indices"].flatten().tolist() == [0, 1, 0]
    assert float(stats["usage"]) == 0.5  # 2 of 4 codes
    p = torch.tensor([2 / 3, 1 / 3])
    torch.testing.assert_close(stats["perplexity"], torch.exp(-(p * p.log()).sum()))
    mse = F.mse_loss(expected_q, z_e.detach())
    torch.testing.assert_close(loss, (1 + 0.25) * mse)
    # Straight through: d(sum(g * z_q))/dz_e == g, whatever the codes.
    g = torch.randn_like(z_e)
    (grad,) = torch.autograd.grad((g * z_q).sum(), z_e)
    torch.testing.assert_close(grad, g)
    # The codebook learns from the VQ loss only.
    (code_grad,) = torch.autograd.grad(loss, vq.codebook)
    assert code_grad[:2].abs().sum() > 0 and code_grad[2:].abs().sum() == 0


def test_patch_merging_and_expand_shapes():
    x = torch.randn(2, 8, 6, 16)
    y = PatchMerging(16, 32)(x)
    assert y.shape == (2, 4, 3, 32)
    assert PatchExpand(32, 16)(y).shape == (2, 8, 6, 16)
    assert PatchExpand(16, 4, scale=4)(x).shape == (2, 32, 24, 4)
