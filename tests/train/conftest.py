"""Fixtures of the training tests: one tiny synthetic archive and tiny, fast configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from raystack.train.config import TrainConfig


@pytest.fixture(scope="session")
def synth_archive(tmp_path_factory) -> Path:
    """2 normal training videos and 1 test video of 20 frames at 64x64."""
    from raystack.synth import synthesize

    out = tmp_path_factory.mktemp("train-synth")
    synthesize(out, seed=0, n_train=2, n_test=1, frames=20, size=(64, 64))
    return out


@pytest.fixture
def tiny_cfg(synth_archive, tmp_path):
    """A factory of small, fast configs: the tiny preset at 32x32, a few steps an epoch."""

    def make(**overrides) -> TrainConfig:
        base = TrainConfig(
            archive=str(synth_archive / "train"), model="fp", preset="tiny",
            model_overrides={"img_size": (32, 32)}, epochs=2, batch_size=4, clips_per_epoch=8,
            val_fraction=0.2, val_clips=8, storage=str(tmp_path / "runs"), name="t",
            progress=False,
        )
        return dataclasses.replace(base, **overrides)

    return make
