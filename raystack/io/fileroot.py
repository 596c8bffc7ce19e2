"""A folder on a local disk or S3 whose files appear whole or not at all.

The store (:class:`raystack.store.Store`) and training runs
(:class:`raystack.train.storage.RunStorage`) both keep their files under one of these.
Paths below the root are '/'-separated and relative; every call is retried through
outages (:mod:`raystack.retry`), which is safe because each write is whole or absent.

    root = FileRoot("s3://bucket/store")         # or a local folder
    root.put("runs/r1/run.json", b"{...}")       # one S3 PUT; locally temp file + rename
    root.read_json("runs/r1/run.json")           # the document, or None when absent
    root.list("scores", recursive=True)          # [pyarrow.fs.FileInfo, ...]

Atomicity: locally a file is written under a hidden temporary name in its final folder,
fsynced, then renamed over the final name (``os.replace``) and the folder entry synced;
on S3 it is a single PUT (bytes) or one upload (a local file), which S3 makes visible
whole. Nothing is ever created exclusively: a second write of the same path replaces the
first, which is what makes retried work idempotent.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raystack import retry
from raystack.io.s3 import arrow_s3_filesystem, is_s3_uri, parse_s3_uri, s3_client


def hidden_temp_name(final_name: str) -> str:
    """A unique hidden sibling name for writing ``final_name`` before the rename."""
    return f".{final_name}.{uuid.uuid4().hex}.tmp"


def dumps_json(doc: Any) -> bytes:
    """The default JSON encoding of :meth:`FileRoot.write_json`: indented, one trailing newline."""
    return (json.dumps(doc, indent=2, default=str) + "\n").encode()


class FileRoot:
    """Whole-file reads and atomic writes below a local folder or ``s3://bucket/prefix``.

    Args:
        uri: a local folder (``file://`` accepted; made absolute, links kept) or
            ``s3://bucket[/prefix]``. Nothing is touched until the first call.
        temp_name: the temporary name a local write uses beside its final name; it must
            be a name readers skip (hidden).

    Attributes:
        uri: the normalised location: an absolute path, or ``s3://bucket[/prefix]``.
        is_s3: whether it is on S3.
        root: the root's path inside :attr:`fs` (``bucket/prefix`` on S3).

    Raises:
        ValueError: a URI scheme other than ``file://`` and ``s3://``.
    """

    def __init__(self, uri: str | os.PathLike,
                 temp_name: Callable[[str], str] = hidden_temp_name) -> None:
        text = str(uri)
        if text.startswith("file://"):
            text = text[len("file://"):]
        if is_s3_uri(text):
            bucket, prefix = parse_s3_uri(text.rstrip("/"))
            prefix = prefix.strip("/")
            self.root = f"{bucket}/{prefix}" if prefix else bucket
            self.uri = f"s3://{self.root}"
            self.is_s3 = True
            self._bucket, self._prefix = bucket, prefix
        elif "://" in text:
            msg = f"{text!r}: only local paths and s3:// are supported"
            raise ValueError(msg)
        else:
            self.root = self.uri = str(Path(text).expanduser().absolute())
            self.is_s3 = False
        self._temp_name = temp_name
        self._fs: Any = None

    def __repr__(self) -> str:
        return f"FileRoot({self.uri!r})"

    # --- names ----------------------------------------------------------------------------

    @property
    def fs(self) -> Any:
        """The ``pyarrow.fs`` filesystem the root lives on (made on first use)."""
        if self._fs is None:
            from pyarrow import fs

            self._fs = arrow_s3_filesystem() if self.is_s3 else fs.LocalFileSystem()
        return self._fs

    def path(self, rel: str = "") -> str:
        """Path of ``rel`` inside :attr:`fs` (the root itself for ``""``)."""
        return f"{self.root}/{rel}" if rel else self.root

    def uri_of(self, rel: str = "") -> str:
        """Readable location of ``rel``: a local path or an ``s3://`` URI."""
        return self.uri_of_path(self.path(rel))

    def uri_of_path(self, path: str) -> str:
        """Readable location of a path inside :attr:`fs`."""
        return f"s3://{path}" if self.is_s3 else path

    # --- reads ----------------------------------------------------------------------------

    def info(self, rel: str = "") -> Any:
        """``pyarrow.fs.FileInfo`` of ``rel`` (type ``NotFound`` when nothing is there)."""
        path = self.path(rel)
        return retry.call(lambda: self.fs.get_file_info(path), what="look up",
                          where=self.uri_of_path(path))

    def is_file(self, rel: str) -> bool:
        from pyarrow import fs

        return self.info(rel).type == fs.FileType.File

    def exists(self, rel: str = "") -> bool:
        """Whether a file or a folder (on S3: anything under the prefix) is at ``rel``."""
        from pyarrow import fs

        return self.info(rel).type != fs.FileType.NotFound

    def list(self, rel: str = "", *, recursive: bool = False) -> list[Any]:
        """``pyarrow.fs.FileInfo`` of what is below ``rel``; empty when ``rel`` is absent."""
        from pyarrow import fs

        base = self.path(rel)
        sel = fs.FileSelector(base, recursive=recursive, allow_not_found=True)
        return retry.call(lambda: self.fs.get_file_info(sel), what="list",
                          where=self.uri_of_path(base))

    def get(self, rel: str) -> bytes | None:
        """The bytes of the file at ``rel``, or None when there is no file."""
        from pyarrow import fs

        path = self.path(rel)

        def read() -> bytes | None:
            if self.fs.get_file_info(path).type != fs.FileType.File:
                return None
            with self.fs.open_input_stream(path) as f:
                return f.read()

        return retry.call(read, what="read", where=self.uri_of(rel))

    def read_json(self, rel: str) -> Any:
        """The JSON document at ``rel``, or None when there is none.

        Raises:
            ValueError: the file is not valid JSON (the message names it).
        """
        raw = self.get(rel)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            msg = f"{self.uri_of(rel)} is not valid JSON: {e}"
            raise ValueError(msg) from e

    def get_dir(self, rel: str, local: str | Path) -> Path:
        """Copy the folder ``rel`` into the local folder ``local`` (created); returns it."""
        from pyarrow import fs

        local = Path(local)
        local.mkdir(parents=True, exist_ok=True)
        retry.call(lambda: fs.copy_files(self.path(rel), str(local), source_filesystem=self.fs,
                                         destination_filesystem=fs.LocalFileSystem()),
                   what="download", where=self.uri_of(rel))
        return local

    # --- writes ---------------------------------------------------------------------------

    def put(self, rel: str, data: bytes | Any) -> None:
        """Publish ``data`` (bytes or a ``pyarrow.Buffer``) at ``rel`` in one step."""
        retry.call(lambda: self._put_once(rel, data), what="write", where=self.uri_of(rel))

    def put_file(self, local: str | Path, rel: str) -> None:
        """Copy the local file ``local`` to ``rel``, streamed; readers see it whole or not."""
        retry.call(lambda: self._put_file_once(Path(local), rel), what="upload",
                   where=self.uri_of(rel))

    def write_json(self, rel: str, doc: Any,
                   encode: Callable[[Any], bytes] = dumps_json) -> None:
        """Write ``doc`` to ``rel`` as a whole, encoded by ``encode``."""
        self.put(rel, encode(doc))

    def delete_dir(self, rel: str) -> None:
        """Delete the folder ``rel`` and everything below it."""
        retry.call(lambda: self.fs.delete_dir(self.path(rel)), what="delete",
                   where=self.uri_of(rel))

    def _put_once(self, rel: str, data: bytes | Any) -> None:
        if self.is_s3:
            body = data if isinstance(data, bytes) else data.to_pybytes()
            key = f"{self._prefix}/{rel}" if self._prefix else rel
            s3_client().put_object(Bucket=self._bucket, Key=key, Body=body)
            return
        self._replace_local(rel, lambda f: f.write(memoryview(data)))

    def _put_file_once(self, local: Path, rel: str) -> None:
        if self.is_s3:
            from pyarrow import fs

            # A multipart upload appears whole when it completes; a big checkpoint streams.
            fs.copy_files(str(local), self.path(rel), source_filesystem=fs.LocalFileSystem(),
                          destination_filesystem=self.fs)
            return
        with open(local, "rb") as src:
            self._replace_local(rel, lambda f: shutil.copyfileobj(src, f))

    def _replace_local(self, rel: str, write: Callable[[Any], Any]) -> None:
        """Write through ``write(file)`` to a temp file beside ``rel``, then rename it over."""
        final = Path(self.path(rel))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / self._temp_name(final.name)
        try:
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # The rename itself must survive a power cut, so sync the folder entry too.
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
