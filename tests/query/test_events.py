"""events(): gaps and islands on hand-built cases, and against a plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest

from raystack.query import connect, find_events, run_sql
from raystack.store import Store


def reference_events(frames, scores, threshold, min_frames, merge_gap):
    """Plain loops: runs of consecutive flagged frames, merged across <= merge_gap missing or
    unflagged frames, then dropped when spanning fewer than min_frames frames."""
    flagged = [(int(f), float(s)) for f, s in sorted(zip(frames, scores, strict=True))
               if s > threshold]
    events = []
    for f, s in flagged:
        if events and f - events[-1]["end"] - 1 <= merge_gap:
            events[-1]["end"] = f
            events[-1]["scores"].append(s)
        else:
            events.append({"start": f, "end": f, "scores": [s]})
    return [(e["start"], e["end"], max(e["scores"]), sum(e["scores"]) / len(e["scores"]),
             len(e["scores"])) for e in events if e["end"] - e["start"] + 1 >= min_frames]


def psnr_for(anomaly: np.ndarray) -> np.ndarray:
    """PSNR whose per-video normalised anomaly is exactly ``anomaly`` (needs a 0 and a 1)."""
    return 40.0 - 8.0 * np.asarray(anomaly, np.float64)


# Anomaly pattern of a 20-frame video (frames 0..19). Scores are 0/0.25/0.5/0.75/1 so the
# float32 PSNR round-trip keeps them exact.
PATTERN = np.array([1, 1, 0, 0, 0, 0.75, 0, 0.75, 0.75, 0, 0, 0, 0.75, 0, 0, 0, 0, 0.25, 1, 1])


@pytest.fixture
def hand_store(tmp_path, write_scores):
    st = Store(tmp_path / "store").ensure()
    f = np.arange(20)
    write_scores(st, "r1", {("v1", "fp"): (f, psnr_for(PATTERN)),
                            ("v2", "fp"): (f, psnr_for(PATTERN[::-1]))})
    spike = np.zeros(10)
    spike[[0, 4]] = 1.0
    write_scores(st, "r2", {("v1", "fp"): (np.arange(10), psnr_for(spike))})
    return st


def events_of(con, **kw):
    args = dict(threshold=0.5, min_frames=1, merge_gap=0, sigma=0, run=None) | kw
    t = run_sql(con, "SELECT * FROM events(threshold := ?, min_frames := ?, merge_gap := ?, "
                     "sigma := ?, run := ?)", list(args.values()))
    return [(r["run_id"], r["video_id"], r["event_id"], r["start_frame"], r["end_frame"],
             r["frames"])
            for r in t.to_pylist()]


def test_first_last_frame_and_single_frame_spikes(hand_store):
    con = connect(hand_store)
    ev = events_of(con, run="r1")
    v1 = [e[3:5] for e in ev if e[1] == "v1"]
    # frames 0-1 (starts at the first frame), 5 (a single-frame spike), 7-8, 12,
    # 18-19 (ends at the last)
    assert v1 == [(0, 1), (5, 5), (7, 8), (12, 12), (18, 19)]
    assert [e[2] for e in ev if e[1] == "v1"] == [1, 2, 3, 4, 5]
    v2 = [e[3:5] for e in ev if e[1] == "v2"]
    assert v2 == [(19 - e, 19 - s) for s, e in reversed(v1)]


def test_merge_gap_shorter_and_longer(hand_store):
    con = connect(hand_store)
    v1 = lambda **kw: [e[3:5] for e in events_of(con, run="r1", **kw) if e[1] == "v1"]  # noqa: E731
    # Frames between events: 1 -> 5: three; 5 -> 7: one; 8 -> 12: three; 12 -> 18: five.
    assert v1(merge_gap=1) == [(0, 1), (5, 8), (12, 12), (18, 19)]
    assert v1(merge_gap=2) == [(0, 1), (5, 8), (12, 12), (18, 19)]
    assert v1(merge_gap=3) == [(0, 12), (18, 19)]
    assert v1(merge_gap=4) == [(0, 12), (18, 19)]
    assert v1(merge_gap=5) == [(0, 19)]
    assert v1(merge_gap=1, min_frames=3) == [(5, 8)]                    # dropped after merging
    assert v1(merge_gap=0, min_frames=3) == []
    assert v1(threshold=0.2) == [(0, 1), (5, 5), (7, 8), (12, 12), (17, 19)]


def test_several_runs_and_summary_columns(hand_store):
    con = connect(hand_store)
    t = run_sql(con, "SELECT * FROM events(threshold := 0.5, min_frames := 1, merge_gap := 0, "
                     "sigma := 0) WHERE run_id = 'r2'")
    rows = t.to_pylist()
    assert [(r["start_frame"], r["end_frame"]) for r in rows] == [(0, 0), (4, 4)]
    assert rows[0]["start_s"] == 0.0 and rows[1]["end_s"] == pytest.approx(4 / 25)
    assert rows[0]["fusion"] == "fp" and rows[0]["peak_score"] == 1.0
    assert rows[0]["threshold"] == 0.5
    assert t.column_names == ["run_id", "video_id", "fusion", "event_id", "start_frame",
                              "end_frame",
                              "start_s", "end_s", "frames", "flagged_frames", "peak_score",
                              "mean_score", "threshold", "peak_frame",
                              "box_x0", "box_y0", "box_x1", "box_y1",
                              "patch_x0", "patch_y0", "patch_x1", "patch_y1"]
    both = {e[0] for e in events_of(con)}
    assert both == {"r1", "r2"}
    merged = run_sql(con, "SELECT * FROM events(threshold := 0.5, merge_gap := 3, sigma := 0, "
                          "run := 'r2')").to_pylist()
    assert len(merged) == 1 and merged[0]["frames"] == 5 and merged[0]["flagged_frames"] == 2
    assert merged[0]["mean_score"] == 1.0


def test_missing_frames_count_as_gap(tmp_path, write_scores):
    st = Store(tmp_path / "store").ensure()
    frames = np.array([16, 17, 18, 30, 31, 40])  # frames 19..29 and 32..39 were never scored
    write_scores(st, "r", {("v", "fp"): (frames, psnr_for([1, 1, 0, 1, 0, 1]))})
    con = connect(st)
    got = lambda g: [e[3:5] for e in events_of(con, merge_gap=g)]  # noqa: E731
    # 17 -> 30: twelve frames between (18 flagged off, 19..29 unscored); 30 -> 40: nine.
    assert got(0) == [(16, 17), (30, 30), (40, 40)]
    assert got(8) == [(16, 17), (30, 30), (40, 40)]
    assert got(9) == [(16, 17), (30, 40)]
    assert got(11) == [(16, 17), (30, 40)]
    assert got(12) == [(16, 40)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_match_reference_on_random_tables(tmp_path, seed, write_scores):
    rng = np.random.default_rng(seed)
    st = Store(tmp_path / "store").ensure()
    data = {}
    for v in range(6):
        n = int(rng.integers(1, 300))
        frames = np.sort(rng.choice(np.arange(16, 16 + 2 * n), size=n, replace=False))
        data[(f"v{v}", "fp")] = (frames, rng.normal(30, 3, n))
    write_scores(st, "r", data)
    con = connect(st)
    cases = [(0.6, 1, 0, 0), (0.7, 3, 2, 0), (0.4, 5, 4, 3.0), (0.55, 2, 1, 10.0)]
    for thr, mf, gap, sigma in cases:
        got = run_sql(con, "SELECT * FROM events(threshold := ?, min_frames := ?, merge_gap := ?, "
                           "sigma := ?)", [thr, mf, gap, sigma]).to_pylist()
        exp = []
        for (vid, _), (frames, psnr) in sorted(data.items()):
            p = np.asarray(psnr, np.float32).astype(np.float64)
            span = p.max() - p.min()
            a = np.zeros_like(p) if span == 0 else 1 - (p - p.min()) / span
            order = np.argsort(frames)
            if sigma:
                from scipy.ndimage import gaussian_filter1d

                a[order] = gaussian_filter1d(a[order], sigma, mode="mirror", truncate=4)
            exp += [(vid, *e) for e in reference_events(frames, a, thr, mf, gap)]
        got_spans = [(r["video_id"], r["start_frame"], r["end_frame"]) for r in got]
        assert got_spans == [e[:3] for e in exp]
        np.testing.assert_allclose([r["peak_score"] for r in got], [e[3] for e in exp], atol=1e-9)
        np.testing.assert_allclose([r["mean_score"] for r in got], [e[4] for e in exp], atol=1e-9)
        assert [r["flagged_frames"] for r in got] == [e[5] for e in exp]


def test_find_events_resolves_fusion_and_checks_streams(hand_store):
    from raystack.query import FusionError, QueryError

    t = find_events(hand_store, run_id="r1", threshold=0.5, sigma=0)
    assert set(t["fusion"].to_pylist()) == {"fp"}  # the only stream: auto picks it
    with pytest.raises(FusionError, match=r"needs streams \['fr'\]"):
        find_events(hand_store, run_id="r1", fusion="weighted:0.5")
    with pytest.raises(QueryError, match="one kind of threshold"):
        find_events(hand_store, threshold=0.5, adaptive_k=2.0)
    assert find_events(hand_store, run_id="r2", adaptive_k=0.0, sigma=0, min_frames=1,
                       merge_gap=0).num_rows == 2
