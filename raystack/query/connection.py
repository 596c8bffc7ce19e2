"""Open a DuckDB connection over a raystack store, with the query layer's views and macros.

    con = connect("/data/store")                     # or "s3://bucket/store"
    run_sql(con, "SELECT * FROM events(threshold := 0.7, min_frames := 10)")
    # -> pa.Table: run_id, video_id, fusion, event_id, start_frame, end_frame, start_s, ...

Raw tables (``scores``, ``videos``, ``manifest``) come from the store's finished Parquet
files, listed once when the connection opens (a snapshot: files a running scan adds later
appear on the next ``connect``). Two ways to scan them:

* ``scan="parquet"`` (local stores, the default): DuckDB's own Parquet reader, ~3x faster
  than the Arrow route on the events query (DuckDB plans its windows as joins only over its
  own scans), see ``bench/events_bench.py``.
* ``scan="arrow"`` (always for ``s3://``, where DuckDB's httpfs cannot be installed):
  pyarrow datasets registered with DuckDB, so DuckDB itself opens no file at all.

The analyst's connection (``read_only=True``) cannot write any file or read one outside the
store, whatever the SQL, because DuckDB itself has no way to: see :mod:`raystack.query.sandbox`.
When it opens, every store file is vetted (:mod:`raystack.query.vetting`): links that lead
out of the store and files that are not Parquet are skipped with a warning. Statements stop
after a timeout, DuckDB's memory is capped (:class:`~raystack.query.limits.QueryLimits`),
and Ctrl-C cancels the running statement (:mod:`raystack.query.cancel`).

The views and macros themselves live in ``schemas/sql/v3_fusion.sql``, ``v3_views.sql`` and
``v3_query.sql``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from raystack.errors import RaystackError
from raystack.query.limits import QueryLimits
from raystack.query.threshold_files import THRESHOLDS_DIR, THRESHOLDS_SCHEMA, load_thresholds
from raystack.store.schema import QUERY_SQL_FILES, fill_added_columns, table_schema

__all__ = [
    "THRESHOLDS_DIR",
    "THRESHOLDS_SCHEMA",
    "QueryError",
    "ReadOnlyError",
    "connect",
    "connect_scores",
    "load_thresholds",
    "run_sql",
]

RAW_TABLES = ("scores", "videos", "manifest")
SCANS = ("parquet", "arrow")
# Read as dictionaries on the Arrow route: DuckDB then gets each string once per batch.
_DICT_COLUMNS = (
    "run_id",
    "video_id",
    "model",
    "uri",
    "relpath",
    "kind",
    "codec",
    "status",
    "worker",
    "run",
)


class QueryError(RaystackError):
    """A query failed: bad SQL, an unknown threshold name, a missing score stream."""


class ReadOnlyError(QueryError):
    """The analyst connection refused a statement that would touch files or settings."""


class QueryCancelled(QueryError):
    """The statement was cancelled with Ctrl-C."""


class QueryTimeout(QueryError):
    """The statement ran past the connection's statement timeout."""


READ_ONLY_HELP = (
    "the raystack analyst connection is read-only: it runs SELECT (and EXPLAIN, DESCRIBE, "
    "SUMMARIZE, in-memory CREATE) over the views scores, videos, manifest, thresholds and "
    "the macros normalised(), smoothed(), fused(), flags(), events(); it cannot read or "
    "write files (COPY, EXPORT, ATTACH, read_csv/read_parquet of paths), install or load "
    "extensions, or change settings. Export results with "
    '`raystack sql STORE "SELECT ..." --format csv|json|parquet --out FILE`.'
)


def connect(
    store: Any,
    read_only: bool = True,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    timeout_s: float | None = None,
    spill_dir: str | os.PathLike | None = None,
    scan: str | None = None,
) -> Any:
    """A DuckDB connection with raystack's views and macros over ``store``.

    Args:
        store: a :class:`raystack.store.Store`, a local path or an ``s3://`` URI.
        read_only: the analyst's connection (default): reads only the store's files,
            writes none, settings locked. ``False`` is for raystack internals and leaves
            DuckDB open.
        threads: DuckDB worker threads (default: DuckDB's, one per core).
        memory_limit: e.g. ``"4GB"`` (default: a quarter of RAM, at least 1 GiB).
        timeout_s: seconds one statement may run (default 600; 0: no limit).
        spill_dir: where DuckDB may spill when a query exceeds ``memory_limit``; other
            connections default to a private temp folder. A read-only connection never
            spills (DuckDB lets SQL read and write its spill folder): giving it one is an
            error.
        scan: ``"parquet"`` (DuckDB's reader; default for local stores) or ``"arrow"``
            (pyarrow datasets; always used for ``s3://``).

    Returns:
        A ``duckdb.DuckDBPyConnection``.

    Raises:
        SchemaVersionError: the store is missing or was written with another schema version.
        ValueError: an unknown ``scan``, a bad limit.
    """
    import duckdb

    from raystack.query.sandbox import seal
    from raystack.store import Store

    st = store if isinstance(store, Store) else Store(store)
    st.check()
    scan = scan or ("arrow" if st.is_s3 else "parquet")
    if scan not in SCANS:
        msg = f"scan must be one of {SCANS}, got {scan!r}"
        raise ValueError(msg)
    if scan == "parquet" and st.is_s3:
        msg = f"{st.uri}: DuckDB cannot read s3:// here (no httpfs); use scan='arrow'"
        raise ValueError(msg)
    if read_only and spill_dir is not None:
        msg = (
            "a read-only connection cannot spill: DuckDB would let its SQL read and write the "
            "spill folder; raise memory_limit instead (spill_dir is for read_only=False)"
        )
        raise ValueError(msg)
    limits = QueryLimits(timeout_s=timeout_s, memory_limit=memory_limit)
    config: dict[str, Any] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        **limits.settings(),
    }
    if threads is not None:
        config["threads"] = int(threads)
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET enable_progress_bar = false")
    allowed = _register_raw_tables(con, st, scan, read_only)
    _install_query_layer(con)
    if spill_dir is None and not read_only:
        spill_dir = (
            Path(tempfile.gettempdir()) / f"raystack-duckdb-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
    # DuckDB creates the folder only when it spills, and removes its files on close.
    con.execute("SET temp_directory = ?", [str(spill_dir) if spill_dir is not None else ""])
    if read_only:
        seal(con, allowed)
    return con


def connect_scores(scores: pa.Table) -> Any:
    """An in-memory DuckDB connection with the query layer's views and macros over an Arrow
    table of score rows (the store's ``scores`` schema) instead of a store.

    ``raystack eval`` runs ``fused()`` through it over exactly the frames it evaluates, so
    evaluation and the query layer share one definition of normalisation, smoothing and
    fusion. The other raw tables are empty; nothing is read from disk.
    """
    import duckdb

    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    con.execute("SET enable_progress_bar = false")
    run_ids = sorted(set(scores["run_id"].to_pylist())) if scores.num_rows else []
    empty = {t: table_schema(t).append(pa.field("run", pa.string())).empty_table()
             for t in ("videos", "manifest")}
    scores = fill_added_columns("scores", scores, None)  # rows of a v1 store: no regions
    con.register("_raw_scores", scores.append_column("run", scores["run_id"]))
    con.register("_raw_videos", empty["videos"])
    con.register("_raw_manifest", empty["manifest"])
    con.register("_raw_thresholds", THRESHOLDS_SCHEMA.empty_table())
    con.register("_raw_runs", pa.table({"run_id": pa.array(run_ids, pa.string()),
                                        "score_files": pa.array([1] * len(run_ids), pa.int64()),
                                        "manifest_files": pa.array([0] * len(run_ids),
                                                                   pa.int64())}))
    _install_query_layer(con)
    return con


def _install_query_layer(con: Any) -> None:
    """``store_runs()``, the UDFs and ``schemas/sql/v3_{fusion,views,query}.sql`` over
    registered raw tables."""
    from raystack.query.udf import register_udfs
    from raystack.store.schema import sql_text

    runs = con.execute("SELECT run_id FROM _raw_runs ORDER BY run_id").fetchall()
    con.execute(f"CREATE OR REPLACE MACRO store_runs() AS {_varchar_list(r for (r,) in runs)}")
    register_udfs(con)
    for name in QUERY_SQL_FILES:
        con.execute(sql_text(name))


def _register_raw_tables(con: Any, st: Any, scan: str, read_only: bool) -> list[str]:
    """Register ``_raw_<table>`` and ``_raw_thresholds``; the paths DuckDB itself must open."""
    from raystack.query.parquet_views import parquet_view, scores_view
    from raystack.query.storefs import StoreFileSystem, store_url
    from raystack.query.threshold_files import threshold_paths
    from raystack.query.vetting import vet_files

    if st.is_s3:
        listed = {t: st.list_files(t) for t in RAW_TABLES}
        for table in RAW_TABLES:
            con.register(f"_raw_{table}", _dataset(st, table, listed[table]))
        con.register("_raw_thresholds", load_thresholds(st))
        con.register("_raw_runs", _runs_table(listed))
        return []
    vetted = {t: vet_files(st.uri, st.list_files(t), parquet=True) for t in RAW_TABLES}
    con.register("_raw_runs", _runs_table({t: list(files) for t, files in vetted.items()}))
    docs = vet_files(st.uri, threshold_paths(st), parquet=False)
    con.register("_raw_thresholds", load_thresholds(st, docs))
    readable: list[str] = []
    if scan == "parquet" and read_only:
        con.register_filesystem(
            StoreFileSystem(
                {rel: v for files in vetted.values() for rel, v in files.items()}, st.uri
            )
        )
    for table, files in vetted.items():
        if scan == "parquet" and files:
            paths = [store_url(rel) if read_only else v.real for rel, v in files.items()]
            rel = (scores_view(con, st.uri, files, paths) if table == "scores"
                   else parquet_view(con, table, paths))
            rel.create_view(f"_raw_{table}")
            readable += paths
        else:
            listed = [f"{st.uri}/{rel}" for rel in files]
            con.register(f"_raw_{table}", _dataset(st, table, listed))
    return readable


def _varchar_list(items: Any) -> str:
    """A SQL literal ``['a', 'b']`` (typed, so an empty store gives an empty VARCHAR[])."""
    quoted = ", ".join("'" + str(x).replace("'", "''") + "'" for x in items)
    return f"CAST([{quoted}] AS VARCHAR[])"


def _runs_table(files: dict[str, list[str]]) -> pa.Table:
    """The runs of the store from its folders (``<table>/run=<id>/``), with file counts:
    what the ``runs`` view and the macros' check of ``run := ...`` read, without a scan."""
    import re

    pattern = re.compile(r"(?:^|/)run=([^/]+)/[^/]*$")
    counts: dict[str, dict[str, int]] = {}
    for table, paths in files.items():
        for path in paths:
            m = pattern.search(path)
            if m:
                per = counts.setdefault(m.group(1), {t: 0 for t in RAW_TABLES})
                per[table] += 1
    ids = sorted(counts)
    return pa.table({
        "run_id": pa.array(ids, pa.string()),
        "score_files": pa.array([counts[r]["scores"] for r in ids], pa.int64()),
        "manifest_files": pa.array([counts[r]["manifest"] for r in ids], pa.int64()),
    })


def run_sql(con: Any, query: str, params: list | dict | None = None) -> pa.Table | None:
    """Run ``query`` on ``con``; its result as Arrow, or None for statements without one.

    Ctrl-C cancels the statement (:class:`QueryCancelled`). What the read-only connection
    refuses becomes a :class:`ReadOnlyError` that says what is allowed, a statement past the
    timeout a :class:`QueryTimeout`, other DuckDB errors a :class:`QueryError`.
    """
    import duckdb

    from raystack.query.cancel import Cancelled, interruptible

    def run() -> pa.Table | None:
        rel = con.sql(query, params=params) if params is not None else con.sql(query)
        return None if rel is None else rel.to_arrow_table()

    try:
        return interruptible(con, run)
    except Cancelled as e:
        raise QueryCancelled(str(e)) from None
    except duckdb.Error as e:
        raise _translate(e) from e


def _translate(e: Exception) -> QueryError:
    import duckdb

    from raystack.query.storefs import READ_ONLY

    text = str(e)
    if "Traceback (most recent call last)" in text:  # a Python filesystem call failed
        text = [line for line in text.splitlines() if line.strip()][-1]
    if isinstance(e, duckdb.InterruptException):
        if "maximum execution time" in text:
            return QueryTimeout(
                "query stopped: it ran past the statement timeout "
                "(raystack sql --timeout, connect(timeout_s=...))"
            )
        return QueryCancelled("query cancelled (Ctrl-C)")
    refused = (
        "configuration has been locked",
        "disabled through configuration",
        "disabled by configuration",
        READ_ONLY,
    )
    if isinstance(e, duckdb.PermissionException) or any(r in text for r in refused):
        return ReadOnlyError(f"{READ_ONLY_HELP}\nDuckDB said: {text}")
    return QueryError(f"query failed: {text}")


def _dataset(st: Any, table: str, files: list[str]) -> Any:
    """A pyarrow dataset over ``files`` of ``table`` with the hive column ``run``."""
    import pyarrow.dataset as ds

    from raystack.store.schema import table_schema

    fs, root = st.filesystem
    run_field = pa.field("run", pa.string())
    schema = table_schema(table).append(run_field)
    names = set(schema.names)
    fmt = ds.ParquetFileFormat(
        read_options=ds.ParquetReadOptions(
            dictionary_columns=[c for c in _DICT_COLUMNS if c in names]
        )
    )
    # The dictionary read changes the physical type; the declared schema must say so.
    fields = [
        pa.field(f.name, pa.dictionary(pa.int32(), f.type), f.nullable, f.metadata)
        if f.name in _DICT_COLUMNS
        else f
        for f in schema
    ]
    return ds.dataset(
        [p.removeprefix("s3://") for p in files],
        schema=pa.schema(fields, metadata=schema.metadata),
        format=fmt,
        filesystem=fs,
        partitioning=ds.partitioning(pa.schema([run_field]), flavor="hive"),
        partition_base_dir=f"{root}/{table}",
    )
