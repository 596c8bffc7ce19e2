"""Where in the frame, in SQL: events carry the peak frame's box, roi/exclude filter frames
by where they point, top_boxes() ranks boxes per time bucket. The store is written directly
as schema-v2 score rows with known boxes (no scan)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from raystack.query import QueryError, connect, run_sql
from raystack.store import Store

FPS = 25.0
N = 40
# Tiles of a 1920x1080 frame (x0, y0, x1, y1) and the worst patch inside each.
A, PA = (0, 0, 480, 480), (100, 100, 164, 164)          # patch centre (132, 132)
B, PB = (1440, 600, 1920, 1080), (1500, 700, 1564, 764)  # patch centre (1532, 732)
C, PC = (960, 0, 1440, 480), (1000, 10, 1064, 74)
D, PD = (480, 600, 960, 1080), (500, 900, 564, 964)      # patch centre (532, 932)
WHOLE = (0, 0, 1920, 1080)


def stream_rows(video, model, psnr, boxes, patches, tiles=24):
    """Score rows of one stream: psnr, box and patch per frame (patch None: no patch)."""
    n = len(psnr)
    cols = {"run_id": ["r1"] * n, "video_id": [video] * n, "frame": list(range(n)),
            "timestamp_s": [f / FPS for f in range(n)], "model": [model] * n,
            "psnr": pa.array(psnr, pa.float32()), "aux": pa.nulls(n, pa.float32()),
            "psnr_mean": pa.array([None if tiles is None else p + 2 for p in psnr],
                                  pa.float32()),
            "tiles": pa.array([tiles] * n, pa.int16())}
    for i, c in enumerate(("box_x0", "box_y0", "box_x1", "box_y1")):
        cols[c] = pa.array([b[i] for b in boxes], pa.int32())
    for i, c in enumerate(("patch_x0", "patch_y0", "patch_x1", "patch_y1")):
        cols[c] = pa.array([None if p is None else p[i] for p in patches], pa.int32())
    return pa.table(cols)


@pytest.fixture(scope="module")
def region_store(tmp_path_factory):
    """cam1 (tiled): fp dips at 10-14 in tile A (worst at 12) and at 25-29 in tile B (worst
    at 27), elsewhere tile C; fr dips at 25-29 in tile D, harder than fp. cam2: scored whole
    (box = the frame, no patch), one dip at 5-9."""
    st = Store(tmp_path_factory.mktemp("regions") / "store")
    fp = [30.0] * N
    for f in range(10, 15):
        fp[f] = 20.0
    fp[12] = 18.0
    for f in range(25, 30):
        fp[f] = 23.0
    fp[27] = 22.0
    where = [A if 10 <= f < 15 else B if 25 <= f < 30 else C for f in range(N)]
    patch = [PA if 10 <= f < 15 else PB if 25 <= f < 30 else PC for f in range(N)]
    st.write_table("scores", "r1", "cam1-fp", stream_rows("cam1", "fp", fp, where, patch))
    fr = [30.0] * N
    for f in range(25, 30):
        fr[f] = 10.0
    fr[0] = 9.0  # fr's own minimum elsewhere, so its normalised dip at 25-29 is not 1
    fr_where = [D if 25 <= f < 30 else C for f in range(N)]
    fr_patch = [PD if 25 <= f < 30 else PC for f in range(N)]
    st.write_table("scores", "r1", "cam1-fr", stream_rows("cam1", "fr", fr, fr_where, fr_patch))
    whole = [30.0] * N
    for f in range(5, 10):
        whole[f] = 20.0
    st.write_table("scores", "r1", "cam2-fp",
                   stream_rows("cam2", "fp", whole, [WHOLE] * N, [None] * N, tiles=None))
    return st


@pytest.fixture(scope="module")
def con(region_store):
    c = connect(region_store)
    yield c
    c.close()


def events(con, **args):
    extra = "".join(f", {k} := {v}" for k, v in args.items())
    q = ("SELECT video_id, start_frame, end_frame, peak_frame, box_x0, box_y0, box_x1, box_y1, "
         "patch_x0, patch_y0, patch_x1, patch_y1 FROM events(threshold := 0.5, "
         f"min_frames := 1, merge_gap := 0, sigma := 0, fusion := 'fp'{extra})")
    return [tuple(r.values()) for r in run_sql(con, q).to_pylist()]


def test_scores_view_has_the_written_regions(con):
    row = run_sql(con, "SELECT * FROM scores WHERE video_id = 'cam1' AND model = 'fp' "
                       "AND frame = 12").to_pylist()[0]
    assert (row["box_x0"], row["box_y0"], row["box_x1"], row["box_y1"]) == A
    assert (row["patch_x0"], row["patch_y1"]) == (100, 164)
    assert row["tiles"] == 24 and row["psnr_mean"] == 20.0


def test_events_carry_the_peak_frames_box_and_patch(con):
    assert events(con) == [
        ("cam1", 10, 14, 12, *A, *PA),
        ("cam1", 25, 29, 27, *B, *PB),
        ("cam2", 5, 9, 5, *WHOLE, None, None, None, None),  # a plateau: the first frame
    ]


def test_fused_box_is_never_frs_beside_another_stream(con):
    q = ("SELECT frame, box_x0, box_y0, patch_x0 FROM fused(fusion := 'weighted', sigma := 0) "
         "WHERE video_id = 'cam1' AND frame IN (12, 27) ORDER BY frame")
    # Frame 12: fp is anomalous, fr normal. Frame 27: both dip and fr is the more unusual
    # for its run (4.1 against 3.2 spreads below the median), but FR's box lies where the
    # flow is largest, not where the anomaly is (box_last_streams()): fp's box.
    assert [tuple(r.values()) for r in run_sql(con, q).to_pylist()] == [
        (12, A[0], A[1], PA[0]), (27, B[0], B[1], PB[0])]
    ev = run_sql(con, "SELECT start_frame, box_x0 FROM events(fusion := 'max', sigma := 0, "
                      "threshold := 0.5, min_frames := 1) WHERE video_id = 'cam1' "
                      "ORDER BY start_frame").to_pylist()
    # Frame 0 is fr's own worst frame (psnr 9): max fusion flags it, in fp's box there.
    assert [(e["start_frame"], e["box_x0"]) for e in ev] == [(0, C[0]), (10, A[0]), (25, B[0])]
    # FR alone, or fused with nothing that boxes, still has its box.
    alone = run_sql(con, "SELECT frame, box_x0 FROM fused(fusion := 'max', streams := ['fr'], "
                         "sigma := 0) WHERE video_id = 'cam1' AND frame = 27").to_pylist()
    assert [(r["frame"], r["box_x0"]) for r in alone] == [(27, D[0])]


def test_a_stream_often_at_its_floor_does_not_take_a_rarer_streams_box(tmp_path):
    """presence sits at its floor on a third of the rows: its spread is narrow and its z at
    the floor high, but a third of the run scores as low. fp's dip is in its run's 5% tail:
    the box is fp's (run_tail before run_z; before this rule, run_z alone gave presence
    the box of such frames and missed 1 of the 12 validation events of the street bench)."""
    st = Store(tmp_path / "store")
    n = 60
    fp = [30.0 + 0.1 * (f % 7) for f in range(n)]
    fp[40] = fp[41] = 26.0  # 2 of 60 rows: the 5% tail
    pr = [-33.0 if f % 3 == 0 else -20.0 + 0.1 * (f % 5) for f in range(n)]
    pr[39] = pr[40] = pr[41] = pr[42] = -33.0
    st.write_table("scores", "r1", "cam-fp", stream_rows("cam", "fp", fp, [B] * n, [PB] * n))
    st.write_table("scores", "r1", "cam-presence",
                   stream_rows("cam", "presence", pr, [C] * n, [PC] * n))
    c = connect(st)
    got = run_sql(c, "SELECT frame, box_x0 FROM fused(fusion := 'weighted', streams := "
                     "['fp', 'presence'], sigma := 0) WHERE frame IN (39, 40) ORDER BY frame")
    ranks = run_sql(c, "SELECT s.model, run_z(s.psnr, d) AS z, run_tail(s.psnr, d) AS tail "
                       "FROM scores s JOIN stream_spread() d USING (run_id, model) "
                       "WHERE s.frame = 40 ORDER BY s.model").to_pylist()
    c.close()
    fp_rank, pr_rank = ranks
    assert pr_rank["z"] > fp_rank["z"]  # what run_z alone would have boxed
    assert (fp_rank["tail"], pr_rank["tail"]) == (0.05, 0.5)
    # Frame 39: fp is usual (in no tail of its run), presence at its floor is in the lower
    # half of its run: presence's box.
    assert [tuple(r.values()) for r in got.to_pylist()] == [(39, C[0]), (40, B[0])]


def test_a_noise_stream_does_not_take_a_real_dips_box(tmp_path):
    """Min-max per video stretches a stream that sees nothing to anomaly 1 at its own
    noisiest frame; the box goes by how unusual each stream is for its run. Both are in
    their run's 5% tail (run_tail's rarest level, alike): the deeper dip in units of its
    spread (run_z) takes the box."""
    import math

    st = Store(tmp_path / "store")
    n = 300
    fp = [30.0 + 0.2 * math.sin(f) for f in range(n)]
    for f in range(20, 30):
        fp[f] = 22.0
    fp[25] = 21.0
    # presence: flat but for one frame 1 dB low, inside fp's dip: its min-max anomaly is 1
    # there, fp's 0.9; fp is 40 MADs below its median, presence a few.
    pr = [-10.0 + 0.2 * math.cos(f) for f in range(n)]
    pr[22] = -11.0
    st.write_table("scores", "r1", "cam-fp", stream_rows("cam", "fp", fp, [B] * n, [PB] * n))
    st.write_table("scores", "r1", "cam-presence",
                   stream_rows("cam", "presence", pr, [C] * n, [PC] * n))
    c = connect(st)
    q = ("SELECT frame, box_x0, patch_x0 FROM fused(fusion := 'weighted', "
         "streams := ['fp', 'presence'], sigma := 0) WHERE frame IN (22, 25) ORDER BY frame")
    got = [tuple(r.values()) for r in run_sql(c, q).to_pylist()]
    ranks = run_sql(c, "SELECT s.model, run_z(s.psnr, d) AS z, run_tail(s.psnr, d) AS tail "
                       "FROM scores s JOIN stream_spread() d USING (run_id, model) "
                       "WHERE s.frame = 22 ORDER BY s.model").to_pylist()
    c.close()
    assert got == [(22, B[0], PB[0]), (25, B[0], PB[0])]
    assert ranks[0]["tail"] == ranks[1]["tail"] == 0.05
    assert ranks[0]["z"] > 30 and 2 < ranks[1]["z"] < 10


def test_a_stream_gated_throughout_does_not_take_the_box(tmp_path):
    """A stream whose every row is gated has no spread (stream_spread skips gated rows);
    its frames must not win the box on a NULL key."""
    st = Store(tmp_path / "store")
    n = 20
    fp = stream_rows("cam", "fp", [40.0] * n, [A] * n, [PA] * n)
    fp = fp.append_column("gated", pa.array([True] * n))
    pr = [-10.0 + 0.1 * (f % 3) for f in range(n)]
    pr[9] = -20.0
    st.write_table("scores", "r1", "cam-fp", fp)
    st.write_table("scores", "r1", "cam-presence",
                   stream_rows("cam", "presence", pr, [C] * n, [PC] * n))
    c = connect(st)
    got = run_sql(c, "SELECT frame, box_x0 FROM fused(fusion := 'weighted', streams := "
                     "['fp', 'presence'], sigma := 0) WHERE frame IN (3, 9) ORDER BY frame")
    c.close()
    assert [tuple(r.values()) for r in got.to_pylist()] == [(3, C[0]), (9, C[0])]


def test_roi_keeps_frames_pointing_inside_and_whole_frames(con):
    top_left = "[[0, 0, 960, 540]]"
    assert [e[1] for e in events(con, roi=top_left)] == [10, 5]  # cam2: no location, kept
    assert [e[1] for e in events(con, roi="[0, 0, 960, 540]")] == [10, 5]  # one flat box
    assert [e[1] for e in events(con, roi="[[0, 0, 960, 540], [1400, 600, 1920, 1080]]")] == [
        10, 25, 5]
    assert [e[1] for e in events(con, exclude=top_left)] == [25, 5]
    assert [e[1] for e in events(con, exclude="[[0, 0, 1920, 1080]]")] == [5]
    # Patch centres, not tile boxes: (132, 132) lies outside [0, 0, 120, 120] though tile A
    # overlaps it.
    assert [e[1] for e in events(con, roi="[[0, 0, 120, 120]]")] == [5]
    n = run_sql(con, "SELECT count(*) AS n FROM fused(fusion := 'fp', sigma := 0, "
                     "roi := [[1400.5, 600, 1920, 1080]]) WHERE video_id = 'cam1'")["n"][0]
    assert n.as_py() == 5


@pytest.mark.parametrize("bad", ["[[0, 0, 10]]", "[[10, 0, 5, 5]]", "'0,0,10,10'",
                                 "[[0, 0, NULL, 10]]", "[]", "[[-1, 0, 10, 10]]", "[['a']]"])
def test_malformed_roi_and_exclude_fail_loudly(con, bad):
    with pytest.raises(QueryError, match="roi must be a box"):
        events(con, roi=bad)
    with pytest.raises(QueryError, match="exclude must be a box"):
        run_sql(con, f"SELECT count(*) FROM fused(fusion := 'fp', exclude := {bad}) "
                     "WHERE video_id = 'cam2'")  # rows without a location check it too


def test_a_misspelt_argument_fails(con):
    with pytest.raises(QueryError, match="does not support the supplied arguments"):
        run_sql(con, "SELECT * FROM fused(rio := [[0, 0, 10, 10]])")


def test_top_boxes_per_bucket(con):
    q = ("SELECT bucket, start_s, rank, box_x0, box_y0, box_x1, box_y1, peak_frame, frames, "
         "patch_x0 FROM top_boxes('cam1', k := 2, bucket_s := 1, sigma := 0, fusion := 'fp')")
    rows = [tuple(r.values()) for r in run_sql(con, q).to_pylist()]
    assert rows == [
        (0, 0.0, 1, *A, 12, 5, PA[0]),   # frames 0-24: the dip in A first,
        (0, 0.0, 2, *C, 0, 20, PC[0]),   # then C (all its frames tie at 0: the first)
        (1, 1.0, 1, *B, 27, 5, PB[0]),   # frames 25-39: B, then C
        (1, 1.0, 2, *C, 30, 10, PC[0]),
    ]
    one = run_sql(con, "SELECT rank FROM top_boxes('cam1', k := 1, bucket_s := 100, "
                       "sigma := 0, fusion := 'fp')")
    assert one["rank"].to_pylist() == [1]
    whole = run_sql(con, "SELECT box_x1, patch_x0 FROM top_boxes('cam2', sigma := 0, "
                         "fusion := 'fp')").to_pylist()
    assert whole == [{"box_x1": 1920, "patch_x0": None}]


@pytest.mark.parametrize(("call", "said"), [
    ("top_boxes('cam9', fusion := 'fp')", "unknown video 'cam9'; videos of the run.*cam1, cam2"),
    ("top_boxes('cam1', k := 0, fusion := 'fp')", "k must be a whole number >= 1, got 0"),
    ("top_boxes('cam1', bucket_s := 0, fusion := 'fp')", "bucket_s must be > 0"),
    ("top_boxes(NULL, fusion := 'fp')", "top_boxes needs a video_id"),
])
def test_top_boxes_refuses_bad_arguments(con, call, said):
    with pytest.raises(QueryError, match=said):
        run_sql(con, f"SELECT * FROM {call}")


def test_find_events_roi_and_exclude_match_sql(region_store, con):
    from raystack.query import find_events

    args = {"fusion": "fp", "sigma": 0, "threshold": 0.5, "min_frames": 1, "merge_gap": 0}
    ev = find_events(con, roi=[[0, 0, 960, 540]], **args)
    assert ev["start_frame"].to_pylist() == [10, 5]
    assert ev["peak_frame"].to_pylist() == [12, 5] and ev["patch_x0"].to_pylist() == [100, None]
    ev = find_events(region_store, exclude=[[0, 0, 960, 540], [1400, 600, 1920, 1080]], **args)
    assert ev["start_frame"].to_pylist() == [5]
    with pytest.raises(QueryError, match=r"exclude must be a box .* got \[\[0, 0, 5\]\]"):
        find_events("/no/such/store", exclude=[[0, 0, 5]], **args)  # before the store is read


def test_parse_box():
    from raystack.query.regions import check_boxes, parse_box

    assert parse_box(" 0, 0,960,540") == [0.0, 0.0, 960.0, 540.0]
    for bad in ("0,0,960", "0,0,a,1", "5,0,5,10", "-1,0,2,2", "0,0,nan,1"):
        with pytest.raises(QueryError, match="roi must be a box"):
            parse_box(bad)
    assert check_boxes(None, "roi") is None
    with pytest.raises(QueryError, match="exclude must be a box"):
        check_boxes([], "exclude")


def test_cli_events_roi_exclude_and_box_columns(region_store):
    from typer.testing import CliRunner

    from raystack.cli import app

    def invoke(*args):
        r = CliRunner().invoke(app, ["events", region_store.uri, "--fusion", "fp", "--sigma", "0",
                                     "--threshold", "0.5", "--min-frames", "1",
                                     "--merge-gap", "0", "--format", "csv", *args])
        return r.exit_code, r.output

    code, out = invoke()
    assert code == 0, out
    header, *rows = out.splitlines()
    assert header.endswith('"peak_frame","box_x0","box_y0","box_x1","box_y1",'
                           '"patch_x0","patch_y0","patch_x1","patch_y1"')
    assert len(rows) == 3 and rows[0].endswith("12,0,0,480,480,100,100,164,164")
    code, out = invoke("--roi", "1400,600,1920,1080", "--roi", "0,0,10,10")
    assert code == 0 and [r.split(",")[1] for r in out.splitlines()[1:]] == ['"cam1"', '"cam2"']
    code, out = invoke("--exclude", "0,0,1920,1080")
    assert code == 0 and len(out.splitlines()) == 2  # cam2's whole-frame event only
    code, out = invoke("--roi", "0,0,960")
    assert code == 2 and "roi must be a box" in out


@pytest.mark.parametrize("sigma", [0, 3])
def test_smoothing_keeps_each_frames_region(con, sigma):
    q = (f"SELECT frame, box_x0, box_y0, patch_x0 FROM fused(fusion := 'fp', sigma := {sigma}) "
         "WHERE video_id = 'cam1' ORDER BY frame")
    rows = run_sql(con, q).to_pylist()
    assert [r["frame"] for r in rows] == list(range(N))
    for r in rows:
        f = r["frame"]
        box, patch = (A, PA) if 10 <= f < 15 else (B, PB) if 25 <= f < 30 else (C, PC)
        assert (r["box_x0"], r["box_y0"], r["patch_x0"]) == (box[0], box[1], patch[0]), f


def test_arrow_scan_reads_the_regions(region_store):
    c = connect(region_store, scan="arrow")
    got = run_sql(c, "SELECT peak_frame, box_x0 FROM events(threshold := 0.5, min_frames := 1, "
                     "sigma := 0, fusion := 'fp') ORDER BY video_id, start_frame").to_pylist()
    assert [(r["peak_frame"], r["box_x0"]) for r in got] == [(12, 0), (27, 1440), (5, 0)]


def test_the_documented_region_queries_run(con):
    """docs/store-schema.md "Where in the frame": its examples, on this store's run/video."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "store-schema.md").read_text()
    block = re.search(r"```sql\n(.*?)```", doc[doc.index("#### Where in the frame"):], re.S)
    text = block.group(1).replace("'night1'", "'r1'").replace("'cam01-3fa2c1d0'", "'cam1'")
    statements = [q for q in text.split(";") if q.strip()]
    assert len(statements) == 3
    results = [run_sql(con, q.replace("run := 'r1')", "run := 'r1', fusion := 'fp')"))
               for q in statements]
    assert all(r.num_rows for r in results[1:])
    assert "box_x0" in results[0].column_names
