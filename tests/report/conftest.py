"""A tiny real archive and a store of score rows with one clear dip per video."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raystack.store import Store, table_schema


def write_run(store: Store, videos: pa.Table, run: str = "r1", seed: int = 0) -> dict:
    """fp and fr score rows from frame 16 with a dip over frames 25-32 of every video."""
    rng = np.random.default_rng(seed)
    store.write_table("videos", run, "videos", videos)
    dips = {}
    for row in videos.to_pylist():
        frames = np.arange(16, row["frames"])
        psnr = 32 + rng.normal(0, 0.05, len(frames))
        psnr[(frames >= 25) & (frames <= 32)] -= 6
        dips[row["video_id"]] = (25, 32)
        for model, off in (("fp", 0.0), ("fr", 1.0)):
            t = pa.table({
                "run_id": [run] * len(frames), "video_id": [row["video_id"]] * len(frames),
                "frame": frames, "timestamp_s": frames / row["fps"],
                "model": [model] * len(frames), "psnr": (psnr + off).astype(np.float32),
                "aux": [None] * len(frames)}, schema=table_schema("scores", 1))
            store.write_table("scores", run, f"{row['video_id']}-{model}", t)
    return dips


@pytest.fixture(name="write_run")
def write_run_fixture():
    """The :func:`write_run` helper, for tests (conftest modules are not importable)."""
    return write_run


@pytest.fixture(scope="session")
def scanned_store(tmp_path_factory):
    """A tiny real archive, its probed videos table, and score rows with one clear dip."""
    from raystack.scan.probe import probe_archive
    from raystack.synth import synthesize

    root = tmp_path_factory.mktemp("report")
    synthesize(root / "arch", n_train=0, n_test=2, frames=40, size=(64, 64), seed=3)
    videos = probe_archive(str(root / "arch" / "test"))
    store = Store(root / "store")
    dips = write_run(store, videos)
    return store, videos, dips
