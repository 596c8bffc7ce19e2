"""Localisation metric: events from labels.json, the hit rule, the peak frame, the shares."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from raystack.eval.boxes import aligned, localise_run, predicted_boxes
from raystack.eval.localisation import (
    LabelledEvent,
    box_hits,
    event_peak,
    iou,
    labelled_events,
    localisation_summary,
    localise_event,
    summary_line,
)

NAN4 = [np.nan] * 4


def _doc(with_boxes: bool = True) -> dict:
    """Two test videos: a loiterer in frames [10, 20) at (100..120, 50..90), a car [5, 8)."""
    a = {"video": "test/test_001.mp4", "frames": 30,
         "anomalies": [{"kind": "loiterer", "subtle": True, "start": 10, "stop": 20}],
         "boxes": [[f, 100, 50, 120, 90] for f in range(10, 20)]}
    b = {"video": "test/test_002.mp4", "frames": 30,
         "anomalies": [{"kind": "car", "subtle": False, "start": 5, "stop": 8}],
         "boxes": [[f, 0, 0, 40, 20] for f in range(5, 8)]}
    if not with_boxes:
        del a["boxes"], b["boxes"]
    return {"generator": "raystack.synth", "version": 2, "test": [a, b], "train": []}


def test_iou_and_the_hit_rule():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    truth = (100, 50, 120, 90)  # 20x40, centre (110, 70)
    assert box_hits((0, 0, 256, 256), truth)  # a big tile: IoU tiny, centre inside
    assert not box_hits((111, 0, 256, 256), truth)  # centre just outside, IoU ~0.01
    assert box_hits((105, 55, 125, 95), truth)  # IoU ~0.6, centre inside too
    assert box_hits((112, 50, 140, 90), truth)  # centre outside, IoU 320/1600 = 0.2
    assert not box_hits((0, 0, 100, 50), truth)  # touching corner
    assert not box_hits((119, 89, 400, 400), truth)  # IoU tiny, centre outside


def test_labelled_events_from_synth_labels():
    events = labelled_events(_doc())
    assert [(e.video, e.kind, e.subtle, e.start, e.stop) for e in events] == [
        ("test/test_001.mp4", "loiterer", True, 10, 20), ("test/test_002.mp4", "car", False, 5, 8)]
    assert events[0].boxes[12] == [(100.0, 50.0, 120.0, 90.0)]
    assert labelled_events(_doc(with_boxes=False)) == []


def test_peak_frame_box_decides_the_event():
    event = labelled_events(_doc())[0]
    frames = np.arange(4, 30)
    scores = np.zeros(len(frames))
    scores[frames == 13] = 1.0  # the peak inside the event
    scores[frames == 25] = 5.0  # higher, but outside the event: ignored
    boxes = np.tile([300.0, 300.0, 400.0, 400.0], (len(frames), 1))  # elsewhere ...
    boxes[frames == 13] = [96, 48, 128, 80]  # ... except at the peak
    out = localise_event(event, frames, scores, boxes)
    assert out.peak_frame == 13 and out.hit is True and out.iou > 0.1
    scores[frames == 15] = 2.0  # now the peak is a frame whose box misses
    out = localise_event(event, frames, scores, boxes)
    assert out.peak_frame == 15 and out.hit is False
    boxes[frames == 15] = NAN4
    assert localise_event(event, frames, scores, boxes).why == "no predicted box"
    assert localise_event(event, np.arange(0, 5), np.zeros(5), np.zeros((5, 4))).why == "unscored"
    gap = LabelledEvent("v", "x", False, 10, 20, boxes={})
    assert localise_event(gap, frames, scores, np.zeros_like(boxes)).why == "no labelled box"


def test_summary_shares_overall_per_kind_and_subtle():
    ev = labelled_events(_doc())
    f = np.arange(0, 30)
    s = np.zeros(30)
    s[12], s[6] = 1.0, 1.0
    hit = np.tile([100.0, 50.0, 120.0, 90.0], (30, 1))  # on the loiterer, misses the car
    res = [localise_event(e, f, s, hit) for e in ev]
    loc = localisation_summary(res)
    assert (loc["events"], loc["judged"], loc["hits"], loc["share"]) == (2, 2, 1, 0.5)
    assert loc["by_kind"]["loiterer"]["share"] == 1.0 and loc["by_kind"]["car"]["share"] == 0.0
    assert loc["subtle"]["share"] == 1.0 and loc["gross"]["share"] == 0.0
    json.dumps(loc)  # eval.json holds it
    line = summary_line({"available": True, **loc})
    assert "1/2 labelled events (50%)" in line and "loiterer 100%" in line
    none = localisation_summary([localise_event(ev[0], f, s, np.full((30, 4), np.nan))])
    assert none["share"] is None and none["judged"] == 0
    assert "not available" in summary_line({"available": False, "reason": "x"})
    assert summary_line(None) is None


def _box_table(rows: list[dict]) -> pa.Table:
    cols = ["video_id", "frame", "model", "tiles", "box_x0", "box_y0", "box_x1", "box_y1",
            "patch_x0", "patch_y0", "patch_x1", "patch_y1"]
    return pa.table({c: [r.get(c) for r in rows] for c in cols})


def test_predicted_box_is_patch_else_tile_else_none():
    t = _box_table([
        dict(video_id="v", frame=5, model="fp", tiles=6, box_x0=0, box_y0=0, box_x1=64,
             box_y1=64, patch_x0=8, patch_y0=8, patch_x1=16, patch_y1=16),
        dict(video_id="v", frame=4, model="fp", tiles=6, box_x0=0, box_y0=0, box_x1=64,
             box_y1=64),  # tiled, no patch: the tile
        dict(video_id="v", frame=6, model="fp", tiles=None, box_x0=0, box_y0=0, box_x1=320,
             box_y1=240),  # whole frame, no patch: no box
    ])
    frames, boxes = predicted_boxes(t)[("v", "fp")]
    assert frames.tolist() == [4, 5, 6]
    assert boxes[0].tolist() == [0, 0, 64, 64] and boxes[1].tolist() == [8, 8, 16, 16]
    assert np.isnan(boxes[2]).all()
    got = aligned((frames, boxes), np.array([3, 5, 6]))
    assert np.isnan(got[0]).all() and got[1].tolist() == [8, 8, 16, 16]
    assert np.isnan(aligned(None, np.array([1]))).all()


def test_localise_run_judges_each_video_at_its_boxes(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps(_doc()))
    sel = SimpleNamespace(videos=[{"video_id": "v1", "relpath": "test_001.mp4"},
                                  {"video_id": "v2", "relpath": "test_002.mp4"}],
                          frames=[np.arange(30), np.arange(30)])
    fused = [(np.linspace(0, 1, 30), None), (np.linspace(1, 0, 30), None)]
    tile = np.tile([64.0, 0, 192, 128], (30, 1))
    loc = localise_run(tmp_path / "labels.json", sel, fused, [tile, np.full((30, 4), np.nan)])
    assert loc["available"] and loc["events"] == 2 and loc["judged"] == 1
    assert loc["hits"] == 1 and loc["by_kind"]["car"]["judged"] == 0
    loc = localise_run(tmp_path / "labels.json", sel, fused, [np.full((30, 4), np.nan)] * 2)
    assert loc["available"] is False and "no predicted box" in loc["reason"]
    assert localise_run(tmp_path / "x.npy", sel, fused, [tile, tile]) is None


def _two_videos(tmp_path):
    """A store with run r's two labelled videos at 320x240 (see _doc), no scores yet."""
    from raystack.store import Store, table_schema

    st = Store(tmp_path / "store")
    vids = [{"video_id": f"v{i}", "relpath": f"test_00{i}.mp4"} for i in (1, 2)]
    st.write_table("videos", "r", "videos", pa.Table.from_pylist([
        dict(video_id=v["video_id"], uri="/x", relpath=v["relpath"], kind="video", size_bytes=1,
             etag=None, mtime=None, frames=30, fps=25.0, width=320, height=240, duration_s=1.2,
             codec="mpeg4", probe_error=None) for v in vids], schema=table_schema("videos")))
    return st, vids


def test_eval_boxes_a_fused_frame_as_sql_fused_does(tmp_path):
    """The box of a fused frame is the region SQL fused() gives it (the stream most
    anomalous there before smoothing), not a second rule in Python: fp's sharp dip and fr's
    broad one meet at frame 12, where fp is the more anomalous of the two unsmoothed but the
    less after smoothing. Failed before: eval chose by the smoothed scores and boxed fr's
    tile, away from the loiterer."""
    from raystack.eval import evaluate
    from raystack.query.connection import connect
    from raystack.store import table_schema

    st, vids = _two_videos(tmp_path)
    f = np.arange(30)
    fp = np.where(f == 12, 20.0, 30.0)
    fr = 30.0 - 9.0 * np.exp(-(((f - 12) / 5.0) ** 2))
    fr[26] = 15.0  # fr's most anomalous frame lies outside the event: 0.6 at frame 12
    tiles = {"fp": (64, 0, 192, 128), "fr": (200, 0, 320, 128)}  # fp's holds the loiterer
    schema = table_schema("scores")
    for v in vids:
        for model, psnr in (("fp", fp), ("fr", fr)):
            box = tiles[model] if v["video_id"] == "v1" else (None,) * 4
            cols = {"run_id": ["r"] * 30, "video_id": [v["video_id"]] * 30, "frame": f,
                    "timestamp_s": f / 25.0, "model": [model] * 30,
                    "psnr": psnr.astype(np.float32),
                    "tiles": [6 if box[0] is not None else None] * 30,
                    **{c: [b] * 30 for c, b in zip(("box_x0", "box_y0", "box_x1", "box_y1"),
                                                   box, strict=True)}}
            st.write_table("scores", "r", f"{v['video_id']}-{model}", pa.table(
                {n: cols.get(n, [None] * 30) for n in schema.names}, schema=schema))
    (tmp_path / "labels.json").write_text(json.dumps(_doc()))
    loc = evaluate(st, tmp_path / "labels.json", "r", fusion="weighted:0.5:fp,fr",
                   sigma=3).localisation
    event = loc["events_detail"][0]
    assert event["peak_frame"] == 12
    con = connect(st)
    want = con.sql("SELECT box_x0, box_y0, box_x1, box_y1 FROM fused(fusion := 'weighted', "
                   "sigma := 3, run := 'r') WHERE video_id = 'v1' AND frame = 12").fetchall()
    con.close()
    assert [list(map(float, want[0]))] == [event["box"]] == [[64.0, 0.0, 192.0, 128.0]]
    assert event["hit"] and loc["by_kind"]["loiterer"]["hits"] == 1


def _store(tmp_path, box_rows: dict | None, version: int = 2):
    """Two labelled videos at 320x240 (see _doc), fp scores on frames 4..29; ``box_rows``:
    extra columns of every row of test_001 (None: whole frame, no box columns set)."""
    from raystack.store import table_schema

    st, vids = _two_videos(tmp_path)
    for v in vids:
        f = np.arange(4, 30)
        psnr = np.full(len(f), 30.0, np.float32)
        psnr[12 - 4] = 20.0  # the loiterer's peak at frame 12; the car's at 6
        psnr[6 - 4] = 20.0
        cols = {"run_id": ["r"] * len(f), "video_id": [v["video_id"]] * len(f), "frame": f,
                "timestamp_s": f / 25.0, "model": ["fp"] * len(f), "psnr": psnr,
                "aux": [None] * len(f)}
        if version == 2 and box_rows is not None and v["video_id"] == "v1":
            cols.update({k: [val] * len(f) for k, val in box_rows.items()})
        schema = table_schema("scores", version)
        st.write_table("scores", "r", v["video_id"], pa.table(
            {n: cols.get(n, [None] * len(f)) for n in schema.names}, schema=schema))
    doc = _doc()
    (tmp_path / "labels.json").write_text(json.dumps(doc))
    return st, tmp_path / "labels.json"


@pytest.mark.parametrize("version", [1, 2])
def test_eval_reports_not_available_without_boxes(tmp_path, version):
    """A v1 run or v2 whole-frame rows without patches: reported, never an error."""
    from raystack.eval import evaluate

    st, labels = _store(tmp_path, None, version)
    res = evaluate(st, labels, "r", fusion="fp", sigma=0, out_dir=tmp_path / "o")
    assert res.localisation["available"] is False and res.localisation["events"] == 2
    assert "localisation: not available" in res.summary()
    saved = json.loads((tmp_path / "o" / "eval.json").read_text())
    assert saved["localisation"]["available"] is False


def test_eval_reports_the_share_of_a_tiled_run(tmp_path):
    from raystack.eval import evaluate

    tile = {"tiles": 6, "box_x0": 64, "box_y0": 0, "box_x1": 192, "box_y1": 128}
    st, labels = _store(tmp_path, tile)
    res = evaluate(st, labels, "r", fusion="fp", sigma=0, out_dir=tmp_path / "o")
    loc = res.localisation
    assert loc["available"] and (loc["events"], loc["judged"], loc["hits"]) == (2, 1, 1)
    assert loc["events_detail"][0]["peak_frame"] == 12
    assert "1/1 labelled events (100%)" in res.summary()
    assert json.loads((tmp_path / "o" / "eval.json").read_text())["localisation"]["share"] == 1.0
    miss = dict(tile, box_x0=200, box_x1=320)  # a tile away from the loiterer
    st, labels = _store(tmp_path / "miss", miss)
    assert evaluate(st, labels, "r", fusion="fp", sigma=0).localisation["share"] == 0.0
    npy = tmp_path / "flat.npy"
    np.save(npy, np.r_[np.zeros(10), np.ones(10), np.zeros(15), np.ones(3), np.zeros(22)])
    assert evaluate(st, npy, "r", fusion="fp", sigma=0).localisation is None  # no boxes


def test_an_event_is_boxed_at_its_highest_raw_frame_in_eval_and_sql(tmp_path):
    """Smoothing says when, the frame before smoothing says where: fp dips sharply at frame
    11 in the tile holding the loiterer and broadly over 13-19 in another tile. The smoothed
    score peaks inside the broad dip, whose box misses; eval and SQL events() both box the
    event at frame 11. Failed before: both took the smoothed maximum's frame."""
    from raystack.eval import evaluate
    from raystack.query.connection import connect
    from raystack.store import table_schema

    st, vids = _two_videos(tmp_path)
    f = np.arange(30)
    psnr = np.full(30, 30.0, np.float32)
    psnr[11], psnr[13:20] = 18.0, 23.0
    near, away, rest = (64, 0, 192, 128), (200, 0, 320, 128), (0, 128, 128, 240)
    where = [near if i == 11 else away if 13 <= i < 20 else rest for i in f]
    schema = table_schema("scores")
    for v in vids:
        cols = {"run_id": ["r"] * 30, "video_id": [v["video_id"]] * 30, "frame": f,
                "timestamp_s": f / 25.0, "model": ["fp"] * 30, "psnr": psnr, "tiles": [6] * 30,
                **{c: [b[i] for b in where]
                   for i, c in enumerate(("box_x0", "box_y0", "box_x1", "box_y1"))}}
        st.write_table("scores", "r", v["video_id"], pa.table(
            {n: cols.get(n, [None] * 30) for n in schema.names}, schema=schema))
    (tmp_path / "labels.json").write_text(json.dumps(_doc()))
    con = connect(st)
    smoothed = con.sql("SELECT frame, score FROM fused(fusion := 'fp', sigma := 3, run := 'r') "
                       "WHERE video_id = 'v1' AND frame BETWEEN 10 AND 19 "
                       "ORDER BY score DESC LIMIT 1").fetchall()
    assert 13 <= smoothed[0][0] < 20  # where the rule before boxed it: a miss
    ev = con.sql("SELECT start_frame, end_frame, peak_frame, peak_score, box_x0 FROM "
                 "events(fusion := 'fp', sigma := 3, threshold := 0.2, min_frames := 1, "
                 "run := 'r') WHERE video_id = 'v1'").fetchall()
    con.close()
    assert len(ev) == 1 and ev[0][0] <= 11 and ev[0][1] >= 19
    assert ev[0][2:] == (11, smoothed[0][1], near[0])  # peak_score stays the smoothed maximum
    loc = evaluate(st, tmp_path / "labels.json", "r", fusion="fp", sigma=3).localisation
    event = loc["events_detail"][0]
    assert event["peak_frame"] == 11 and event["box"] == list(map(float, near)) and event["hit"]


def test_event_peak_takes_the_stream_most_frames_carry():
    scores = np.array([0.9, 0.5, 0.6, 0.3, 0.4])
    assert event_peak(scores) == 0
    assert event_peak(scores, ["fp", "presence", "presence", "fp", "presence"]) == 2
    assert event_peak(np.array([0.5, 0.7]), ["fp", "presence"]) == 1  # a tie: the higher best
    assert event_peak(np.array([0.7, 0.7]), ["fp", "presence"]) == 1  # then the later name
    assert event_peak(np.array([0.2, 0.8, 0.8]), ["fp", "fp", None]) == 1


def test_a_loiterers_event_is_boxed_by_the_stream_that_boxes_most_of_it(tmp_path):
    """presence boxes the loiterer in 9 of the event's 10 frames; at frame 12 a passer-by's
    fp spike is the highest fused frame and takes fp's box, away from the loiterer. SQL
    events() and eval both box the event at presence's best frame. Failed before: both
    boxed the single highest frame, a miss."""
    from raystack.eval import evaluate
    from raystack.query.connection import connect
    from raystack.store import table_schema

    st, vids = _two_videos(tmp_path)
    f = np.arange(30)
    near, away = (64, 0, 192, 128), (200, 128, 320, 240)  # the loiterer is at (100..120, 50..90)
    schema = table_schema("scores")
    for v in vids:
        fp = (30.0 + 0.3 * np.sin(f + (0 if v["video_id"] == "v1" else 1))).astype(np.float32)
        presence = np.full(30, 30.0, np.float32)
        if v["video_id"] == "v1":
            fp[10:20], fp[12] = 30.2, 15.0  # fp usual there, but for the spike
            presence[10:20] = 20.0
        for model, psnr, box in (("fp", fp, away), ("presence", presence, near)):
            cols = {"run_id": ["r"] * 30, "video_id": [v["video_id"]] * 30, "frame": f,
                    "timestamp_s": f / 25.0, "model": [model] * 30, "psnr": psnr,
                    "tiles": [6] * 30, **{c: [b] * 30 for c, b in zip(
                        ("box_x0", "box_y0", "box_x1", "box_y1"), box, strict=True)}}
            st.write_table("scores", "r", f"{v['video_id']}-{model}", pa.table(
                {n: cols.get(n, [None] * 30) for n in schema.names}, schema=schema))
    (tmp_path / "labels.json").write_text(json.dumps(_doc()))
    fusion = "fusion := 'weighted', alpha := 0.75, streams := ['fp', 'presence'], sigma := 0"
    con = connect(st)
    carried = dict(con.sql(f"SELECT frame, box_model FROM fused({fusion}) WHERE video_id = 'v1' "
                           "AND frame BETWEEN 10 AND 19").fetchall())
    top = con.sql(f"SELECT frame FROM fused({fusion}) WHERE video_id = 'v1' "
                  "ORDER BY raw_score DESC LIMIT 1").fetchall()
    ev = con.sql(f"SELECT start_frame, end_frame, peak_frame, box_x0 FROM events({fusion}, "
                 "threshold := 0.2, min_frames := 1) WHERE video_id = 'v1'").fetchall()
    con.close()
    assert top == [(12,)] and carried.pop(12) == "fp" and set(carried.values()) == {"presence"}
    assert len(ev) == 1 and ev[0][:2] == (10, 19)
    assert ev[0][2] != 12 and ev[0][3] == near[0]
    loc = evaluate(st, tmp_path / "labels.json", "r", fusion="weighted:0.75:fp,presence",
                   sigma=0).localisation
    event = loc["events_detail"][0]
    assert event["peak_frame"] == ev[0][2] and event["box"] == list(map(float, near))
    assert event["hit"]
