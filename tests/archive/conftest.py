"""Fixtures of the archive tests: a tiny synthetic archive and an archive of bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raystack.synth import synthesize, write_frames, write_video


def moving_frames(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    """Frames whose content changes with the index (a bar moving right)."""
    out = []
    for i in range(n):
        f = np.full((h, w, 3), (30, 90, 40), np.uint8)
        x = (3 * i) % (w - 6)
        f[h // 4 : h // 2, x : x + 6] = (250, 250, 250)
        out.append(f)
    return out


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory) -> Path:
    """2 train + 2 test mp4 videos of 24 frames at 64x48."""
    out = tmp_path_factory.mktemp("tiny") / "archive"
    synthesize(out, seed=3, n_train=2, n_test=2, frames=24, size=(64, 48))
    return out


@pytest.fixture(scope="session")
def bad_archive(tmp_path_factory) -> Path:
    """Every bad or awkward input the issue lists, next to one good video."""
    root = tmp_path_factory.mktemp("bad")
    write_video(root / "good.mp4", moving_frames(20))
    (root / "zero.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    good = (root / "good.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(good[: len(good) // 2])  # moov atom lost
    write_video(
        root / "faststart.mp4", moving_frames(60), container_options={"movflags": "faststart"}
    )
    data = (root / "faststart.mp4").read_bytes()
    (root / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])  # index kept, data cut
    (root / "faststart.mp4").unlink()
    write_video(root / "three.mp4", moving_frames(3))
    gray = [f[..., 1].copy() for f in moving_frames(12)]
    write_video(root / "gray.mkv", gray, codec="ffv1", pix_fmt="gray")
    write_video(root / "odd.mp4", moving_frames(10, w=317, h=211))
    frames = root / "frames"
    write_frames(frames, moving_frames(12), ext=".jpg")
    (frames / "notes.txt").write_text("stray file in a frame folder\n")
    (frames / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "empty_folder").mkdir()
    (root / "README.txt").write_text("not a video\n")
    return root
