"""M²S²L (Mamba-based multi-scale spatial-temporal learning), registered as family ``m2s2l``.

Importing this package registers the family and its presets (``m2s2l.ped2``,
``m2s2l.avenue``, ``m2s2l.shanghaitech``, alias ``m2s2l.paper``, and ``m2s2l.tiny``) with
the model registry; ``raystack.models`` imports it.

    from raystack.models import create_model
    model = create_model("m2s2l.tiny")
    scores = model.eval().score_batch(torch.rand(2, model.context + 1, 3, 64, 64) * 2 - 1)
    scores["m2s2l_app"][0].shape == (2,)          # PSNR; [1] is the memory distance (aux)
"""

from __future__ import annotations

from raystack.models.m2s2l.config import STREAMS, M2S2LConfig
from raystack.models.m2s2l.decoder import AppearanceDecoder, MotionDecoder
from raystack.models.m2s2l.decompose import FeatureDecomposition
from raystack.models.m2s2l.losses import batch_targets, m2s2l_loss, separation_loss
from raystack.models.m2s2l.memory import MemoryBank, memory_losses, memory_read, memory_update
from raystack.models.m2s2l.model import M2S2L, M2S2LOutput, build_m2s2l, clip_targets
from raystack.models.m2s2l.presets import ALIASES, PAPER_GFLOPS, PAPER_PARAMS, PRESETS
from raystack.models.m2s2l.spatial import MSVSSBlock, MultiScaleSpatialEncoder, SpatialEncoder
from raystack.models.m2s2l.temporal import (
    MultiScaleTemporalEncoder,
    ScaleAttention,
    TemporalEncoder,
    TemporalMambaBlock,
    frame_differences,
)
from raystack.models.registry import register_family, register_preset

register_family("m2s2l", M2S2LConfig, build_m2s2l)
for _name, _cfg in PRESETS.items():
    register_preset(_name, _cfg, aliases=tuple(a for a, n in ALIASES.items() if n == _name))

__all__ = [
    "ALIASES",
    "PAPER_GFLOPS",
    "PAPER_PARAMS",
    "PRESETS",
    "STREAMS",
    "AppearanceDecoder",
    "FeatureDecomposition",
    "M2S2L",
    "M2S2LConfig",
    "M2S2LOutput",
    "MSVSSBlock",
    "MemoryBank",
    "MotionDecoder",
    "MultiScaleSpatialEncoder",
    "MultiScaleTemporalEncoder",
    "ScaleAttention",
    "SpatialEncoder",
    "TemporalEncoder",
    "TemporalMambaBlock",
    "batch_targets",
    "build_m2s2l",
    "clip_targets",
    "frame_differences",
    "m2s2l_loss",
    "memory_losses",
    "memory_read",
    "memory_update",
    "separation_loss",
]
