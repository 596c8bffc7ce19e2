"""Multi-scale temporal normality learning of M²S²L (paper II-C), on frame differences.

- :func:`frame_differences`: ``D_t = (I_t - I_{t-1}) / 2``, the motion field in the model
  range [-1, 1] (the paper uses differences instead of optical flow, for speed).
- :class:`TemporalMambaBlock` (TMB): a Mamba block along time (eqs. 4-6): LayerNorm, input
  projection to (x, z), causal depth-wise conv, input-dependent (delta, B, C), selective
  scan with diagonal A, output gated by SiLU(z). Its step sizes are scale-specific: the
  delta bias is initialised log-uniformly in ``[lo / w, hi / w]`` for window length w, so a
  short window starts with fast-forgetting states and a long one with slow ones.
- :class:`TemporalEncoder`: embeds each of the last w differences with a shared patch
  embedding, adds the temporal positional encoding, runs TMBs over time at every grid
  location and keeps the last step (it has seen the whole window).
- :class:`MultiScaleTemporalEncoder`: encoders for the short, medium and long windows,
  resized to the common grid and fused by attention over scales (additive attention per
  location, softmax over the scales).

    enc = MultiScaleTemporalEncoder(3, 256, windows=(2, 4, 8), patch_size=16, grid=(32, 32))
    f, a = enc(torch.randn(2, 8, 3, 256, 256))   # f (2, 32, 32, 256); a (2, 3, 32, 32)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange, repeat

from raystack.models.m2s2l.spatial import resize_grid
from raystack.models.patches import PatchEmbed
from raystack.ops.selective_scan import selective_scan_fn


def frame_differences(frames: torch.Tensor) -> torch.Tensor:
    """(b, t, c, H, W) frames in [-1, 1] -> (b, t-1, c, H, W) differences in [-1, 1]."""
    return (frames[:, 1:] - frames[:, :-1]) * 0.5


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Transformer sinusoidal encoding (length, dim): sin on even, cos on odd channels."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class _CausalDepthwiseConv(torch.autograd.Function):
    """y[:, t] = sum_j w[j] * x[:, t - (K-1) + j] (+ bias), zero before the first step.

    Multiply-adds into shifted slices, forward and backward, so neither the zero padding
    nor the slices' zero-filled gradients are ever allocated."""

    @staticmethod
    def forward(ctx, x, w, bias):  # x (B, L, d), w (K, d), bias (d,) or None
        k, length = w.shape[0], x.shape[1]
        y = x * w[k - 1]
        for s in range(1, min(k, length)):  # tap k-1-s reaches s steps back
            y[:, s:].addcmul_(x[:, :-s], w[k - 1 - s])
        if bias is not None:
            y += bias
        ctx.save_for_backward(x, w)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        k, length = w.shape[0], x.shape[1]
        dx = dy * w[k - 1]
        dw = w.new_zeros(w.shape)
        # a product and a sum per tap: einsum's batched dot products trained 0.94x
        dw[k - 1] = (dy * x).sum((0, 1))
        for s in range(1, min(k, length)):
            dx[:, :-s].addcmul_(dy[:, s:], w[k - 1 - s])
            dw[k - 1 - s] = (dy[:, s:] * x[:, :-s]).sum((0, 1))
        dbias = dy.sum((0, 1)) if ctx.has_bias else None
        return dx, dw, dbias


def causal_depthwise_conv1d(x: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None) -> torch.Tensor:
    """Mamba's causal depth-wise conv along time, channels last: (B, L, d) -> (B, L, d).

    The same numbers as ``nn.Conv1d(d, d, K, groups=d, padding=K - 1)`` (weight (d, 1, K))
    trimmed to the first L outputs, computed as K shifted multiply-adds: the temporal
    encoder convolves thousands of sequences (batch x grid) of at most a window's length,
    where oneDNN's grouped conv1d took 4x its forward in the backward (~13% of an M2S2L
    small training step), and it needs no transposes either side.
    """
    w = weight.reshape(-1, weight.shape[-1]).t().to(x.dtype)  # (K, d)
    return _CausalDepthwiseConv.apply(x, w, None if bias is None else bias.to(x.dtype))


class TemporalMambaBlock(nn.Module):
    """Mamba block along time with scale-specific step initialisation, (B, L, d) in and out."""

    def __init__(
        self,
        d_model: int,
        window: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        dt_window_range: tuple[float, float] = (0.25, 2.0),
        dt_init_floor: float = 1e-4,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.window = window
        self.d_state = d_state
        self.d_inner = d = expand * d_model
        self.dt_rank = r = math.ceil(d_model / 16) if dt_rank is None else dt_rank
        self.norm = nn.LayerNorm(d_model, eps=norm_eps, **factory_kwargs)
        self.in_proj = nn.Linear(d_model, 2 * d, bias=False, **factory_kwargs)
        # Causal: step t mixes only steps <= t, so the last step summarises the window.
        self.conv1d = nn.Conv1d(d, d, d_conv, groups=d, padding=d_conv - 1, **factory_kwargs)
        self.x_proj = nn.Linear(d, r + 2 * d_state, bias=False, **factory_kwargs)
        self.dt_proj = nn.Linear(r, d, bias=True, **factory_kwargs)
        # Scale-specific steps: the state of mode n decays by exp(-n * dt) per step, so
        # dt ~ 1/w lets the slowest mode remember about one window. Drawn log-uniformly in
        # [lo/w, hi/w]; the bias is softplus^-1(dt), Mamba's parameterisation.
        lo, hi = dt_window_range
        dt_min = lo / window
        dt_max = max(min(hi / window, 1.0), dt_min)
        dt = torch.exp(
            torch.rand(d, **factory_kwargs) * (math.log(dt_max) - math.log(dt_min))
            + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_proj.bias._no_reinit = True
        nn.init.uniform_(self.dt_proj.weight, -(r**-0.5), r**-0.5)
        # S4D-real A = -(1..N), stored as a log so it stays negative (a stable scan).
        a = repeat(torch.arange(1, d_state + 1, dtype=torch.float32, device=device), "n -> d n",
                   d=d)
        self.A_log = nn.Parameter(torch.log(a))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(d, device=device))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(d, d_model, bias=False, **factory_kwargs)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """(B, L, d_model) -> (B, L, d_model), causal along L; ``last_only``: (B, d_model),
        the last step alone.

        The encoder keeps only the last step of its last block. The scan still runs over
        every step (the state carries them), but the gate z, the output projection and the
        residual are then needed at one step of L: the same numbers as ``forward(x)[:, -1]``
        for less of the training step (the windows are 2-8 steps long).
        """
        n, r, d = self.d_state, self.dt_rank, self.d_inner
        h = self.norm(x)
        if last_only:
            w = self.in_proj.weight  # (2d, d_model): the x half, then the z half; no bias
            u = F.linear(h, w[:d])  # (B, L, d)
            z = F.linear(h[:, -1:], w[d:])  # (B, 1, d)
        else:
            u, z = self.in_proj(h).chunk(2, dim=-1)  # (B, L, d) each
        u = F.silu(causal_depthwise_conv1d(u, self.conv1d.weight, self.conv1d.bias))
        x_dbl = self.x_proj(u)  # (B, L, r + 2n)
        u = rearrange(u, "b l d -> b d l")  # (B, d, L), the scan's layout
        dt, B, C = torch.split(x_dbl, [r, n, n], dim=-1)
        delta = rearrange(dt @ self.dt_proj.weight.t(), "b l d -> b d l")  # bias goes in the scan
        # fp32 recurrence whatever autocast does around it (as SS2D).
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = selective_scan_fn(
                u.float(), delta.float(), -torch.exp(self.A_log.float()),
                rearrange(B, "b l n -> b n l").float().contiguous(),
                rearrange(C, "b l n -> b n l").float().contiguous(),
                self.D.float(), delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
            )  # (B, d, L)
        if last_only:
            y, x = y[:, :, -1:], x[:, -1:]
        y = rearrange(y, "b d l -> b l d").to(z.dtype) * F.silu(z)
        out = x + self.out_proj(y)
        return out[:, 0] if last_only else out


class TemporalEncoder(nn.Module):
    """One temporal scale: embed w differences, add temporal PE, TMBs over time, last step."""

    def __init__(
        self,
        in_chans: int,
        d_model: int,
        window: int,
        patch_size: int = 16,
        depth: int = 1,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        dt_window_range: tuple[float, float] = (0.25, 2.0),
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.window = window
        self.embed = PatchEmbed(in_chans, d_model, patch_size, norm_eps=norm_eps, **factory_kwargs)
        # Learnable temporal positional encoding, sinusoidal at init: the scan is causal but
        # blind to absolute position, and "3 steps before the target" matters for motion.
        self.pos = nn.Parameter(sinusoidal_positions(window, d_model).to(**factory_kwargs))
        self.blocks = nn.Sequential(*(
            TemporalMambaBlock(d_model, window, d_state=d_state, d_conv=d_conv, expand=expand,
                               dt_rank=dt_rank, dt_window_range=dt_window_range,
                               norm_eps=norm_eps, **factory_kwargs)
            for _ in range(depth)
        ))
        self.norm = nn.LayerNorm(d_model, eps=norm_eps, **factory_kwargs)

    def forward(self, diffs: torch.Tensor) -> torch.Tensor:
        """(b, w, c, H, W) differences, oldest first -> (b, H/p, W/p, d_model)."""
        b, w = diffs.shape[:2]
        if w != self.window:
            msg = f"TemporalEncoder(window={self.window}) got {w} differences"
            raise ValueError(msg)
        x = self.embed(rearrange(diffs, "b t c h w -> (b t) c h w"))  # (b t, h, w, d)
        gh, gw = x.shape[1:3]
        x = rearrange(x, "(b t) h w d -> (b h w) t d", b=b) + self.pos
        for block in self.blocks[:-1]:
            x = block(x)
        # (b h w, d): the step just before the target frame, which has seen the window
        x = self.blocks[-1](x, last_only=True)
        return self.norm(rearrange(x, "(b h w) d -> b h w d", b=b, h=gh, w=gw))


class ScaleAttention(nn.Module):
    """Additive attention over scales at every location: a_s = softmax_s(v . tanh(W f_s))."""

    def __init__(
        self,
        d_model: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.proj = nn.Linear(d_model, d_model, **factory_kwargs)
        self.score = nn.Linear(d_model, 1, bias=False, **factory_kwargs)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, s, h, w, d) -> fused (b, h, w, d), attention (b, s, h, w)."""
        attn = self.score(torch.tanh(self.proj(feats))).squeeze(-1).softmax(dim=1)
        return torch.einsum("bshw,bshwd->bhwd", attn, feats), attn


class MultiScaleTemporalEncoder(nn.Module):
    """Temporal encoders over several windows, resized to the grid, fused by attention."""

    def __init__(
        self,
        in_chans: int,
        d_model: int,
        windows: tuple[int, ...],
        patch_size: int,
        grid: tuple[int, int],
        depth: int = 1,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        dt_window_range: tuple[float, float] = (0.25, 2.0),
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.grid = tuple(grid)
        self.windows = tuple(windows)
        self.encoders = nn.ModuleList(
            TemporalEncoder(in_chans, d_model, w, patch_size, depth, d_state=d_state,
                            d_conv=d_conv, expand=expand, dt_rank=dt_rank,
                            dt_window_range=dt_window_range, norm_eps=norm_eps,
                            **factory_kwargs)
            for w in self.windows
        )
        self.attention = ScaleAttention(d_model, **factory_kwargs) if len(windows) > 1 else None

    def forward(self, diffs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, t, c, H, W) differences (t >= longest window) -> (b, gh, gw, d), (b, s, gh, gw)."""
        if diffs.shape[1] < max(self.windows):
            msg = (f"MultiScaleTemporalEncoder needs {max(self.windows)} differences, "
                   f"got {diffs.shape[1]}")
            raise ValueError(msg)
        # Each window is the most recent w differences: all scales end at the same frame.
        feats = torch.stack(
            [resize_grid(enc(diffs[:, -w:]), self.grid) for w, enc in
             zip(self.windows, self.encoders, strict=True)], dim=1,
        )  # (b, s, gh, gw, d)
        if self.attention is None:
            return feats[:, 0], feats.new_ones(feats.shape[:4])
        return self.attention(feats)
