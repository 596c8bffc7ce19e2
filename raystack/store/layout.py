"""Names and paths of a raystack store: pure functions, no I/O.

    STORE/_raystack.json                                  root marker: schema version
    STORE/<table>/run=<run_id>/<name>.parquet             one file per work unit (hive layout)
    STORE/runs/<run_id>/run.json                          what a run was

    table_relpath("scores", "r1", "cam01-0-512")   # "scores/run=r1/cam01-0-512.parquet"
    manifest_name("cam01-0-512", 2)                # "cam01-0-512-a2"

Writers put a file under a temporary name first: it starts with ``.`` (Arrow's dataset
discovery skips it) and does not end in ``.parquet`` (DuckDB's ``*.parquet`` glob does not
match it), so no reader ever sees a partial file.
"""

from __future__ import annotations

import re
import uuid

from raystack.errors import RaystackError
from raystack.store.schema import TABLES

MARKER = "_raystack.json"
RUNS_DIR = "runs"
RUN_JSON = "run.json"
PARTITION_KEY = "run"
SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"

# Letters, digits and . _ : @ - ; first character alphanumeric so no name is hidden (a
# leading "." or "_" makes Arrow's discovery skip a file), no "/", "=", "..": a name is
# one path segment and never a hive key.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}")


class StoreError(RaystackError, ValueError):
    """A store operation got bad input: an invalid name, a table that does not fit its schema,
    a missing document."""


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a valid run id / file name, else raise :class:`StoreError`."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        msg = (
            f"invalid {what} {value!r}: use 1-200 letters, digits and . _ : @ -, starting "
            "with a letter or digit, without '..' (no '/', '=', spaces; it becomes a path segment)"
        )
        raise StoreError(msg)
    return value


def check_table(table: str) -> str:
    if table not in TABLES:
        msg = f"unknown store table {table!r}; tables are {list(TABLES)}"
        raise StoreError(msg)
    return table


def partition_dir(table: str, run_id: str) -> str:
    """``<table>/run=<run_id>`` relative to the store root."""
    return f"{check_table(table)}/{PARTITION_KEY}={check_name(run_id, 'run id')}"


def table_relpath(table: str, run_id: str, name: str) -> str:
    """Relative path of the Parquet file of ``name`` (e.g. a unit id) in ``run_id``."""
    return f"{partition_dir(table, run_id)}/{check_name(name, 'file name')}{SUFFIX}"


def run_json_relpath(run_id: str) -> str:
    return f"{RUNS_DIR}/{check_name(run_id, 'run id')}/{RUN_JSON}"


def manifest_name(unit_id: str, attempt: int) -> str:
    """File name of a manifest row: one file per attempt, so retries never overwrite history."""
    if int(attempt) < 1:
        msg = f"manifest attempt must be >= 1, got {attempt}"
        raise StoreError(msg)
    return check_name(f"{unit_id}-a{int(attempt)}", "unit id")


def doc_relpath(relpath: str) -> str:
    """Validate the relative path of a JSON document (``a/b/c.json``) under the store root."""
    parts = str(relpath).split("/")
    for p in parts:
        check_name(p, f"path segment of {relpath!r}")
    if parts[0] in TABLES:
        msg = f"JSON document {relpath!r} may not live inside the table folder {parts[0]!r}"
        raise StoreError(msg)
    return "/".join(parts)


def temp_name(final_name: str) -> str:
    """A unique hidden sibling name for writing ``final_name`` before the rename."""
    return f".{final_name}.{uuid.uuid4().hex}{TMP_SUFFIX}"


def is_data_file(basename: str) -> bool:
    """True for a finished Parquet file: readers list only these."""
    return basename.endswith(SUFFIX) and not basename.startswith((".", "_"))


def run_of(partition_segment: str) -> str | None:
    """``"run=r1"`` -> ``"r1"``; anything else -> None."""
    key, sep, value = partition_segment.partition("=")
    return value if sep and key == PARTITION_KEY and value else None
