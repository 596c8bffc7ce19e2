"""Scores a benchmark computed in its own process, written as a run of a store, so that their
AUC comes from ``raystack eval`` (raystack.eval.evaluate) like every other AUC of raystack.

    run = write_scored_run(workdir / "auc-store", "auc-small", videos, psnr, first_frame=4)
    evaluate(run.store, run.labels, run.run_id, fusion="weighted:0.5:fp,fr", sigma=10)

``videos`` are ``{"name": relpath, "labels": 0/1 per frame of the whole video}`` in any
order; ``psnr[stream][i]`` is the PSNR of video i at frames ``first_frame ..`` (one value
per frame to the end of the video).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class ScoredRun:
    store: str  # the store's folder
    run_id: str
    labels: Path  # flat .npy over the videos in relpath order, as raystack eval reads it


def write_scored_run(root: Path, run_id: str, videos: list[dict],
                     psnr: dict[str, list[np.ndarray]], *, first_frame: int,
                     fps: float = 25.0) -> ScoredRun:
    """A fresh store at ``root`` holding one run: its videos table and one score file per
    (video, stream), plus the flat label file of those videos."""
    from raystack.store import Store, table_schema

    shutil.rmtree(root, ignore_errors=True)
    st = Store(root).ensure()
    n_frames = [len(v["labels"]) for v in videos]
    ids = [f"v{i:04d}" for i in range(len(videos))]
    st.write_table("videos", run_id, "videos", pa.Table.from_pylist([
        dict(video_id=vid, uri=f"/bench/{v['name']}", relpath=v["name"], kind="video",
             size_bytes=0, etag=None, mtime=None, frames=n, fps=fps, width=None, height=None,
             duration_s=n / fps, codec=None, probe_error=None)
        for vid, v, n in zip(ids, videos, n_frames, strict=True)], schema=table_schema("videos")))
    for stream, per_video in psnr.items():
        for vid, p, n in zip(ids, per_video, n_frames, strict=True):
            frames = np.arange(first_frame, n, dtype=np.int64)
            if len(p) != len(frames):
                msg = f"{stream} of {vid}: {len(p)} scores for frames {first_frame}..{n - 1}"
                raise ValueError(msg)
            st.write_table("scores", run_id, f"{vid}-{stream}", pa.table({
                "run_id": [run_id] * len(frames), "video_id": [vid] * len(frames),
                "frame": frames, "timestamp_s": frames / fps, "model": [stream] * len(frames),
                "psnr": np.asarray(p, np.float32), "aux": pa.nulls(len(frames), pa.float32())},
                schema=table_schema("scores", 1)))
    order = sorted(range(len(videos)), key=lambda i: videos[i]["name"])
    labels = root / "frame_labels.npy"
    np.save(labels, np.concatenate([np.asarray(videos[i]["labels"], np.int64) for i in order]))
    return ScoredRun(store=str(root), run_id=run_id, labels=labels)
