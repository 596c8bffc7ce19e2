"""Boxes in the report: the peak frame's box on each thumbnail, a legend saying what it
means, a strip of the event's frames each with its box; none of it for v1 rows."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from raystack.query.connection import connect
from raystack.report import ReportOptions, build_report
from raystack.report.boxes import REGION_COLUMNS, Mark, draw_marks, frame_marks, legend_text
from raystack.report.regions import frame_regions, strip_frames
from raystack.store import Store

OPTS = ReportOptions(sigma=0, threshold=0.5)
ARGS = {"fusion": "weighted", "alpha": 0.5, "streams": ["fp", "fr"], "sigma": 0, "run": "r1"}
TILE, PATCH = (8, 8, 48, 48), (16, 16, 40, 40)  # source pixels of the 64x64 clips
SCALE = 3  # 192-px thumbnails of 64-px frames




@pytest.fixture
def region_store(tmp_path, scanned_store, write_region_run):
    _, videos, _ = scanned_store
    st = Store(tmp_path / "store")
    vids = videos.column("video_id").to_pylist()
    write_region_run(st, videos, {(v, m): (TILE, PATCH) for v in vids for m in ("fp", "fr")})
    return st, videos


def test_marks_skip_whole_frame_and_missing_boxes():
    row = dict(zip(("box_x0", "box_y0", "box_x1", "box_y1"), (0, 0, 64, 64), strict=True))
    assert frame_marks(row, 64, 64) == []  # whole-frame scoring: the box says nothing
    assert frame_marks({**row, "box_x1": 32}, 64, 64) == [Mark("tile", (0, 0, 32, 64))]
    patch = dict(zip(("patch_x0", "patch_y0", "patch_x1", "patch_y1"), PATCH, strict=True))
    assert frame_marks({**row, **patch}, 64, 64) == [Mark("patch", PATCH)]
    assert frame_marks(None) == [] and frame_marks({"box_x0": None}) == []
    assert legend_text(set()) == "" and "magenta" in legend_text({"patch"})


def test_marks_are_drawn_scaled_to_the_thumbnail(pixels):
    img = np.zeros((192, 192, 3), np.uint8)
    assert draw_marks(img, [Mark("tile", TILE), Mark("patch", PATCH)], SCALE) == \
        {"tile", "patch"}
    bgr = img[..., ::-1]
    ys, xs = np.nonzero(pixels.magenta(bgr))
    # x1/y1 exclusive: the patch's last pixel is 40 * 3 - 1.
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (48, 48, 119, 119)
    ys, xs = np.nonzero(pixels.cyan(bgr))
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (24, 24, 143, 143)
    assert not pixels.magenta(bgr)[60:100, 60:100].any()  # a frame, not a filled rectangle


def test_strip_frames_are_even_and_unique():
    assert strip_frames(120, 180, 8) == [120, 129, 137, 146, 154, 163, 171, 180]
    assert strip_frames(25, 27, 8) == [25, 26, 27] and strip_frames(5, 5, 8) == [5]
    assert strip_frames(0, 100, 0) == []


def test_a_frames_box_is_the_fused_frames(tmp_path, scanned_store, write_region_run):
    _, videos, _ = scanned_store
    st = Store(tmp_path / "store")
    vid = videos.column("video_id")[0].as_py()
    fr_patch = (0, 0, 8, 8)
    write_region_run(st, videos.slice(0, 1), {(vid, "fp"): (TILE, PATCH),
                                              (vid, "fr"): (TILE, fr_patch)})
    # fp and fr dip alike, but fr far deeper at frame 30 and fp 3 dB deeper at frame 27.
    for model, frame, delta in (("fr", 30, -20.0), ("fp", 30, 5.0), ("fp", 27, -3.0)):
        t = st.read_table("scores", "r1").filter(pc.equal(pc.field("model"), model))
        psnr = t.column("psnr").to_numpy().copy()
        psnr[t.column("frame").to_numpy() == frame] += delta
        t = t.set_column(t.column_names.index("psnr"), t.schema.field("psnr"), [psnr])
        st.write_table("scores", "r1", f"{vid}-{model}", t)
    con = connect(st)
    got = frame_regions(con, ARGS, [(vid, 27), (vid, 30), (vid, 20)])
    alone = frame_regions(con, {**ARGS, "fusion": "max", "streams": ["fr"]}, [(vid, 30)])
    con.close()
    # The report draws SQL fused()'s box: fp's beside fr, however deep fr dips (FR's box
    # only where nothing else boxes, docs/evaluation.md "Which stream's box"); fr's alone.
    assert got[(vid, 27)]["patch_x1"] == PATCH[2]
    assert got[(vid, 30)]["patch_x1"] == PATCH[2]
    assert alone[(vid, 30)]["patch_x1"] == fr_patch[2]
    assert got[(vid, 20)]["patch_x0"] is None  # outside the dip: no box stored


def test_thumbnail_and_strip_show_the_box_with_a_legend(region_store, tmp_path, pixels):
    st, videos = region_store
    report = build_report(st, "r1", tmp_path / "rep", OPTS)
    assert report.complete and report.thumbnails == len(videos)
    rep = tmp_path / "rep"
    for thumb in sorted((rep / "thumbs").glob("*.jpg")):
        img = cv2.imread(str(thumb))
        assert img.shape[:2] == (192, 192)
        m = pixels.magenta(img)
        # Along the patch box's edges all round (JPEG blurs a pixel or two), not inside it.
        assert pixels.edge_share(m, tuple(v * SCALE for v in PATCH)) > 0.95
        assert not m[56:112, 56:112].any() and not m[:40].any()
        assert pixels.edge_share(pixels.cyan(img), tuple(v * SCALE for v in TILE)) > 0.9
    strips = sorted((rep / "thumbs" / "strip").glob("*.jpg"))
    assert len(strips) == 8 * len(videos)  # the dip spans frames 25-32: every frame
    assert all(pixels.magenta(cv2.imread(str(s))).any() for s in strips)
    index = (rep / "index.html").read_text()
    assert index.count("magenta box: the worst patch of the frame") == 1
    assert "cyan box: the tile that scored worst" in index
    page = (rep / "videos" / "v00001.html").read_text()
    assert "magenta box" in page and page.count("class='detail'") == 1
    imgs = re.findall(r"<img loading='lazy' width='120' alt='frame (\d+)'", page)
    assert imgs == [str(f) for f in range(25, 33)]


def test_v1_rows_show_no_box_and_no_legend(scanned_store, tmp_path, pixels):
    store, videos, _ = scanned_store
    report = build_report(store, "r1", tmp_path / "rep", OPTS)
    assert report.thumbnails == len(videos)
    for thumb in (tmp_path / "rep" / "thumbs").rglob("*.jpg"):
        assert not pixels.magenta(cv2.imread(str(thumb))).any()
    for page in (tmp_path / "rep").rglob("*.html"):
        assert "class='boxes'" not in page.read_text()


def test_whole_frame_rows_show_no_box(tmp_path, scanned_store, write_region_run, pixels):
    _, videos, _ = scanned_store
    st = Store(tmp_path / "store")
    # Region 'frame', whole-frame scoring: the tile box is the frame, no patch.
    write_region_run(st, videos, {(v, m): ((0, 0, 64, 64), None)
                                  for v in videos.column("video_id").to_pylist()
                                  for m in ("fp", "fr")})
    build_report(st, "r1", tmp_path / "rep", OPTS)
    for thumb in (tmp_path / "rep" / "thumbs").rglob("*.jpg"):
        img = cv2.imread(str(thumb))
        assert not pixels.magenta(img).any() and not pixels.cyan(img).any()
    assert "class='boxes'" not in (tmp_path / "rep" / "index.html").read_text()


def test_strips_can_be_turned_off_and_follow_the_thumbnail_cap(region_store, tmp_path):
    st, _ = region_store
    build_report(st, "r1", tmp_path / "a", ReportOptions(sigma=0, threshold=0.5,
                                                         strip_frames=0))
    assert not list((tmp_path / "a" / "thumbs" / "strip").glob("*.jpg"))
    assert "class='detail'" not in (tmp_path / "a" / "videos" / "v00001.html").read_text()
    build_report(st, "r1", tmp_path / "b", ReportOptions(sigma=0, threshold=0.5,
                                                         max_thumbnails=1, strip_frames=3))
    assert len(list((tmp_path / "b" / "thumbs" / "strip").glob("*.jpg"))) == 3


def test_the_events_rows_own_peak_frame_and_box_win(tmp_path, scanned_store, write_region_run):
    from raystack.report.collect import _event_frames

    _, videos, _ = scanned_store
    st = Store(tmp_path / "store")
    vid = videos.column("video_id")[0].as_py()
    fr_patch = (PATCH[0], PATCH[1], 24, 24)
    write_region_run(st, videos.slice(0, 1), {(vid, "fp"): (TILE, PATCH),
                                              (vid, "fr"): (TILE, fr_patch)})
    own = dict(zip(("box_x0", "box_y0", "box_x1", "box_y1", "patch_x0", "patch_y0", "patch_x1",
                    "patch_y1"), (0, 0, 32, 32, 1, 2, 3, 4), strict=True))
    sql_event = {"video_id": vid, "event_id": 1, "start_frame": 25, "end_frame": 32,
                 "peak_frame": 31, **own}
    bare = {"video_id": vid, "event_id": 2, "start_frame": 25, "end_frame": 32}
    curve = {"frames": np.arange(16, 40), "scores": (np.arange(16, 40) == 27).astype(float)}
    con = connect(st)
    regions = _event_frames(con, ARGS, [sql_event, bare], {vid: curve},
                            ReportOptions(strip_frames=3))
    con.close()
    assert regions[(vid, 31)] == own  # as SQL reported it, not looked up again
    assert bare["peak_frame"] == 27 and bare["strip"] == [25, 28, 32]  # the curve's maximum
    assert regions[(vid, 27)]["patch_x0"] == PATCH[0]
    # fp and fr differ by a constant, equally anomalous everywhere: fp gives the box, as
    # SQL fused() does (FR's box only where no other stream of the fusion has one).
    assert regions[(vid, 27)]["patch_x1"] == PATCH[2]


def test_the_reports_boxes_are_fused_boxes(tmp_path, scanned_store, write_region_run):
    """The report asks SQL fused() for its boxes (the rule lives there once): at the
    report's own sigma, every frame it shows has fused()'s box, and a frame that fused()
    leaves out (fr did not score it, so weighted fp,fr has no score there) has none."""
    from raystack.report.collect import collect

    _, videos, _ = scanned_store
    st = Store(tmp_path / "store")
    vids = videos.column("video_id").to_pylist()
    fr_patch = (0, 0, 8, 8)
    write_region_run(st, videos, {**{(v, "fp"): (TILE, PATCH) for v in vids},
                                  **{(v, "fr"): (TILE, fr_patch) for v in vids}})
    t = st.read_table("scores", "r1").filter(
        (pc.field("video_id") == vids[0]) & (pc.field("model") == "fr"))
    st.write_table("scores", "r1", f"{vids[0]}-fr", t.filter(pc.field("frame") != 28))
    opts = ReportOptions(sigma=10, threshold=0.2, strip_frames=64)  # every frame of an event
    data = collect(st, "r1", opts)
    shown = set(data["regions"])
    assert {(vids[0], f) for f in range(25, 33)} - shown == {(vids[0], 28)}
    con = connect(st)
    cols = ", ".join(REGION_COLUMNS)
    fused = {(r.pop("video_id"), r.pop("frame")): r for r in con.sql(
        f"SELECT video_id, frame, {cols} FROM fused(fusion := 'weighted', sigma := 10, "
        "run := 'r1')").to_arrow_table().to_pylist()}
    con.close()
    assert (vids[0], 28) not in fused
    assert {k: data["regions"][k] for k in shown} == {k: fused[k] for k in shown}
    assert PATCH[2] in {r["patch_x1"] for r in data["regions"].values()}  # boxes, not NULLs


def test_a_store_written_by_v1_shows_thumbnails_without_boxes(tmp_path, pixels):
    """tests/data/v1_store (schema v1 files, made by 22f67fd), its videos re-pointed at the
    same synthetic archive made again here: thumbnails as before, no box, no legend."""
    import shutil
    from pathlib import Path

    import pyarrow as pa

    from raystack.synth import synthesize

    root = tmp_path / "v1_store"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "v1_store", root)
    synthesize(tmp_path / "arch", seed=0, n_train=0, n_test=2, frames=40, size=(64, 64))
    for path in (root / "videos").rglob("*.parquet"):  # rewritten in place: still v1
        t = pq.read_table(path)
        uris = [str(tmp_path / "arch" / "test" / r) for r in t.column("relpath").to_pylist()]
        pq.write_table(t.set_column(t.column_names.index("uri"), t.schema.field("uri"),
                                    pa.array(uris, pa.string())), path)
    report = build_report(Store(root), "v1run", tmp_path / "rep", ReportOptions(sigma=0,
                                                                                threshold=0.5))
    assert report.complete and report.events and report.thumbnails == min(report.events, 60)
    thumbs = list((tmp_path / "rep" / "thumbs").rglob("*.jpg"))
    assert len(thumbs) > report.thumbnails  # peak frames and strips
    assert not any(pixels.magenta(cv2.imread(str(p))).any() or pixels.cyan(cv2.imread(str(p))).any()
                   for p in thumbs)
    assert not any("class='boxes'" in p.read_text() for p in (tmp_path / "rep").rglob("*.html"))
