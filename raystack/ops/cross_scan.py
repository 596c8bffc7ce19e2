"""SS2D's four-direction selective scan, folded: no flipped or transposed copies on the CPU.

VMamba's SS2D scans a feature map along four paths (row-major, column-major, both
reversed) and sums the four outputs back on the grid. The unfolded form materialises the
paths (stack + flips + transposes), scans them as four groups with ``selective_scan_fn``,
then flips, transposes and adds the outputs. ``cross_scan_fn`` takes every input in grid
order and lets the native kernel (csrc/cross_scan_cpu.cpp) walk the four paths by index
arithmetic and sum on the grid, writing channels-last for the LayerNorm that follows.

    y = cross_scan_fn(u, delta, A, B, C, D, delta_bias, delta_softplus=True)
    # u (b, d, h, w); delta (b, 4, d, h*w); A (4*d, n); B, C (b, 4, n, h*w);
    # D, delta_bias (4*d,) or None  ->  y (b, h, w, d) = sum over the 4 directions

Direction k of the 4 groups (channels k*d .. k*d+d-1 of A, D, delta_bias; B/C group k) is
path k. ``cross_scan_ref`` is the same computation unfolded through ``selective_scan_fn``;
the tests hold the two together. The backward is folded the same way
(csrc/cross_scan_bwd_cpu.cpp: each path gathered from and scattered back to the grid); where
that library does not build it unfolds the saved inputs into the plain scan's backward.
CPU only: ``cross_scan_available`` says whether to take this path (the same backend rule
as ``selective_scan_fn``; on CUDA SS2D keeps the explicit flips).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from torch.autograd.function import once_differentiable

from raystack.ops.native_build import NativeBuildError
from raystack.ops.scan_native import NativeKernel, call_kernel, native_backward
from raystack.ops.selective_scan import scan_backend, selective_scan_fn

SOURCE = Path(__file__).parent / "csrc" / "cross_scan_cpu.cpp"
ABI_VERSION = 2
N_DIRECTIONS = 4

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_INT = ctypes.c_int


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    if lib.rs_cross_abi_version() != ABI_VERSION:
        msg = f"cross scan library reports ABI {lib.rs_cross_abi_version()}, want {ABI_VERSION}"
        raise NativeBuildError(msg)
    lib.rs_cross_forward_workspace.restype = _I64
    lib.rs_cross_forward_workspace.argtypes = [_I64, _I64]
    # u delta A B C D bias | softplus | batch dim dstate h w | out work | threads
    lib.rs_cross_forward.restype = _INT
    lib.rs_cross_forward.argtypes = [_P] * 7 + [_INT] + [_I64] * 5 + [_P] * 2 + [_INT]
    return lib


KERNEL = NativeKernel(SOURCE, "cross_scan_cpu", _bind)

BWD_SOURCE = Path(__file__).parent / "csrc" / "cross_scan_bwd_cpu.cpp"
BWD_ABI_VERSION = 2


def _bind_bwd(lib: ctypes.CDLL) -> ctypes.CDLL:
    if lib.rs_cross_bwd_abi_version() != BWD_ABI_VERSION:
        msg = (f"cross scan backward library reports ABI {lib.rs_cross_bwd_abi_version()}, "
               f"want {BWD_ABI_VERSION}")
        raise NativeBuildError(msg)
    lib.rs_cross_backward_workspace.restype = _I64
    lib.rs_cross_backward_workspace.argtypes = [_I64, _I64]
    # u delta A B C D bias | softplus | batch dim dstate h w | dout du ddelta dA dD dbias dB dC
    # work | threads
    lib.rs_cross_backward.restype = _INT
    lib.rs_cross_backward.argtypes = [_P] * 7 + [_INT] + [_I64] * 5 + [_P] * 9 + [_INT]
    return lib


BWD_KERNEL = NativeKernel(BWD_SOURCE, "cross_scan_bwd_cpu", _bind_bwd)


def cross_scan_available(u: torch.Tensor, dstate: int) -> bool:
    """Whether SS2D should take the folded path for tensors like ``u``: the scan backend
    rule picks the native kernel (CPU tensors, RAYSTACK_SCAN auto or native) and the folded
    kernel builds here."""
    return scan_backend(u, dstate) == "native" and KERNEL.get() is not None


def to_direction(x: torch.Tensor, k: int, h: int, w: int) -> torch.Tensor:
    """(..., h*w) in grid order -> the order path k visits it."""
    if k & 1:
        x = x.unflatten(-1, (h, w)).transpose(-1, -2).flatten(-2)
    return x.flip(-1) if k >= 2 else x


def from_direction(y: torch.Tensor, k: int, h: int, w: int) -> torch.Tensor:
    """Inverse of ``to_direction``: path k's order -> grid order."""
    if k >= 2:
        y = y.flip(-1)
    if k & 1:
        y = y.unflatten(-1, (w, h)).transpose(-1, -2).flatten(-2)
    return y


def _unfold(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(b, 4, ..., h*w) in grid order -> the same with group k in path k's order."""
    return torch.stack([to_direction(x[:, k], k, h, w) for k in range(N_DIRECTIONS)], dim=1)


def _fold(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return torch.stack([from_direction(y[:, k], k, h, w) for k in range(N_DIRECTIONS)], dim=1)


def _base_order(X: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(b, 4, n, h*w) grid order -> (b, 4, h*w, n) position-major, the column paths (1, 3)
    in column-major order: the kernel then reads one (n,) vector after the other."""
    b, k, n, length = X.shape
    out = X.new_empty(b, k, length, n)
    out[:, 0::2] = X[:, 0::2].transpose(-1, -2)
    cols = X[:, 1::2].unflatten(-1, (h, w)).permute(0, 1, 4, 3, 2)  # (b, 2, w, h, n)
    out[:, 1::2].unflatten(2, (w, h)).copy_(cols)
    return out


def _grid_order(Xb: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of ``_base_order``: (b, 4, h*w, n) base order -> (b, 4, n, h*w) grid order."""
    b, k, length, n = Xb.shape
    out = Xb.new_empty(b, k, n, length)
    out[:, 0::2] = Xb[:, 0::2].transpose(-1, -2)
    cols = Xb[:, 1::2].unflatten(2, (w, h)).permute(0, 1, 4, 3, 2)  # (b, 2, n, h, w)
    out[:, 1::2].unflatten(-1, (h, w)).copy_(cols)
    return out


class _CrossScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus):
        lib = KERNEL.get()
        batch, dim, h, w = u.shape
        dstate = A.shape[1]
        Bt, Ct = _base_order(B, h, w), _base_order(C, h, w)
        out = u.new_empty(batch, h, w, dim)
        call_kernel(lib.rs_cross_forward, lib.rs_cross_forward_workspace, "native cross scan",
                    (u, delta, A, Bt, Ct, D, delta_bias), delta_softplus,
                    (batch, dim, dstate, h, w), (out,), dstate=dstate, length=h * w)
        ctx.save_for_backward(u, delta, A, Bt, Ct, D, delta_bias)
        ctx.delta_softplus = delta_softplus
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        u, delta, A, Bt, Ct, D, delta_bias = ctx.saved_tensors
        if BWD_KERNEL.get() is not None:
            grads = _backward_folded(u, delta, A, Bt, Ct, D, delta_bias, ctx.delta_softplus, dout)
        else:
            grads = _backward_unfolded(u, delta, A, Bt, Ct, D, delta_bias, ctx.delta_softplus,
                                       dout)
        return (*grads, None)


def _backward_folded(u, delta, A, Bt, Ct, D, delta_bias, softplus, dout):
    """Gradients through csrc/cross_scan_bwd_cpu.cpp: no path copies at all."""
    lib = BWD_KERNEL.get()
    batch, dim, h, w = u.shape
    k, length, dstate = N_DIRECTIONS, h * w, A.shape[1]
    threads = torch.get_num_threads()
    dout_cf = dout.float().permute(0, 3, 1, 2).contiguous()  # (b, d, h, w) like u
    du = torch.empty_like(u)
    ddelta = torch.empty_like(delta)
    dA_rows = u.new_empty(batch, k * dim, dstate)
    dD_rows, dbias_rows = u.new_empty(batch, k * dim), u.new_empty(batch, k * dim)
    # the channels of a path add into its dB, dC (one thread a batch element: no races)
    dB_acc = u.new_zeros(batch, k, length, dstate)
    dC_acc = u.new_zeros(batch, k, length, dstate)
    call_kernel(lib.rs_cross_backward, lib.rs_cross_backward_workspace,
                "native cross scan backward", (u, delta, A, Bt, Ct, D, delta_bias), softplus,
                (batch, dim, dstate, h, w),
                (dout_cf, du, ddelta, dA_rows, dD_rows, dbias_rows, dB_acc, dC_acc),
                dstate=dstate, length=length, threads=threads)
    dB = _grid_order(dB_acc, h, w)
    dC = _grid_order(dC_acc, h, w)
    dD = dD_rows.sum(0) if D is not None else None
    dbias = dbias_rows.sum(0) if delta_bias is not None else None
    return du, ddelta, dA_rows.sum(0), dB, dC, dD, dbias


def _backward_unfolded(u, delta, A, Bt, Ct, D, delta_bias, softplus, dout):
    """Gradients through the plain scan's backward on unfolded copies of the paths (the
    fallback when the folded backward library does not build)."""
    batch, dim, h, w = u.shape
    k, length = N_DIRECTIONS, h * w
    B, C = _grid_order(Bt, h, w), _grid_order(Ct, h, w)
    u_k = _unfold(u.flatten(2).unsqueeze(1).expand(-1, k, -1, -1), h, w)
    delta_k = _unfold(delta, h, w)
    Bk = _unfold(B, h, w).transpose(-1, -2).contiguous()
    Ck = _unfold(C, h, w).transpose(-1, -2).contiguous()
    dout_grid = dout.permute(0, 3, 1, 2).reshape(batch, 1, dim, length)
    dout_k = _unfold(dout_grid.expand(-1, k, -1, -1), h, w)
    flat = (batch, k * dim, length)
    du, ddelta, dA, dB, dC, dD, _, dbias = native_backward(
        u_k.reshape(flat), delta_k.reshape(flat), A, Bk, Ck, D, None, delta_bias,
        softplus, dout_k.reshape(flat), None,
    )
    du = _fold(du.view(batch, k, dim, length), h, w).sum(1).view(batch, dim, h, w)
    ddelta = _fold(ddelta.view(batch, k, dim, length), h, w)
    return du, ddelta, dA, _fold(dB, h, w), _fold(dC, h, w), dD, dbias


def _check(u, delta, A, B, C, D, delta_bias) -> None:
    if u.dim() != 4:
        msg = f"cross scan: u has shape {tuple(u.shape)}, expected (batch, dim, h, w)"
        raise ValueError(msg)
    batch, dim, h, w = u.shape
    k, n, length = N_DIRECTIONS, A.shape[-1], h * w
    want = {"delta": (delta, (batch, k, dim, length)), "A": (A, (k * dim, n)),
            "B": (B, (batch, k, n, length)), "C": (C, (batch, k, n, length))}
    if D is not None:
        want["D"] = (D, (k * dim,))
    if delta_bias is not None:
        want["delta_bias"] = (delta_bias, (k * dim,))
    for name, (t, shape) in want.items():
        if tuple(t.shape) != shape:
            msg = f"cross scan: {name} has shape {tuple(t.shape)}, expected {shape}"
            raise ValueError(msg)


def cross_scan_fn(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """The four-path scan of SS2D with the native folded kernel (see the module docstring).

    Computes in float32 (inputs are cast); differentiable in every tensor argument.

    Raises:
        ValueError: shapes that do not fit together.
        RuntimeError: the folded kernel is not available (check ``cross_scan_available``).
    """
    _check(u, delta, A, B, C, D, delta_bias)
    if KERNEL.get() is None:
        msg = f"native cross scan unavailable: {KERNEL.error}"
        raise RuntimeError(msg)
    if A.shape[1] > 256:
        msg = f"native cross scan supports d_state <= 256, got {A.shape[1]}"
        raise ValueError(msg)
    # B and C are copied into the kernel's order in the forward: no contiguous copy first
    f32 = [None if t is None else t.float() if i in (3, 4) else t.float().contiguous()
           for i, t in enumerate((u, delta, A, B, C, D, delta_bias))]
    return _CrossScan.apply(*f32, bool(delta_softplus))


def cross_scan_ref(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False):
    """``cross_scan_fn`` unfolded: explicit path copies through ``selective_scan_fn`` (any
    backend, autograd through torch); the oracle the folded kernel is tested against."""
    _check(u, delta, A, B, C, D, delta_bias)
    batch, dim, h, w = u.shape
    k, length = N_DIRECTIONS, h * w
    u_k = _unfold(u.flatten(2).unsqueeze(1).expand(-1, k, -1, -1), h, w)
    y = selective_scan_fn(
        u_k.reshape(batch, k * dim, length), _unfold(delta, h, w).reshape(batch, k * dim, length),
        A, _unfold(B, h, w), _unfold(C, h, w), D, delta_bias=delta_bias,
        delta_softplus=delta_softplus,
    )
    y = _fold(y.view(batch, k, dim, length).float(), h, w).sum(1)
    return y.view(batch, dim, h, w).permute(0, 2, 3, 1)
