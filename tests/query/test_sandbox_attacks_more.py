"""More adversarial tests of the analyst connection (issue 12 A): what it shows,
attachments, extensions, settings, readers, exports, pragmas; whatever the SQL, and whatever
was planted in the store, it writes no file and reads nothing outside the store.

Every attack runs through raystack's entry point (``run_sql``) and through the raw DuckDB
connection (``con.sql``); afterwards the store, a folder outside it and the working folder
must be byte for byte as they were.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from sandbox_scene import (
    SCANS,
    SECRET,
    count_scores,
    make_scene,
    refused_everywhere,
    unchanged,
)

from raystack.query import connect, run_sql


@pytest.fixture
def scene(tmp_path, write_scores, monkeypatch):
    return make_scene(tmp_path, write_scores, monkeypatch)


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
