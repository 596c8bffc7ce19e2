"""Events of a store from Python: the SQL ``events()`` macro with the arguments resolved.

    table = find_events("/data/store", run_id="r1", threshold=0.7, min_frames=10,
                        roi=[[0, 0, 960, 540]])
    # pa.Table: run_id, video_id, fusion, event_id, start_frame, end_frame, start_s, end_s,
    #           frames, flagged_frames, peak_score, mean_score, threshold, peak_frame,
    #           box_x0, box_y0, box_x1, box_y1, patch_x0, patch_y0, patch_x1, patch_y1

It checks what SQL cannot say well: that the fusion's streams exist in the run ("auto"
picks one, see :func:`raystack.query.fusion.resolve_fusion`), that exactly one kind of
threshold is given, that regions of interest are boxes (:mod:`raystack.query.regions`),
and, for a calibrated threshold, it takes the fusion and smoothing the
threshold was calibrated with unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from raystack.query.connection import QueryError, connect, run_sql
from raystack.query.defaults import EVENTS
from raystack.query.fusion import parse_fusion, resolve_fusion
from raystack.query.regions import check_boxes
from raystack.query.thresholds import load_threshold, run_streams

EVENTS_QUERY = (
    "SELECT * FROM events(threshold := ?, min_frames := ?, merge_gap := ?, adaptive_k := ?, "
    "threshold_name := ?, fusion := ?, alpha := ?, streams := ?, sigma := ?, run := ?{regions})"
)


def check_threshold(threshold: float | None) -> None:
    """Refuse a fixed threshold no score can cross: scores are in [0, 1] (1 - normalised PSNR)."""
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        msg = (f"threshold {threshold:g} is outside [0, 1]: scores are 1 - min-max normalised "
               "PSNR per video, in [0, 1] (use adaptive_k or a calibrated threshold otherwise)")
        raise QueryError(msg)


def find_events(
    store_or_con: Any,
    *,
    run_id: str | None = None,
    threshold: float | None = None,
    adaptive_k: float | None = None,
    calibrated: str | None = None,
    min_frames: int | None = None,
    merge_gap: int | None = None,
    fusion: str | None = None,
    sigma: float | None = None,
    roi: Sequence[Sequence[float]] | None = None,
    exclude: Sequence[Sequence[float]] | None = None,
) -> pa.Table:
    """Events over flagged frames, as the SQL ``events()`` macro computes them.

    Args:
        store_or_con: a store (path, URI or Store) or a connection from :func:`connect`.
        run_id: one run, or None for every run of the store.
        threshold: fixed threshold in [0, 1] (flagged = score > threshold); the SQL default
            (:data:`raystack.query.defaults.EVENTS`) when no kind is given. Every default
            below is the ``events()`` macro's.
        adaptive_k: per-video threshold mean + k * std of that video's scores.
        calibrated: name of a threshold stored by :func:`raystack.query.calibrate`.
        min_frames: drop events spanning fewer frames (after merging).
        merge_gap: merge events separated by at most this many frames.
        fusion: stream name, ``weighted[:ALPHA[:A,B,...]]``, ``max[:A,...]`` or None/"auto".
        sigma: Gaussian smoothing sigma (0: none); default 10, or the calibrated one.
        roi: boxes ``[[x0, y0, x1, y1], ...]`` in source-frame pixels: only frames pointing
            inside one count (frames without a location in the frame always count).
        exclude: boxes whose frames never count (a busy road).

    Raises:
        QueryError: conflicting threshold options, a calibration that does not match, a
            malformed roi or exclude.
        FusionError: the fusion does not fit the run's streams.
    """
    given = [k for k, v in (("threshold", threshold), ("adaptive_k", adaptive_k),
                            ("calibrated", calibrated)) if v is not None]
    if len(given) > 1:
        msg = f"give one kind of threshold, not {given}"
        raise QueryError(msg)
    min_frames = EVENTS.min_frames if min_frames is None else min_frames
    merge_gap = EVENTS.merge_gap if merge_gap is None else merge_gap
    check_threshold(threshold)
    roi = check_boxes(EVENTS.roi if roi is None else roi, "roi")
    exclude = check_boxes(EVENTS.exclude if exclude is None else exclude, "exclude")
    if min_frames < 1 or merge_gap < 0:
        msg = f"min_frames must be >= 1 and merge_gap >= 0, got {min_frames} and {merge_gap}"
        raise QueryError(msg)
    own = not hasattr(store_or_con, "sql")
    con = connect(store_or_con) if own else store_or_con
    try:
        if calibrated is not None:
            doc = load_threshold(con, calibrated)
            fusion = fusion if fusion is not None else doc["fusion"]
            sigma = sigma if sigma is not None else doc["sigma"]
        if fusion is not None and str(fusion).strip() != "auto":
            parse_fusion(fusion)  # a bad spec fails before the store is read
        if run_id is not None:  # names the store's runs, rather than "no score rows"
            run_sql(con, "SELECT checked_run(?) AS run", [run_id])
        fz = resolve_fusion(fusion, run_streams(con, run_id))
        args = fz.macro_args()
        params = [
            EVENTS.threshold if not given else threshold,
            int(min_frames),
            int(merge_gap),
            adaptive_k,
            calibrated,
            args["fusion"],
            args["alpha"],
            args["streams"],
            EVENTS.sigma if sigma is None else float(sigma),
            run_id,
        ]
        # Named only when given: a constant NULL lets DuckDB fold the filter away.
        regions = [(name, boxes) for name, boxes in (("roi", roi), ("exclude", exclude))
                   if boxes is not None]
        query = EVENTS_QUERY.format(regions="".join(f", {n} := ?" for n, _ in regions))
        return run_sql(con, query, params + [boxes for _, boxes in regions])
    finally:
        if own:
            con.close()
