"""Load the versioned Arrow schemas of ``schemas/v<N>/<table>.json``.

    scores_schema = table_schema("scores")       # pa.Schema, metadata carries the version
    SCHEMA_VERSION                                # the version this code writes (int)

Readers call :func:`check_version` on what a store, a run.json or a Parquet file recorded:
every version in :data:`READ_VERSIONS` is read (older files with the columns later versions
added as NULL, :func:`fill_added_columns`), a newer one is refused with a message naming the file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import pyarrow as pa

from raystack.errors import SchemaVersionError

SCHEMA_VERSION = 3
# Versions this code reads: v2 and v3 only add nullable columns (ADDED_COLUMNS), so an older
# store, run or file reads with them NULL. v3 (scores.gated, manifest.scored_frames and
# gated_frames) is a version of its own, not columns added within v2: a v2 reader would
# take a gated row's filled psnr for a model's score, so it must refuse a v3 store.
READ_VERSIONS = (1, 2, 3)
TABLES = ("videos", "scores", "manifest")
# The query layer over stores of every version this code reads, N the version it writes:
# schemas/sql/v<N>_fusion.sql (the fusion rules, reading no table: Python evaluates them
# too), v<N>_views.sql (views, scalar helpers), then v<N>_query.sql (the table macros,
# whose argument defaults raystack.query.defaults reads). DuckDB binds a macro when it is
# created, so the order matters.
FUSION_SQL = f"v{SCHEMA_VERSION}_fusion"
QUERY_SQL = f"v{SCHEMA_VERSION}_query"
QUERY_SQL_FILES = (FUSION_SQL, f"v{SCHEMA_VERSION}_views", QUERY_SQL)

_TYPES = {
    "string": pa.string(),
    "int16": pa.int16(),
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


def check_version(found: int | str | bytes | None, where: str) -> int:
    """``found`` as an int if it is a schema version this code reads (:data:`READ_VERSIONS`),
    else a :class:`SchemaVersionError` naming ``where``, the version and the ones read."""
    if found is None:
        msg = f"{where} records no raystack schema version; is it a raystack store?"
        raise SchemaVersionError(msg)
    try:
        version = int(found.decode() if isinstance(found, bytes) else found)
    except (TypeError, ValueError):
        msg = f"{where} records schema version {found!r}, which is not a number"
        raise SchemaVersionError(msg) from None
    if version not in READ_VERSIONS:
        newer = version > SCHEMA_VERSION
        fix = ("upgrade raystack to read it" if newer
               else "rescan into a new store or use a matching raystack")
        msg = (
            f"{where} was written with schema version {version}, but this raystack reads "
            f"versions {', '.join(map(str, READ_VERSIONS))} (writes {SCHEMA_VERSION}); {fix}"
        )
        raise SchemaVersionError(msg)
    return version


def check_file_version(metadata: dict | None, where: str) -> None:
    """Refuse a Parquet file whose key-value ``metadata`` records a version this code does
    not read; a file that records none (written by other tools) is read as it is."""
    found = (metadata or {}).get(b"raystack.schema_version")
    if found is not None:
        check_version(found, where)


def sql_text(name: str) -> str:
    """Text of ``schemas/sql/<name>.sql`` (views and macros of the query layer)."""
    return (resources.files("raystack.schemas") / "sql" / f"{name}.sql").read_text()


# Where in the frame (schema v2): the worst tile's box and the worst patch inside it.
BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")
PATCH_COLUMNS = ("patch_x0", "patch_y0", "patch_x1", "patch_y1")
REGION_COLUMNS = ("psnr_mean", "tiles", *BOX_COLUMNS, *PATCH_COLUMNS)

# Motion gating (schema v3): the scores flag and the manifest's frame counts.
GATE_COLUMNS = ("gated",)
MANIFEST_GATE_COLUMNS = ("scored_frames", "gated_frames")

# Nullable columns added to a table after its first release (videos and manifest within v1,
# scores in v2, scores and manifest in v3): a writer that does not know them still writes
# (they are stored null), and readers fill them with null in older files.
ADDED_COLUMNS = {
    "videos": ("run_id", "content_id"),
    "manifest": ("failure_kind", "warning", *MANIFEST_GATE_COLUMNS),
    "scores": (*REGION_COLUMNS, *GATE_COLUMNS),
}


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
