"""Models of raystack: VQ-MaU (VADMamba FP/FR) and the registry other families plug into.

    from raystack.models import create_model, list_models
    list_models("*.tiny")                          # ['vqmau_fp.tiny', 'vqmau_fr.tiny']
    model = create_model("vqmau_fp.paper")         # 256x256, t=16 -> next frame (b, 3, 256, 256)

Every family implements one contract (``ScoringModel`` / ``TrainableModel`` of
:mod:`raystack.models.contract`): ``streams``, ``context``, ``needs_flow``,
``score_batch(frames, flows) -> {stream: StreamScores}`` and ``loss(output, batch)``.

``python -m raystack.models`` prints every preset with its parameter count.
"""

from __future__ import annotations

import importlib
import importlib.util

from raystack.models.checkpoint import checkpoint_hash, load_checkpoint, save_checkpoint
from raystack.models.contract import ScoringModel, StreamScores, TrainableModel
from raystack.models.registry import (
    create_model,
    get_config,
    list_models,
    register_family,
    register_preset,
)
from raystack.models.vqmau import VQMaU, VQMaUConfig

# Modules that register a family and its presets on import. A family added later (e.g.
# M2S2L in raystack/models/m2s2l.py calling register_family/register_preset) is picked up
# here when its module exists, without touching the VQ-MaU code.
_FAMILY_MODULES = ("raystack.models.presets", "raystack.models.m2s2l")
for _module in _FAMILY_MODULES:
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module)

__all__ = [
    "ScoringModel",
    "StreamScores",
    "TrainableModel",
    "VQMaU",
    "VQMaUConfig",
    "checkpoint_hash",
    "create_model",
    "get_config",
    "list_models",
    "load_checkpoint",
    "register_family",
    "register_preset",
    "save_checkpoint",
]
