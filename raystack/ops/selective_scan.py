"""Selective scan (Mamba's S6 recurrence) with mamba-ssm's signature.

    x_t = exp(delta_t * A) * x_{t-1} + delta_t * B_t * u_t ;   y_t = C_t . x_t + D * u_t
    out = y * silu(z) when z is given; delta = softplus(delta + delta_bias) as flagged

Shapes (b batch, d channels, n state, g groups, l length):

    u, delta, z    (b, d, l)
    A              (d, n)          real, negative for a stable scan
    B, C           (b, n, l) or (b, g, n, l) with d % g == 0 (group i serves channels i*d/g ...)
    D, delta_bias  (d,)
    out            (b, d, l); with return_last_state also the state (b, d, n)

e.g. SS2D's four directions at stage 0 of the paper preset: u (1, 512, 4096), A (512, 16),
B, C (1, 4, 16, 4096).

``selective_scan_fn`` is the one entry point; ``selective_scan_ref`` is the sequential oracle
the tests compare against. Backends, chosen by capability, overridable with the environment
variable ``RAYSTACK_SCAN``:

    auto    (default) cuda if the tensors are on CUDA and mamba-ssm imports, else native on
            the CPU (compiled at first use; if that fails, one warning and torch), else torch
    cuda    mamba-ssm's CUDA kernel (``pip install 'raystack[gpu]'``)
    native  the fused C++ loop, raystack/ops/csrc (forward and backward, CPU only)
    torch   the chunked pure-torch scan (any device, autograd)
    ref     the sequential oracle (slow; for debugging)
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from raystack.ops.scan_chunked import selective_scan_chunked
from raystack.ops.scan_native import (
    MAX_DSTATE,
    native_available,
    native_error,
    selective_scan_native,
)

BACKENDS = ("auto", "cuda", "native", "torch", "ref")
ENV_VAR = "RAYSTACK_SCAN"


def _expand_groups(X: torch.Tensor, dim: int) -> torch.Tensor:
    """(b, n, l) or (b, g, n, l) -> (b, d, n, l) by repeating each group over its channels."""
    if X.dim() == 3:
        X = X.unsqueeze(1)
    g = X.shape[1]
    if dim % g != 0:
        msg = f"selective scan: {dim} channels cannot be split into {g} groups of B/C"
        raise ValueError(msg)
    return repeat(X, "b g n l -> b (g h) n l", h=dim // g)


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
):
    """Plain sequential scan in float32: one step per time index. Slow; the oracle for tests."""
    dtype_in = u.dtype
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    Bx = _expand_groups(B.float(), dim)
    Cx = _expand_groups(C.float(), dim)
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A.float()))
    deltaB_u = torch.einsum("bdl,bdnl,bdl->bdln", delta, Bx, u)
    x = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for i in range(length):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        ys.append(torch.einsum("bdn,bdn->bd", x, Cx[:, :, :, i]))
    y = torch.stack(ys, dim=2)
    out = y if D is None else y + u * rearrange(D.float(), "d -> d 1")
    if z is not None:
        out = out * F.silu(z.float())
    out = out.to(dtype_in)
    return (out, x) if return_last_state else out


def check_scan_inputs(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
) -> None:
    """Raise ValueError naming the argument, its shape and the expected one on a mismatch."""

    def bad(what: str, got: torch.Tensor, want: str) -> None:
        msg = f"selective scan: {what} has shape {tuple(got.shape)}, expected {want}"
        raise ValueError(msg)

    if u.dim() != 3:
        bad("u", u, "(batch, dim, length)")
    batch, dim, length = u.shape
    if length == 0:
        bad("u", u, "a length of at least 1")
    if delta.shape != u.shape:
        bad("delta", delta, f"{tuple(u.shape)} like u")
    if A.dim() != 2 or A.shape[0] != dim:
        bad("A", A, f"({dim}, d_state)")
    if A.is_complex():
        msg = "selective scan: complex A is not supported (VADMamba and M2S2L use real A)"
        raise ValueError(msg)
    dstate = A.shape[1]
    for name, X in (("B", B), ("C", C)):
        if X.dim() == 3 and X.shape == (batch, dstate, length):
            continue
        if X.dim() == 4 and X.shape[0] == batch and X.shape[2:] == (dstate, length):
            if dim % X.shape[1] != 0:
                msg = (
                    f"selective scan: {name} has {X.shape[1]} groups, which do not divide "
                    f"the {dim} channels of u"
                )
                raise ValueError(msg)
            continue
        bad(name, X, f"({batch}, {dstate}, {length}) or ({batch}, groups, {dstate}, {length})")
    if B.dim() == 4 and C.dim() == 4 and B.shape[1] != C.shape[1]:
        msg = f"selective scan: B has {B.shape[1]} groups but C has {C.shape[1]}"
        raise ValueError(msg)
    for name, X in (("D", D), ("delta_bias", delta_bias)):
        if X is not None and X.shape != (dim,):
            bad(name, X, f"({dim},)")
    if z is not None and z.shape != u.shape:
        bad("z", z, f"{tuple(u.shape)} like u")


def _mamba_available() -> bool:
    if _MAMBA[0] is None:
        try:
            import mamba_ssm.ops.selective_scan_interface  # noqa: F401
        except ImportError:
            _MAMBA[0] = False
        else:
            _MAMBA[0] = True
    return _MAMBA[0]


_MAMBA: list[bool | None] = [None]


def scan_backend(u: torch.Tensor, dstate: int = 16) -> str:
    """The backend ``selective_scan_fn`` uses for tensors like ``u``: cuda, native, torch, ref.

    Reads ``RAYSTACK_SCAN`` (auto | cuda | native | torch | ref; default auto).

    Raises:
        ValueError: an unknown RAYSTACK_SCAN value, or a backend that cannot take these
            tensors (cuda for CPU tensors, native for non-CPU tensors or d_state > 256).
        ImportError: RAYSTACK_SCAN=cuda without mamba-ssm.
        RuntimeError: RAYSTACK_SCAN=native and the kernel does not build.
    """
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in BACKENDS:
        msg = f"{ENV_VAR}={mode!r} is not one of {', '.join(BACKENDS)}"
        raise ValueError(msg)
    on_cuda = u.device.type == "cuda"
    if mode == "cuda":
        if not on_cuda:
            msg = f"{ENV_VAR}=cuda needs CUDA tensors, got a tensor on {u.device}"
            raise ValueError(msg)
        if not _mamba_available():
            msg = f"{ENV_VAR}=cuda needs mamba-ssm: pip install 'raystack[gpu]'"
            raise ImportError(msg)
        return "cuda"
    if mode == "native":
        if u.device.type != "cpu":
            msg = f"{ENV_VAR}=native runs on CPU tensors, got a tensor on {u.device}"
            raise ValueError(msg)
        if dstate > MAX_DSTATE:
            msg = f"{ENV_VAR}=native supports d_state <= {MAX_DSTATE}, got {dstate}"
            raise ValueError(msg)
        if not native_available():
            msg = f"{ENV_VAR}=native but the kernel is unavailable: {native_error()}"
            raise RuntimeError(msg)
        return "native"
    if mode in ("torch", "ref"):
        return mode
    if on_cuda and _mamba_available():
        return "cuda"
    if u.device.type == "cpu" and dstate <= MAX_DSTATE and native_available(warn=True):
        return "native"
    return "torch"


def selective_scan_fn(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
):
    """Selective scan: mamba-ssm's CUDA kernel on CUDA tensors when installed, else the
    native CPU kernel, else chunked torch (see the module docstring for the override).

    Args:
        u: input (b, d, l).
        delta: time steps (b, d, l), before ``delta_bias`` and softplus.
        A: state matrix (d, n), real.
        B, C: input and output projections, (b, n, l) or grouped (b, g, n, l).
        D: skip (d,), optional.
        z: gate (b, d, l), optional: out = y * silu(z).
        delta_bias: (d,), added to delta before the softplus, optional.
        delta_softplus: apply softplus to delta.
        return_last_state: also return the final state.

    Returns:
        out (b, d, l) in u's dtype (computed in float32), and with ``return_last_state`` the
        state (b, d, n) in float32, as mamba-ssm does.

    Raises:
        ValueError: shapes that do not fit together (the message names the argument).
    """
    check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    backend = scan_backend(u, A.shape[1])
    if backend == "cuda":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as mamba_scan

        # the kernel takes float32 weights whatever the activations' dtype
        D, delta_bias = (None if t is None else t.float() for t in (D, delta_bias))
        return mamba_scan(
            u, delta, A.float(), B, C, D, z, delta_bias, delta_softplus, return_last_state
        )
    if backend == "ref":
        return selective_scan_ref(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
        )
    Bg = B if B.dim() == 4 else B.unsqueeze(1)
    Cg = C if C.dim() == 4 else C.unsqueeze(1)
    scan = selective_scan_native if backend == "native" else selective_scan_chunked
    out, last = scan(u, delta, A, Bg, Cg, D, z, delta_bias, delta_softplus)
    out = out.to(u.dtype)
    return (out, last) if return_last_state else out
