"""Idle time for synthetic test videos: long stretches of the empty scene around the action.

A fixed camera watches an empty scene most of the night. ``synthesize(..., idle=0.7)``
renders each test video's people and anomaly in ``active_frames(frames, 0.7)`` frames and
places them at a seeded offset inside ``frames`` frames of the empty background with sensor
noise, so about 70% of the video shows nothing moving (what motion gating and
``bench/gating_bench.py`` are about). Labels and boxes shift with the offset; idle frames
are normal.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Sensor noise of an idle frame, in grey levels (the scenes' own frames carry 2 to 2.5).
IDLE_NOISE = 2.0


def active_frames(frames: int, idle: float) -> int:
    """Frames that show the scene's action in a video of ``frames`` with ``idle`` share idle
    (at least 8, the shortest video a scene renders)."""
    if not 0 <= idle < 1:
        msg = f"idle = {idle}: the share of a video without action must be in [0, 1)"
        raise ValueError(msg)
    return min(frames, max(8, round((1 - idle) * frames)))


def pad_idle(active: Iterator[np.ndarray], background: np.ndarray, frames: int, n_active: int,
             rng: np.random.Generator, labels: list[int], boxes: list) -> Iterator[np.ndarray]:
    """Yield ``frames`` frames: idle ones, the ``n_active`` frames of ``active`` at a random
    offset, idle ones; ``labels`` and ``boxes`` (filled by ``active`` as it yields) get a 0
    and no box for every idle frame, in order."""
    offset = int(rng.integers(0, frames - n_active + 1))
    noise = np.random.default_rng(rng.integers(2**63))
    base = np.asarray(background, np.float32)

    def empty(n: int) -> Iterator[np.ndarray]:
        for _ in range(n):
            labels.append(0)
            boxes.append([])
            yield np.clip(base + noise.normal(0.0, IDLE_NOISE, base.shape), 0, 255).astype(
                np.uint8)

    yield from empty(offset)
    yield from active
    yield from empty(frames - n_active - offset)
