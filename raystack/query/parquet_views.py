"""Parquet views of the store's raw tables, whatever schema version wrote each file.

    parquet_view(con, "videos", paths).create_view("_raw_videos")
    scores_view(con, root, vetted, paths).create_view("_raw_scores")

Each view has the table's current columns plus ``run`` (the hive folder of the file); a file
written before a column was added reads it as NULL.
"""

from __future__ import annotations

from typing import Any

from raystack.store.schema import check_file_version, table_schema

# DuckDB's names of the schema types, for the NULL columns of files older than a column.
_SQL_TYPES = {"string": "VARCHAR", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT",
              "float": "FLOAT", "double": "DOUBLE", "bool": "BOOLEAN",
              "timestamp[us, tz=UTC]": "TIMESTAMP WITH TIME ZONE"}
# The run is the hive folder a file lies in (videos rows carry it only there).
_RUN = r"regexp_extract(filename, '/run=([^/]+)/[^/]*$', 1) AS run"
_RAW_PROJECTION = "* EXCLUDE (filename), " + _RUN


def _missing_columns(table: str, have: list[str]) -> str:
    """``, NULL::TYPE AS name`` for each schema column no file of ``table`` has."""

    missing = [f for f in table_schema(table) if f.name not in have]
    return "".join(f", CAST(NULL AS {_SQL_TYPES[str(f.type)]}) AS {f.name}" for f in missing)


def scores_view(con: Any, root: str, files: dict, paths: list[str]) -> Any:
    """A relation over score files of schema v1 and v2 alike.

    union_by_name made the events query 2x slower on scores, so the files are grouped by
    the columns they have (one footer read each, which also refuses a file of a newer
    schema version) and each group is one plain ``read_parquet`` given the columns it
    lacks as NULL; one group (the usual store) is one scan, as before.
    """
    import pyarrow.parquet as pq

    groups: dict[frozenset[str], list[str]] = {}
    for (rel, v), path in zip(files.items(), paths, strict=True):
        schema = pq.read_schema(v.real)
        check_file_version(schema.metadata, f"{root}/{rel}")
        groups.setdefault(frozenset(schema.names), []).append(path)
    selects = []
    for have, group in groups.items():
        cols = ", ".join(f.name if f.name in have else f"CAST(NULL AS {_SQL_TYPES[str(f.type)]})"
                         f" AS {f.name}" for f in table_schema("scores"))
        selects.append(f"SELECT {cols}, {_RUN} FROM read_parquet({_sql_list(group)}, "
                       "filename := true, hive_partitioning := false)")
    return con.sql("\nUNION ALL\n".join(selects))


def _sql_list(items: list[str]) -> str:
    return "[" + ", ".join("'" + x.replace("'", "''") + "'" for x in items) + "]"


def parquet_view(con: Any, table: str, paths: list[str]) -> Any:
    """A relation over the files of ``videos`` or ``manifest``: union_by_name, so files
    written before a column was added (videos.run_id, content_id) read with it NULL."""
    rel = con.read_parquet(paths, filename=True, union_by_name=True)
    return rel.project(_RAW_PROJECTION + _missing_columns(table, rel.columns))
