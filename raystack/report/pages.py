"""The report's pages: ``index.html`` (summary, warnings, all events, all videos) and one
``videos/vNNNNN.html`` per scored video (its curve, its events).

    html = index_page(data, opts, layout)
    html = video_page(data, opts, layout, i, labels)

``layout`` (:class:`Layout`) holds each video's page name and each event's thumbnail, so
links go both ways: an event in the index opens its video's page at ``#ev-N``, where the
event's span on the curve is highlighted (CSS ``:target``) and its row is listed below.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from html import escape

import numpy as np

from raystack.report.boxes import legend_text
from raystack.report.collect import ReportOptions
from raystack.report.html_kit import Cell, clock, kv_table, num, page, table_html, text
from raystack.report.svg import score_curve_svg


@dataclass
class Layout:
    pages: dict[str, str]  # video_id -> "videos/v00001.html", in page order
    thumbs: dict[tuple[str, int], str] = field(default_factory=dict)  # -> "thumbs/....jpg"
    # (video_id, event_id) -> [("thumbs/....jpg", frame), ...] of the event's strip
    strips: dict[tuple[str, int], list[tuple[str, int]]] = field(default_factory=dict)
    drawn: dict[tuple[str, int], set[str]] = field(default_factory=dict)  # -> box kinds drawn
    missing: dict[str, str] = field(default_factory=dict)  # source uri -> why unreadable
    warnings: list[str] = field(default_factory=list)


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) frame spans where ``mask`` is true."""
    m = np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]])
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist(),
                    strict=True))


def _name(video: dict, vid: str) -> str:
    return video.get("relpath") or vid


def _event_clock(video: dict, seconds: float) -> dt.datetime | None:
    return video["start"] + dt.timedelta(seconds=seconds) if video.get("start") else None


def _box_legend(events: list[dict], layout: Layout) -> list[str]:
    """The line saying what the boxes mean, when any of these events' frames has one."""
    kinds = set().union(*(layout.drawn.get((e["video_id"], e["event_id"]), set())
                          for e in events))
    line = legend_text(kinds)
    return [f"<p class='boxes'>{escape(line)}</p>"] if line else []


def _strip(e: dict, video: dict, layout: Layout) -> str | None:
    """The event's frames, evenly over it, each with its box; lazy-loaded (a long page of
    events costs only what is scrolled to)."""
    shots = layout.strips.get((e["video_id"], e["event_id"]))
    if not shots:
        return None
    fps = video.get("fps")
    figs = [f"<figure><img loading='lazy' width='120' alt='frame {f}' src='../{src}'>"
            f"<figcaption>{f'{f / fps:.2f} s' if fps else f'frame {f}'}</figcaption></figure>"
            for src, f in shots]
    return f"<div class='strip' id='strip-ev-{e['event_id']}'>{''.join(figs)}</div>"


def _thumb_cell(e: dict, video: dict, layout: Layout, root: str) -> Cell:
    src = layout.thumbs.get((e["video_id"], e["event_id"]))
    if src:
        return Cell(f"<img class='thumb' loading='lazy' alt='event {e['event_id']}' "
                    f"src='{root}{src}'>")
    uri = video.get("uri")
    if uri in layout.missing:
        return Cell(f"<div class='missing' title='{escape(layout.missing[uri])}'>source video "
                    "unavailable<br>(see warnings)</div>")
    return Cell("<div class='missing'>no thumbnail<br>(top events only)</div>")


def summary_rows(data: dict, opts: ReportOptions) -> list[tuple[str, str]]:
    info = data["run_info"]
    frames_scored = sum(len(c["frames"]) for c in data["curves"].values())
    done = sum(u["units"] for u in data["units"] if u["status"] == "done")
    failed = sum(u["units"] for u in data["units"] if u["status"] == "failed")
    rows = [("run", data["run_id"]), ("store", data["store"]),
            ("videos scored", f"{len(data['curves']):,}"), ("frames scored", f"{frames_scored:,}"),
            ("work units", f"{done} done, {failed} failed"),
            ("score streams", ", ".join(data["streams"]))]
    fusion = data["fusion"]
    if fusion == "weighted":
        *first, last = data["fusion_streams"]
        alpha = data["fusion_alpha"]
        head = first[0] if len(first) == 1 else f"mean({', '.join(first)})"
        fusion = f"{alpha:g} x {head} + {1 - alpha:g} x {last} (fixed weights, no labels)"
    rows.append(("fusion", fusion))
    thr = data["threshold"]
    thr_text = f"{thr:.3f}" if thr is not None else "n/a"
    if opts.threshold_name:
        thr_text += f" (calibrated on normal footage: {opts.threshold_name})"
    rows += [("threshold", thr_text), ("smoothing sigma", f"{opts.sigma:g} frames"),
             ("events", f"{len(data['events']):,} (min {opts.min_frames} frames, merge gap "
                        f"{opts.merge_gap})")]
    # A resumed run has several invocations; its throughput is over all of them.
    wall = sum(float(i.get("wall_s") or 0.0) for i in info.get("invocations", []))
    if wall > 0:
        rows.append(("wall time", f"{wall:.1f} s ({frames_scored / wall:.1f} frames/s)"))
    if info.get("started_at"):
        rows.append(("started / finished",
                     f"{info['started_at']} / {info.get('finished_at') or '-'}"))
    models = info.get("models") or {}
    for stream, ck in (models.get("checkpoints") or {}).items():
        rows.append((f"model {stream}", f"{ck.get('path')} (preset {ck.get('preset')}, "
                                        f"sha256 {str(ck.get('sha256'))[:12]})"))
    if info.get("code_version"):
        rows.append(("code version", str(info["code_version"])))
    return rows


def _footer(opts: ReportOptions) -> list[str]:
    from raystack import __version__

    names = {"fusion": "fusion", "alpha": "alpha (weight of the first stream)",
             "sigma": "smoothing sigma (frames)", "threshold": "threshold",
             "threshold_name": "calibrated threshold", "min_frames": "min event frames",
             "merge_gap": "merge gap (frames)", "max_thumbnails": "thumbnails (top events)"}
    rows = [(names.get(k, k), "-" if v is None else str(v)) for k, v in asdict(opts).items()]
    return ["<h2 id='options'>Report options</h2>", kv_table(rows),
            f"<p><small>generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by raystack "
            f"{__version__}. Times are seconds from each video's first frame; clock times "
            "(UTC) are estimated from the file's modification time minus its duration."
            "</small></p>"]


def index_page(data: dict, opts: ReportOptions, layout: Layout) -> str:
    run = escape(data["run_id"])
    body = [f"<h1>raystack scan report: run {run}</h1>",
            "<nav><a href='#summary'>Summary</a>"
            + ("<a href='#warnings'>Warnings</a>" if layout.warnings or data["failures"] else "")
            + "<a href='#events'>Events</a><a href='#videos'>Videos</a>"
            "<a href='#options'>Options</a></nav>",
            "<h2 id='summary'>Run summary</h2>", kv_table(summary_rows(data, opts))]
    if layout.warnings or data["failures"]:
        body.append("<h2 id='warnings' class='warn'>Warnings</h2>")
        body += [f"<p class='warn'>{escape(w)}</p>" for w in layout.warnings]
        if layout.missing:
            body.append("<ul>" + "".join(f"<li><code>{escape(u)}</code>: {escape(why)}</li>"
                                         for u, why in layout.missing.items()) + "</ul>")
        if data["failures"]:
            body.append("<p class='warn'>Failed work units:</p>" + table_html(
                "failures", ["unit", "file", "error"],
                [[text(f["unit_id"]), text(f["uri"]), text(f["error"])]
                 for f in data["failures"]]))
    videos = data["videos"]
    body.append(f"<h2 id='events'>Events ({len(data['events']):,})</h2>")
    if not data["events"]:
        body.append("<p>No events above the threshold.</p>")
    else:
        rows = []
        for e in data["events"]:
            v = videos.get(e["video_id"], {})
            href = f"{layout.pages[e['video_id']]}#ev-{e['event_id']}"
            rows.append([
                _thumb_cell(e, v, layout, ""),
                Cell(f"<a href='{href}'>{escape(_name(v, e['video_id']))}</a>",
                     _name(v, e["video_id"])),
                Cell(f"<a href='{href}'>{e['event_id']}</a>", e["event_id"], num=True),
                num(e["start_s"], "{:.2f}"), num(e["end_s"], "{:.2f}"),
                text(clock(_event_clock(v, e["start_s"]))),
                num(e["frames"], "{:d}"), num(e["peak_score"]), num(e["mean_score"])])
        body += _box_legend(data["events"], layout)
        body.append(table_html(
            "event-table", ["peak frame", "video", "event", "start s", "end s",
                            "start (UTC clock)", "frames", "peak", "mean"],
            rows, filter_label="filter events by video name ..."))
    body.append(f"<h2 id='videos'>Videos ({len(layout.pages):,} scored)</h2>")
    n_events: dict[str, int] = {}
    for e in data["events"]:
        n_events[e["video_id"]] = n_events.get(e["video_id"], 0) + 1
    rows = []
    for vid, href in layout.pages.items():
        v, c = videos.get(vid, {}), data["curves"][vid]
        rows.append([Cell(f"<a href='{href}'>{escape(_name(v, vid))}</a>", _name(v, vid)),
                     num(v.get("frames"), "{:,}"), num(v.get("duration_s"), "{:.1f}"),
                     text(clock(v.get("start"))), num(n_events.get(vid, 0), "{:d}"),
                     num(float(np.max(c["scores"])) if len(c["scores"]) else None)])
    body.append(table_html("video-table", ["video", "frames", "duration s", "start (UTC clock)",
                                           "events", "max score"],
                           rows, filter_label="filter videos by name ..."))
    body += _footer(opts)
    return page(f"raystack report: {data['run_id']}", body)


def video_page(data: dict, opts: ReportOptions, layout: Layout, vid: str,
               labels: np.ndarray | None) -> str:
    order = list(layout.pages)
    i = order.index(vid)
    v, c = data["videos"].get(vid, {}), data["curves"][vid]
    name = _name(v, vid)
    nav = ["<a href='../index.html'>index</a>", "<a href='../index.html#events'>all events</a>"]
    if i > 0:
        nav.append(f"<a href='../{layout.pages[order[i - 1]]}'>&larr; previous</a>")
    if i + 1 < len(order):
        nav.append(f"<a href='../{layout.pages[order[i + 1]]}'>next &rarr;</a>")
    events = sorted((e for e in data["events"] if e["video_id"] == vid),
                    key=lambda e: e["event_id"])
    lab = _spans(labels) if labels is not None else []
    legend = ["<span><i class='sw' style='background:#1e88e5'></i>anomaly score</span>",
              "<span><i class='sw' style='background:#e53935;opacity:.3'></i>detected event "
              "(click: its row)</span>"]
    if lab:
        legend.append("<span><i class='sw' style='background:#ff9800'></i>labelled anomaly</span>")
    legend.append("<span>- - threshold</span>")
    svg = score_curve_svg(c["frames"], c["scores"], fps=v.get("fps"), start=v.get("start"),
                          threshold=data["threshold"], labels=lab, n_frames=v.get("frames"),
                          events=[(e["start_frame"], e["end_frame"], f"ev-{e['event_id']}")
                                  for e in events], title=name)
    info = [("video id", vid), ("source", str(v.get("uri") or "-")),
            ("frames", f"{v.get('frames') or '-'}"), ("fps", f"{v.get('fps') or '-'}"),
            ("duration", f"{v['duration_s']:.1f} s" if v.get("duration_s") else "-"),
            ("start (UTC clock)", clock(v.get("start")) or "unknown")]
    body = [f"<nav>{''.join(nav)}</nav>", f"<h1>{escape(name)}</h1>", kv_table(info),
            "<h2>Score curve</h2>", f"<div class='legend'>{''.join(legend)}</div>", svg,
            f"<h2>Events ({len(events)})</h2>"]
    if events:
        rows = [[_thumb_cell(e, v, layout, "../"),
                 Cell(f"<a href='#ev-{e['event_id']}'>{e['event_id']}</a>", e["event_id"], True),
                 num(e["start_s"], "{:.2f}"), num(e["end_s"], "{:.2f}"),
                 text(clock(_event_clock(v, e["start_s"]))), num(e["frames"], "{:d}"),
                 num(e["peak_score"]), num(e["mean_score"])] for e in events]
        body += _box_legend(events, layout)
        body.append(table_html("event-table", ["peak frame", "event", "start s", "end s",
                                               "start (UTC clock)", "frames", "peak", "mean"],
                               rows, row_ids=[f"row-ev-{e['event_id']}" for e in events],
                               details=[_strip(e, v, layout) for e in events]))
    else:
        body.append("<p>No events above the threshold.</p>")
    return page(f"{name}: raystack report {data['run_id']}", body)
