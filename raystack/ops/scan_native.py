"""The native CPU selective scan: ctypes bindings to csrc/selective_scan_cpu.cpp plus autograd.

The kernel is compiled at first use (see ``native_build``) and runs a fused loop over time
per channel on ``torch.get_num_threads()`` threads; the backward recomputes the states and
sweeps back in time, so models train with it. Float32 only: the caller casts.

    out, last = selective_scan_native(u, delta, A, B, C, D, z, delta_bias, True)
    # u, delta, z (b, d, l); A (d, n); B, C (b, g, n, l); D, delta_bias (d,) or None
    # out (b, d, l); last (b, d, n)
"""

from __future__ import annotations

import ctypes
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from raystack.ops.native_build import NativeBuildError, load_library

SOURCE = Path(__file__).parent / "csrc" / "selective_scan_cpu.cpp"
ABI_VERSION = 2
MAX_DSTATE = 256  # the kernel keeps per-channel state arrays of this size on the stack

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_INT = ctypes.c_int


class NativeKernel:
    """A native library built from ``source``, or why it is not there; loaded once per process.

    ``bind`` declares the ctypes signatures and checks the ABI version (raising
    NativeBuildError on a mismatch).
    """

    def __init__(self, source: Path, name: str, bind) -> None:
        self.source, self.name, self.bind = source, name, bind
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.lib: ctypes.CDLL | None = None
        self.error: str | None = None
        self.tried = False
        self.warned = False

    def get(self) -> ctypes.CDLL | None:
        with self._lock:
            if not self.tried:
                self.tried = True
                try:
                    self.lib = self.bind(load_library(self.source, self.name))
                except NativeBuildError as err:
                    self.error = str(err)
            return self.lib


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    if lib.rs_scan_abi_version() != ABI_VERSION:
        msg = f"native scan library reports ABI {lib.rs_scan_abi_version()}, want {ABI_VERSION}"
        raise NativeBuildError(msg)
    lib.rs_scan_forward_workspace.restype = _I64
    lib.rs_scan_forward_workspace.argtypes = [_I64, _I64]
    lib.rs_scan_backward_workspace.restype = _I64
    lib.rs_scan_backward_workspace.argtypes = [_I64, _I64]
    # u delta A B C D z bias | softplus | batch dim dstate len groups | out last work | threads
    lib.rs_scan_forward.restype = _INT
    lib.rs_scan_forward.argtypes = [_P] * 8 + [_INT] + [_I64] * 5 + [_P] * 3 + [_INT]
    # ... | dout dlast du ddelta dz dA dD dbias dB dC work | threads
    lib.rs_scan_backward.restype = _INT
    lib.rs_scan_backward.argtypes = [_P] * 8 + [_INT] + [_I64] * 5 + [_P] * 11 + [_INT]
    return lib


KERNEL = NativeKernel(SOURCE, "selective_scan_cpu", _bind)


def native_available(warn: bool = False) -> bool:
    """Whether the native kernel is built and loaded (builds it on the first call).

    Args:
        warn: emit one RuntimeWarning per process with the reason when it is not available.
    """
    ok = KERNEL.get() is not None
    if not ok and warn and not KERNEL.warned:
        KERNEL.warned = True
        warnings.warn(
            f"raystack: native CPU selective scan unavailable, using the chunked torch scan "
            f"(slower): {KERNEL.error}",
            RuntimeWarning,
            stacklevel=3,
        )
    return ok


def native_error() -> str | None:
    """Why the native kernel is unavailable (None if it loaded or was never tried)."""
    KERNEL.get()
    return KERNEL.error


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def call_kernel(fn: Any, workspace: Any, what: str, inputs: Sequence[torch.Tensor | None],
                softplus: bool, dims: Sequence[int], outputs: Sequence[torch.Tensor | None], *,
                dstate: int, length: int, threads: int | None = None) -> None:
    """Call a native scan entry point the way all of them take their arguments: pointers to
    ``inputs``, the softplus flag, ``dims``, pointers to ``outputs``, then a float32
    workspace of ``workspace(dstate, length)`` floats per thread and the thread count.

    Args:
        fn, workspace: the kernel and its workspace-size function from the CDLL.
        what: the kernel's name in the error message.
        threads: the threads the caller sized per-thread outputs for; None: torch's now.

    Raises:
        RuntimeError: the kernel returned a non-zero code.
    """
    threads = torch.get_num_threads() if threads is None else threads
    like = next(t for t in inputs if t is not None)
    work = like.new_empty(threads, workspace(dstate, length))
    rc = fn(*map(_ptr, inputs), int(softplus), *dims, *map(_ptr, (*outputs, work)), threads)
    if rc != 0:
        msg = f"{what} failed (code {rc}) for dstate={dstate}"
        raise RuntimeError(msg)


def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().float().contiguous()


class _NativeScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        lib = KERNEL.get()
        u, delta, A, D, z, delta_bias = map(_f32, (u, delta, A, D, z, delta_bias))
        # time-major B/C: the kernel reads one (dstate,) vector per step
        Bt = B.detach().float().transpose(-1, -2).contiguous()
        Ct = C.detach().float().transpose(-1, -2).contiguous()
        (batch, dim, length), dstate, groups = u.shape, A.shape[1], B.shape[1]
        out = torch.empty_like(u)
        last = u.new_empty(batch, dim, dstate)
        call_kernel(lib.rs_scan_forward, lib.rs_scan_forward_workspace, "native selective scan",
                    (u, delta, A, Bt, Ct, D, z, delta_bias), delta_softplus,
                    (batch, dim, dstate, length, groups), (out, last), dstate=dstate,
                    length=length)
        ctx.save_for_backward(u, delta, A, Bt, Ct, D, z, delta_bias)
        ctx.delta_softplus = delta_softplus
        # The last state is rarely used: its gradient then arrives as None, not as a
        # (batch, dim, dstate) tensor of zeros filled for the kernel to read.
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dlast):
        u, delta, A, Bt, Ct, D, z, delta_bias = ctx.saved_tensors
        grads = native_backward(u, delta, A, Bt, Ct, D, z, delta_bias, ctx.delta_softplus,
                                dout, dlast)
        return (*grads, None)


def native_backward(u, delta, A, Bt, Ct, D, z, delta_bias, delta_softplus, dout, dlast):
    """Gradients of the native scan: (du, ddelta, dA, dB, dC, dD, dz, ddelta_bias).

    Inputs as the forward saved them (float32, contiguous, B and C time-major (b, g, l, n));
    ``dout`` (b, d, l) and ``dlast`` (b, d, n) may be None. dB and dC come back (b, g, n, l);
    dD, dz and ddelta_bias are None where the input was. The cross scan's backward calls this
    on its unfolded inputs.
    """
    lib = KERNEL.get()
    batch, dim, length = u.shape
    groups, dstate = Bt.shape[1], Bt.shape[3]
    threads = torch.get_num_threads()
    dout = torch.zeros_like(u) if dout is None else dout.float().contiguous()
    dlast = None if dlast is None else dlast.float().contiguous()
    du, ddelta = torch.empty_like(u), torch.empty_like(u)
    dz = torch.empty_like(u) if z is not None else None
    dA_rows = u.new_empty(batch, dim, dstate)
    dD_rows, dbias_rows = u.new_empty(batch, dim), u.new_empty(batch, dim)
    # a group's channels add into its dB, dC (one thread per batch element and group)
    dB_acc = u.new_zeros(batch, groups, length, dstate)
    dC_acc = u.new_zeros(batch, groups, length, dstate)
    grads = (dout, dlast, du, ddelta, dz, dA_rows, dD_rows, dbias_rows, dB_acc, dC_acc)
    call_kernel(lib.rs_scan_backward, lib.rs_scan_backward_workspace,
                "native selective scan backward", (u, delta, A, Bt, Ct, D, z, delta_bias),
                delta_softplus, (batch, dim, dstate, length, groups), grads, dstate=dstate,
                length=length, threads=threads)
    dB = dB_acc.transpose(-1, -2)
    dC = dC_acc.transpose(-1, -2)
    dD = dD_rows.sum(0) if D is not None else None
    dbias = dbias_rows.sum(0) if delta_bias is not None else None
    return du, ddelta, dA_rows.sum(0), dB, dC, dD, dz, dbias


def selective_scan_native(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan with the native kernel; differentiable in every tensor argument.

    Inputs are validated shapes on the CPU (see ``selective_scan_fn``); B and C are grouped
    (b, g, n, l). Computation is float32 whatever the input dtype; out (b, d, l) float32 and
    the last state (b, d, n) float32.

    Raises:
        RuntimeError: the kernel is not available (``native_error()`` says why).
    """
    if KERNEL.get() is None:
        msg = f"native CPU selective scan unavailable: {KERNEL.error}"
        raise RuntimeError(msg)
    if A.shape[1] > MAX_DSTATE:
        msg = f"native CPU selective scan supports d_state <= {MAX_DSTATE}, got {A.shape[1]}"
        raise ValueError(msg)
    D, z, delta_bias = (None if t is None else t.float() for t in (D, z, delta_bias))
    return _NativeScan.apply(
        u.float(),
        delta.float(),
        A.float(),
        B.float(),
        C.float(),
        D,
        z,
        delta_bias,
        bool(delta_softplus),
    )
