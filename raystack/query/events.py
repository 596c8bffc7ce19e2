"""Events of a store from Python: the SQL ``events()`` macro with the arguments resolved.

    table = find_events("/data/store", run_id="r1", threshold=0.7, min_frames=10)
    # pa.Table: run_id, video_id, fusion, event_id, start_frame, end_frame, start_s, end_s,
    #           frames, flagged_frames, peak_score, mean_score, threshold

It checks what SQL cannot say well: that the fusion's streams exist in the run ("auto"
picks one, see :func:`raystack.query.fusion.resolve_fusion`), that exactly one kind of
threshold is given, and, for a calibrated threshold, it takes the fusion and smoothing the
threshold was calibrated with unless told otherwise.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from raystack.query.connection import QueryError, connect, run_sql
from raystack.query.fusion import parse_fusion, resolve_fusion
from raystack.query.thresholds import load_threshold, run_streams

EVENTS_QUERY = (
    "SELECT * FROM events(threshold := ?, min_frames := ?, merge_gap := ?, adaptive_k := ?, "
    "threshold_name := ?, fusion := ?, alpha := ?, streams := ?, sigma := ?, run := ?)"
)


def find_events(
    store_or_con: Any,
    *,
    run_id: str | None = None,
    threshold: float | None = None,
    adaptive_k: float | None = None,
    calibrated: str | None = None,
    min_frames: int = 1,
    merge_gap: int = 0,
    fusion: str | None = None,
    sigma: float | None = None,
) -> pa.Table:
    """Events over flagged frames, as the SQL ``events()`` macro computes them.

    Args:
        store_or_con: a store (path, URI or Store) or a connection from :func:`connect`.
        run_id: one run, or None for every run of the store.
        threshold: fixed threshold (flagged = score > threshold); 0.5 when no kind is given.
        adaptive_k: per-video threshold mean + k * std of that video's scores.
        calibrated: name of a threshold stored by :func:`raystack.query.calibrate`.
        min_frames: drop events spanning fewer frames (after merging).
        merge_gap: merge events separated by at most this many frames.
        fusion: stream name, ``weighted[:ALPHA[:A,B]]``, ``max[:A,...]`` or None/"auto".
        sigma: Gaussian smoothing sigma (0: none); default 10, or the calibrated one.

    Raises:
        QueryError: conflicting threshold options or a calibration that does not match.
        FusionError: the fusion does not fit the run's streams.
    """
    given = [k for k, v in (("threshold", threshold), ("adaptive_k", adaptive_k),
                            ("calibrated", calibrated)) if v is not None]
    if len(given) > 1:
        msg = f"give one kind of threshold, not {given}"
        raise QueryError(msg)
    if min_frames < 1 or merge_gap < 0:
        msg = f"min_frames must be >= 1 and merge_gap >= 0, got {min_frames} and {merge_gap}"
        raise QueryError(msg)
    con, own = (store_or_con, False) if hasattr(store_or_con, "sql") else (connect(store_or_con), True)
    try:
        if calibrated is not None:
            doc = load_threshold(con, calibrated)
            fusion = fusion if fusion is not None else doc["fusion"]
            sigma = sigma if sigma is not None else doc["sigma"]
        if fusion is not None and str(fusion).strip() != "auto":
            parse_fusion(fusion)  # a bad spec fails before the store is read
        fz = resolve_fusion(fusion, run_streams(con, run_id))
        args = fz.macro_args()
        params = [
            0.5 if not given else threshold,
            int(min_frames),
            int(merge_gap),
            adaptive_k,
            calibrated,
            args["fusion"],
            args["alpha"],
            args["streams"],
            10.0 if sigma is None else float(sigma),
            run_id,
        ]
        return run_sql(con, EVENTS_QUERY, params)
    finally:
        if own:
            con.close()
