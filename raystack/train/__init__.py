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

from raystack.train.config import TrainConfig, load_train_config
from raystack.train.run import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_train_config", "train"]
