"""The HTML report on a store the test writes: summary, curves, events, thumbnails, labels,
links between events and curves, a moved archive, and a run of many videos."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from raystack.cli import app
from raystack.report import ReportOptions, build_report, write_report
from raystack.report.collect import collect
from raystack.report.pages import _spans
from raystack.report.svg import score_curve_svg
from raystack.store import Store

OPTS = ReportOptions(sigma=0, threshold=0.5)


def pages(report_dir) -> dict[str, str]:
    return {p.relative_to(report_dir).as_posix(): p.read_text()
            for p in report_dir.rglob("*.html")}


def moved(videos: pa.Table, where) -> pa.Table:
    """The same videos, as if the archive had been moved away from ``where``."""
    uris = [f"{where}/{r}" for r in videos.column("relpath").to_pylist()]
    return videos.set_column(videos.schema.get_field_index("uri"), "uri", pa.array(uris))


def test_collect_finds_the_dip_as_one_event_per_video(scanned_store):
    store, videos, dips = scanned_store
    data = collect(store, "r1", ReportOptions(sigma=0, threshold=0.5, min_frames=3))
    assert data["streams"] == ["fp", "fr"] and data["fusion"] == "weighted"
    assert len(data["events"]) == len(videos)
    for e in data["events"]:
        assert (e["start_frame"], e["end_frame"]) == dips[e["video_id"]]


def test_report_has_curves_thumbnails_and_labels(scanned_store, tmp_path):
    store, videos, _ = scanned_store
    vid = videos.column("video_id")[0].as_py()
    labels = {vid: np.zeros(40, dtype=np.int8)}
    labels[vid][24:34] = 1
    report = build_report(store, "r1", tmp_path / "rep", OPTS, labels=labels)
    assert report.complete and report.thumbnails == len(videos) and report.pages == 3
    html = pages(tmp_path / "rep")
    video_pages = [t for p, t in html.items() if p.startswith("videos/")]
    assert all(t.count("<svg") == 1 for t in video_pages) and len(video_pages) == len(videos)
    assert sum(t.count('class="label"') for t in video_pages) == 1
    assert sum(t.count('class="event"') for t in video_pages) == len(videos)
    assert len(list((tmp_path / "rep" / "thumbs").glob("*.jpg"))) == len(videos)
    assert "0.5 x fp + 0.5 x fr (fixed weights, no labels)" in html["index.html"]


def test_time_axis_in_seconds_with_the_wall_clock(scanned_store, tmp_path):
    store, videos, _ = scanned_store
    write_report(store, "r1", tmp_path / "rep", OPTS)
    page = pages(tmp_path / "rep")["videos/v00001.html"]
    row = videos.to_pylist()[0]
    # 40 frames at 25 fps: ticks at 0 ... 1.56 s, not 0 ... 39 frames.
    ticks = re.findall(r'text-anchor="middle">([\d.]+)</text>', page)
    assert ticks[0] == "0.0" and ticks[-1] == f"{39 / row['fps']:.1f}", ticks
    assert "time (s)" in page and ">frame<" not in page
    start = row["mtime"] - dt.timedelta(seconds=row["duration_s"])
    assert f"start {start:%Y-%m-%d %H:%M:%S} (file mtime - duration)" in page
    assert page.count('class="clock"') == 6
    index = pages(tmp_path / "rep")["index.html"]
    # The events table gives start seconds and the clock time of the event's start.
    assert f"{start + dt.timedelta(seconds=25 / row['fps']):%Y-%m-%d %H:%M:%S}" in index


def test_curve_without_fps_says_frames():
    svg = score_curve_svg(np.arange(100), np.zeros(100))
    assert "frame (no fps known)" in svg and 'class="clock"' not in svg


def test_events_link_to_their_highlighted_curve(scanned_store, tmp_path):
    store, _, _ = scanned_store
    write_report(store, "r1", tmp_path / "rep", OPTS)
    html = pages(tmp_path / "rep")
    links = re.findall(r"href='(videos/v\d{5}\.html)#(ev-\d+)'", html["index.html"])
    assert len(set(links)) == 2
    for page, anchor in links:
        target = html[page]
        assert f'<rect class="event" id="{anchor}"' in target  # the span the link opens at
        assert f"<tr id='row-{anchor}'>" in target and f'href="#row-{anchor}"' in target
        assert "rect.event:target{" in target  # ... highlighted by the page's style


def test_label_legend_only_when_there_are_labels(scanned_store, tmp_path):
    store, _, _ = scanned_store
    write_report(store, "r1", tmp_path / "rep", OPTS)
    assert not any("labelled anomaly" in t for t in pages(tmp_path / "rep").values())


def test_footer_is_a_table_of_options_not_json(scanned_store, tmp_path):
    store, _, _ = scanned_store
    index = pages(tmp_path / "rep")["index.html"] if write_report(
        store, "r1", tmp_path / "rep", OPTS) else ""
    assert '{"fusion"' not in index and "&quot;fusion&quot;" not in index
    footer = index[index.index("<h2 id='options'>"):]
    assert "<th>smoothing sigma (frames)</th><td>0</td>" in footer
    assert "<th>calibrated threshold</th><td>-</td>" in footer


def test_moved_archive_warns_names_files_and_exits_1(scanned_store, tmp_path, write_run):
    _, videos, _ = scanned_store
    store = Store(tmp_path / "store")
    write_run(store, moved(videos, tmp_path / "gone"))
    result = CliRunner().invoke(app, ["report", store.uri, "--run-id", "r1", "--out",
                                      str(tmp_path / "rep"), "--sigma", "0", "--threshold",
                                      "0.5"])
    assert result.exit_code == 1, result.output
    for rel in videos.column("relpath").to_pylist():
        assert f"warning: missing source {tmp_path}/gone/{rel}: " in result.output
    text = " ".join(result.output.split())
    assert f"warning: the archive {tmp_path}/gone ({len(videos)} source video(s)) could not " \
           "be read (was it moved or unmounted?)" in text
    index = (tmp_path / "rep" / "index.html").read_text()
    assert "<h2 id='warnings' class='warn'>Warnings</h2>" in index
    assert index.count("source video unavailable") == len(videos)
    assert f"<code>{tmp_path}/gone/" in index
    assert "does not exist</td>" not in index and "<img" not in index


def test_sources_behind_an_outage_exit_3_and_the_report_is_still_written(
        scanned_store, tmp_path, write_run, monkeypatch):
    import raystack.archive
    from raystack.errors import InfrastructureError

    _, videos, _ = scanned_store
    store = Store(tmp_path / "store")
    write_run(store, moved(videos, "s3://cams/2024"))

    def s3_down(uri, **kw):
        msg = f"download of {uri}: S3 unreachable (EndpointConnectionError) for 300 s"
        raise InfrastructureError(msg)

    monkeypatch.setattr(raystack.archive, "materialise", s3_down)  # the download
    result = CliRunner().invoke(app, ["report", store.uri, "--run-id", "r1", "--out",
                                      str(tmp_path / "rep"), "--sigma", "0", "--threshold",
                                      "0.5"])
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "warning: the archive s3://cams/2024 (" in text and "was unreachable" in text
    assert "storage unavailable: " in text
    assert (tmp_path / "rep" / "index.html").exists()


def test_many_videos_get_an_index_and_one_page_each(tmp_path, scanned_store, write_run):
    _, videos, _ = scanned_store
    row = videos.to_pylist()[0]
    n = 120
    many = pa.Table.from_pylist([{**row, "video_id": f"cam{i:03d}-id", "relpath": f"cam{i:03d}.mp4",
                                  "uri": str(tmp_path / f"cam{i:03d}.mp4")} for i in range(n)],
                                schema=videos.schema)
    store = Store(tmp_path / "store")
    write_run(store, many)
    report = build_report(store, "r1", tmp_path / "rep",
                          ReportOptions(sigma=0, threshold=0.5, max_thumbnails=5))
    assert report.pages == n + 1 and report.events == n and len(report.missing_sources) == 5
    html = pages(tmp_path / "rep")
    index = html["index.html"]
    assert index.count("<svg") == 0 and len(index) < 200_000
    assert "id='video-table'" in index and "class='filter' data-table='video-table'" in index
    rows = re.findall(r"<tr><td data-v='cam\d{3}\.mp4'><a href='videos/v\d{5}\.html'>", index)
    assert len(rows) == n
    # Each page leads on to its neighbours and back to the index.
    assert "href='../videos/v00002.html'>next" in html["videos/v00001.html"]
    assert "href='../videos/v00119.html'>&larr; previous" in html["videos/v00120.html"]
    assert "next &rarr;" not in html["videos/v00120.html"]


def test_spans_and_svg_pieces():
    assert _spans(np.array([0, 1, 1, 0, 1])) == [(1, 2), (4, 4)]
    svg = score_curve_svg(np.arange(5000), np.random.default_rng(0).random(5000), threshold=0.3,
                          events=[(10, 20, "ev-1")], labels=[(5, 25)], fps=25.0)
    assert svg.startswith("<svg") and "stroke-dasharray" in svg
    n_points = len(re.search(r'points="([^"]*)"', svg).group(1).split())
    assert n_points <= 1500


def test_unknown_run_is_a_clear_error(scanned_store, tmp_path):
    store, _, _ = scanned_store
    with pytest.raises(ValueError, match="run 'nope' has no scores"):
        write_report(store, "nope", tmp_path)
    # The command: invalid input (2), as docs/cli.md's table says, not 1.
    result = CliRunner().invoke(app, ["report", store.uri, "--run-id", "nope", "--out",
                                      str(tmp_path / "rep")])
    assert result.exit_code == 2 and "run 'nope' has no scores" in result.output


def test_summary_names_a_three_stream_weighted_fusion():
    from raystack.report.pages import summary_rows

    data = {"run_info": {}, "curves": {}, "units": [], "run_id": "r1", "store": "s",
            "streams": ["fp", "fr", "presence"], "fusion": "weighted", "fusion_alpha": 0.75,
            "fusion_streams": ["fp", "fr", "presence"], "threshold": None, "events": []}
    rows = dict(summary_rows(data, OPTS))
    assert rows["fusion"] == "0.75 x mean(fp, fr) + 0.25 x presence (fixed weights, no labels)"
