"""What the report shows, read from the store through the query layer, as plain Python data.

    data = collect("store/", "night1", ReportOptions(threshold=0.8))
    data["events"], data["curves"]["cam01-1a2b3c4d"]["scores"], data["videos"][...]["start"]

Events come from the ``events()`` macro and curves from ``fused()``, with the options the
caller gives (the report changes no default of its own here). The ``max_thumbnails``
strongest events also get their peak frame, the frames of their strip and those frames'
boxes (``data["regions"]``, :mod:`raystack.report.regions`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from raystack.query.defaults import EVENTS
from raystack.query.fusion import order_streams, resolve_fusion
from raystack.report.boxes import REGION_COLUMNS
from raystack.report.regions import frame_regions, peak_frame, strip_frames


@dataclass(frozen=True)
class ReportOptions:
    # The event defaults are the SQL events() macro's (raystack.query.defaults), so the
    # report shows the events `raystack events` and SQL find on the same store.
    fusion: str = EVENTS.fusion  # as `raystack events --fusion`; "auto"/"weighted" take the pair
    alpha: float = EVENTS.alpha  # weight of the first stream in weighted fusion (no labels)
    sigma: float = EVENTS.sigma  # temporal smoothing of the normalised scores, in frames
    threshold: float = EVENTS.threshold  # fixed threshold on the [0, 1] anomaly score ...
    threshold_name: str | None = None  # ... unless a threshold calibrated on normal data is named
    min_frames: int = EVENTS.min_frames  # events shorter than this are dropped
    merge_gap: int = EVENTS.merge_gap  # events separated by at most this many frames are merged
    max_thumbnails: int = 60  # thumbnails are decoded from the source: cap the cost
    strip_frames: int = 8  # frames shown under each of those events (0: no strips)


def video_start(video: dict) -> dt.datetime | None:
    """Wall-clock time of a video's first frame, estimated as its file's mtime minus its
    duration (a recorder last writes the file when the recording ends); None without both.
    An estimate: a copy that did not keep mtimes moves it (docs/report.md)."""
    mtime, duration = video.get("mtime"), video.get("duration_s")
    if mtime is None or duration is None:
        return None
    if mtime.tzinfo is None:
        mtime = mtime.replace(tzinfo=dt.UTC)
    return mtime - dt.timedelta(seconds=float(duration))


def collect(store: Any, run_id: str, opts: ReportOptions) -> dict:
    """Everything the pages show: run, streams, curves, events, videos, units, failures."""
    import pyarrow.compute as pc

    from raystack.query.connection import connect
    from raystack.scan.manifest import latest_rows
    from raystack.store import Store

    st = store if isinstance(store, Store) else Store(store)
    con = connect(st)

    def q(sql: str, params: Any = ()) -> list[dict]:
        return con.sql(sql, params=list(params)).to_arrow_table().to_pylist()

    streams = [r["model"] for r in q(
        "SELECT DISTINCT model FROM scores WHERE run_id = ? ORDER BY model", [run_id])]
    if not streams:
        msg = f"run {run_id!r} has no scores in store {st.uri}; runs: {st.runs()}"
        raise ValueError(msg)
    # Stream order matters for alpha: the frame stream first (fp before fr, app before mot).
    streams = order_streams(streams)
    # "auto" and a bare "weighted" take the run's known pair, weighted by opts.alpha.
    fz = resolve_fusion(opts.fusion, streams, alpha=opts.alpha)
    args = dict(**fz.macro_args(), sigma=opts.sigma, run=run_id)
    curves = con.sql(
        "SELECT video_id, frame, score FROM fused(fusion := ?, alpha := ?, streams := ?, "
        "sigma := ?, run := ?) ORDER BY video_id, frame", params=list(args.values())
    ).to_arrow_table()
    thr_args = [None if opts.threshold_name else opts.threshold, opts.threshold_name]
    events = q(
        "SELECT * FROM events(threshold := ?, threshold_name := ?, min_frames := ?, "
        "merge_gap := ?, fusion := ?, alpha := ?, streams := ?, sigma := ?, run := ?) "
        "ORDER BY peak_score DESC, video_id, event_id",
        [*thr_args, opts.min_frames, opts.merge_gap, *args.values()])
    videos = {r["video_id"]: r for r in q(
        "SELECT video_id, uri, relpath, frames, fps, width, height, duration_s, mtime "
        "FROM videos "
        "WHERE run_id = ?", [run_id])}
    # The latest attempt of each unit (the scan's own rule): a unit that failed once and
    # then succeeded is done.
    latest = latest_rows(con.sql("SELECT unit_id, attempt, finished_at, status, rows, uri, error "
                                 "FROM manifest WHERE run_id = ?", params=[run_id])
                         .to_arrow_table())
    by_video = _curves(curves)
    regions = _event_frames(con, args, events, by_video, opts)
    con.close()
    per_status = latest.group_by("status").aggregate([("unit_id", "count"), ("rows", "sum")])
    units = [{"status": r["status"], "units": r["unit_id_count"], "rows": r["rows_sum"]}
             for r in per_status.sort_by("status").to_pylist()]
    failures = (latest.filter(pc.equal(latest["status"], "failed"))
                .select(["unit_id", "uri", "error"]).sort_by("unit_id").to_pylist())
    threshold = events[0]["threshold"] if events else (
        opts.threshold if not opts.threshold_name else None)
    try:
        run_info = st.read_run_json(run_id)
    except (OSError, ValueError, KeyError):
        run_info = {}
    for v in videos.values():
        v["start"] = video_start(v)
    return dict(run_id=run_id, store=st.uri, streams=streams, fusion=args["fusion"],
                fusion_alpha=fz.alpha, fusion_streams=list(fz.streams), threshold=threshold,
                curves=by_video, events=events, videos=videos, units=units, failures=failures,
                run_info=run_info, regions=regions)


def _curves(curves: Any) -> dict[str, dict]:
    """video_id -> {"frames": (N,) int, "scores": (N,) float} from fused() rows in order."""
    by_video: dict[str, dict] = {}
    vid = curves.column("video_id").to_numpy(zero_copy_only=False)
    frames = curves.column("frame").to_numpy()
    scores = curves.column("score").to_numpy()
    bounds = np.flatnonzero(np.r_[True, vid[1:] != vid[:-1], True]) if len(vid) else []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        by_video[str(vid[a])] = {"frames": frames[a:b], "scores": scores[a:b]}
    return by_video


def _event_frames(con: Any, fusion_args: dict, events: list[dict],
                  curves: dict[str, dict], opts: ReportOptions) -> dict[tuple[str, int], dict]:
    """Set ``peak_frame`` and ``strip`` (frames) on the strongest events; their regions
    (``fused()``'s, through :func:`raystack.report.regions.frame_regions`).

    The events() row's own peak frame and box win where the store has them (schema v2
    SQL), so the thumbnail shows what SQL reports; otherwise the curve's maximum."""
    wanted = []
    for e in events[: opts.max_thumbnails]:
        if e.get("peak_frame") is None:
            e["peak_frame"] = peak_frame(curves.get(e["video_id"]), e["start_frame"],
                                         e["end_frame"])
        e["strip"] = strip_frames(e["start_frame"], e["end_frame"], opts.strip_frames)
        wanted += [(e["video_id"], f) for f in {e["peak_frame"], *e["strip"]}]
    regions = frame_regions(con, fusion_args, sorted(set(wanted)))
    for e in events[: opts.max_thumbnails]:
        if all(c in e for c in REGION_COLUMNS):
            regions[(e["video_id"], int(e["peak_frame"]))] = {c: e[c] for c in REGION_COLUMNS}
    return regions
