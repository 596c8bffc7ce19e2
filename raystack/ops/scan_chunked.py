"""Chunked selective scan in plain torch: differentiable, any device, no loop over L.

The sequence is cut into ``nc`` chunks of ``Lc`` steps (Lc ~ sqrt(L), so both are ~64 at
L = 4096). Three passes, each a short Python loop of whole-tensor ops:

1. inside every chunk at once, the recurrence from a zero state (Lc steps): chunk-end states;
2. across chunks (nc steps): x_start[c+1] = decay[c] * x_start[c] + end[c], where
   decay[c] = exp(A * sum of delta over chunk c);
3. inside every chunk again, from its true start state (Lc steps), then y = C . x.

Only products of decays in (0, 1] ever appear, never exp of a cumulative sum's negation, so
strong decay underflows harmlessly to 0 instead of overflowing (the cumulative log-decay
formulation divides by exp(S) and returns inf/nan when a chunk decays by more than ~e^-88).
On the CPU, channels are processed in blocks so that temporaries stay a few MB: they stay in
cache and are recycled by malloc instead of being mapped and faulted in on every call.

Shapes: u, delta (b, d, l); A (d, n); B, C (b, g, n, l); working layout (Lc, b, nc, g, n, h)
with h = d / g channels innermost, e.g. (64, 1, 64, 4, 16, 128) at L = 4096, d = 512.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Elements per channel block on the CPU (16 MB of float32 per temporary): of 1M, 2M, 4M and
# unblocked, 4M was fastest at the SS2D shapes with L >= 1024 and within 10% elsewhere.
CPU_BLOCK_ELEMS = 1 << 22


def chunk_length(length: int) -> int:
    """Steps per chunk: the power of two nearest sqrt(length), within [8, 64], <= length."""
    lc = 2 ** round(math.log2(max(length, 1)) / 2)
    return max(1, min(length, max(8, min(64, lc))))


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk: int | None = None,
    block_elems: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan as chunked torch ops (autograd for free).

    Args:
        u, delta, A, B, C, D, z, delta_bias, delta_softplus: as ``selective_scan_fn``, with
            validated shapes and B, C grouped (b, g, n, l).
        chunk: steps per chunk (default ``chunk_length(l)``).
        block_elems: channel-block size in elements of one (Lc, b, nc, g, n, h_block)
            temporary (default ``CPU_BLOCK_ELEMS`` on the CPU, unblocked elsewhere).

    Returns:
        out (b, d, l) float32 and the last state (b, d, n) float32.
    """
    batch, dim, length = u.shape
    groups, dstate = B.shape[1], B.shape[2]
    per_group = dim // groups
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    dtu = delta * u
    B, C = B.float(), C.float()

    lc = chunk or chunk_length(length)
    nc = -(-length // lc)
    padded = nc * lc
    if padded != length:
        # delta = 0 steps keep the state unchanged (decay 1, input 0)
        pad = (0, padded - length)
        delta, dtu, B, C = F.pad(delta, pad), F.pad(dtu, pad), F.pad(B, pad), F.pad(C, pad)

    def steps_first(x: torch.Tensor, rows: int) -> torch.Tensor:
        # (b, g, rows, l) -> (Lc, b, nc, g, rows)
        return x.reshape(batch, groups, rows, nc, lc).permute(4, 0, 3, 1, 2).contiguous()

    dl = steps_first(delta, per_group)  # (Lc, b, nc, g, h)
    dul = steps_first(dtu, per_group)
    Bl = steps_first(B, dstate).unsqueeze(-1)  # (Lc, b, nc, g, n, 1)
    Cl = steps_first(C, dstate).unsqueeze(-2)  # (Lc, b, nc, g, 1, n)
    At = A.float().reshape(groups, per_group, dstate).transpose(1, 2)  # (g, n, h)
    dsum = dl.sum(0)  # (b, nc, g, h): log-decay of a whole chunk is A * dsum

    if block_elems is None:
        block_elems = CPU_BLOCK_ELEMS if u.device.type == "cpu" else 0
    per_channel = padded * batch * groups * dstate
    hb = per_group if block_elems <= 0 else max(1, min(per_group, block_elems // per_channel))
    track = torch.is_grad_enabled()

    ys, lasts = [], []
    for h0 in range(0, per_group, hb):
        blk = slice(h0, h0 + hb)
        Ab = At[..., blk]
        a = torch.exp(dl[..., blk].unsqueeze(-2) * Ab)  # (Lc, b, nc, g, n, hb)
        bu = dul[..., blk].unsqueeze(-2) * Bl

        # unbind, not indexing: the backward of a[t] would materialise a zero gradient of
        # the whole block for every step (O(L^2) memory traffic); unbind's is one stack
        a_t, bu_t = a.unbind(0), bu.unbind(0)
        end = bu_t[0]  # pass 1: chunk-end states from a zero start
        for t in range(1, lc):
            end = torch.addcmul(bu_t[t], a_t[t], end)

        decay = torch.exp(dsum[..., blk].unsqueeze(-2) * Ab)  # (b, nc, g, n, hb)
        x = torch.zeros_like(end[:, 0])  # pass 2: carry across chunks
        starts = []
        for end_c, decay_c in zip(end.unbind(1), decay.unbind(1), strict=True):
            starts.append(x)
            x = torch.addcmul(end_c, decay_c, x)
        x0 = torch.stack(starts, 1)  # (b, nc, g, n, hb)

        if track:  # pass 3: true states, kept for autograd
            hs = [torch.addcmul(bu_t[0], a_t[0], x0)]
            for t in range(1, lc):
                hs.append(torch.addcmul(bu_t[t], a_t[t], hs[-1]))
            H = torch.stack(hs)
        else:  # inference: overwrite bu in place, no second big allocation
            H = bu
            torch.addcmul(bu_t[0], a_t[0], x0, out=H[0])
            for t in range(1, lc):
                torch.addcmul(bu_t[t], a_t[t], H[t - 1], out=H[t])
        ys.append(torch.matmul(Cl, H).squeeze(-2))  # (Lc, b, nc, g, hb)
        lasts.append(x)  # (b, g, n, hb)

    y = torch.cat(ys, -1) if len(ys) > 1 else ys[0]  # (Lc, b, nc, g, h)
    y = y.permute(1, 3, 4, 2, 0).reshape(batch, dim, padded)[..., :length]
    out = y if D is None else y + u * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z.float())
    last = torch.cat(lasts, -1) if len(lasts) > 1 else lasts[0]  # (b, g, n, h)
    return out, last.transpose(-1, -2).reshape(batch, dim, dstate)
