"""Selective scan backends against the sequential reference, forward and backward.

Tolerances (float32 inputs; the reference also computes in float32, so the differences are
summation order and exp rounding only):

* forward output and last state: rtol 1e-4, atol 1e-4 (``FWD_TOL``);
* gradients: rtol 5e-4, atol 5e-4 x the largest |reference gradient| of that argument
  (``GRAD_RTOL``, ``GRAD_ATOL``): gradients of A, D and delta_bias sum over thousands of
  steps, so an absolute bound must scale with them.

Inputs follow Mamba's initialisation (delta = softplus(N(0, 1) + bias) with the bias set so
that softplus(bias) spans 1e-3..1e-1, A = -exp(N(0, 1))); a strong-decay case pushes the
per-step log-decay to about -20, which breaks formulations that exponentiate a cumulative sum.
"""

from __future__ import annotations

import functools
import math
import warnings

import pytest
import torch

from raystack.ops import scan_native
from raystack.ops import selective_scan as ss
from raystack.ops.native_build import NativeBuildError, load_library
from raystack.ops.scan_chunked import chunk_length, selective_scan_chunked

FWD_TOL = {"rtol": 1e-4, "atol": 1e-4}
GRAD_RTOL = 5e-4
GRAD_ATOL = 5e-4
LENGTHS = [1, 7, 64, 1000, 4096]
ARG_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")

needs_native = pytest.mark.skipif(
    not scan_native.native_available(), reason="native scan did not build here"
)
IMPLS = ["torch", pytest.param("native", marks=needs_native)]


def make_inputs(batch, dim, dstate, groups, length, *, regime="mamba", seed=0, full=True):
    """Random scan inputs; groups=0 gives ungrouped (b, n, l) B/C. Returns (args, kwargs)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    u = randn(batch, dim, length)
    bc_shape = (batch, groups, dstate, length) if groups else (batch, dstate, length)
    B, C = randn(*bc_shape), randn(*bc_shape)
    if regime == "strong":
        delta = randn(batch, dim, length) + 3.0  # softplus -> ~3
        A = -torch.exp(randn(dim, dstate) + 2.0)  # ~ -7: log-decay ~ -20 per step
        bias = torch.zeros(dim)
    else:
        delta = randn(batch, dim, length)
        A = -torch.exp(randn(dim, dstate))
        dt = torch.exp(torch.rand(dim, generator=gen) * math.log(100.0) + math.log(1e-3))
        bias = dt + torch.log(-torch.expm1(-dt))  # inverse softplus, as Mamba initialises
    kwargs = {"delta_softplus": True, "return_last_state": True}
    if full:
        kwargs.update(D=randn(dim), z=randn(batch, dim, length), delta_bias=bias)
    else:
        delta = torch.nn.functional.softplus(delta + bias[:, None])
        kwargs["delta_softplus"] = False
    return (u, delta, A, B, C), kwargs


def close(actual, expected, what, **tol):
    torch.testing.assert_close(actual, expected, msg=lambda m: f"{what}: {m}", **tol)


@functools.cache
def reference(case):
    """(out, last) of the sequential reference, and its gradients for a fixed cotangent."""
    args, kwargs = make_inputs(*case[:5], regime=case[5], full=case[6])
    leaves = _leaves(args, kwargs)
    out, last = ss.selective_scan_ref(*leaves[:5], **_tail(leaves, kwargs))
    gout, glast = _cotangents(out, last)
    grads = torch.autograd.grad((out * gout).sum() + (last * glast).sum(), leaves)
    return out.detach(), last.detach(), grads


def _leaves(args, kwargs):
    extra = [kwargs[k] for k in ("D", "z", "delta_bias") if k in kwargs]
    return [t.clone().requires_grad_(True) for t in (*args, *extra)]


def _tail(leaves, kwargs):
    tail = dict(kwargs)
    for name, t in zip(("D", "z", "delta_bias"), leaves[5:], strict=False):
        tail[name] = t
    return tail


def _cotangents(out, last):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(out.shape, generator=gen), torch.randn(last.shape, generator=gen)


def run_backend(impl, case, monkeypatch, grad):
    monkeypatch.setenv("RAYSTACK_SCAN", impl)
    args, kwargs = make_inputs(*case[:5], regime=case[5], full=case[6])
    leaves = _leaves(args, kwargs) if grad else [*args, *_leaves(args, kwargs)[5:]]
    with torch.set_grad_enabled(grad):
        out, last = ss.selective_scan_fn(*leaves[:5], **_tail(leaves, kwargs))
    if not grad:
        return out, last, None
    gout, glast = _cotangents(out, last)
    grads = torch.autograd.grad((out * gout).sum() + (last * glast).sum(), leaves)
    return out.detach(), last.detach(), grads


def check_grads(grads, ref_grads):
    for name, g, r in zip(ARG_NAMES, grads, ref_grads, strict=False):
        scale = r.abs().max().item()
        close(g, r, f"d{name}", rtol=GRAD_RTOL, atol=GRAD_ATOL * max(scale, 1e-6))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("groups", [4, 0], ids=["grouped", "ungrouped"])
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("full", [True, False], ids=["D-z-bias-softplus", "plain"])
def test_forward_matches_reference(impl, groups, length, full, monkeypatch):
    case = (2 if length < 4096 else 1, 8, 16, groups, length, "mamba", full)
    out, last, _ = run_backend(impl, case, monkeypatch, grad=False)
    ref_out, ref_last, _ = reference(case)
    close(out, ref_out, "out", **FWD_TOL)
    close(last, ref_last, "last state", **FWD_TOL)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("groups", [4, 0], ids=["grouped", "ungrouped"])
@pytest.mark.parametrize("length", LENGTHS)
def test_gradients_match_reference(impl, groups, length, monkeypatch):
    case = (2 if length < 1000 else 1, 4, 16, groups, length, "mamba", True)
    out, last, grads = run_backend(impl, case, monkeypatch, grad=True)
    ref_out, ref_last, ref_grads = reference(case)
    close(out, ref_out, "out", **FWD_TOL)
    check_grads(grads, ref_grads)


@needs_native
@pytest.mark.parametrize("groups", [2, 0], ids=["grouped", "ungrouped"])
def test_native_backward_is_bit_identical_across_thread_counts(groups, monkeypatch):
    """dB and dC sum over a group's channels in one thread per (batch element, group), not
    in per-thread copies: the same gradients to the bit with 1, 2 or 3 threads, so a resumed
    M2S2L training repeats the run it resumes."""
    saved = torch.get_num_threads()
    grads = []
    try:
        for threads in (1, 2, 2, 3):
            torch.set_num_threads(threads)
            grads.append(run_backend("native", (3, 12, 16, groups, 37, "mamba", True),
                                     monkeypatch, grad=True)[2])
    finally:
        torch.set_num_threads(saved)
    for other in grads[1:]:
        for g, h in zip(grads[0], other, strict=True):
            assert torch.equal(g, h)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "case",
    [
        (2, 8, 16, 4, 1000, "strong", True),  # per-step decay ~e^-20: no overflow, no nan
        (1, 6, 5, 3, 77, "mamba", True),  # d_state outside the kernel's fixed sizes
        (2, 12, 3, 0, 130, "mamba", False),  # a chunk that does not divide the length
    ],
    ids=["strong-decay", "dstate5", "ragged"],
)
def test_edge_cases_match_reference(impl, case, monkeypatch):
    out, last, grads = run_backend(impl, case, monkeypatch, grad=True)
    ref_out, ref_last, ref_grads = reference(case)
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
    close(out, ref_out, "out", **FWD_TOL)
    close(last, ref_last, "last state", **FWD_TOL)
    check_grads(grads, ref_grads)


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_chunked_any_chunk_length(chunk):
    args, kwargs = make_inputs(1, 8, 16, 4, 200, seed=3)
    del kwargs["return_last_state"]
    ref_out, ref_last = ss.selective_scan_ref(*args, **kwargs, return_last_state=True)
    with torch.no_grad():
        out, last = selective_scan_chunked(*args, **kwargs, chunk=chunk, block_elems=1)
    close(out, ref_out, "out", **FWD_TOL)
    close(last, ref_last, "last state", **FWD_TOL)


def test_chunk_length_is_about_sqrt():
    assert [chunk_length(n) for n in (1, 7, 64, 256, 1024, 4096, 10**6)] == [
        1, 7, 8, 16, 32, 64, 64
    ]  # fmt: skip


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_output_dtype_follows_input(impl, dtype, monkeypatch):
    monkeypatch.setenv("RAYSTACK_SCAN", impl)
    args, kwargs = make_inputs(1, 8, 16, 4, 50, seed=5)
    u, delta, A, B, C = (t.to(dtype) for t in args)
    kwargs["z"] = kwargs["z"].to(dtype)
    out, last = ss.selective_scan_fn(u, delta, A, B, C, **kwargs)
    ref_out, ref_last = ss.selective_scan_ref(u, delta, A, B, C, **kwargs)
    assert out.dtype == dtype and last.dtype == torch.float32
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype != torch.float64 else FWD_TOL
    close(out.float(), ref_out.float(), "out", **tol)


def test_plain_call_returns_only_the_output():
    args, _ = make_inputs(1, 4, 8, 0, 10)
    out = ss.selective_scan_fn(*args)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 4, 10)


# --- dispatch ---------------------------------------------------------------------------


def test_backend_follows_the_env_override(monkeypatch):
    u = torch.zeros(1, 4, 8)
    for mode in ("torch", "ref"):
        monkeypatch.setenv("RAYSTACK_SCAN", mode)
        assert ss.scan_backend(u) == mode
    monkeypatch.delenv("RAYSTACK_SCAN")
    expected = "native" if scan_native.native_available() else "torch"
    assert ss.scan_backend(u) == expected
    assert ss.scan_backend(u, dstate=1000) == "torch"  # beyond the kernel's state arrays


@pytest.mark.parametrize("mode", ["torch", "ref", pytest.param("native", marks=needs_native)])
def test_selective_scan_fn_routes_to_the_chosen_backend(mode, monkeypatch):
    targets = {
        "torch": "selective_scan_chunked",
        "ref": "selective_scan_ref",
        "native": "selective_scan_native",
    }
    calls = []
    real = getattr(ss, targets[mode])

    def spy(*args, **kwargs):
        calls.append(mode)
        return real(*args, **kwargs)

    monkeypatch.setattr(ss, targets[mode], spy)
    monkeypatch.setenv("RAYSTACK_SCAN", mode)
    args, kwargs = make_inputs(1, 4, 8, 2, 10)
    ss.selective_scan_fn(*args, **kwargs)
    assert calls == [mode]


def test_bad_env_values_raise(monkeypatch):
    u = torch.zeros(1, 4, 8)
    monkeypatch.setenv("RAYSTACK_SCAN", "fast")
    with pytest.raises(ValueError, match="RAYSTACK_SCAN='fast' is not one of"):
        ss.scan_backend(u)
    monkeypatch.setenv("RAYSTACK_SCAN", "cuda")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        ss.scan_backend(u)
    monkeypatch.setenv("RAYSTACK_SCAN", "native")
    with pytest.raises(ValueError, match="d_state <= 256"):
        ss.scan_backend(u, dstate=300)


@pytest.fixture
def broken_compiler(monkeypatch, tmp_path):
    """The native kernel as if no compiler existed; restores the real state afterwards."""
    kernel = scan_native.KERNEL
    saved = (kernel.lib, kernel.error, kernel.tried, kernel.warned)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("RAYSTACK_NATIVE_CACHE", str(tmp_path / "cache"))
    kernel.reset()
    yield kernel
    kernel.lib, kernel.error, kernel.tried, kernel.warned = saved


def test_auto_falls_back_to_torch_with_one_warning(broken_compiler, monkeypatch):
    monkeypatch.delenv("RAYSTACK_SCAN", raising=False)
    args, kwargs = make_inputs(1, 4, 8, 2, 20)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found"):
        out, _ = ss.selective_scan_fn(*args, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ss.selective_scan_fn(*args, **kwargs)
    assert ss.scan_backend(args[0]) == "torch"
    close(out, ss.selective_scan_ref(*args, **kwargs)[0], "out", **FWD_TOL)


def test_forced_native_without_compiler_raises(broken_compiler, monkeypatch):
    monkeypatch.setenv("RAYSTACK_SCAN", "native")
    with pytest.raises(RuntimeError, match="kernel is unavailable: no C\\+\\+ compiler"):
        ss.scan_backend(torch.zeros(1, 4, 8))


def test_build_errors_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSTACK_NATIVE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(NativeBuildError, match="is missing"):
        load_library(tmp_path / "absent.cpp", "absent")
    broken = tmp_path / "broken.cpp"
    broken.write_text("this is not C++\n")
    with pytest.raises(NativeBuildError, match="compiling broken.cpp failed"):
        load_library(broken, "broken")
    assert not list((tmp_path / "cache").glob("*.so"))  # no half-written library is left


# --- input validation -------------------------------------------------------------------


def _valid():
    args, kwargs = make_inputs(2, 8, 4, 2, 6)
    return list(args), {k: v for k, v in kwargs.items() if k in ("D", "z", "delta_bias")}


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda a, k: a.__setitem__(0, a[0][0]), "u has shape"),
        (lambda a, k: a.__setitem__(1, a[1][..., :-1]), "delta has shape"),
        (lambda a, k: a.__setitem__(2, a[2][:-1]), "A has shape"),
        (lambda a, k: a.__setitem__(3, torch.zeros(2, 3, 4, 6)), "3 groups, which do not"),
        (lambda a, k: a.__setitem__(4, torch.zeros(2, 5, 6)), "C has shape"),
        (lambda a, k: a.__setitem__(4, torch.zeros(2, 4, 4, 6)), "B has 2 groups but C has 4"),
        (lambda a, k: k.__setitem__("D", torch.zeros(7)), "D has shape"),
        (lambda a, k: k.__setitem__("z", torch.zeros(2, 8, 5)), "z has shape"),
        (lambda a, k: k.__setitem__("delta_bias", torch.zeros(8, 1)), "delta_bias has shape"),
        (lambda a, k: a.__setitem__(2, a[2].to(torch.complex64)), "complex A"),
    ],
    ids=["u-2d", "delta", "A", "groups", "C", "group-mismatch", "D", "z", "bias", "complex"],
)
def test_bad_shapes_raise_clear_errors(mutate, match):
    args, kwargs = _valid()
    mutate(args, kwargs)
    with pytest.raises(ValueError, match=match):
        ss.selective_scan_fn(*args, **kwargs)


# --- CUDA -------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("groups", [4, 0], ids=["grouped", "ungrouped"])
def test_mamba_kernel_matches_reference(dtype, groups, monkeypatch):
    pytest.importorskip("mamba_ssm")
    monkeypatch.delenv("RAYSTACK_SCAN", raising=False)
    # mamba-ssm's own test tolerances (tests/ops/test_selective_scan.py)
    rtol, atol = (6e-4, 2e-3) if dtype == torch.float32 else (3e-3, 5e-3)
    if dtype == torch.bfloat16:
        rtol, atol = 3e-2, 5e-2
    args, kwargs = make_inputs(2, 64, 16, groups, 512, seed=11)
    cast = [t.cuda().to(dtype) if i in (0, 1, 3, 4) else t.cuda() for i, t in enumerate(args)]
    extra = {k: v.cuda() for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    extra["z"] = extra["z"].to(dtype)
    flags = {k: v for k, v in kwargs.items() if not isinstance(v, torch.Tensor)}
    assert ss.scan_backend(cast[0]) == "cuda"
    leaves = [t.clone().requires_grad_(True) for t in (*cast, *extra.values())]
    named = dict(zip(extra, leaves[5:], strict=True))
    out, last = ss.selective_scan_fn(*leaves[:5], **named, **flags)
    ref_leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    ref_named = dict(zip(extra, ref_leaves[5:], strict=True))
    ref_out, ref_last = ss.selective_scan_ref(*ref_leaves[:5], **ref_named, **flags)
    close(out.float(), ref_out.float(), "out", rtol=rtol, atol=atol)
    close(last.float(), ref_last.float(), "last state", rtol=rtol, atol=atol)
    gout = torch.randn_like(out)
    out.backward(gout)
    ref_out.backward(gout)
    grad_rtol, grad_atol = (1e-3, 1e-3) if dtype == torch.float32 else (5e-2, 1e-1)
    for name, a, r in zip(ARG_NAMES, leaves, ref_leaves, strict=False):
        scale = max(r.grad.abs().max().item(), 1.0)
        close(a.grad.float(), r.grad.float(), f"d{name}", rtol=grad_rtol, atol=grad_atol * scale)


@pytest.mark.gpu
def test_chunked_scan_runs_on_cuda(monkeypatch):
    monkeypatch.setenv("RAYSTACK_SCAN", "torch")
    args, kwargs = make_inputs(2, 16, 16, 4, 300, seed=12)
    ref_out, ref_last = ss.selective_scan_ref(*args, **kwargs)
    cuda = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    out, last = ss.selective_scan_fn(*(t.cuda() for t in args), **cuda)
    close(out.cpu(), ref_out, "out", **FWD_TOL)
    close(last.cpu(), ref_last, "last state", **FWD_TOL)


@pytest.mark.parametrize("impl", IMPLS)
def test_gradients_when_only_the_output_is_used(impl, monkeypatch):
    # The last state unused: its gradient reaches the backward as None (not materialised).
    monkeypatch.setenv("RAYSTACK_SCAN", impl)
    args, kwargs = make_inputs(2, 8, 16, 4, 6, seed=7)
    leaves = _leaves(args, kwargs)
    out, _ = ss.selective_scan_fn(*leaves[:5], **_tail(leaves, kwargs))
    grads = torch.autograd.grad(out.square().sum(), leaves)
    ref_leaves = _leaves(args, kwargs)
    ref_out, _ = ss.selective_scan_ref(*ref_leaves[:5], **_tail(ref_leaves, kwargs))
    check_grads(grads, torch.autograd.grad(ref_out.square().sum(), ref_leaves))


@needs_native
@pytest.mark.parametrize(("groups", "length"), [(0, 2), (0, 8), (2, 256), (0, 257)],
                         ids=["lanes-L2", "lanes-L8", "lanes-longest", "rows-shortest"])
def test_native_backward_over_channel_blocks_matches_reference(groups, length, monkeypatch):
    """40 channels a group (20 when grouped): two full blocks of 16 lanes and a partial one,
    on both sides of the switch from lanes to rows (len * dstate = 4096)."""
    case = (3, 40, 16, groups, length, "mamba", True)
    out, last, grads = run_backend("native", case, monkeypatch, grad=True)
    ref_out, ref_last, ref_grads = reference(case)
    close(out, ref_out, "out", **FWD_TOL)
    check_grads(grads, ref_grads)
