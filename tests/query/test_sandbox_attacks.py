"""Adversarial tests of the analyst connection (issue 12 A): whatever the SQL, and whatever
was planted in the store, it writes no file and reads nothing outside the store.

Every attack runs through raystack's entry point (``run_sql``) and through the raw DuckDB
connection (``con.sql``); afterwards the store, a folder outside it and the working folder
must be byte for byte as they were.
"""

from __future__ import annotations

import os
import shutil
import warnings

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sandbox_scene import (
    SCANS,
    SECRET,
    copy_onto,
    count_scores,
    digest,
    make_scene,
    refused_everywhere,
    unchanged,
)

from raystack.query import QueryError, ReadOnlyError, connect, run_sql


@pytest.fixture
def scene(tmp_path, write_scores, monkeypatch):
    return make_scene(tmp_path, write_scores, monkeypatch)


# --- 1. statement types the old pre-check missed ------------------------------------------


@pytest.mark.parametrize("scan", SCANS)
def test_explain_analyze_copy_cannot_overwrite_a_store_file(scene, scan):
    con = connect(scene.st, scan=scan)
    for target in (scene.F, scene.U):
        refused_everywhere(con, f"EXPLAIN ANALYZE {copy_onto(target)}")
    unchanged(scene)
    assert count_scores(con) == scene.rows


@pytest.mark.parametrize("scan", SCANS)
def test_prepared_copy_cannot_overwrite_a_store_file(scene, scan):
    con = connect(scene.st, scan=scan)
    for i, target in enumerate((scene.F, scene.U)):
        refused_everywhere(con, f"PREPARE p{i} AS {copy_onto(target)}; EXECUTE p{i}")
    unchanged(scene)


@pytest.mark.parametrize("scan", SCANS)
def test_macro_shadowing_current_setting_unlocks_nothing(scene, scan):
    con = connect(scene.st, scan=scan)
    run_sql(con, "CREATE MACRO current_setting(x) AS false")
    for target in (scene.F, scene.U):
        refused_everywhere(con, copy_onto(target))
    refused_everywhere(con, f"SELECT * FROM read_text('{scene.outside}/secret.txt')")
    unchanged(scene)


@pytest.mark.parametrize("scan", SCANS)
def test_videos_uri_cannot_be_pointed_at_another_file(scene, scan):
    con = connect(scene.st, scan=scan)
    forged = f"(SELECT * REPLACE ('{scene.outside}/secret.txt' AS uri) FROM videos)"
    for q in (
        f"EXPLAIN ANALYZE COPY {forged} TO '{scene.V}' (FORMAT parquet, USE_TMP_FILE false)",
        f"PREPARE v AS COPY {forged} TO '{scene.V}' (FORMAT parquet, USE_TMP_FILE false); "
        "EXECUTE v",
    ):
        refused_everywhere(con, q)
    fresh = connect(scene.st, scan=scan)
    uris = run_sql(fresh, "SELECT DISTINCT uri FROM videos")["uri"].to_pylist()
    assert all(u.startswith("/archive/") for u in uris)
    unchanged(scene)


# --- 3. raw con.sql, on either route --------------------------------------------------------


@pytest.mark.parametrize("scan", SCANS)
def test_raw_copy_onto_a_store_file_fails(scene, scan):
    con = connect(scene.st, scan=scan)
    for target in (scene.F, scene.U, scene.V):
        with pytest.raises(duckdb.Error):
            con.sql(copy_onto(target))
        with pytest.raises(duckdb.Error):
            con.sql(f"COPY (SELECT 1 AS x) TO '{target}' (FORMAT parquet)")
    unchanged(scene)
    assert count_scores(con) == scene.rows


def test_copy_onto_a_store_file_says_read_only(scene):
    con = connect(scene.st)
    with pytest.raises(ReadOnlyError, match="read-only") as err:
        run_sql(con, copy_onto(scene.U))
    assert "Traceback" not in str(err.value)


# --- 2. links ---------------------------------------------------------------------------


def connect_recorded(st, **kw):
    """The connection and the warnings its opening gave (checked after the attacks, so that
    the attacks themselves decide a test on code that gives none)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        con = connect(st, **kw)
    return con, " | ".join(str(w.message) for w in seen)


@pytest.mark.parametrize("scan", SCANS)
def test_link_to_a_file_outside_cannot_be_read(scene, scan):
    link = scene.root / "scores" / "run=r1" / "zz.parquet"
    link.symlink_to(scene.outside / "secret.txt")
    scene.before["store"] = digest(scene.root)
    con, said = connect_recorded(scene.st, scan=scan)
    for q in (
        f"SELECT * FROM read_text('{link}')",
        "SELECT * FROM read_text('raystack://store/scores/run=r1/zz.parquet')",
        f"SELECT * FROM read_blob('{link}')",
    ):
        refused_everywhere(con, q)
    assert count_scores(con) == scene.rows
    unchanged(scene)
    assert "scores/run=r1/zz.parquet skipped: it resolves to a place outside the store" in said


@pytest.mark.parametrize("scan", SCANS)
def test_link_to_a_file_outside_cannot_be_overwritten(scene, scan):
    link = scene.root / "scores" / "run=r1" / "zo.parquet"
    link.symlink_to(scene.outside / "o.parquet")
    scene.before["store"] = digest(scene.root)
    con, said = connect_recorded(scene.st, scan=scan)
    for target in (str(link), "raystack://store/scores/run=r1/zo.parquet"):
        refused_everywhere(con, copy_onto(target))
    assert count_scores(con) == scene.rows  # the outside file's rows are not read either
    unchanged(scene)
    assert "zo.parquet skipped" in said


@pytest.mark.parametrize("scan", SCANS)
def test_non_parquet_link_does_not_break_the_scores_view(scene, scan):
    (scene.root / "scores" / "run=r1" / "json.parquet").symlink_to(scene.root / "_raystack.json")
    scene.before["store"] = digest(scene.root)
    con, said = connect_recorded(scene.st, scan=scan)
    assert count_scores(con) == scene.rows
    unchanged(scene)
    assert "json.parquet skipped: it is not a Parquet file" in said


@pytest.mark.parametrize("scan", SCANS)
def test_symlinked_run_directory_outside_is_refused(scene, scan):
    (scene.outside / "run").mkdir()
    shutil.copy(scene.outside / "o.parquet", scene.outside / "run" / "o.parquet")
    scene.before["outside"] = digest(scene.outside)
    (scene.root / "scores" / "run=evil").symlink_to(scene.outside / "run")
    scene.before["store"] = digest(scene.root)
    con, said = connect_recorded(scene.st, scan=scan)
    assert count_scores(con) == scene.rows
    for target in (
        scene.root / "scores" / "run=evil" / "o.parquet",
        "raystack://store/scores/run=evil/o.parquet",
    ):
        refused_everywhere(con, copy_onto(str(target)))
        refused_everywhere(con, f"SELECT * FROM read_blob('{target}')")
    unchanged(scene)
    assert "scores/run=evil/o.parquet skipped: it resolves to a place outside the store" in said


def test_linked_thresholds_folder_outside_is_not_read(scene):
    planted = scene.outside / "thr"
    planted.mkdir()
    (planted / "planted.json").write_text('{"fusion": "fp", "sigma": 0, "value": 0.01}')
    shutil.rmtree(scene.root / "thresholds")
    (scene.root / "thresholds").symlink_to(planted)
    scene.before = {
        "store": digest(scene.root),
        "outside": digest(scene.outside),
        "work": digest(scene.work),
    }
    con, said = connect_recorded(scene.st)
    assert run_sql(con, "SELECT name FROM thresholds")["name"].to_pylist() == []
    unchanged(scene)
    assert "planted.json skipped: it resolves to a place outside the store" in said


def test_store_file_swapped_for_a_link_after_connect_is_not_followed(scene):
    swapped = scene.outside / "swapped.parquet"
    t = pq.read_table(scene.F)
    pq.write_table(t.set_column(1, "video_id", pa.array([SECRET] * t.num_rows)), swapped)
    con = connect(scene.st)
    os.replace(scene.F, scene.tmp / "saved.parquet")
    os.symlink(swapped, scene.F)
    try:
        ids = run_sql(con, "SELECT DISTINCT video_id FROM scores")["video_id"].to_pylist()
    except QueryError as e:
        assert SECRET not in str(e)
    else:
        assert SECRET not in ids
