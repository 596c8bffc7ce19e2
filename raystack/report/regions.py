"""Which frames of an event the report shows, and their boxes, read from the store.

    frames = strip_frames(120, 180, n=8)          # [120, 129, ..., 180], evenly, no repeats
    args = {"fusion": "weighted", "alpha": 0.5, "streams": ["fp", "fr"], "run": "r1"}
    regions = frame_regions(con, args, [("cam01-1a2b", 150), ...])
    regions[("cam01-1a2b", 150)]                   # {"box_x0": ..., "patch_y1": ...}

A fused score has no box of its own; which stream's box a fused frame shows is the SQL
``fused()`` macro's rule (schemas/sql/v3_query.sql), and the report asks ``fused()`` for
it rather than restating it. v1 rows give regions whose boxes are NULL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raystack.report.boxes import REGION_COLUMNS


def strip_frames(start: int, end: int, n: int) -> list[int]:
    """Up to ``n`` frames evenly over the inclusive span, first and last included."""
    if n <= 0:
        return []
    return sorted({int(f) for f in np.linspace(start, end, n).round()})


def peak_frame(curve: dict | None, start: int, end: int) -> int:
    """The frame of the curve's maximum within the inclusive span (its start if unscored)."""
    if curve is None:
        return int(start)
    f, s = curve["frames"], curve["scores"]
    sel = (f >= start) & (f <= end)
    return int(f[sel][np.argmax(s[sel])]) if sel.any() else int(start)


def frame_regions(con: Any, fusion_args: dict,
                  wanted: list[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    """(video_id, frame) -> the region columns ``fused()`` gives the frame.

    ``fusion_args``: ``fused()``'s fusion, alpha, streams and run (a ``sigma`` is ignored).
    Frames ``fused()`` leaves out (a multi-stream fusion keeps frames every stream scored)
    get no entry."""
    if not wanted:
        return {}
    cols = ", ".join(f"f.{c}" for c in REGION_COLUMNS)
    # sigma := 0: fused() picks a frame's region on the anomaly before smoothing, so the
    # smoothing the curves need would change no box here, only cost a second pass.
    sql = f"""
        WITH want AS (SELECT unnest(?::VARCHAR[]) AS video_id, unnest(?::BIGINT[]) AS frame)
        SELECT f.video_id, f.frame, {cols}
        FROM fused(fusion := ?, alpha := ?, streams := ?, sigma := 0, run := ?) AS f
        JOIN want AS w ON w.video_id = f.video_id AND w.frame = f.frame
    """
    vids = [v for v, _ in wanted]
    frames = [int(f) for _, f in wanted]
    params = [vids, frames, fusion_args["fusion"], fusion_args["alpha"],
              list(fusion_args["streams"]), fusion_args["run"]]
    rows = con.sql(sql, params=params).to_arrow_table()
    return {(r.pop("video_id"), int(r.pop("frame"))): r for r in rows.to_pylist()}
