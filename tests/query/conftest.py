"""Stores of random score tables for the query-layer tests, written through the Store API."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raystack.store import Store, table_schema


def score_table(run_id: str, video_id: str, model: str, frames: np.ndarray, psnr: np.ndarray,
                fps: float = 25.0) -> pa.Table:
    n = len(frames)
    return pa.table({
        "run_id": [run_id] * n, "video_id": [video_id] * n,
        "frame": np.asarray(frames, np.int64), "timestamp_s": np.asarray(frames) / fps,
        "model": [model] * n, "psnr": np.asarray(psnr, np.float32), "aux": [None] * n,
    }, schema=table_schema("scores", 1))


def videos_table(rows: list[dict]) -> pa.Table:
    full = [dict(uri=f"/archive/{r['relpath']}", kind="video", size_bytes=1, etag=None, mtime=None,
                 fps=25.0, width=64, height=64, duration_s=r["frames"] / 25.0, codec="mpeg4",
                 probe_error=None, **r) for r in rows]
    return pa.Table.from_pylist(full, schema=table_schema("videos"))


def write_scores(st: Store, run_id: str, data: dict) -> None:
    """data: {(video_id, model): (frames, psnr)}; one file per (video, model) like a unit."""
    for (video_id, model), (frames, psnr) in data.items():
        st.write_table("scores", run_id, f"{video_id}-{model}",
                       score_table(run_id, video_id, model, frames, psnr))


def random_run(rng: np.random.Generator, lengths: dict[str, int], models=("fp", "fr"),
               start: dict[str, int] | None = None) -> dict:
    """Random PSNR per (video, model); fp starts at frame 16 and fr at 1 by default, like a scan."""
    start = start or {"fp": 16, "fr": 1}
    data = {}
    for vid, n in lengths.items():
        for m in models:
            s = start.get(m, 0)
            frames = np.arange(s, s + n)
            psnr = rng.normal(30, 4, n)
            if n > 3:
                psnr[rng.integers(0, n)] = psnr.max()  # a tie at the max, as real data has
            data[(vid, m)] = (frames, psnr)
    return data


@pytest.fixture(name="write_scores")
def write_scores_fixture():
    """The :func:`write_scores` helper, for tests (conftest modules are not importable)."""
    return write_scores


@pytest.fixture
def labelled_store(tmp_path):
    """Run 'test': three videos (fp + fr scored from frame 16 as a scan does) whose PSNR
    drops inside labelled anomalies, plus flat labels over all their frames in sorted
    relpath order; run 'normal': the same cameras without anomalies, to calibrate on."""
    rng = np.random.default_rng(11)
    st = Store(tmp_path / "store").ensure()
    lengths = {"cam2.mp4": 90, "cam1.mp4": 120, "cam3.mp4": 60}
    rows, flat = [], []
    for rel in sorted(lengths):
        n = lengths[rel]
        vid = rel.split(".")[0] + "-id"
        rows.append({"video_id": vid, "relpath": rel, "frames": n})
        lab = np.zeros(n, np.int64)
        lab[n // 2 : n // 2 + 12] = 1
        flat.append(lab)
        for m, noise in (("fp", 1.0), ("fr", 2.0)):
            f = np.arange(16, n)
            psnr = 32 + rng.normal(0, noise, f.size) - 6 * lab[f]
            write_scores(st, "test", {(vid, m): (f, psnr)})
            write_scores(st, "normal", {(vid, m): (f, 32 + rng.normal(0, noise, f.size))})
    st.write_table("videos", "test", "videos", videos_table(rows))
    np.save(tmp_path / "frame_labels_cams.npy", np.concatenate(flat))
    return st, tmp_path / "frame_labels_cams.npy"


@pytest.fixture
def random_store(tmp_path):
    """Two runs of random scores: run r1 (fp + fr, several video lengths, incl. 1-3 frames,
    shorter than any smoothing kernel) and run r2 (fp only)."""
    rng = np.random.default_rng(7)
    st = Store(tmp_path / "store").ensure()
    r1 = random_run(rng, {"cam-a": 120, "cam-b": 37, "cam-c": 3, "cam-d": 2, "cam-e": 1,
                          "cam-f": 9})
    r2 = random_run(rng, {"cam-a": 60, "cam-z": 25}, models=("fp",))
    write_scores(st, "r1", r1)
    write_scores(st, "r2", r2)
    return st, {"r1": r1, "r2": r2}
