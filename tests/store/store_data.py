"""Small tables that fit the v1 schemas, shared by the store tests."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa


def scores(run_id: str = "r1", start: int = 16, n: int = 3, psnr: float = 30.0) -> pa.Table:
    frames = list(range(start, start + n))
    return pa.table({
        "run_id": [run_id] * n,
        "video_id": ["cam01-0badf00d"] * n,
        "frame": frames,
        "timestamp_s": [f / 25 for f in frames],
        "model": ["fp"] * n,
        "psnr": pa.array([psnr + i for i in range(n)], pa.float32()),
        "aux": pa.array([None] * n, pa.float32()),
    })


def videos() -> pa.Table:
    return pa.table({
        "video_id": ["cam01-0badf00d"],
        "uri": ["s3://cams/cam01.mp4"],
        "relpath": ["cam01.mp4"],
        "kind": ["video"],
        "size_bytes": [1234],
        "etag": ["abc"],
        "mtime": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)],
        "frames": [250],
        "fps": [25.0],
        "width": [360],
        "height": [240],
        "duration_s": [10.0],
        "codec": ["mp4v"],
        "probe_error": [None],
    })


def manifest_rows(run_id: str = "r1") -> pa.Table:
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return pa.table({
        "run_id": [run_id],
        "unit_id": ["cam01-16-19"],
        "video_id": ["cam01-0badf00d"],
        "uri": ["s3://cams/cam01.mp4"],
        "start_frame": [16],
        "end_frame": [19],
        "status": ["done"],
        "rows": [3],
        "error": [None],
        "worker": ["host:1"],
        "attempt": [1],
        "started_at": [now],
        "finished_at": [now],
        "decode_s": [0.1],
        "flow_s": [None],
        "model_s": [0.2],
        "write_s": [0.01],
        "failure_kind": [None],
        "warning": pa.array([None], pa.string()),
    })
