"""The manifest's files: one small file per attempt, merged by the driver into one
compacted file, so a run of a million units is not a million files to list and read.

    manifest/run=<id>/<unit_id>-a<attempt>.parquet     one attempt, as the driver records it
    manifest/run=<id>/compacted-<generation>.parquet   every attempt merged so far

The driver keeps every row of its run in memory (read once when the run starts, then
each row it records). Every ``COMPACT_EVERY`` records, and at the end of the run, it
writes all of them as the next generation of the compacted file (atomically, like every
store file), and only then deletes the older compacted file and the attempt files that
the new one holds. A crash at any point loses nothing: before the new file is published
the old files are all there; after it, some rows exist twice (in the new compacted file
and in a file not deleted yet), and every reader drops such duplicates
(:func:`read_manifest`, the SQL view ``manifest``). The next compaction removes them.

Every attempt is kept, not only the latest per unit: the manifest is the run's history
(attempt counts, retried units), and its size is one row per attempt either way.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raystack.store.schema import table_schema

log = logging.getLogger(__name__)

COMPACTED_PREFIX = "compacted-"  # attempt files end in "-a<n>", so no unit can collide
COMPACT_EVERY = 1000  # attempt files between compactions: ~1 s of work per 1,000 units
_READ_TRIES = 3


def compacted_name(generation: int) -> str:
    return f"{COMPACTED_PREFIX}{generation:010d}"


def _base(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name[: -len(".parquet")] if name.endswith(".parquet") else name


def generation_of(path: str) -> int | None:
    """The generation of a compacted file's path, or None for an attempt file."""
    base = _base(path)
    if not base.startswith(COMPACTED_PREFIX):
        return None
    tail = base[len(COMPACTED_PREFIX):]
    return int(tail) if tail.isdigit() else None


def _fs_path(uri: str) -> str:
    return uri[len("s3://"):] if uri.startswith("s3://") else uri


def dedupe_attempts(table: pa.Table) -> pa.Table:
    """One row per (unit_id, attempt): the copies a crash mid-compaction left are equal."""
    if table.num_rows < 2:
        return table
    keys = pc.binary_join_element_wise(table["unit_id"], pc.cast(table["attempt"], pa.string()),
                                       "\x00")
    _, first = np.unique(keys.to_numpy(zero_copy_only=False), return_index=True)
    if len(first) == table.num_rows:
        return table
    return table.take(pa.array(np.sort(first)))


def list_manifest(store: Any, run_id: str) -> list[str]:
    """The manifest files of ``run_id`` (compacted and attempt files), sorted."""
    return store.list_files("manifest", run_id)


def read_files(store: Any, files: list[str]) -> pa.Table:
    """Rows of exactly these manifest files, duplicates dropped when any file is compacted.

    Raises:
        OSError: a file vanished (a compaction removed it after the listing) or is unreadable.
    """
    import pyarrow.dataset as ds

    schema = table_schema("manifest")
    if not files:
        return schema.empty_table()
    paths = [_fs_path(f) for f in files]
    table = ds.dataset(paths, schema=schema, format="parquet",
                       filesystem=store.fs).to_table()
    compacted = sum(generation_of(f) is not None for f in files)
    # Duplicates exist only when a compacted file sits next to other files.
    return dedupe_attempts(table) if compacted and len(files) > 1 else table


def read_manifest(store: Any, run_id: str) -> tuple[pa.Table, list[str]]:
    """Every attempt row of a run and the files they came from, safe against a compaction
    running meanwhile (a file deleted between listing and reading: list again)."""
    store.check()
    attempt = 0
    while True:
        files = list_manifest(store, run_id)
        try:
            return read_files(store, files), files
        except OSError:
            attempt += 1
            if attempt >= _READ_TRIES or list_manifest(store, run_id) == files:
                raise  # not a file removed by a compaction meanwhile
            time.sleep(0.05 * attempt)


class Compactor:
    """The driver's copy of a run's manifest, and the compaction of its files."""

    def __init__(self, store: Any, run_id: str, every: int = COMPACT_EVERY) -> None:
        self.store = store
        self.run_id = run_id
        self.every = max(1, int(every))
        table, files = read_manifest(store, run_id)
        self._tables: list[pa.Table] = [table]
        self._new: list[dict[str, Any]] = []
        self._merged: list[str] = list(files)  # on disk and held in memory
        self._loose = _loose(self._merged)
        self._generation = max((g for f in files if (g := generation_of(f)) is not None),
                               default=0)
        self.compactions = 0

    def table(self) -> pa.Table:
        """Every attempt row of the run: what was on disk at the start plus those recorded."""
        if self._new:
            self._tables.append(pa.Table.from_pylist(self._new, schema=table_schema("manifest")))
            self._new = []
        if len(self._tables) > 1:
            self._tables = [pa.concat_tables(self._tables)]
        return self._tables[0]

    def added(self, row: dict[str, Any], uri: str) -> None:
        """A row the driver just recorded as its own file at ``uri``; compacts when due."""
        self._new.append(row)
        self._merged.append(uri)
        self._loose += 1
        if self._loose >= self.every:
            self.compact()

    def loose(self) -> int:
        """Files a reader must open besides the newest compacted one."""
        return self._loose

    def compact(self) -> str | None:
        """Write every row as the next compacted file, then delete the files it replaces.

        Returns the new file's URI, or None when there was nothing to merge.
        """
        if self.loose() == 0:
            return None
        table = dedupe_attempts(self.table())
        self._generation += 1
        uri = self.store.write_table("manifest", self.run_id,
                                     compacted_name(self._generation), table)
        old, self._merged = self._merged, [uri]
        self._tables = [table]
        failed = []
        for f in old:  # the new file holds all their rows: removing them loses nothing
            if f == uri:
                continue
            try:
                self.store.fs.delete_file(_fs_path(f))
            except FileNotFoundError:
                pass
            except OSError as e:  # left for the next compaction; readers drop duplicates
                failed.append(f)
                log.warning("manifest compaction could not delete %s: %s", f, e)
        self._merged += failed
        self._loose = _loose(self._merged)
        self.compactions += 1
        return uri


def _loose(files: list[str]) -> int:
    compacted = sum(generation_of(f) is not None for f in files)
    return len(files) - compacted + max(0, compacted - 1)
