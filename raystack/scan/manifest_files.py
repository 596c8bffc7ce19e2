"""The manifest's files: one small file per attempt, merged by the driver as it goes, so
a run of a million units is not a million files to list and read.

    manifest/run=<id>/<unit_id>-a<attempt>.parquet     one attempt, as the driver records it
    manifest/run=<id>/compacted-<generation>.parquet   attempts merged so far

The driver keeps every row of its run in memory (read once when the run starts, then each
row it records) and merges in two steps, each writing a new file atomically (like every
store file) before deleting the files it replaces:

- every ``BATCH_EVERY`` (100) attempt files, their rows become one small compacted file;
- every ``COMPACT_EVERY`` (1,000) rows, and at the end of the run, all the rows of the run
  become one compacted file and every other file goes.

So a reader opens at most one big file, nine batch files and 99 attempt files, whatever the
size of the run. A crash at any point loses nothing: before a new file is published the
old files are all there; after it, some rows exist twice (in the new file and in a file not
deleted yet), and every reader drops such duplicates (:func:`dedupe_attempts`,
:func:`raystack.scan.manifest.summarize_table`, the SQL view ``manifest``). The next
compaction removes them.

Every attempt is kept, not only the latest per unit: the manifest is the run's history
(attempt counts, retried units), and its size is one row per attempt either way. Reading
goes file by file through ``pyarrow.parquet`` (not ``pyarrow.dataset``, whose import pulls
in pandas: half a second of ``raystack status``).
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
BATCH_EVERY = 100  # attempt files merged into one batch file
COMPACT_EVERY = 1000  # rows between two merges of the whole run into one file
_READ_TRIES = 3
_READ_THREADS = 8  # files are small; on S3 each read is one round trip


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


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: a file written before a column existed gets nulls there."""
    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(schema.metadata)
    cols = [table[f.name].cast(f.type) if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def read_files(store: Any, files: list[str], *, dedupe: bool = True) -> pa.Table:
    """Rows of exactly these manifest files.

    Args:
        dedupe: drop the copies a crash in a compaction can leave (``summarize_table``
            drops them itself, after the sort it needs anyway).

    Raises:
        OSError: a file vanished (a compaction removed it after the listing) or is unreadable.
    """
    import pyarrow.parquet as pq

    schema = table_schema("manifest")
    if not files:
        return schema.empty_table()

    def one(uri: str) -> pa.Table:
        with store.fs.open_input_file(_fs_path(uri)) as f:
            return _conform(pq.ParquetFile(f).read(), schema)

    if len(files) == 1:
        tables = [one(files[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(_READ_THREADS, len(files))) as pool:
            tables = list(pool.map(one, files))
    table = pa.concat_tables(tables)
    compacted = sum(generation_of(f) is not None for f in files)
    # Duplicates exist only when a compacted file sits next to other files.
    return dedupe_attempts(table) if dedupe and compacted and len(files) > 1 else table


def read_manifest(
    store: Any, run_id: str, *, dedupe: bool = True
) -> tuple[pa.Table, list[str]]:
    """Every attempt row of a run and the files they came from, safe against a compaction
    running meanwhile (a file deleted between listing and reading: list again)."""
    store.check()
    attempt = 0
    while True:
        files = list_manifest(store, run_id)
        try:
            return read_files(store, files, dedupe=dedupe), files
        except OSError:
            attempt += 1
            if attempt >= _READ_TRIES or list_manifest(store, run_id) == files:
                raise  # not a file removed by a compaction meanwhile
            time.sleep(0.05 * attempt)


class Compactor:
    """The driver's copy of a run's manifest, and the merging of its files."""

    def __init__(self, store: Any, run_id: str, every: int = COMPACT_EVERY,
                 batch: int = BATCH_EVERY) -> None:
        self.store = store
        self.run_id = run_id
        self.every = max(1, int(every))
        self.batch = max(1, min(int(batch), self.every))
        table, files = read_manifest(store, run_id)
        self._tables: list[pa.Table] = [table]
        self._new: list[dict[str, Any]] = []  # recorded, not in _tables yet
        self._files: list[str] = list(files)  # on disk, their rows all in memory
        self._unbatched: list[tuple[dict[str, Any], str]] = []  # (row, its attempt file)
        self._since_full = self.every if _loose(files) else 0  # a leftover mess: merge soon
        self._generation = max((g for f in files if (g := generation_of(f)) is not None),
                               default=0)
        self.compactions = 0
        self.batches = 0

    def table(self) -> pa.Table:
        """Every attempt row of the run: what was on disk at the start plus those recorded."""
        if self._new:
            self._tables.append(pa.Table.from_pylist(self._new, schema=table_schema("manifest")))
            self._new = []
        if len(self._tables) > 1:
            self._tables = [pa.concat_tables(self._tables)]
        return self._tables[0]

    def added(self, row: dict[str, Any], uri: str) -> None:
        """A row the driver just recorded as its own file at ``uri``; merges when due."""
        self._new.append(row)
        self._unbatched.append((row, uri))
        self._since_full += 1
        if len(self._unbatched) >= self.batch:
            if self._since_full >= self.every:
                self.compact()
            else:
                self._write_batch()

    def loose(self) -> int:
        """Files a reader must open besides one compacted file."""
        return _loose(self._files) + len(self._unbatched)

    def _write_batch(self) -> str:
        """The unbatched rows as one compacted file; their attempt files go."""
        rows = [r for r, _ in self._unbatched]
        uri = self._publish(pa.Table.from_pylist(rows, schema=table_schema("manifest")))
        replaced = [u for _, u in self._unbatched]
        self._unbatched = []
        self._files += [uri, *self._delete(replaced)]
        self.batches += 1
        return uri

    def compact(self) -> str | None:
        """Write every row of the run as one compacted file, then delete the files it
        replaces. Returns the new file's URI, or None when there was nothing to merge."""
        if self.loose() == 0:
            return None
        table = dedupe_attempts(self.table())
        uri = self._publish(table)
        old = self._files + [u for _, u in self._unbatched]
        self._tables, self._unbatched, self._since_full = [table], [], 0
        self._files = [uri, *self._delete([f for f in old if f != uri])]
        self.compactions += 1
        return uri

    def _publish(self, table: pa.Table) -> str:
        self._generation += 1
        return self.store.write_table("manifest", self.run_id,
                                      compacted_name(self._generation), table)

    def _delete(self, files: list[str]) -> list[str]:
        """Delete files whose rows a published file holds; returns those still there."""
        left = []
        for f in files:
            try:
                self.store.fs.delete_file(_fs_path(f))
            except FileNotFoundError:
                pass
            except OSError as e:  # left for the next compaction; readers drop duplicates
                left.append(f)
                log.warning("manifest compaction could not delete %s: %s", f, e)
        return left


def _loose(files: list[str]) -> int:
    compacted = sum(generation_of(f) is not None for f in files)
    return len(files) - compacted + max(0, compacted - 1)
