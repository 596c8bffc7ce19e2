"""Adversarial tests of the analyst connection (issue 12 A): whatever the SQL, and whatever
was planted in the store, it writes no file and reads nothing outside the store.

Every attack runs through raystack's entry point (``run_sql``) and through the raw DuckDB
connection (``con.sql``); afterwards the store, a folder outside it and the working folder
must be byte for byte as they were.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raystack.query import QueryError, ReadOnlyError, connect, run_sql
from raystack.store import Store

SECRET = "TOPSECRET-0123456789"
SCANS = ["parquet", "arrow"]


def digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):  # links are not followed: they are data
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                out[str(p.relative_to(root))] = "link:" + os.readlink(p)
            elif p.is_file():
                out[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def scene(tmp_path, write_scores, monkeypatch):
    rng = np.random.default_rng(3)
    st = Store(tmp_path / "store").ensure()
    frames = np.arange(16, 136)
    write_scores(
        st,
        "r1",
        {
            ("cam-a", "fp"): (frames, 30 + rng.normal(0, 1, frames.size)),
            ("cam-b", "fp"): (frames, 30 + rng.normal(0, 1, frames.size)),
        },
    )
    from raystack.store import table_schema

    videos = pa.Table.from_pylist(
        [
            dict(
                video_id=v,
                uri=f"/archive/{v}.mp4",
                relpath=f"{v}.mp4",
                kind="video",
                size_bytes=1,
                etag=None,
                mtime=None,
                frames=136,
                fps=25.0,
                width=64,
                height=64,
                duration_s=5.44,
                codec="mpeg4",
                probe_error=None,
            )
            for v in ("cam-a", "cam-b")
        ],
        schema=table_schema("videos"),
    )
    st.write_table("videos", "r1", "videos", videos)
    st.write_json(
        "thresholds/good.json",
        {"name": "good", "run_id": "r1", "fusion": "fp", "sigma": 0.0, "value": 0.5},
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    shutil.copy(st.list_files("scores")[0], outside / "o.parquet")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a relative path that slipped through would land here
    s = type("Scene", (), {})()
    s.st, s.root, s.outside, s.work, s.tmp = st, Path(st.uri), outside, work, tmp_path
    s.F = st.list_files("scores")[0]  # a store file, by its real path
    s.rel = os.path.relpath(s.F, st.uri)
    s.U = f"raystack://store/{s.rel}"  # the same file as the sealed connection names it
    s.V = st.list_files("videos")[0]
    s.rows = 2 * frames.size
    s.before = {"store": digest(s.root), "outside": digest(outside), "work": digest(work)}
    return s


def unchanged(s) -> None:
    after = {"store": digest(s.root), "outside": digest(s.outside), "work": digest(s.work)}
    assert after == s.before
    assert sorted(p.name for p in s.tmp.iterdir()) == ["outside", "store", "work"]


def refused_everywhere(con, query: str) -> None:
    """``query`` fails through run_sql and through the raw connection, and shows no secret."""
    with pytest.raises(QueryError) as err:
        run_sql(con, query)
    assert SECRET not in str(err.value)
    with pytest.raises(duckdb.Error) as err:
        con.sql(query).fetchall()
    assert SECRET not in str(err.value)


def count_scores(con) -> int:
    return run_sql(con, "SELECT count(*) AS n FROM scores")["n"][0].as_py()


def copy_onto(path: str, extra: str = "") -> str:
    return f"COPY (SELECT 1 AS x) TO '{path}' (FORMAT parquet, USE_TMP_FILE false{extra})"


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


# --- 6. what the connection shows ---------------------------------------------------------


@pytest.mark.parametrize("scan", SCANS)
def test_settings_views_and_plans_do_not_show_the_store_path(scene, scan):
    con = connect(scene.st, scan=scan)
    shown = [
        run_sql(con, "SELECT * FROM duckdb_settings()"),
        run_sql(con, "SELECT * FROM duckdb_views()"),
        run_sql(con, "EXPLAIN SELECT * FROM scores"),
        run_sql(con, "EXPLAIN SELECT * FROM videos"),
    ]
    for table in shown:
        for col in table.columns:
            assert not any(scene.st.uri in str(v) for v in col.to_pylist())


# --- more: attachments, extensions, settings, readers, exports, pragmas -------------------


def own_attacks(s) -> list[str]:
    out, tmp = s.outside, s.tmp
    return [
        f"ATTACH '{tmp}/new.duckdb' AS n",
        f"ATTACH '{s.root}/new.duckdb' AS n2",
        "ATTACH 'new.duckdb' AS n3",
        "INSTALL httpfs",
        "LOAD httpfs",
        "FORCE INSTALL json",
        f"LOAD '{tmp}/evil.duckdb_extension'",
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET lock_configuration = false",
        "SET allowed_directories = ['/']",
        "SET allowed_paths = ['/etc/passwd']",
        "SET disabled_filesystems = ''",
        f"SET temp_directory = '{tmp}/spill'",
        "SET max_execution_time = 0",
        "SET memory_limit = '1TB'",
        "SET python_enable_replacements = true",
        f"PRAGMA profiling_output = '{tmp}/profile.json'",
        f"CALL enable_logging(storage := 'file', storage_path := '{tmp}/log')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/passwd')",
        f"SELECT * FROM read_text('{out}/secret.txt')",
        f"SELECT * FROM read_csv('{out}/secret.txt')",
        "SELECT * FROM glob('/etc/*')",
        f"SELECT * FROM glob('{s.root}/**')",
        "SELECT * FROM glob('raystack://store/**')",
        f"SELECT * FROM read_json('{s.root}/thresholds/*.json')",
        f"SELECT * FROM parquet_metadata('{s.F}')",
        f"SELECT * FROM read_parquet('{s.root}/scores/*/*.parquet')",
        "SELECT * FROM read_text('raystack://store/../../etc/passwd')",
        "SELECT * FROM read_text('raystack://store/_raystack.json')",
        f"COPY (SELECT 1) TO '{tmp}/out.csv'",
        "COPY (SELECT 1) TO 'relative.csv'",
        f"COPY (SELECT 1) TO '{s.root}/scores/run=r1/new.parquet' (FORMAT parquet)",
        "COPY (SELECT 1) TO 'raystack://store/scores/run=r1/new.parquet' (FORMAT parquet)",
        f"COPY (SELECT 1 AS x) TO '{tmp}/part' (FORMAT parquet, PARTITION_BY (x))",
        f"EXPORT DATABASE '{tmp}/export'",
        "EXPORT DATABASE 'raystack://store/export'",
        f"EXPLAIN ANALYZE EXPORT DATABASE '{tmp}/export2'",
        f"IMPORT DATABASE '{tmp}'",
        f"CREATE TABLE t AS SELECT * FROM read_csv('{out}/secret.txt')",
        f"PREPARE q AS SELECT * FROM read_text(?); EXECUTE q('{out}/secret.txt')",
        "CREATE MACRO m(p) AS TABLE SELECT * FROM read_text(p); "
        f"SELECT * FROM m('{out}/secret.txt')",
        f"COPY scores FROM '{out}/o.parquet'",
    ]


@pytest.mark.parametrize("scan", SCANS)
def test_no_file_is_written_or_read_outside_the_store(scene, scan):
    con = connect(scene.st, scan=scan)
    for q in own_attacks(scene):
        refused_everywhere(con, q)
    unchanged(scene)
    assert count_scores(con) == scene.rows
    # In-memory work stays possible and leaves no trace.
    run_sql(con, "CREATE TEMP TABLE ev AS SELECT * FROM events(threshold := 0.9, sigma := 0)")
    run_sql(con, "ATTACH ':memory:' AS scratch")
    run_sql(con, "CREATE TABLE scratch.t AS SELECT * FROM scores")
    unchanged(scene)


def test_an_attached_store_file_is_never_written(scene):
    con = connect(scene.st)
    for q in (
        f"ATTACH '{scene.U}' AS c (TYPE duckdb)",
        "ATTACH 'raystack://store/scores/run=r1/new.duckdb' AS d",
        f"COPY (SELECT 1 AS x) TO '{scene.U}' (FORMAT csv, APPEND true)",
    ):
        refused_everywhere(con, q)
    # DuckDB 2 attaches a Parquet file as a catalog to read; what is made in it stays in memory.
    for q in (
        f"ATTACH '{scene.U}' AS a (READ_WRITE)",
        "CREATE TABLE a.t AS SELECT 1 AS x",
        "CHECKPOINT a",
        "DETACH a",
    ):
        run_sql(con, q)
    unchanged(scene)


def test_a_read_only_connection_does_not_spill(scene):
    # DuckDB lets SQL read and write its spill folder, so a sealed connection has none.
    with pytest.raises(ValueError, match="spill"):
        connect(scene.st, spill_dir=scene.work / "spill")
    con = connect(scene.st)
    refused_everywhere(con, f"COPY (SELECT 1) TO '{scene.work}/x.csv'")
    assert run_sql(con, "SELECT current_setting('temp_directory') AS t")["t"][0].as_py() == ""
    unchanged(scene)


def test_python_variables_are_not_readable_by_name(scene):
    con = connect(scene.st)
    hidden_table = pa.table({"secret": [SECRET]})  # noqa: F841 - what a replacement scan would find
    refused_everywhere(con, "SELECT * FROM hidden_table")


def test_store_files_read_through_the_sealed_names_only(scene):
    con = connect(scene.st)
    n = run_sql(con, f"SELECT count(*) AS n FROM read_parquet('{scene.U}')")["n"][0].as_py()
    assert n == scene.rows // 2
    refused_everywhere(con, f"SELECT count(*) FROM read_parquet('{scene.F}')")
