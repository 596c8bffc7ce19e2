"""VQ-MaU: VADMamba's VQ-Mamba U-Net, used for frame prediction (FP) and flow reconstruction (FR).

PatchEmbed (4x4 patches -> dims[0] channels) -> encoder stages of NVSS blocks with
PatchMerging between them -> vector quantiser at the bottleneck -> decoder stages, each but
the first opened by a PatchExpand and an element-wise ADDED skip -> final projection back to
full resolution -> tanh, so outputs live in the model range [-1, 1] of frames and flow.

Tasks (``VQMaUConfig.task``):
- ``fp``: ``in_frames`` RGB frames stacked on channels (oldest first) predict the next frame.
- ``fr``: the model-range optical flow of the target frame (the flow from frame i-1 to i,
  2 channels) is reconstructed through the VQ bottleneck: a VQ autoencoder on flow. The paper
  says FR reconstructs "the optical flow corresponding to the predicted frame"; the public
  code feeds the true flow of the target frame, and so do we: the score must not depend on a
  second model's prediction, and a normal flow reconstructs well while an unusual one does not.

Skips. The decoder adds, after each PatchExpand, the encoder stage output of the same
resolution (H/16, H/8, H/4 at four stages). Nothing is added at the bottleneck resolution:
the public code adds the un-quantised bottleneck input to z_q there, which lets the decoder
bypass the codebook; here every path through H/32 goes through the VQ.

    model = create_model("vqmau_fp.tiny")
    out = model(torch.randn(2, 4 * 3, 64, 64))   # out.pred (2, 3, 64, 64); out.vq_loss scalar
    model.score_batch(torch.rand(2, 5, 3, 64, 64) * 2 - 1)["fp"].psnr.shape == (2,)

Contract (:mod:`raystack.models.contract`): one model scores one stream named after its
task. FP's context is ``in_frames`` (the window's inputs are stacked on channels); FR's is 1
(it reconstructs the flow into the target, rescaled to ``flow_scale``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
from einops import rearrange

from raystack.errors import ConfigError
from raystack.models.contract import StreamScores, TrainableModel
from raystack.models.losses import task_loss, trivial_prediction
from raystack.models.nvss import NVSSBlock
from raystack.models.patches import FinalProjection, PatchEmbed, PatchExpand, PatchMerging
from raystack.models.vq import VectorQuantizer
from raystack.scoring import region_outputs

TASKS = ("fp", "fr")


@dataclass(frozen=True)
class VQMaUConfig:
    """Every hyper-parameter of a VQ-MaU model; presets in ``presets.py`` are instances."""

    task: str = "fp"  # "fp" frame prediction | "fr" optical-flow reconstruction
    in_frames: int = 16  # t: frames (FP; Table IV varies it) or flow fields (FR: 1) on channels
    in_channels: int = 3  # channels of one input frame: 3 (RGB) for FP, 2 (u, v) for FR
    out_channels: int = 3  # 3 for FP (next frame), 2 for FR (flow)
    img_size: tuple[int, int] = (256, 256)  # (H, W) the model is built for; paper: 256x256
    patch_size: int = 4  # PatchEmbed patch (and final expansion) size; paper: 4x4
    dims: tuple[int, ...] = (64, 128, 256, 512)  # stage widths; dims[0] is the embedding width
    depths: tuple[int, ...] = (1, 1, 1, 1)  # NVSS blocks per stage, encoder = decoder (E_n = D_n)
    d_state: int = 16  # SSM state size N
    ssm_expand: int = 2  # SS2D inner width = ssm_expand * stage width
    d_conv: int = 3  # SS2D depthwise conv kernel
    dt_rank: int | None = None  # rank of the delta projection; None = ceil(width / 16)
    codebook_size: int = 50  # K codes of the VQ; public code: 50 for FP, 10 for FR
    vq_beta: float = 0.25  # commitment weight beta of eq. (2)
    use_vq: bool = True  # ablation switch (Table II): VQ bottleneck on/off
    # Deviation switch: EMA codebook with data init and dead-code restarts (models/vq.py)
    # instead of the paper's loss-trained codebook.
    vq_ema: bool = False
    use_ne: bool = True  # ablation switch (Table II): Non-negative Enhanced branch on/off
    drop_path: float = 0.2  # max stochastic-depth rate (linear over blocks); public code's 0.2
    norm_eps: float = 1e-6  # LayerNorm epsilon of the blocks
    # Deviation switch (not in the paper; docs/models.md): predict the change from the
    # trivial answer instead of the answer. FP outputs last input frame + correction, FR
    # starts from zero flow; the head is zero-initialised, so an untrained model IS the
    # copy-last / zero-flow baseline and training can only move away from it where it helps.
    residual: bool = False
    # Deviation switch (FP with residual): the trivial answer becomes a per-pixel softmax
    # blend of the t input frames, starting at copy-last. Still pixels then average their
    # sensor noise away over t frames, moving ones keep the newest frame; the correction
    # is added on top. Residual alone did not leave copy-last in 480 steps (docs/models.md).
    temporal_blend: bool = False
    # Deviation switch: every prediction loss term relative to the trivial answer's on the
    # same batch (models/losses.py), so its gradients do not vanish beside the VQ term.
    relative_loss: bool = False
    # FR only: pixels of flow (at img_size) that map to 1 in the model range. The paper's
    # 256-pixel code uses 10; walking at 128 px moves ~1 px a frame, which 10 px would
    # squeeze into 0.1 of the range, so small presets tie it to their size.
    flow_scale: float = 10.0

    def __post_init__(self) -> None:
        # Tuples survive JSON and TOML round trips as lists; store them as tuples.
        for name in ("img_size", "dims", "depths"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        self.validate()

    @property
    def context(self) -> int:
        """Frames before each target: FP's ``in_frames``; FR's 1 (the flow into the target)."""
        return self.in_frames if self.task == "fp" else 1

    @property
    def input_channels(self) -> int:
        """Channels of the model input: ``in_frames * in_channels``."""
        return self.in_frames * self.in_channels

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the field and the fix when the config is invalid."""
        problems = []
        if self.task not in TASKS:
            problems.append(f"task={self.task!r} (choose one of {TASKS})")
        if len(self.dims) != len(self.depths) or not self.dims:
            problems.append(f"dims {self.dims} and depths {self.depths} must be equally long")
        if any(d < 1 for d in self.dims) or any(d < 1 for d in self.depths):
            problems.append("dims and depths must be positive")
        for name in ("in_frames", "in_channels", "out_channels", "patch_size", "d_state",
                     "ssm_expand", "codebook_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.d_conv < 1 or self.d_conv % 2 == 0:
            problems.append(f"d_conv={self.d_conv} must be odd (same-size depthwise conv)")
        if len(self.img_size) != 2:
            problems.append(f"img_size={self.img_size} must be (H, W)")
        else:
            # Each PatchMerging halves the grid, so H and W must divide patch * 2^(stages-1).
            unit = self.patch_size * 2 ** (len(self.dims) - 1)
            if any(s % unit for s in self.img_size):
                problems.append(f"img_size={self.img_size} must be a multiple of {unit} "
                                f"(patch_size * 2^(stages-1))")
        if self.dims and self.dims[0] % 4:
            problems.append(f"dims[0]={self.dims[0]} must be a multiple of 4 (final projection)")
        if not 0.0 < self.flow_scale <= 10.0:
            problems.append(f"flow_scale={self.flow_scale} must be in (0, 10] px (the scan's "
                            "flow input is clipped at 10 px)")
        if not 0.0 <= self.drop_path < 1.0:
            problems.append(f"drop_path={self.drop_path} must be in [0, 1)")
        if problems:
            msg = "invalid VQMaUConfig: " + "; ".join(problems)
            raise ConfigError(msg)

    def replace(self, **overrides) -> VQMaUConfig:
        """A copy with ``overrides`` applied (and validated)."""
        return dataclasses.replace(self, **overrides)


class VQMaUOutput(NamedTuple):
    pred: torch.Tensor  # (b, out_channels, H, W) in [-1, 1]
    vq_loss: torch.Tensor  # scalar; 0 when use_vq is off
    vq_stats: dict[str, torch.Tensor]  # usage, perplexity, indices; empty when use_vq is off


class VQMaU(nn.Module, TrainableModel):
    """The VQ-Mamba U-Net of VADMamba; build it from a :class:`VQMaUConfig`."""

    def __init__(
        self,
        config: VQMaUConfig,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.config = config
        c = config
        n = len(c.dims)
        block_kwargs = {
            "d_state": c.d_state, "d_conv": c.d_conv, "expand": c.ssm_expand,
            "dt_rank": c.dt_rank, "use_ne": c.use_ne, "norm_eps": c.norm_eps, **factory_kwargs,
        }
        # Stochastic depth grows linearly with encoder depth; the decoder mirrors it.
        rates = torch.linspace(0.0, c.drop_path, sum(c.depths)).tolist()
        enc_rates = [rates[sum(c.depths[:i]) : sum(c.depths[: i + 1])] for i in range(n)]

        self.patch_embed = PatchEmbed(
            c.input_channels, c.dims[0], c.patch_size, norm_eps=c.norm_eps, **factory_kwargs
        )
        self.encoder = nn.ModuleList(
            nn.Sequential(
                *(NVSSBlock(c.dims[i], drop_path=p, **block_kwargs) for p in enc_rates[i])
            )
            for i in range(n)
        )
        self.merges = nn.ModuleList(
            PatchMerging(c.dims[i], c.dims[i + 1], norm_eps=c.norm_eps, **factory_kwargs)
            for i in range(n - 1)
        )
        self.vq = (
            VectorQuantizer(c.codebook_size, c.dims[-1], beta=c.vq_beta, ema=c.vq_ema,
                            **factory_kwargs)
            if c.use_vq
            else None
        )
        # Decoder stage j works at encoder stage i = n-1-j.
        self.expands = nn.ModuleList(
            PatchExpand(c.dims[i + 1], c.dims[i], norm_eps=c.norm_eps, **factory_kwargs)
            for i in reversed(range(n - 1))
        )
        self.decoder = nn.ModuleList(
            nn.Sequential(
                *(NVSSBlock(c.dims[i], drop_path=p, **block_kwargs) for p in enc_rates[i][::-1])
            )
            for i in reversed(range(n))
        )
        self.blend = c.task == "fp" and c.residual and c.temporal_blend
        extra = c.in_frames if self.blend else 0  # blend logits, one per input frame
        self.final = FinalProjection(
            c.dims[0], c.out_channels + extra, c.patch_size, norm_eps=c.norm_eps,
            **factory_kwargs
        )
        self.apply(self._init_weights)
        if c.residual:
            # A small head: the untrained model is the trivial answer plus ~1% noise. A zero
            # head would be exact, but then everything above it gets gradients ~1e-10,
            # under Adam's epsilon, and stays random (measured: no gain in 240 steps).
            nn.init.trunc_normal_(self.final.head.weight, std=0.002)
            nn.init.zeros_(self.final.head.bias)
            if self.blend:  # the newest frame's logit starts 6 above the rest: ~98% copy-last
                with torch.no_grad():
                    self.final.head.bias[-1] = 6.0

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # Transformer-style init for the plain linears (VMamba does the same); the SSM's own
        # parameters (A, D, dt) are not nn.Linear and keep the Mamba init from SS2D.
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.dim() == 5:  # (b, t, c, H, W): stack frames on channels, oldest first
            x = rearrange(x, "b t c h w -> b (t c) h w")
        expected = (c.input_channels, *c.img_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            msg = (
                f"VQMaU({c.task}) expects input (batch, {expected[0]}, {expected[1]}, "
                f"{expected[2]}) = in_frames {c.in_frames} x in_channels {c.in_channels} at "
                f"img_size {c.img_size}; got {tuple(x.shape)}"
            )
            raise ValueError(msg)
        return x

    def forward(self, x: torch.Tensor) -> VQMaUOutput:
        """x: (b, in_frames*in_channels, H, W) or (b, in_frames, in_channels, H, W) in [-1, 1]."""
        x = self._check_input(x)
        c = self.config
        frames = x.unflatten(1, (c.in_frames, c.in_channels)) if c.task == "fp" else None
        x = self.patch_embed(x)  # (b, H/4, W/4, dims[0])
        skips = []
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            if i < len(self.merges):
                skips.append(x)  # (b, H/4/2^i, W/4/2^i, dims[i])
                x = self.merges[i](x)
        # x: (b, H/4/2^(n-1), W/4/2^(n-1), dims[-1]), the bottleneck z_e
        if self.vq is not None:
            x, vq_loss, vq_stats = self.vq(x)
        else:
            vq_loss, vq_stats = x.new_zeros((), dtype=torch.float32), {}
        x = self.decoder[0](x)
        for j, stage in enumerate(self.decoder[1:]):
            x = self.expands[j](x) + skips[-1 - j]  # additive skip at the same resolution
            x = stage(x)
        h = self.final(x)
        if frames is None or not c.residual:
            # The paper's output map (for residual FR, tanh(0) = 0 is the zero-flow start).
            return VQMaUOutput(torch.tanh(h), vq_loss, vq_stats)
        # Residual FP: a correction added to the last frame, or to the temporal blend.
        base = frames[:, -1]
        if self.blend:
            weights = h[:, c.out_channels :].softmax(dim=1)  # (b, t, H, W)
            base = (weights.unsqueeze(2) * frames).sum(dim=1)
        pred = (base + h[:, : c.out_channels]).clamp(-1.0, 1.0)
        return VQMaUOutput(pred, vq_loss, vq_stats)


    # --- the scoring contract (raystack.models.contract) ---------------------------------

    @property
    def streams(self) -> tuple[str, ...]:
        """``("fp",)`` or ``("fr",)``: one stream, named after the task."""
        return (self.config.task,)

    @property
    def context(self) -> int:
        """FP: the ``in_frames`` frames it predicts from; FR: 1 (the flow into the target)."""
        return self.config.context

    @property
    def needs_flow(self) -> bool:
        return self.config.task == "fr"

    @property
    def img_size(self) -> tuple[int, int]:
        return tuple(self.config.img_size)

    def score_batch(
        self, frames: torch.Tensor, flows: torch.Tensor | None = None, *, region: str = "frame"
    ) -> dict[str, StreamScores[torch.Tensor]]:
        """PSNR of the predicted target frame (FP) or of the reconstructed flow into it (FR).

        Args:
            frames: (B, context + 1, 3, H, W) in [-1, 1].
            flows: FR: (B, 1, 2, H, W) at ``raystack.flow.FLOW_SCALE``; FP ignores it.
            region: ``"frame"`` or ``"patch"`` (:func:`raystack.scoring.region_psnr`).
        """
        self.check_window(frames, flows)
        c = self.config
        if c.task == "fp":
            x, target = rearrange(frames[:, :-1], "b t c h w -> b (t c) h w"), frames[:, -1]
        else:
            from raystack.flow import rescale_flow

            x = target = rescale_flow(flows[:, -1], c.flow_scale)  # in this model's flow scale
        pred = self(x).pred
        with torch.autocast(device_type=pred.device.type, enabled=False):
            score, box, windows = region_outputs(pred.float(), target.float(), region)
        return {c.task: StreamScores(score, box=box, windows=windows)}

    def loss(
        self, output: VQMaUOutput, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """:func:`~raystack.models.losses.task_loss` of the task, relative to the trivial
        answer when ``config.relative_loss``."""
        c = self.config
        trivial = trivial_prediction(c.task, batch) if c.relative_loss else None
        return task_loss(c.task, output.pred, batch["y"], output.vq_loss, batch.get("prev"),
                         trivial)


def build_vqmau(config: VQMaUConfig, **factory_kwargs) -> VQMaU:
    """Builder registered for :class:`VQMaUConfig` in the model registry."""
    return VQMaU(config, **factory_kwargs)
