"""Write the HTML report of one scan run: a folder with ``index.html``, one page per video
and the event thumbnails.

    report = build_report("store/", "night1", "report/")        # -> Report
    report.path, report.pages, report.missing_sources, report.warnings
    path = write_report(store, run, out, ReportOptions(threshold=0.8), labels=per_video_labels)

Everything the pages need is in the folder (inline SVG curves, JPEG thumbnails, a few lines
of inline script): copy or zip it and it opens anywhere, with no network. One page per
video keeps the report usable at thousands of videos (bench/report_bench.py).

Thumbnails are the peak frames of the ``max_thumbnails`` strongest events, read back from
the source videos. A source that cannot be read (a moved archive) gets a placeholder; the
report lists it in its warnings and :attr:`Report.missing_sources` names it, so the
command can warn and exit 1 (docs/report.md).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raystack.report.collect import ReportOptions, collect
from raystack.report.pages import Layout, index_page, video_page
from raystack.report.thumbs import frame_thumbnail

__all__ = ["Report", "ReportOptions", "build_report", "collect", "write_report"]


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


def _peak_frame(curve: dict, start: int, end: int) -> int:
    f, s = curve["frames"], curve["scores"]
    sel = (f >= start) & (f <= end)
    return int(f[sel][np.argmax(s[sel])]) if sel.any() else int(start)


def _thumbnails(data: dict, opts: ReportOptions, out: Path, layout: Layout) -> None:
    """Decode the strongest events' peak frames into ``out/thumbs``; note unreadable sources
    (each tried once: a moved archive must not cost a failed open per event)."""
    thumbs = out / "thumbs"
    thumbs.mkdir(exist_ok=True)
    for e in data["events"][: opts.max_thumbnails]:
        video = data["videos"].get(e["video_id"], {})
        uri = video.get("uri")
        if not uri or uri in layout.missing:
            continue
        peak = _peak_frame(data["curves"][e["video_id"]], e["start_frame"], e["end_frame"])
        jpeg, why = frame_thumbnail(uri, peak)
        if jpeg is None:
            layout.missing[uri] = why or "unreadable"
            continue
        name = f"thumbs/{layout.pages[e['video_id']].split('/')[-1][:-5]}-e{e['event_id']}.jpg"
        (out / name).write_bytes(jpeg)
        layout.thumbs[(e["video_id"], e["event_id"])] = name
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
