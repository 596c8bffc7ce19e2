"""The analyst connection reads the store and nothing else, and writes nowhere."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from raystack.query import QueryError, ReadOnlyError, connect, run_sql


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def a_store_file(st) -> str:
    return st.list_files("scores")[0]


@pytest.mark.parametrize("scan", ["parquet", "arrow"])
def test_file_statements_fail_with_a_clear_message(random_store, tmp_path, scan):
    st, _ = random_store
    root = Path(st.uri)
    before = digest(root)
    con = connect(st, scan=scan)
    outside = tmp_path / "out.csv"
    refused = [
        f"COPY (SELECT 1) TO '{outside}'",
        f"COPY (SELECT 1) TO '{root}/scores/new.parquet' (FORMAT parquet)",
        f"COPY (SELECT 1 AS x) TO '{a_store_file(st)}' (FORMAT parquet, USE_TMP_FILE false)",
        f"EXPORT DATABASE '{root}/export'",
        f"ATTACH '{tmp_path}/x.duckdb' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_parquet('{root}/scores/*/*.parquet')",
        f"CREATE TABLE t AS SELECT * FROM read_text('{tmp_path}')",
    ]
    for q in refused:
        with pytest.raises(ReadOnlyError, match="analyst connection is read-only") as err:
            run_sql(con, q)
        assert "SELECT" in str(err.value)  # says what is allowed
    assert not outside.exists() and digest(root) == before
    # In-memory work stays possible and leaves no trace in the store.
    run_sql(con, "CREATE TEMP TABLE ev AS SELECT * FROM events(threshold := 0.9, sigma := 0)")
    assert run_sql(con, "SELECT count(*) AS n FROM ev")["n"][0].as_py() >= 0
    assert digest(root) == before


@pytest.mark.parametrize("scan", ["parquet", "arrow"])
def test_raw_connection_is_sealed_inside_duckdb_too(random_store, tmp_path, scan):
    import duckdb

    st, _ = random_store
    con = connect(st, scan=scan)
    outside = tmp_path / "raw.csv"
    for q in (f"COPY (SELECT 1) TO '{outside}'", "SELECT * FROM read_csv('/etc/passwd')",
              f"COPY (SELECT 1) TO '{st.uri}/scores/new.parquet' (FORMAT parquet)"):
        with pytest.raises(duckdb.Error, match="disabled by configuration"):
            con.sql(q)
    with pytest.raises(duckdb.Error, match="locked"):
        con.sql("SET enable_external_access = true")
    assert not outside.exists()
    if scan == "arrow":  # DuckDB opens no file at all: even an existing store file is refused
        with pytest.raises(duckdb.Error, match="disabled by configuration"):
            con.sql(f"COPY (SELECT 1 AS x) TO '{a_store_file(st)}' (FORMAT parquet, "
                    "USE_TMP_FILE false)")


def test_internal_connection_is_not_sealed_and_bad_sql_is_a_query_error(random_store, tmp_path):
    st, _ = random_store
    con = connect(st, read_only=False)
    run_sql(con, f"COPY (SELECT 1 AS x) TO '{tmp_path}/ok.csv'")
    assert (tmp_path / "ok.csv").exists()
    with pytest.raises(QueryError, match="query failed") as err:
        run_sql(connect(st), "SELEC 1")
    assert not isinstance(err.value, ReadOnlyError)
