"""The synthetic store of bench/events_bench.py: many videos of FRAMES frames, one stream
(``fp``), PSNR around 32 dB with a few dips of 20-200 frames per video.

    generate(Path("/tmp/ev/store_1000000"), 1_000_000)   # 20 files of ROWS_PER_FILE rows

The store is written in schema v1 (its marker and files), which every raystack since
reads, so ``events_bench.py --baseline REF`` of a commit before schema v2 measures the same
store as this tree (which reads the v2 region columns as NULL). A whole-frame scan of
``fp`` has no location either, so the query does the same work on either version.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

FRAMES = 5000
ROWS_PER_FILE = 50_000  # 10 videos per file, like a work unit of a few long videos


def write_v1(root: Path, run: str, name: str, table: pa.Table) -> None:
    """Write ``table`` (the v1 scores columns) as schema-v1 raystack wrote it, with the
    store's v1 marker: ``root/scores/run=<run>/<name>.parquet``."""
    import json

    import pyarrow.parquet as pq

    from raystack.store import table_schema

    folder = root / "scores" / f"run={run}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (root / "_raystack.json").exists():
        (root / "_raystack.json").write_text(json.dumps({"schema_version": 1}))
    pq.write_table(table.cast(table_schema("scores", 1)), folder / f"{name}.parquet",
                   compression="zstd")


def generate(root: Path, rows: int, seed: int = 0) -> Path:
    """A store with ``rows`` score rows in files of ROWS_PER_FILE, made a file at a time."""
    from raystack.store import table_schema

    marker = root / "scores" / f".complete-{rows}"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    schema = table_schema("scores", 1)
    rng = np.random.default_rng(seed)
    per_file = ROWS_PER_FILE // FRAMES
    n_videos = rows // FRAMES
    frame = np.tile(np.arange(FRAMES, dtype=np.int64), per_file)
    for first in range(0, n_videos, per_file):
        vids = [f"cam{v:06d}" for v in range(first, min(first + per_file, n_videos))]
        n = len(vids) * FRAMES
        psnr = 32.0 + rng.normal(0.0, 1.0, n)
        # A few anomalies per video: dips of 20-200 frames.
        for k in range(len(vids)):
            for _ in range(rng.integers(1, 6)):
                s = k * FRAMES + int(rng.integers(0, FRAMES - 200))
                psnr[s: s + int(rng.integers(20, 200))] -= rng.uniform(2.0, 6.0)
        table = pa.table({
            "run_id": pa.array(["bench"] * n), "video_id": pa.array(np.repeat(vids, FRAMES)),
            "frame": frame[:n], "timestamp_s": frame[:n] / 25.0, "model": pa.array(["fp"] * n),
            "psnr": psnr.astype(np.float32), "aux": pa.nulls(n, pa.float32())}, schema=schema)
        write_v1(root, "bench", f"u{first:07d}", table)
    marker.write_text("ok\n")
    return root
