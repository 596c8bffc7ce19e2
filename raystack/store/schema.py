"""Load the versioned Arrow schemas of ``schemas/v<N>/<table>.json``.

    scores_schema = table_schema("scores")       # pa.Schema, metadata carries the version
    SCHEMA_VERSION                                # the version this code writes (int)

Readers call :func:`check_version` on what a store recorded and refuse other versions.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import pyarrow as pa

from raystack.errors import SchemaVersionError

SCHEMA_VERSION = 1
TABLES = ("videos", "scores", "manifest")

_TYPES = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
}


@cache
def table_spec(table: str, version: int = SCHEMA_VERSION) -> dict:
    """The JSON spec of ``table`` at ``version`` as shipped in ``raystack.schemas``."""
    path = resources.files("raystack.schemas") / f"v{version}" / f"{table}.json"
    if not path.is_file():
        msg = f"no schema for table {table!r} at version {version}; known tables: {list(TABLES)}"
        raise KeyError(msg)
    return json.loads(path.read_text())


@cache
def table_schema(table: str, version: int = SCHEMA_VERSION) -> pa.Schema:
    """The Arrow schema of ``table``; its metadata records table name and schema version."""
    spec = table_spec(table, version)
    fields = [
        pa.field(f["name"], _TYPES[f["type"]], nullable=f["nullable"], metadata={"doc": f["doc"]})
        for f in spec["fields"]
    ]
    meta = {"raystack.table": table, "raystack.schema_version": str(version)}
    return pa.schema(fields, metadata=meta)


def check_version(found: int | str | None, where: str) -> None:
    """Raise a clear error unless ``found`` is the schema version this code reads."""
    if found is None:
        msg = f"{where} records no raystack schema version; is it a raystack store?"
        raise SchemaVersionError(msg)
    if int(found) != SCHEMA_VERSION:
        msg = (
            f"{where} was written with schema version {found}, but this raystack reads "
            f"version {SCHEMA_VERSION}; rescan into a new store or use a matching raystack"
        )
        raise SchemaVersionError(msg)


def sql_text(name: str) -> str:
    """Text of ``schemas/sql/<name>.sql`` (views and macros of the query layer)."""
    return (resources.files("raystack.schemas") / "sql" / f"{name}.sql").read_text()


# Nullable columns added to a v1 table after its first release: a writer that does not know
# them still writes (they are stored null), and readers fill them with null in older files.
ADDED_COLUMNS = {"videos": ("run_id", "content_id"), "manifest": ("failure_kind", "warning")}


def fill_added_columns(table: str, data: pa.Table, run_id: str | None) -> pa.Table:
    """``data`` with the :data:`ADDED_COLUMNS` it lacks as nulls, and a ``run_id`` column
    that is all null (videos rows come from probing, which knows no run) set to ``run_id``."""
    schema = table_schema(table)
    for name in ADDED_COLUMNS.get(table, ()):
        if name not in data.column_names:
            field = schema.field(name)
            data = data.append_column(field, pa.nulls(data.num_rows, field.type))
    names = data.column_names
    if run_id is not None and "run_id" in ADDED_COLUMNS.get(table, ()) and "run_id" in names:
        col = data.column("run_id")
        if col.null_count == data.num_rows:
            field = schema.field("run_id")
            data = data.set_column(names.index("run_id"), field,
                                   pa.array([run_id] * data.num_rows, field.type))
    return data
