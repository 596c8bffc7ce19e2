"""UnitScorer without Ray: chunked, segmented scoring equals scoring the whole video."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from raystack.archive import list_archive, materialise
from raystack.scan.plan import plan_units
from raystack.scan.probe import probe_archive
from raystack.scan.worker import UnitScorer
from raystack.store import Store

FRAMES, SIZE = 24, (64, 64)  # as the tiny_archive fixture writes them (conftest.py)


@pytest.fixture(scope="module")
def scorer(tiny_checkpoints):
    return UnitScorer([tiny_checkpoints["fp"], tiny_checkpoints["fr"]], threads=2,
                      chunk_frames=5, prefetch_chunks=2, run_id="t")


def _plan(archive, context, segment):
    sources = list_archive(archive)
    return plan_units(probe_archive(sources), context=context, segment_frames=segment,
                      sources=sources)


def _reference(scorer, src):
    """Scores of the whole video in one call, decoded and flowed in one piece."""
    from raystack.decode import open_reader, to_model_range
    from raystack.flow import create_flow, flow_to_model_input

    with open_reader(materialise(src), size=SIZE) as r:
        u8 = r.read(0, r.num_frames)
    flows = flow_to_model_input(create_flow("dis", preset="fast")(u8))
    return scorer.scorer.score(to_model_range(u8), flows)


def test_segments_and_chunks_reproduce_whole_video_scores(scorer, tiny_archive):
    assert scorer.streams == ("fp", "fr", "diff", "motion") and scorer.context == 4
    plan = _plan(tiny_archive, scorer.context, segment=7)  # 20 scorable: 7 + 7 + 6
    first = plan.units[0].video_id
    units = [u for u in plan.units if u.video_id == first]
    assert [(u.start, u.stop) for u in units] == [(4, 11), (11, 18), (18, 24)]
    tables = [scorer(u) for u in units]
    ref = _reference(scorer, units[0].source)
    for stream in scorer.streams:
        rows = [t.filter(np.asarray(t["model"].to_pylist()) == stream) for t in tables]
        frames = np.concatenate([r["frame"].to_numpy() for r in rows])
        psnr = np.concatenate([r["psnr"].to_numpy() for r in rows])
        # Exactly one row per scorable frame, and the same values as the one-piece score.
        assert frames.tolist() == list(range(scorer.context, FRAMES))
        np.testing.assert_allclose(psnr, ref[stream].psnr, atol=1e-3)
    t = tables[0]
    assert t.schema.names == ["run_id", "video_id", "frame", "timestamp_s", "model", "psnr", "aux",
                              "psnr_mean", "tiles", "box_x0", "box_y0", "box_x1", "box_y1",
                              "patch_x0", "patch_y0", "patch_x1", "patch_y1", "gated"]
    assert set(t["run_id"].to_pylist()) == {"t"} and t["aux"].null_count == t.num_rows
    # Scored whole: no tiles, the box is the whole source frame; region "frame" has no
    # patch, the motion baseline included (its statistic is a worst patch's, its box not).
    assert t["psnr_mean"].null_count == t["tiles"].null_count == t.num_rows
    boxes = {tuple(r) for r in zip(*(t[c].to_pylist() for c in ("box_x0", "box_y0", "box_x1",
                                                                 "box_y1")), strict=True)}
    assert boxes == {(0, 0, *SIZE)}
    assert t["model"].to_pylist().count("motion") > 0
    assert t["patch_x0"].null_count == t["patch_y1"].null_count == t.num_rows
    assert t["timestamp_s"].to_pylist()[:2] == pytest.approx([4 / 25.0, 5 / 25.0])


def test_concurrent_calls_give_the_same_scores(scorer, tiny_archive):
    units = _plan(tiny_archive, scorer.context, segment=10).units[:3]
    want = [scorer(u) for u in units]
    got: dict[int, object] = {}

    def work(i):
        got[i] = scorer(units[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(units))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i, w in enumerate(want):
        np.testing.assert_allclose(got[i]["psnr"].to_numpy(), w["psnr"].to_numpy(), atol=1e-4)


def test_run_writes_the_unit_file_then_returns_its_row(scorer, tiny_archive, tmp_path):
    store = Store(tmp_path / "store")
    scorer.store, scorer.run_id = store, "r1"
    try:
        unit = _plan(tiny_archive, scorer.context, segment=512).units[0]
        row = scorer.run(unit, attempt=1)
        assert row["status"] == "done" and row["rows"] == 4 * (FRAMES - 4)  # fp, fr, diff, motion
        assert row["attempt"] == 1 and row["error"] is None
        assert all(row[k] is not None and row[k] >= 0 for k in ("decode_s", "model_s", "write_s"))
        assert store.list_files("scores", "r1") == [store.uri_for("scores", "r1", unit.unit_id)]
        # A retry overwrites the same file: still one file, same rows.
        assert scorer.run(unit, attempt=2)["status"] == "done"
        assert store.read_table("scores", "r1").num_rows == 4 * (FRAMES - 4)
    finally:
        scorer.store, scorer.run_id = None, "t"


def test_a_file_that_turned_bad_gives_a_failed_row(scorer, tiny_archive, tmp_path):
    archive = tmp_path / "a"
    shutil.copytree(tiny_archive, archive)
    unit = _plan(archive, scorer.context, segment=512).units[0]
    # The file changes after planning (overwritten by a broken copy).
    with open(unit.uri, "r+b") as f:
        f.truncate(200)
    store = Store(tmp_path / "store").ensure()
    scorer.store, scorer.run_id = store, "r1"
    try:
        row = scorer.run(unit, attempt=1)
    finally:
        scorer.store, scorer.run_id = None, "t"
    assert row["status"] == "failed" and row["rows"] == 0
    assert unit.uri in row["error"] and "UndecodableVideoError" in row["error"]
    assert store.list_files("scores", "r1") == []


def test_the_next_unit_is_decoded_ahead_and_scored_the_same(scorer, tiny_archive):
    units = _plan(tiny_archive, scorer.context, segment=7).units[:3]
    want = [scorer(u) for u in units]
    t0, *_ = scorer.score(units[0], next_unit=units[1])
    assert units[1].unit_id in scorer.ahead  # its first chunks are decoding already
    t1, timings, bad = scorer.score(units[1], next_unit=units[2])
    assert timings["decode_s"] > 0 and units[2].unit_id in scorer.ahead and bad == {}
    # A hint that did not come true is dropped, and the unit asked for is still right.
    t0b, *_ = scorer.score(units[0], next_unit=None)
    assert len(scorer.ahead) == 0
    for got, w in zip((t0, t1, t0b), (want[0], want[1], want[0]), strict=True):
        np.testing.assert_allclose(got["psnr"].to_numpy(), w["psnr"].to_numpy(), atol=1e-4)


def test_a_corrupt_frame_in_a_folder_is_skipped_and_named_not_the_whole_unit(
        scorer, tmp_path):
    from raystack.synth import write_frames

    rng = np.random.default_rng(0)
    folder = tmp_path / "a" / "Test004"
    write_frames(folder, rng.integers(0, 255, (40, *SIZE[::-1], 3), dtype=np.uint8), ext=".jpg")
    (folder / "0017.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    [unit] = _plan(tmp_path / "a", scorer.context, segment=512).units  # probe still passes
    store = Store(tmp_path / "store")
    scorer.store, scorer.run_id = store, "r1"
    try:
        row = scorer.run(unit, attempt=1)
    finally:
        scorer.store, scorer.run_id = None, "t"
    streams = len(scorer.streams)
    assert row["status"] == "done" and row["error"] is None, row["error"]
    # The 35 readable scored frames are scored; frame 17 has no row; the row names it.
    assert row["rows"] == streams * (40 - scorer.context - 1)
    frames = set(store.read_table("scores", "r1")["frame"].to_pylist())
    assert 17 not in frames and frames == set(range(scorer.context, 40)) - {17}
    assert row["warning"].startswith("1 undecodable frame skipped")
    assert ": 17 (" in row["warning"] and "0017.jpg" in row["warning"]


def test_a_reading_exposes_the_readers_frame_rate_once_open(scorer, tiny_archive):
    import dataclasses

    from raystack.scan.reading import UnitReading

    unit = _plan(tiny_archive, scorer.context, segment=7).units[0]
    reading = UnitReading(unit, scorer.read_options, depth=1)
    try:
        chunks = list(reading)
    finally:
        reading.close()
    assert [(c.start, c.stop) for c in chunks] == [(4, 9), (9, 11)]  # chunk_frames=5
    assert reading.fps == pytest.approx(25.0) and reading.bad == {}
    assert reading.timings["decode_s"] > 0 and reading.timings["flow_s"] > 0
    # A unit the probe gave no frame rate takes the reader's for its timestamps.
    table = scorer(dataclasses.replace(unit, fps=0.0))
    assert table["timestamp_s"].to_pylist()[:2] == pytest.approx([4 / 25.0, 5 / 25.0])
