"""Write the HTML report of one scan run: a folder with ``index.html``, one page per video
and the event thumbnails.

    report = build_report("store/", "night1", "report/")        # -> Report
    report.path, report.pages, report.missing_sources, report.warnings
    path = write_report(store, run, out, ReportOptions(threshold=0.8), labels=per_video_labels)

Everything the pages need is in the folder (inline SVG curves, JPEG thumbnails, a few lines
of inline script): copy or zip it and it opens anywhere, with no network. One page per
video keeps the report usable at thousands of videos (bench/report_bench.py).

Thumbnails are the peak frames of the ``max_thumbnails`` strongest events, read back from
the source videos, with the peak frame's box drawn on (where the store has boxes, schema
v2); under each of those events on its video page a strip of ``strip_frames`` frames
evenly over the event, each with its own box, lazy-loaded (``thumbs/strip/``).

A source that cannot be read (a moved archive) gets a placeholder; the report lists it in
its warnings and :attr:`Report.missing_sources` names it, so the command can warn and
exit 1 (docs/report.md).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raystack.report.boxes import frame_marks
from raystack.report.collect import ReportOptions, collect
from raystack.report.pages import Layout, index_page, video_page
from raystack.report.thumbs import Shot, frame_thumbnails

__all__ = ["Report", "ReportOptions", "build_report", "collect", "write_report"]

THUMB_WIDTH, STRIP_WIDTH = 192, 120  # pixels: the peak frame, each frame of a strip


@dataclass
class Report:
    path: Path  # index.html
    pages: int  # HTML files written, the index included
    events: int
    thumbnails: int
    missing_sources: dict[str, str] = field(default_factory=dict)  # uri -> why unreadable
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing_sources


def _thumbnails(data: dict, opts: ReportOptions, out: Path, layout: Layout) -> None:
    """Decode the strongest events' peak frames and strips into ``out/thumbs``, boxes drawn
    on; note unreadable sources (each tried once: a moved archive must not cost a failed
    open per event)."""
    thumbs = out / "thumbs"
    (thumbs / "strip").mkdir(parents=True, exist_ok=True)
    regions = data.get("regions", {})
    for e in data["events"][: opts.max_thumbnails]:
        vid = e["video_id"]
        video = data["videos"].get(vid, {})
        uri = video.get("uri")
        if not uri or uri in layout.missing:
            continue

        def shot(frame: int, width: int, vid: str = vid, video: dict = video) -> Shot:
            marks = frame_marks(regions.get((vid, int(frame))), video.get("width"),
                                video.get("height"))
            return Shot(int(frame), width, marks)

        shots = [shot(e["peak_frame"], THUMB_WIDTH), *(shot(f, STRIP_WIDTH) for f in e["strip"])]
        shots, why = frame_thumbnails(uri, shots)
        if not shots:
            layout.missing[uri] = why or "unreadable"
            continue
        stem = f"thumbs/{layout.pages[vid].split('/')[-1][:-5]}-e{e['event_id']}"
        key = (vid, e["event_id"])
        (out / f"{stem}.jpg").write_bytes(shots[0].jpeg)
        layout.thumbs[key] = f"{stem}.jpg"
        layout.drawn[key] = set().union(*(s.drawn for s in shots))
        layout.strips[key] = []
        for s in shots[1:]:
            name = f"thumbs/strip/{stem[7:]}-f{s.frame}.jpg"
            (out / name).write_bytes(s.jpeg)
            layout.strips[key].append((name, s.frame))
    if layout.missing:
        layout.warnings.append(
            f"{len(layout.missing)} source video(s) could not be read, so their events show "
            "a placeholder instead of a thumbnail (was the archive moved?). The scores, "
            "curves and events are complete; rerun the report where the archive is.")


def build_report(
    store: Any,
    run_id: str,
    out_dir: str | Path,
    opts: ReportOptions | None = None,
    *,
    labels: dict[str, np.ndarray] | None = None,
) -> Report:
    """Write the report folder for ``run_id``; see :func:`write_report` for the arguments."""
    opts = opts or ReportOptions()
    labels = labels or {}
    data = collect(store, run_id, opts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("videos", "thumbs"):  # pages of an earlier report of another run
        shutil.rmtree(out / stale, ignore_errors=True)
    (out / "videos").mkdir()
    order = sorted(data["curves"], key=lambda k: (data["videos"].get(k, {}).get("relpath") or k))
    layout = Layout(pages={v: f"videos/v{i:05d}.html" for i, v in enumerate(order, 1)})
    _thumbnails(data, opts, out, layout)
    for vid, rel in layout.pages.items():
        (out / rel).write_text(video_page(data, opts, layout, vid, labels.get(vid)),
                               encoding="utf-8")
    path = out / "index.html"
    path.write_text(index_page(data, opts, layout), encoding="utf-8")
    return Report(path=path, pages=len(layout.pages) + 1, events=len(data["events"]),
                  thumbnails=len(layout.thumbs), missing_sources=dict(layout.missing),
                  warnings=list(layout.warnings))


def write_report(
    store: Any,
    run_id: str,
    out_dir: str | Path,
    opts: ReportOptions | None = None,
    *,
    labels: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write the report of ``run_id`` into ``out_dir`` and return ``out_dir/index.html``.

    Args:
        store: a :class:`raystack.store.Store` or its URI.
        run_id: the scan run to report.
        out_dir: folder for the pages (created; its ``videos/`` and ``thumbs/`` replaced).
        opts: fusion, threshold and event options (defaults: :class:`ReportOptions`).
        labels: optional per-video 0/1 frame labels (video_id -> array over all frames),
            drawn as labelled anomalous spans.
    """
    return build_report(store, run_id, out_dir, opts, labels=labels).path
