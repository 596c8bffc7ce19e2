"""Check a table against its versioned schema and cast it to exactly that schema.

    out = conform_table("scores", table, run_id="r1")   # StoreError names what does not fit
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from raystack.store import layout
from raystack.store.layout import StoreError
from raystack.store.schema import SCHEMA_VERSION, fill_added_columns, table_schema


def conform_table(
    table: str, data: pa.Table | pa.RecordBatch, run_id: str | None = None
) -> pa.Table:
    """Check ``data`` against the schema of ``table`` and cast it to exactly that schema.

    Columns are reordered to the schema's order; types are cast safely (no overflow, no
    truncation of integers); non-nullable columns must hold no nulls; where the table has
    a ``run_id`` column every row must carry ``run_id``.

    Raises:
        StoreError: naming the missing or unexpected columns, or the column that cannot be cast.
    """
    layout.check_table(table)
    schema = table_schema(table)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if not isinstance(data, pa.Table):
        msg = f"{table} data must be a pyarrow.Table, got {type(data).__name__}"
        raise StoreError(msg)
    data = fill_added_columns(table, data, run_id)
    names = data.column_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    missing = [n for n in schema.names if n not in names]
    extra = [n for n in names if n not in schema.names]
    if missing or extra or dupes:
        msg = (
            f"{table} table does not fit schema v{SCHEMA_VERSION}: missing columns {missing}, "
            f"unexpected columns {extra}, duplicated columns {dupes}; expected {schema.names}"
        )
        raise StoreError(msg)
    cols = []
    for field in schema:
        col = data.column(field.name)
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                msg = f"{table} column {field.name!r}: cannot cast {col.type} to {field.type}: {e}"
                raise StoreError(msg) from e
        if not field.nullable and col.null_count:
            msg = f"{table} column {field.name!r} has {col.null_count} nulls but may not be null"
            raise StoreError(msg)
        cols.append(col)
    out = pa.Table.from_arrays(cols, schema=schema)
    if run_id is not None and "run_id" in schema.names and out.num_rows:
        if not pc.all(pc.equal(out["run_id"], run_id)).as_py():
            found = pc.unique(out["run_id"]).to_pylist()[:5]
            msg = f"{table} rows carry run_id {found}, but are written to run {run_id!r}"
            raise StoreError(msg)
    return out
