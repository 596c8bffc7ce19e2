"""Which frames of an event the report shows, and their boxes, read from the store.

    frames = strip_frames(120, 180, n=8)          # [120, 129, ..., 180], evenly, no repeats
    regions = frame_regions(con, "r1", ["fp", "fr"], [("cam01-1a2b", 150), ...])
    regions[("cam01-1a2b", 150)]                   # {"model": "fp", "box_x0": ..., ...}

A fused score has no box of its own: a frame's box is that of the stream with the highest
normalised anomaly at the frame, before smoothing, the stream whose name sorts last on a
tie (the rule of ``fused()`` and of ``events()``' peak box, with the same per-video
min-max normalisation). Stores without region columns (schema v1 code)
give no regions; v1 runs in a v2 store give rows whose boxes are NULL.
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


def has_regions(con: Any) -> bool:
    """Whether the store's ``scores`` view has the region columns (schema v2)."""
    cols = set(con.sql("SELECT * FROM scores LIMIT 0").columns)
    return set(REGION_COLUMNS) <= cols


def frame_regions(con: Any, run_id: str, streams: list[str],
                  wanted: list[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    """(video_id, frame) -> the region columns and model of the frame's most anomalous stream.

    Only the videos in ``wanted`` are normalised (the report's top events: tens of videos,
    not the whole run)."""
    if not wanted or not has_regions(con):
        return {}
    cols = ", ".join(f"s.{c}" for c in REGION_COLUMNS)
    sql = f"""
        WITH want AS (SELECT unnest(?::VARCHAR[]) AS video_id, unnest(?::BIGINT[]) AS frame),
        n AS (
            SELECT s.video_id, s.frame, s.model, {cols},
                   CASE WHEN max(s.psnr) OVER v > min(s.psnr) OVER v
                        THEN (max(s.psnr) OVER v - s.psnr)
                             / (max(s.psnr) OVER v - min(s.psnr) OVER v)
                        ELSE 0.0 END AS anomaly
            FROM scores AS s
            WHERE s.run_id = ? AND list_contains(?::VARCHAR[], s.model)
                  AND s.video_id IN (SELECT DISTINCT video_id FROM want)
            WINDOW v AS (PARTITION BY s.video_id, s.model)
        )
        SELECT n.* EXCLUDE (anomaly) FROM n JOIN want USING (video_id, frame)
        QUALIFY row_number() OVER (PARTITION BY n.video_id, n.frame
                                   ORDER BY n.anomaly DESC, n.model DESC) = 1
    """
    vids = [v for v, _ in wanted]
    frames = [int(f) for _, f in wanted]
    rows = con.sql(sql, params=[vids, frames, run_id, list(streams)]).to_arrow_table()
    return {(r["video_id"], int(r["frame"])): r for r in rows.to_pylist()}
