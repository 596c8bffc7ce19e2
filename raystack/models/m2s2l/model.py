"""M²S²L: the Mamba-based multi-scale spatial-temporal model (paper section II), assembled.

Input: the ``context`` frames before a target frame, (b, context, 3, H, W) in [-1, 1],
oldest first (context = longest temporal window + 1). Outputs: the predicted target frame
and the predicted motion field of the target frame, ``(I_t - I_{t-1}) / 2``.

    appearance: last frame --MultiScaleSpatialEncoder--> f_s (b, gh, gw, d) --+
    motion: frame differences --MultiScaleTemporalEncoder--> f_t -------------+-> fuse -> f
    f --FeatureDecomposition--> common c, appearance a, motion m
    memory banks (common, appearance, motion): q -> [q, read]
    AppearanceDecoder([c, c_read, a, a_read]) -> next frame
    MotionDecoder([c, c_read, m, m_read])     -> motion field

Every part can be switched off by config (``multi_scale_spatial``, ``multi_scale_temporal``,
``decomposition``, ``memory``); the module is then not built at all.

Contract (:mod:`raystack.models.contract`): ``score_batch(clip)`` takes ``context + 1``
frames (inputs plus target) and returns ``{"m2s2l_app": StreamScores(psnr, aux),
"m2s2l_mot": StreamScores(psnr, aux)}``, aux the memory distance. Training:
``loss(model(batch["x"]), batch)`` (DDP-safe) and ``training_loss(clip)`` return
``(total, parts)``.

    model = create_model("m2s2l.tiny")
    out = model(torch.rand(2, model.config.context, 3, 64, 64) * 2 - 1)
    out.pred.shape == out.motion.shape == (2, 3, 64, 64)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from einops import rearrange

from raystack.models.contract import StreamScores, TrainableModel
from raystack.models.m2s2l.config import STREAMS, M2S2LConfig
from raystack.models.m2s2l.decoder import AppearanceDecoder, MotionDecoder
from raystack.models.m2s2l.decompose import FeatureDecomposition
from raystack.models.m2s2l.memory import MemoryBank
from raystack.models.m2s2l.spatial import MultiScaleSpatialEncoder
from raystack.models.m2s2l.temporal import MultiScaleTemporalEncoder, frame_differences
from raystack.scoring import region_outputs


class M2S2LOutput(NamedTuple):
    pred: torch.Tensor  # (b, 3, H, W) predicted target frame in [-1, 1]
    motion: torch.Tensor  # (b, 3, H, W) predicted halved frame difference in [-1, 1]
    features: dict[str, torch.Tensor]  # decomposed parts (b, gh, gw, d): common/appearance/
    #                                    motion, or {"shared": f} without decomposition
    compact: torch.Tensor  # scalar: MNAD compactness, summed over banks (0 without memory)
    separate: torch.Tensor  # scalar: MNAD separateness, summed over banks
    distance: dict[str, torch.Tensor]  # per bank, (b,) mean squared distance to nearest item
    spatial_weights: torch.Tensor  # (b, n_spatial_scales) adaptive importance weights
    temporal_weights: torch.Tensor  # (b, n_temporal_scales, gh, gw) attention over scales


def clip_targets(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of a (b, context+1, c, H, W) clip: the last frame and its halved difference."""
    return clip[:, -1], (clip[:, -1] - clip[:, -2]) * 0.5


class M2S2L(nn.Module, TrainableModel):
    """The M²S²L model; build it from an :class:`M2S2LConfig` (see the module docstring)."""

    needs_flow = False  # motion is the frame difference: no optical flow backend

    def __init__(
        self,
        config: M2S2LConfig,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.config = c = config
        ssm = {"d_state": c.d_state, "expand": c.ssm_expand, "dt_rank": c.dt_rank,
               "norm_eps": c.norm_eps, **factory_kwargs}
        self.spatial = MultiScaleSpatialEncoder(
            c.spatial_frames * c.in_channels, c.dim,
            patch_sizes=tuple(c.patch_sizes[i] for i in c.scales),
            depths=tuple(c.spatial_depths[i] for i in c.scales), grid=c.grid,
            # The baseline's single encoder uses plain VSS blocks: no multi-kernel convs.
            kernels=c.ms_kernels if c.multi_scale_spatial else (),
            drop_path=c.drop_path, d_conv=c.d_conv, **ssm,
        )
        self.temporal = MultiScaleTemporalEncoder(
            c.in_channels, c.dim, windows=c.windows, patch_size=c.temporal_patch, grid=c.grid,
            depth=c.temporal_depth, d_conv=c.temporal_conv, dt_window_range=c.dt_window_range,
            **ssm,
        )
        # Spatial and temporal features meet here: concatenated, projected, normalised.
        self.fuse = nn.Linear(2 * c.dim, c.dim, **factory_kwargs)
        self.fuse_norm = nn.LayerNorm(c.dim, eps=c.norm_eps, **factory_kwargs)
        self.decompose = FeatureDecomposition(c.dim, **factory_kwargs) if c.decomposition else None
        banks = ("common", "appearance", "motion") if c.decomposition else ("shared",)
        self.memories = nn.ModuleDict(
            {name: MemoryBank(c.memory_items, c.dim, c.memory_margin, **factory_kwargs)
             for name in banks} if c.memory else {}
        )
        # Per decoder: the parts it reads, each as [query, memory read] when memory is on.
        parts = 2 if c.decomposition else 1
        in_ch = c.dim * parts * (2 if c.memory else 1)
        dec = {"dim": c.dim, "dims": c.decoder_dims, "convs": c.decoder_convs,
               "out_channels": c.in_channels, **factory_kwargs}
        self.appearance_decoder = AppearanceDecoder(in_ch, **dec)
        self.motion_decoder = MotionDecoder(in_ch, **dec)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # Transformer-style init for plain linears (as VQ-MaU); the SSM parameters (A, D,
        # dt bias) are not touched and keep their Mamba init. dt_proj keeps its own init.
        if isinstance(m, nn.Linear) and not getattr(m.bias, "_no_reinit", False):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # --- properties the scorer and the training loop read ---------------------------------

    @property
    def context(self) -> int:
        """Input frames before each target frame (longest window + 1)."""
        return self.config.context

    @property
    def streams(self) -> tuple[str, ...]:
        """Stream names :meth:`score_batch` returns: ``("m2s2l_app", "m2s2l_mot")``."""
        return STREAMS

    @property
    def img_size(self) -> tuple[int, int]:
        return tuple(self.config.img_size)

    # --- forward ----------------------------------------------------------------------------

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.dim() == 4 and x.shape[1] == c.context * c.in_channels:
            x = rearrange(x, "b (t c) h w -> b t c h w", c=c.in_channels)
        expected = (c.context, c.in_channels, *c.img_size)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            msg = (f"M2S2L expects input (batch, {', '.join(map(str, expected))}): the "
                   f"{c.context} frames before the target at img_size {c.img_size}; got "
                   f"{tuple(x.shape)}")
            raise ValueError(msg)
        return x

    def forward(self, x: torch.Tensor) -> M2S2LOutput:
        """x: (b, context, 3, H, W) in [-1, 1], oldest first -> :class:`M2S2LOutput`."""
        c = self.config
        x = self._check_input(x)
        appearance_in = rearrange(x[:, -c.spatial_frames:], "b t c h w -> b (t c) h w")
        f_s, spatial_w = self.spatial(appearance_in)  # (b, gh, gw, d), (b, s)
        f_t, temporal_w = self.temporal(frame_differences(x))  # (b, gh, gw, d), (b, s, gh, gw)
        f = self.fuse_norm(self.fuse(torch.cat([f_s, f_t], dim=-1)))  # (b, gh, gw, d)

        if self.decompose is not None:
            common, appearance, motion = self.decompose(f)
            features = {"common": common, "appearance": appearance, "motion": motion}
            app_parts, mot_parts = ("common", "appearance"), ("common", "motion")
        else:
            features = {"shared": f}
            app_parts = mot_parts = ("shared",)

        zero = f.new_zeros((), dtype=torch.float32)
        compact, separate, distance = zero, zero, {}
        inputs: dict[str, list[torch.Tensor]] = {}
        for name, feat in features.items():
            if name in self.memories:
                mem = self.memories[name](feat)
                inputs[name] = [mem.query, mem.read]
                compact = compact + mem.compact
                separate = separate + mem.separate
                distance[name] = mem.distance
            else:
                inputs[name] = [feat]
        app_in = torch.cat([t for p in app_parts for t in inputs[p]], dim=-1)
        mot_in = torch.cat([t for p in mot_parts for t in inputs[p]], dim=-1)
        return M2S2LOutput(
            pred=self.appearance_decoder(app_in),
            motion=self.motion_decoder(mot_in),
            features=features, compact=compact, separate=separate, distance=distance,
            spatial_weights=spatial_w, temporal_weights=temporal_w,
        )

    # --- hooks for scoring and training -------------------------------------------------------

    def _check_clip(self, clip: torch.Tensor) -> torch.Tensor:
        c = self.config
        expected = (c.context + 1, c.in_channels, *c.img_size)
        if clip.dim() != 5 or tuple(clip.shape[1:]) != expected:
            msg = (f"M2S2L clips are (batch, {', '.join(map(str, expected))}): "
                   f"{c.context} input frames plus the target; got {tuple(clip.shape)}")
            raise ValueError(msg)
        return clip

    def score_batch(
        self, clip: torch.Tensor, flows: torch.Tensor | None = None, *, region: str = "frame"
    ) -> dict[str, StreamScores[torch.Tensor]]:
        """Per-clip scores of the last frame of each clip.

        Args:
            clip: (b, context + 1, 3, H, W) in [-1, 1]: the inputs, then the target frame.
            flows: ignored (``needs_flow`` is False: motion is the frame difference).
            region: ``"frame"`` (whole-frame PSNR, the paper), ``"patch"`` (worst patch,
                :func:`raystack.scoring.region_psnr`) or ``"calibrated"`` (also the window
                errors, :func:`raystack.scoring.region_windows`).

        Returns:
            ``{"m2s2l_app": StreamScores(psnr, aux), "m2s2l_mot": ...}``, each a float32
            (b,) tensor: appearance PSNR of the predicted frame, motion PSNR of the
            predicted frame difference (:func:`raystack.scoring.psnr`), and as aux the
            memory distance of the banks each decoder reads (NaN without memory).
        """
        clip = self._check_clip(clip)
        out = self(clip[:, :-1])
        frame, motion = clip_targets(clip)
        with torch.autocast(device_type=clip.device.type, enabled=False):
            app, app_box, app_w = region_outputs(out.pred.float(), frame.float(), region)
            mot, mot_box, mot_w = region_outputs(out.motion.float(), motion.float(), region)
        d = out.distance

        def aux(parts: tuple[str, ...]) -> torch.Tensor:
            have = [d[p].float() for p in parts if p in d]
            return torch.stack(have).mean(dim=0) if have else torch.full_like(app, float("nan"))

        if self.decompose is None:  # one shared feature and bank serve both decoders
            return {STREAMS[0]: StreamScores(app, aux(("shared",)), app_box, app_w),
                    STREAMS[1]: StreamScores(mot, aux(("shared",)), mot_box, mot_w)}
        return {
            STREAMS[0]: StreamScores(app, aux(("common", "appearance")), app_box, app_w),
            STREAMS[1]: StreamScores(mot, aux(("common", "motion")), mot_box, mot_w),
        }

    def loss(self, output: M2S2LOutput, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """:func:`~raystack.models.m2s2l.losses.m2s2l_loss` with this model's weights.

        A training loop calls the (possibly DDP-wrapped) model on the inputs, then this on
        the unwrapped one, so gradient synchronisation still goes through the wrapper.

        Args:
            output: ``model(inputs)``.
            batch: a (b, context + 1, 3, H, W) clip, ``{"frames": clip}``, or the
                frame-prediction form ``{"x": inputs, "y": target}``.
        """
        from raystack.models.m2s2l.losses import m2s2l_loss

        return m2s2l_loss(output, batch, self.config)

    def training_loss(
        self, batch: torch.Tensor | Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Forward and :meth:`loss` on a clip (single process; not through a DDP wrapper).

        Args:
            batch: a (b, context + 1, 3, H, W) clip in [-1, 1], or a mapping with it
                under ``"frames"``.
        """
        clip = batch["frames"] if isinstance(batch, Mapping) else batch
        clip = self._check_clip(clip)
        return self.loss(self(clip[:, :-1]), clip)


def build_m2s2l(config: M2S2LConfig, **factory_kwargs) -> M2S2L:
    """Builder registered for :class:`M2S2LConfig` in the model registry."""
    return M2S2L(config, **factory_kwargs)
