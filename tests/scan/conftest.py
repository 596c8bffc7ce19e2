"""Fixtures of the scan tests: tiny random-weight checkpoints and tiny synthetic archives.

Untrained weights are enough here: what is tested is the pipeline, and the scores are
still real computations of a real model.
"""

from __future__ import annotations

import numpy as np
import pytest

FRAMES = 24  # frames per synthetic video: context 4 (tiny FP) leaves 20 to score
SIZE = (64, 64)  # the tiny presets' input size, so decoding does not resize
HALF_FRAMES, HALF_MOVING = 40, 20  # the half_static clip: the first 20 frames move


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """``{"fp": path, "fr": path}`` of tiny VQ-MaU checkpoints with fixed random weights."""
    import torch

    from raystack.models import create_model, save_checkpoint

    d = tmp_path_factory.mktemp("ckpt")
    out = {}
    for task in ("fp", "fr"):
        torch.manual_seed(0)
        name = f"vqmau_{task}.tiny"
        out[task] = str(save_checkpoint(d / f"{task}.pt", create_model(name), preset=name,
                                        data_fingerprint="random"))
    return out


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory):
    """A folder of 3 synthetic test videos of FRAMES frames at 64x64 (mp4)."""
    from raystack.synth import synthesize

    d = tmp_path_factory.mktemp("archive")
    synthesize(d, seed=0, n_train=0, n_test=3, frames=FRAMES, size=SIZE)
    return d / "test"


@pytest.fixture(scope="session")
def wide_archive(tmp_path_factory):
    """One synthetic test video of FRAMES frames at 320x240: a camera bigger than a tile."""
    from raystack.synth import synthesize

    d = tmp_path_factory.mktemp("wide")
    synthesize(d, seed=1, n_train=0, n_test=1, frames=FRAMES, size=(320, 240))
    return d / "test"


@pytest.fixture(scope="session")
def half_static(tmp_path_factory):
    """A PNG frame folder (lossless, so the still half is exactly still): a bright square
    crossing a textured background for HALF_MOVING frames, then the last of them repeated."""
    import cv2

    d = tmp_path_factory.mktemp("half") / "cam"
    d.mkdir()
    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), np.uint8), (5, 5), 0)
    for i in range(HALF_FRAMES):
        f = bg.copy()
        x = 4 + 2 * min(i, HALF_MOVING - 1)
        f[20:36, x : x + 12] = 250
        cv2.imwrite(str(d / f"{i:03d}.png"), f)
    return d.parent
