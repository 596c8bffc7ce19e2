"""SS2D's folded four-path scan against the unfolded one, forward and backward.

The oracle is ``cross_scan_ref`` on the sequential reference scan (explicit path copies,
autograd through torch), and for the model the SS2D module with ``fold_directions`` off
(the original stack/flip code path). Tolerances as tests/ops/test_selective_scan.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from raystack.models.ss2d import SS2D
from raystack.ops import cross_scan as cs
from raystack.ops import scan_native

pytestmark = pytest.mark.skipif(
    cs.KERNEL.get() is None or not scan_native.native_available(),
    reason="native kernels did not build here",
)
FWD_TOL = {"rtol": 1e-4, "atol": 1e-4}
GRAD_RTOL = 5e-4
GRAD_ATOL = 5e-4
NAMES = ("u", "delta", "A", "B", "C", "D", "delta_bias")


def make_inputs(batch, dim, dstate, h, w, *, full=True, strong=False, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    k, length = cs.N_DIRECTIONS, h * w
    u = randn(batch, dim, h, w)
    delta = randn(batch, k, dim, length) + (3.0 if strong else 0.0)
    A = -torch.exp(randn(k * dim, dstate) + (2.0 if strong else 0.0))
    B, C = randn(batch, k, dstate, length), randn(batch, k, dstate, length)
    dt = torch.exp(torch.rand(k * dim, generator=gen) * math.log(100.0) + math.log(1e-3))
    bias = dt + torch.log(-torch.expm1(-dt))
    if not full:  # no bias, no softplus: pass the time steps themselves
        delta = torch.nn.functional.softplus(delta + bias.view(k, dim, 1))
        return [u, delta, A, B, C, None, None]
    return [u, delta, A, B, C, randn(k * dim), bias]


def run(fn, inputs, softplus, cotangent=None):
    leaves = [None if t is None else t.clone().requires_grad_() for t in inputs]
    y = fn(*leaves, delta_softplus=softplus)
    if cotangent is None:
        cotangent = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad((y * cotangent).sum(), [t for t in leaves if t is not None])
    return y.detach(), grads, cotangent


def check_grads(got, want):
    names = [n for n, t in zip(NAMES, want, strict=True) if t is not None]
    for name, g, r in zip(names, got, [t for t in want if t is not None], strict=True):
        atol = GRAD_ATOL * max(r.abs().max().item(), 1e-6)
        torch.testing.assert_close(g, r, rtol=GRAD_RTOL, atol=atol,
                                   msg=lambda m, name=name: f"d{name}: {m}")


CASES = [  # batch, dim, dstate, h, w
    (1, 16, 16, 1, 1),
    (2, 20, 16, 5, 7),  # a partial channel block, h != w
    (1, 8, 16, 1, 9),  # a single row: the column order is the row order
    (1, 8, 16, 6, 1),
    (2, 40, 5, 8, 8),  # three channel blocks; a state size without its own template
    (1, 32, 16, 16, 12),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("full", [True, False])
def test_folded_matches_unfolded_reference(case, full, monkeypatch):
    inputs = make_inputs(*case, full=full)
    softplus = full  # the bare case passes delta as is
    y, grads, cot = run(cs.cross_scan_fn, inputs, softplus)
    monkeypatch.setenv("RAYSTACK_SCAN", "ref")
    y_ref, grads_ref, _ = run(cs.cross_scan_ref, inputs, softplus, cot)
    assert y.shape == (case[0], case[3], case[4], case[1])
    torch.testing.assert_close(y, y_ref, **FWD_TOL)
    want = [None if t is None else g for t, g in zip(inputs, _spread(inputs, grads_ref),
                                                     strict=True)]
    check_grads(grads, want)


def _spread(inputs, grads):
    it = iter(grads)
    return [None if t is None else next(it) for t in inputs]


def test_strong_decay_and_thread_counts(monkeypatch):
    inputs = make_inputs(2, 24, 16, 9, 10, strong=True)
    monkeypatch.setenv("RAYSTACK_SCAN", "ref")
    y_ref, _, _ = run(cs.cross_scan_ref, inputs, True)
    monkeypatch.delenv("RAYSTACK_SCAN")
    saved = torch.get_num_threads()
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            y, _, _ = run(cs.cross_scan_fn, inputs, True)
            torch.testing.assert_close(y, y_ref, **FWD_TOL)
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize(("h", "w"), [(3, 5), (4, 4), (1, 6)])
def test_directions_are_ss2d_paths(h, w):
    """to_direction gives SS2D's rows, cols, rows reversed, cols reversed; from_direction
    undoes it."""
    x = torch.arange(2 * h * w, dtype=torch.float32).view(1, 2, h, w)
    rows, cols = x.flatten(2), x.transpose(-1, -2).flatten(2)
    paths = [rows, cols, rows.flip(-1), cols.flip(-1)]
    for k, want in enumerate(paths):
        got = cs.to_direction(rows, k, h, w)
        assert torch.equal(got, want)
        assert torch.equal(cs.from_direction(got, k, h, w), rows)


def _ss2d_pass(module, x, cotangent):
    x = x.clone().requires_grad_()
    y = module(x)
    grads = torch.autograd.grad((y * cotangent).sum(), [x, *module.parameters()])
    return y.detach(), grads


@pytest.mark.parametrize("shape", [(2, 9, 11), (1, 16, 16)])
def test_ss2d_folded_equals_explicit_flips(shape, monkeypatch):
    torch.manual_seed(0)
    module = SS2D(d_model=24, d_state=16)
    batch, h, w = shape
    x = torch.randn(batch, h, w, 24)
    cot = torch.randn(batch, h, w, 24)
    calls = []
    real = cs.cross_scan_fn
    monkeypatch.setattr("raystack.models.ss2d.cross_scan_fn",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    y_fold, g_fold = _ss2d_pass(module, x, cot)
    assert calls, "the folded path was not taken on the CPU with the native backend"
    module.fold_directions = False
    y_flip, g_flip = _ss2d_pass(module, x, cot)
    assert len(calls) == 1
    torch.testing.assert_close(y_fold, y_flip, **FWD_TOL)
    names = ["x"] + [n for n, _ in module.named_parameters()]
    for name, a, b in zip(names, g_fold, g_flip, strict=True):
        atol = GRAD_ATOL * max(b.abs().max().item(), 1e-6)
        torch.testing.assert_close(a, b, rtol=GRAD_RTOL, atol=atol,
                                   msg=lambda m, name=name: f"d{name}: {m}")


@pytest.mark.parametrize("mode", ["torch", "ref"])
def test_other_backends_keep_explicit_flips(mode, monkeypatch):
    monkeypatch.setenv("RAYSTACK_SCAN", mode)
    assert not cs.cross_scan_available(torch.zeros(1, 4, 2, 2), 16)
    monkeypatch.setenv("RAYSTACK_SCAN", "native")
    assert cs.cross_scan_available(torch.zeros(1, 4, 2, 2), 16)
    monkeypatch.delenv("RAYSTACK_SCAN")
    assert cs.cross_scan_available(torch.zeros(1, 4, 2, 2), 16)
    assert not cs.cross_scan_available(torch.zeros(1, 4, 2, 2, device="meta"), 16)


def test_flop_stand_in_counts_both_paths_alike():
    from raystack.models.m2s2l.flops import analytic_scans

    module = SS2D(d_model=16).eval()
    x = torch.randn(1, 6, 5, 16)
    counts = []
    for fold in (True, False):
        module.fold_directions = fold
        calls: list[int] = []
        with torch.no_grad(), analytic_scans(calls):
            module(x)
        counts.append(sum(calls))
    assert counts[0] == counts[1] > 0


@pytest.mark.parametrize(
    ("index", "bad", "match"),
    [
        (0, torch.zeros(1, 8, 12), "u has shape"),
        (1, torch.zeros(1, 3, 8, 12), "delta has shape"),
        (2, torch.zeros(8, 16), "A has shape"),
        (3, torch.zeros(1, 4, 16, 11), "B has shape"),
        (5, torch.zeros(8), "D has shape"),
    ],
)
def test_bad_shapes_raise(index, bad, match):
    inputs = make_inputs(1, 8, 16, 3, 4)
    inputs[index] = bad
    with pytest.raises(ValueError, match=match):
        cs.cross_scan_fn(*inputs)


@pytest.mark.skipif(cs.BWD_KERNEL.get() is None, reason="folded backward did not build here")
@pytest.mark.parametrize("case", CASES)
def test_folded_backward_matches_unfolded_fallback(case, monkeypatch):
    """The folded backward kernel against the fallback that unfolds into the plain scan's
    backward (the path every training step took before it)."""
    inputs = make_inputs(*case, seed=3)
    calls = []
    real = cs._backward_folded
    monkeypatch.setattr(cs, "_backward_folded", lambda *a: calls.append(1) or real(*a))
    _, grads, cot = run(cs.cross_scan_fn, inputs, True)
    assert calls, "the folded backward was not taken"
    monkeypatch.setattr(cs.BWD_KERNEL, "get", lambda: None)
    _, grads_old, _ = run(cs.cross_scan_fn, inputs, True, cot)
    assert len(calls) == 1
    check_grads(grads, grads_old)


@pytest.mark.skipif(cs.BWD_KERNEL.get() is None, reason="folded backward did not build here")
def test_folded_backward_is_bit_identical_across_runs_and_thread_counts():
    """The backward's dB and dC sum over channels in one thread per batch element, not in
    per-thread copies: the same gradients to the bit with 1, 2 or 3 threads and on every
    repeat, so a resumed training repeats the run it resumes."""
    inputs = make_inputs(3, 40, 16, 12, 10, seed=5)  # 3 batch elements over 2 threads
    saved = torch.get_num_threads()
    grads = []
    try:
        for threads in (1, 2, 2, 3):
            torch.set_num_threads(threads)
            grads.append(run(cs.cross_scan_fn, inputs, True)[1])
    finally:
        torch.set_num_threads(saved)
    for other in grads[1:]:
        for g, h in zip(grads[0], other, strict=True):
            assert torch.equal(g, h)
