"""The HTML report on a store the test writes: summary, curves, events, thumbnails, labels."""

from __future__ import annotations

import re

import numpy as np
import pytest

from raystack.report import ReportOptions, write_report
from raystack.report.build import _spans, collect
from raystack.report.svg import score_curve_svg


def test_collect_finds_the_dip_as_one_event_per_video(scanned_store):
    store, videos, dips = scanned_store
    data = collect(store, "r1", ReportOptions(sigma=0, threshold=0.5, min_frames=3))
    assert data["streams"] == ["fp", "fr"] and data["fusion"] == "weighted"
    assert len(data["events"]) == len(videos)
    for e in data["events"]:
        assert (e["start_frame"], e["end_frame"]) == dips[e["video_id"]]


def test_report_html_has_curves_thumbnails_and_labels(scanned_store, tmp_path):
    store, videos, dips = scanned_store
    vid = videos.column("video_id")[0].as_py()
    labels = {vid: np.zeros(40, dtype=np.int8)}
    labels[vid][24:34] = 1
    path = write_report(store, "r1", tmp_path / "rep", ReportOptions(sigma=0, threshold=0.5),
                        labels=labels)
    html = path.read_text()
    assert html.count("<svg") == len(videos)
    assert len(re.findall(r"src='data:image/jpeg;base64,[A-Za-z0-9+/=]{200,}'", html)) == len(videos)
    assert html.count('class="label"') == 1 and html.count('class="event"') == len(videos)
    assert "0.5 x fp + 0.5 x fr (fixed weights, no labels)" in html


def test_unknown_run_is_a_clear_error(scanned_store, tmp_path):
    store, _, _ = scanned_store
    with pytest.raises(ValueError, match="run 'nope' has no scores"):
        write_report(store, "nope", tmp_path)


def test_spans_and_svg_pieces():
    assert _spans(np.array([0, 1, 1, 0, 1])) == [(1, 2), (4, 4)]
    svg = score_curve_svg(np.arange(5000), np.random.default_rng(0).random(5000), threshold=0.3,
                          events=[(10, 20)], labels=[(5, 25)])
    assert svg.startswith("<svg") and "stroke-dasharray" in svg
    n_points = len(re.search(r'points="([^"]*)"', svg).group(1).split())
    assert n_points <= 1500
