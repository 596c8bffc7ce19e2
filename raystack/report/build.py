"""Build the HTML report of one scan run from the store, through the query layer.

    path = write_report("store/", "night1", "report/")            # report/index.html
    path = write_report(store, run, out, ReportOptions(threshold=0.8), labels=per_video_labels)

Everything the page needs is inside the one HTML file (SVG curves, base64 thumbnails), so
it can be mailed or attached to a case file as is.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from raystack.query.defaults import EVENTS
from raystack.query.fusion import Fusion, FusionError, resolve_fusion
from raystack.report.svg import score_curve_svg
from raystack.report.thumbs import frame_thumbnail


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


def _fusion(streams: list[str], opts: ReportOptions) -> Fusion:
    """The query layer's fusion for this run; "auto" and a bare "weighted" take the run's
    known pair (fp,fr or m2s2l_app,m2s2l_mot) weighted by ``opts.alpha``."""
    if opts.fusion not in ("auto", "weighted"):
        return resolve_fusion(opts.fusion, streams)
    fz = resolve_fusion("auto", streams)
    if fz.kind == "weighted":
        return dataclasses.replace(fz, alpha=opts.alpha)
    if opts.fusion == "weighted":
        msg = f"weighted fusion needs two streams; run has only {streams}"
        raise FusionError(msg)
    return fz


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) frame spans where ``mask`` is true."""
    m = np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]])
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def _rows(table: Any) -> list[dict]:
    return table.to_pylist() if table is not None else []


def collect(store: Any, run_id: str, opts: ReportOptions) -> dict:
    """Everything the page shows, as plain Python data (tested without HTML)."""
    from raystack.query.connection import connect
    from raystack.store import Store

    st = store if isinstance(store, Store) else Store(store)
    con = connect(st)
    q = lambda sql, params=(): con.sql(sql, params=list(params)).to_arrow_table()  # noqa: E731
    streams = [r["model"] for r in _rows(q(
        "SELECT DISTINCT model FROM scores WHERE run_id = ? ORDER BY model", [run_id]))]
    if not streams:
        msg = f"run {run_id!r} has no scores in store {st.uri}; runs: {st.runs()}"
        raise ValueError(msg)
    # Stream order matters for alpha: put the frame stream first (fp before fr, app before mot).
    order = {"fp": 0, "m2s2l_app": 0, "fr": 1, "m2s2l_mot": 1}
    streams.sort(key=lambda s: (order.get(s, 2), s))
    fz = _fusion(streams, opts)
    args = dict(**fz.macro_args(), sigma=opts.sigma, run=run_id)
    curves = q(
        "SELECT video_id, frame, score FROM fused(fusion := ?, alpha := ?, streams := ?, "
        "sigma := ?, run := ?) ORDER BY video_id, frame", args.values())
    thr_args = dict(threshold=None if opts.threshold_name else opts.threshold,
                    threshold_name=opts.threshold_name)
    events = _rows(q(
        "SELECT * FROM events(threshold := ?, threshold_name := ?, min_frames := ?, "
        "merge_gap := ?, fusion := ?, alpha := ?, streams := ?, sigma := ?, run := ?) "
        "ORDER BY peak_score DESC",
        [*thr_args.values(), opts.min_frames, opts.merge_gap, *args.values()]))
    videos = {r["video_id"]: r for r in _rows(q(
        "SELECT video_id, uri, relpath, frames, fps FROM videos WHERE run_id = ?", [run_id]))}
    units = _rows(q(
        "SELECT status, count(*) AS units, sum(rows) AS rows, "
        "sum(decode_s) AS decode_s, sum(flow_s) AS flow_s, sum(model_s) AS model_s, "
        "sum(write_s) AS write_s FROM (SELECT * FROM manifest WHERE run_id = ? "
        "QUALIFY row_number() OVER (PARTITION BY unit_id ORDER BY attempt DESC) = 1) "
        "GROUP BY status ORDER BY status", [run_id]))
    failures = _rows(q(
        "SELECT unit_id, uri, error FROM manifest WHERE run_id = ? AND status = 'failed' "
        "QUALIFY row_number() OVER (PARTITION BY unit_id ORDER BY attempt DESC) = 1 "
        "ORDER BY unit_id", [run_id]))
    threshold = events[0]["threshold"] if events else (
        opts.threshold if not opts.threshold_name else None)
    con.close()
    try:
        run_info = st.read_run_json(run_id)
    except (OSError, ValueError, KeyError):
        run_info = {}
    by_video: dict[str, dict] = {}
    vid = curves.column("video_id").to_numpy(zero_copy_only=False)
    frames = curves.column("frame").to_numpy()
    scores = curves.column("score").to_numpy()
    for v in dict.fromkeys(vid.tolist()):
        sel = vid == v
        by_video[v] = {"frames": frames[sel], "scores": scores[sel]}
    return dict(run_id=run_id, store=st.uri, streams=streams, fusion=args["fusion"],
                fusion_alpha=fz.alpha, fusion_streams=list(fz.streams), threshold=threshold, curves=by_video, events=events,
                videos=videos, units=units, failures=failures, run_info=run_info)


def _peak_frame(curve: dict, start: int, end: int) -> int:
    f, s = curve["frames"], curve["scores"]
    sel = (f >= start) & (f <= end)
    return int(f[sel][np.argmax(s[sel])]) if sel.any() else int(start)


def _summary_rows(data: dict, opts: ReportOptions) -> list[tuple[str, str]]:
    info = data["run_info"]
    frames_scored = sum(len(c["frames"]) for c in data["curves"].values())
    done = sum(u["units"] for u in data["units"] if u["status"] == "done")
    failed = sum(u["units"] for u in data["units"] if u["status"] == "failed")
    rows = [("run", data["run_id"]), ("store", data["store"]),
            ("videos scored", str(len(data["curves"]))), ("frames scored", f"{frames_scored:,}"),
            ("work units", f"{done} done, {failed} failed"),
            ("score streams", ", ".join(data["streams"]))]
    fusion = data["fusion"]
    if fusion == "weighted":
        a, b = data["fusion_streams"]
        alpha = data["fusion_alpha"]
        fusion = f"{alpha:g} x {a} + {1 - alpha:g} x {b} (fixed weights, no labels)"
    rows.append(("fusion", fusion))
    thr = data["threshold"]
    thr_text = f"{thr:.3f}" if thr is not None else "n/a"
    if opts.threshold_name:
        thr_text += f" (calibrated on normal footage: {opts.threshold_name})"
    rows += [("threshold", thr_text), ("smoothing sigma", f"{opts.sigma:g} frames"),
             ("events", f"{len(data['events'])} (min {opts.min_frames} frames, merge gap {opts.merge_gap})")]
    # A resumed run has several invocations; its throughput is over all of them.
    wall = sum(float(i.get("wall_s") or 0.0) for i in info.get("invocations", []))
    if wall > 0:
        rows.append(("wall time", f"{wall:.1f} s ({frames_scored / wall:.1f} frames/s end to end)"))
    if info.get("started_at"):
        rows.append(("started / finished", f"{info['started_at']} / {info.get('finished_at') or '-'}"))
    models = info.get("models") or {}
    for stream, ck in (models.get("checkpoints") or {}).items():
        rows.append((f"model {stream}", f"{ck.get('path')} (preset {ck.get('preset')}, "
                                        f"sha256 {str(ck.get('sha256'))[:12]})"))
    if info.get("code_version"):
        rows.append(("code version", str(info["code_version"])))
    return rows


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:middle}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}.legend span{display:inline-block;margin-right:14px;font-size:12px}
.sw{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:middle}.video{margin:14px 0}.warn{color:#b71c1c}
img.thumb{display:block;border:1px solid #ccc}
"""


def render_html(data: dict, opts: ReportOptions, labels: dict[str, np.ndarray] | None = None) -> str:
    """The report page as one HTML string."""
    labels = labels or {}
    out = ["<!doctype html><html><head><meta charset='utf-8'>",
           f"<title>raystack report: {escape(data['run_id'])}</title><style>{_CSS}</style></head><body>",
           f"<h1>raystack scan report: run {escape(data['run_id'])}</h1>",
           "<h2>Run summary</h2><table>"]
    out += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in _summary_rows(data, opts)]
    out.append("</table>")
    if data["failures"]:
        out.append("<h2 class='warn'>Failed units</h2><table><tr><th>unit</th><th>file</th><th>error</th></tr>")
        out += [f"<tr><td>{escape(f['unit_id'])}</td><td>{escape(str(f['uri']))}</td>"
                f"<td>{escape(str(f['error']))}</td></tr>" for f in data["failures"]]
        out.append("</table>")

    events_by_video: dict[str, list[tuple[int, int]]] = {}
    for e in data["events"]:
        events_by_video.setdefault(e["video_id"], []).append((e["start_frame"], e["end_frame"]))
    out.append("<h2>Events</h2>")
    if not data["events"]:
        out.append("<p>No events above the threshold.</p>")
    else:
        out.append("<table><tr><th>peak frame</th><th>video</th><th>event</th><th>start s</th>"
                   "<th>end s</th><th>frames</th><th>peak</th><th>mean</th></tr>")
        for i, e in enumerate(data["events"]):
            video = data["videos"].get(e["video_id"], {})
            peak = _peak_frame(data["curves"][e["video_id"]], e["start_frame"], e["end_frame"])
            cell = "<td>(not shown: thumbnail cap)</td>"
            if i < opts.max_thumbnails and video.get("uri"):
                img, why = frame_thumbnail(video["uri"], peak)
                cell = (f"<td><img class='thumb' alt='frame {peak}' src='{img}'>frame {peak}</td>" if img
                        else f"<td class='warn'>{escape(why or '')}</td>")
            out.append(
                f"<tr>{cell}<td>{escape(video.get('relpath') or e['video_id'])}</td>"
                f"<td class='num'>{e['event_id']}</td><td class='num'>{e['start_s']:.2f}</td>"
                f"<td class='num'>{e['end_s']:.2f}</td><td class='num'>{e['frames']}</td>"
                f"<td class='num'>{e['peak_score']:.3f}</td><td class='num'>{e['mean_score']:.3f}</td></tr>")
        out.append("</table>")

    out.append("<h2>Score curves</h2><div class='legend'>"
               "<span><i class='sw' style='background:#1e88e5'></i>anomaly score</span>"
               "<span><i class='sw' style='background:#e53935;opacity:.3'></i>detected event</span>"
               "<span><i class='sw' style='background:#ff9800'></i>labelled anomaly</span>"
               "<span>- - threshold</span></div>")
    for v in sorted(data["curves"], key=lambda k: data["videos"].get(k, {}).get("relpath") or k):
        c = data["curves"][v]
        video = data["videos"].get(v, {})
        lab = _spans(labels[v]) if v in labels else []
        svg = score_curve_svg(c["frames"], c["scores"], threshold=data["threshold"],
                              events=events_by_video.get(v, []), labels=lab,
                              n_frames=video.get("frames"), title=video.get("relpath") or v)
        out.append(f"<div class='video'><b>{escape(video.get('relpath') or v)}</b>"
                   f" <small>({escape(v)})</small><br>{svg}</div>")
    out.append(f"<p><small>generated {time.strftime('%Y-%m-%d %H:%M:%S')} by raystack; options "
               f"{escape(json.dumps(asdict(opts)))}</small></p>")
    # Lets a headless browser check report that every picture decoded ("shown/total").
    out.append("<script>addEventListener('load',()=>{const i=[...document.images];"
               "document.body.dataset.imagesShown=i.filter(x=>x.complete&&x.naturalWidth>0).length"
               "+'/'+i.length;});</script></body></html>")
    return "\n".join(out)


def write_report(
    store: Any,
    run_id: str,
    out_dir: str | Path,
    opts: ReportOptions | None = None,
    *,
    labels: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``out_dir/index.html`` for ``run_id`` and return its path.

    Args:
        store: a :class:`raystack.store.Store` or its URI.
        run_id: the scan run to report.
        out_dir: folder for the page (created).
        opts: fusion, threshold and event options (defaults: :class:`ReportOptions`).
        labels: optional per-video 0/1 frame labels (video_id -> array over all frames),
            drawn as labelled anomalous spans.
    """
    opts = opts or ReportOptions()
    data = collect(store, run_id, opts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(render_html(data, opts, labels), encoding="utf-8")
    return path
