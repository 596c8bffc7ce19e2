"""Training of VQ-MaU streams on normal footage: a plain-Python loop, or Ray Train with DDP.

    from raystack.train import TrainConfig, train
    result = train(TrainConfig(archive="synth/train", model="fp+fr", preset="small",
                               epochs=6, workers=2, name="demo"))
    result.checkpoints     # {"fp": "runs/demo/fp.pt", "fr": "runs/demo/fr.pt"} -> raystack scan

Modules, in data-flow order: ``config`` (TrainConfig), ``data`` (clips, held-out split,
fingerprint), ``loop`` (the plain training loop), ``metrics`` (epoch metrics, validation
against the trivial baseline), ``checkpoints`` (epoch checkpoints, selection rule),
``storage`` (the run folder, local or S3), ``ray_train`` (the Ray Train adapter),
``progress`` (console display), ``run`` (``train``).
"""

from __future__ import annotations

from raystack.lazy import lazy_attributes

# Imported on first use: the CLI reads the config's defaults for --help without torch.
_LAZY = {
    "TrainConfig": "raystack.train.config",
    "load_train_config": "raystack.train.config",
    "TrainResult": "raystack.train.run",
    "train": "raystack.train.run",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_attributes(__name__, _LAZY)
