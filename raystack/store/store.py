"""The Parquet store of a scan: one file per work unit, written atomically, local or on S3.

    store = Store("s3://bucket/store").ensure()   # or a local folder
    store.write_table("scores", "r1", "cam01-0-512", table)
    # -> "s3://bucket/store/scores/run=r1/cam01-0-512.parquet"
    store.read_table("scores", run_id="r1")       # pa.Table with the scores schema (v2)
    store.dataset("scores")                       # pyarrow dataset + hive column "run", for DuckDB

Atomicity: locally a file is written under a hidden temporary name in its final folder,
fsynced, then renamed over the final name (``os.replace``); on S3 it is a single PUT,
which S3 makes visible whole or not at all (both by :class:`raystack.io.fileroot.FileRoot`).
The path depends only on (table, run, name), so a retried unit overwrites its own file
instead of duplicating rows. See
:mod:`raystack.store.layout` for the layout and the naming rules.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raystack import __version__, retry
from raystack.errors import SchemaVersionError
from raystack.io.fileroot import FileRoot
from raystack.redact import redact
from raystack.store import layout
from raystack.store.conform import conform_table
from raystack.store.layout import StoreError
from raystack.store.schema import (
    SCHEMA_VERSION,
    TABLES,
    check_file_version,
    check_version,
    table_schema,
)

__all__ = ["Store", "conform_table"]

_MAX_PUT = 5 * 1024**3  # S3's limit for a single PUT
_MISSING = object()


class Store:
    """A raystack store rooted at a local folder or ``s3://bucket/prefix``.

    Constructing it touches nothing. Writers call :meth:`ensure` (done implicitly by the
    write methods), readers :meth:`check` (done implicitly by the read methods): both
    refuse a store written with another schema version. Instances pickle as their URI, so
    Ray can ship them to workers.
    """

    def __init__(self, uri: str | Path) -> None:
        text = str(uri)
        if text.startswith("file://"):
            text = text[len("file://") :]
        if "://" not in text:
            text = str(Path(text).expanduser().resolve())
        try:
            self.files = FileRoot(text, temp_name=layout.temp_name)
        except ValueError as e:
            msg = f"store URI {e}"
            raise StoreError(msg) from e
        self.uri = self.files.uri
        self.is_s3 = self.files.is_s3
        self._root = self.files.root
        self._checked = False

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def __reduce__(self) -> tuple:
        return (Store, (self.uri,))

    # --- root marker and schema version -------------------------------------------------

    def ensure(self) -> Store:
        """Create the root marker if missing, else check its version. Returns self."""
        if self._checked:
            return self
        marker = self._read_marker()
        if marker is None:
            doc = {
                "schema_version": SCHEMA_VERSION,
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
                "raystack_version": __version__,
            }
            self._put(layout.MARKER, _dumps(doc))
        elif check_version(marker.get("schema_version"), self._where(layout.MARKER)) < (
            SCHEMA_VERSION
        ):
            # This writer adds files of the current version: older raystacks must now refuse
            # the store by its marker rather than trip over a column they do not know.
            found = marker["schema_version"]
            self._put(layout.MARKER, _dumps({**marker, "schema_version": SCHEMA_VERSION,
                                             "upgraded_from": found}))
        self._checked = True
        return self

    def check(self) -> Store:
        """Raise :class:`SchemaVersionError` unless this is a store of the version we read."""
        if self._checked:
            return self
        marker = self._read_marker()
        if marker is None:
            if not self._root_exists():
                msg = f"no raystack store at {self.uri}: the location does not exist"
                raise SchemaVersionError(msg)
            check_version(None, f"{self.uri} (no {layout.MARKER})")
        check_version(marker.get("schema_version"), self._where(layout.MARKER))
        self._checked = True
        return self

    # --- tables ------------------------------------------------------------------------

    def uri_for(self, table: str, run_id: str, name: str) -> str:
        """Where ``write_table(table, run_id, name, ...)`` writes (path or s3:// URI)."""
        return self._uri(layout.table_relpath(table, run_id, name))

    def write_table(self, table: str, run_id: str, name: str, data: pa.Table) -> str:
        """Write ``data`` as ONE Parquet file, atomically, at a path fixed by its arguments.

        Rewriting the same (table, run_id, name) replaces the file, so a retried work unit
        is idempotent. The file's key-value metadata carries the table and schema version.

        Returns:
            The local path or ``s3://`` URI of the file.
        """
        rel = layout.table_relpath(table, run_id, name)
        out = conform_table(table, data, run_id)
        self.ensure()
        buf = pa.BufferOutputStream()
        pq.write_table(out, buf, compression="zstd")
        self._put(rel, buf.getvalue())
        return self._uri(rel)

    def exists(self, table: str, run_id: str, name: str) -> bool:
        """Whether the file of (table, run_id, name) is there; no version check (cheap, for
        resuming writers, which have called :meth:`ensure`)."""
        return self.files.is_file(layout.table_relpath(table, run_id, name))

    def list_files(self, table: str, run_id: str | None = None) -> list[str]:
        """Finished Parquet files of ``table`` (one run or all), sorted; temp files never appear."""
        self.check()
        return [self._uri_of_path(p) for p in self._data_paths(table, run_id)]

    def read_table(
        self, table: str, run_id: str | None = None, columns: list[str] | None = None
    ) -> pa.Table:
        """All rows of ``table`` (one run or all) with its schema; an empty table if none."""
        import pyarrow.dataset as ds

        self.check()
        schema = table_schema(layout.check_table(table))
        if columns is not None:
            unknown = [c for c in columns if c not in schema.names]
            if unknown:
                msg = f"{table} has no columns {unknown}; columns are {schema.names}"
                raise StoreError(msg)
        paths = self._data_paths(table, run_id)
        if not paths:
            empty = schema.empty_table()
            return empty.select(columns) if columns is not None else empty

        def read() -> pa.Table:
            # The declared schema reads files of older versions with added columns null.
            dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=self.fs)
            for frag in dataset.get_fragments():
                check_file_version(frag.physical_schema.metadata, self._uri_of_path(frag.path))
            return dataset.to_table(columns=columns)

        return retry.call(read, what=f"read table {table} of", where=f"store {self.uri}")

    def dataset(self, table: str) -> Any:
        """A ``pyarrow.dataset.Dataset`` over all runs of ``table``, with the hive column ``run``.

        Works for local and S3 stores alike; register it with DuckDB
        (``con.register("scores", store.dataset("scores"))``), which needs no httpfs.
        The dataset holds the files present when it is made: call again to see new ones.
        """
        import pyarrow.dataset as ds

        self.check()
        run_field = pa.field(layout.PARTITION_KEY, pa.string())
        schema = table_schema(layout.check_table(table)).append(run_field)
        # Run ids are strings even when they look like numbers: no type inference.
        part = ds.partitioning(pa.schema([run_field]), flavor="hive")
        return ds.dataset(
            self._data_paths(table, None),
            schema=schema,
            format="parquet",
            filesystem=self.fs,
            partitioning=part,
            partition_base_dir=self._path(table),
        )

    def runs(self) -> list[str]:
        """Run ids that have a run.json or any table partition, sorted."""
        from pyarrow import fs

        self.check()
        found: set[str] = set()
        for table in TABLES:
            for info in self._ls(table, recursive=False):
                run = layout.run_of(info.base_name)
                if run and info.type == fs.FileType.Directory:
                    found.add(run)
        for info in self._ls(layout.RUNS_DIR, recursive=False):
            if info.type == fs.FileType.Directory and not info.base_name.startswith((".", "_")):
                found.add(info.base_name)
        return sorted(found)

    # --- JSON documents ------------------------------------------------------------------

    def write_run_json(self, run_id: str, info: dict) -> str:
        """Write ``runs/<run_id>/run.json`` (adds run_id and schema_version if absent), with
        credentials in URIs masked (:func:`raystack.redact.redact`)."""
        rel = layout.run_json_relpath(run_id)
        doc = redact({"run_id": run_id, "schema_version": SCHEMA_VERSION, **info})
        self.ensure()
        self._put(rel, _dumps(doc))
        return self._uri(rel)

    def read_run_json(self, run_id: str) -> dict:
        rel = layout.run_json_relpath(run_id)
        self.check()
        doc = self._read_json(rel)
        if doc is None:
            msg = f"run {run_id!r} has no run.json in store {self.uri} (no {self._uri(rel)})"
            raise StoreError(msg)
        if isinstance(doc, dict) and doc.get("schema_version") is not None:
            check_version(doc["schema_version"], self._uri(rel))
        return doc

    def write_json(self, relpath: str, obj: Any) -> str:
        """Atomically write a small JSON document at ``relpath`` (e.g. ``calibration/r1.json``),
        credentials in URIs masked."""
        rel = layout.doc_relpath(relpath)
        self.ensure()
        self._put(rel, _dumps(redact(obj)))
        return self._uri(rel)

    def read_json(self, relpath: str, default: Any = _MISSING) -> Any:
        """Read a JSON document; ``default`` if given and the document does not exist."""
        rel = layout.doc_relpath(relpath)
        self.check()
        doc = self._read_json(rel)
        if doc is None:
            if default is not _MISSING:
                return default
            msg = f"no JSON document {relpath!r} in store {self.uri}"
            raise StoreError(msg)
        return doc

    # --- raw access ----------------------------------------------------------------------

    @property
    def fs(self) -> Any:
        return self.files.fs

    @property
    def filesystem(self) -> tuple[Any, str]:
        """``(pyarrow.fs.FileSystem, root path in it)``: ``"bucket/prefix"`` on S3."""
        return self.fs, self._root

    def _path(self, rel: str) -> str:
        return self.files.path(rel)

    def _uri(self, rel: str) -> str:
        return self.files.uri_of(rel)

    def _uri_of_path(self, path: str) -> str:
        return self.files.uri_of_path(path)

    def _where(self, rel: str) -> str:
        return f"store {self.uri} ({rel})"

    def _put(self, rel: str, data: bytes | pa.Buffer) -> None:
        """Publish ``data`` at ``rel`` in one step (:meth:`FileRoot.put`, retried)."""
        size = data.size if isinstance(data, pa.Buffer) else len(data)
        if self.is_s3 and size > _MAX_PUT:
            msg = f"{self._uri(rel)}: {size} bytes exceed one S3 PUT (5 GiB); use smaller units"
            raise StoreError(msg)
        self.files.put(rel, data)

    def _read_json(self, rel: str) -> Any:
        """Parsed document at ``rel``, or None if it does not exist."""
        try:
            return self.files.read_json(rel)
        except ValueError as e:
            raise StoreError(str(e)) from e

    def _read_marker(self) -> dict | None:
        try:
            marker = self._read_json(layout.MARKER)
        except StoreError as e:
            raise SchemaVersionError(str(e)) from e
        except OSError as e:  # e.g. a missing bucket or no permission
            msg = f"cannot open store {self.uri}: {e}"
            raise StoreError(msg) from e
        if marker is not None and not isinstance(marker, dict):
            msg = f"{self._where(layout.MARKER)} is not a raystack marker (not a JSON object)"
            raise SchemaVersionError(msg)
        return marker

    def _root_exists(self) -> bool:
        from pyarrow import fs

        if self.is_s3:  # a prefix exists while something is under it
            return bool(self._ls("", recursive=False))
        return self.files.info().type == fs.FileType.Directory

    def _ls(self, rel: str, recursive: bool) -> list[Any]:
        return self.files.list(rel, recursive=recursive)

    def _data_paths(self, table: str, run_id: str | None) -> list[str]:
        """Filesystem paths of the finished files of ``table`` under ``run=<id>/`` folders."""
        from pyarrow import fs

        rel = layout.partition_dir(table, run_id) if run_id else layout.check_table(table)
        paths = []
        for info in self._ls(rel, recursive=run_id is None):
            if info.type != fs.FileType.File or not layout.is_data_file(info.base_name):
                continue
            parent = info.path.rsplit("/", 2)[-2]
            if layout.run_of(parent):
                paths.append(info.path)
        return sorted(paths)


def _json_default(o: Any) -> Any:
    if isinstance(o, (dt.datetime, dt.date)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    msg = f"cannot store a {type(o).__name__} in JSON: {o!r}"
    raise TypeError(msg)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode() + b"\n"
