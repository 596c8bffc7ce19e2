"""Training of VQ-MaU streams on normal footage: a plain-Python loop, or Ray Train with DDP.

    from raystack.train import TrainConfig, train
    result = train(TrainConfig(archive="synth/train", model="fp+fr", preset="small",
                               epochs=6, workers=2, name="demo"))
    result.checkpoints     # {"fp": "runs/demo/fp.pt", "fr": "runs/demo/fr.pt"} -> raystack scan

Modules, in data-flow order: ``config`` (TrainConfig), ``data`` (clips, held-out split,
fingerprint), ``loop`` (the plain training loop, checkpoints, selection rule), ``storage``
(the run folder, local or S3), ``ray_train`` (the Ray Train adapter), ``progress``
(console display), ``run`` (``train``).
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: the CLI reads the config's defaults for --help without torch.
_LAZY = {
    "TrainConfig": "raystack.train.config",
    "load_train_config": "raystack.train.config",
    "TrainResult": "raystack.train.run",
    "train": "raystack.train.run",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module 'raystack.train' has no attribute {name!r}"
    raise AttributeError(msg)
