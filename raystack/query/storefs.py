"""A read-only filesystem over the vetted files of one store, for DuckDB's own Parquet reader.

    fs = StoreFileSystem({"scores/run=r1/u.parquet": vetted_file, ...}, root="/data/store")
    con.register_filesystem(fs)   # DuckDB reads raystack://store/scores/run=r1/u.parquet

DuckDB's ``allowed_paths`` grants a path for reading and writing alike, so granting it the
store's real paths lets ``COPY ... TO`` overwrite them. Through this filesystem DuckDB sees
only the names ``raystack://store/<relpath>`` of the files vetted when the connection
opened: it can open them for reading and nothing else, and no other path exists in it.
Writes, deletes, renames and new folders raise :class:`PermissionError`. The names also
keep the store's absolute path out of DuckDB's settings and plans.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from typing import Any

from fsspec import AbstractFileSystem

from raystack.query.vetting import VettedFile, open_vetted

PROTOCOL = "raystack"
ROOT = "store"
READ_ONLY = "the raystack store is read-only"


def store_url(relpath: str) -> str:
    """The name DuckDB reads the store file ``relpath`` under."""
    return f"{PROTOCOL}://{ROOT}/{relpath}"


class StoreFile:
    """One store file opened for reading, safe to share between DuckDB's threads.

    DuckDB seeks and then reads as two calls, each taking the GIL on its own, from any of
    its threads on one handle. Each thread keeps its own position, so one thread's seek
    cannot move another's read.
    """

    def __init__(self, vetted: VettedFile, root: str) -> None:
        self._fd: int | None = None
        fd = open_vetted(vetted, root)
        st = os.fstat(fd)
        self._fd = fd
        self.size = st.st_size
        self._pos = threading.local()

    # --- the file object protocol fsspec callers use -----------------------------------

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._fd is None

    def tell(self) -> int:
        return getattr(self._pos, "at", 0)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.tell(), os.SEEK_END: self.size}[whence]
        self._pos.at = max(0, base + int(offset))
        return self._pos.at

    def read(self, n: int = -1) -> bytes:
        if self._fd is None:
            msg = "read of a closed store file"
            raise ValueError(msg)
        at = self.tell()
        n = self.size - at if n is None or n < 0 else n
        parts, got = [], 0
        while got < n:
            chunk = os.pread(self._fd, n - got, at + got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        self._pos.at = at + got
        return b"".join(parts)

    def write(self, data: Any) -> int:
        raise PermissionError(READ_ONLY)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> StoreFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class StoreFileSystem(AbstractFileSystem):
    """The vetted files of a store under ``raystack://store/``, for reading only."""

    protocol = PROTOCOL
    root_marker = ""
    cachable = False  # each connection has its own files; fsspec must not share instances

    def __init__(self, files: dict[str, VettedFile], root: str) -> None:
        super().__init__()
        self._files = dict(files)
        self._root = root
        self._dirs = {ROOT}
        for rel in self._files:
            parts = rel.split("/")
            for i in range(1, len(parts)):
                self._dirs.add("/".join([ROOT, *parts[:i]]))

    def _vetted(self, path: str) -> VettedFile:
        name = self._strip_protocol(path)
        rel = name[len(ROOT) + 1 :] if name.startswith(ROOT + "/") else None
        vetted = self._files.get(rel) if rel is not None else None
        if vetted is None:
            raise FileNotFoundError(path)
        return vetted

    # --- reading -----------------------------------------------------------------------

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        name = self._strip_protocol(path)
        if name in self._dirs:
            return {"name": name, "size": 0, "type": "directory"}
        size, mtime = self._now(self._vetted(path))
        return {"name": name, "size": size, "type": "file", "mtime": mtime}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        name = self._strip_protocol(path)
        if name not in self._dirs:
            return [self.info(path)] if detail else [name]
        prefix = name + "/"
        children = {p for p in self._dirs if p.startswith(prefix) and "/" not in p[len(prefix) :]}
        children |= {
            f"{ROOT}/{rel}"
            for rel in self._files
            if f"{ROOT}/{rel}".startswith(prefix) and "/" not in f"{ROOT}/{rel}"[len(prefix) :]
        }
        entries = sorted(children)
        return [self.info(p) for p in entries] if detail else entries

    @staticmethod
    def _now(v: VettedFile) -> tuple[int, float]:
        """Size and mtime as the file is now, so DuckDB's file cache sees a file a scan has
        replaced since (the open still checks where it lies)."""
        try:
            st = os.stat(v.real, follow_symlinks=False)
        except OSError:
            return v.size, v.mtime
        return st.st_size, st.st_mtime

    def modified(self, path: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._now(self._vetted(path))[1], tz=dt.UTC)

    def created(self, path: str) -> dt.datetime:
        return self.modified(path)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> StoreFile:
        if mode != "rb":
            msg = f"{READ_ONLY}: cannot open {path} with mode {mode!r}"
            raise PermissionError(msg)
        return StoreFile(self._vetted(path), self._root)

    # --- everything that would change a file -------------------------------------------

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(READ_ONLY)

    mkdir = makedirs = rmdir = _rm = rm_file = rm = mv = cp_file = copy = _refuse
    touch = pipe_file = put_file = put = pipe = link = symlink = _refuse
