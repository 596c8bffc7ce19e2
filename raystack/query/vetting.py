"""Which files of a local store a read-only connection may read, decided when it opens.

    files = vet_files("/data/store", st.list_files("scores"), parquet=True)
    # {"scores/run=r1/u.parquet": VettedFile(...), ...}; every other file: a warning, skipped

A file is kept when its real path (all links resolved) lies inside the store's real path,
it is a regular file, and, for tables, it starts and ends with Parquet's magic bytes. A
link to ``/etc/passwd``, a run folder linked to another disk, or a stray non-Parquet file
is skipped with an :class:`StoreFileWarning` naming it, so one planted file neither
leaks what it points at nor breaks the views for everyone.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass

_PARQUET_MAGIC = b"PAR1"


class StoreFileWarning(UserWarning):
    """A store file was skipped (a link out of the store, not a regular file, not Parquet, a
    malformed threshold) or does not say what its name says."""


@dataclass(frozen=True)
class VettedFile:
    relpath: str  # inside the store, "/"-separated
    real: str
    dev: int
    ino: int
    size: int
    mtime: float


def inside(path: str, root: str) -> bool:
    return path.startswith(root.rstrip(os.sep) + os.sep)


def fd_path(fd: int) -> str | None:
    """The kernel's name for the open file ``fd`` (None without /proc).

    It is read after opening, so a link or folder swapped in between a check of the path
    and the open cannot redirect the read unseen.
    """
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def open_vetted(v: VettedFile, root: str) -> int:
    """A read-only descriptor of ``v``: the file vetted at connect, or one a scan has since
    put in its place (an atomic rename gives a new inode) that still lies inside ``root``.

    Raises:
        PermissionError: the path now leads somewhere else.
    """
    fd = os.open(v.real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        same = (st.st_dev, st.st_ino) == (v.dev, v.ino)
        now = fd_path(fd)
        if not stat.S_ISREG(st.st_mode) or not (same or (now is not None and inside(now, root))):
            msg = (
                f"the raystack store is read-only: {v.relpath} changed since the connection opened"
            )
            raise PermissionError(msg)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_parquet(fd: int, size: int) -> bool:
    return size >= 12 and os.pread(fd, 4, 0) == _PARQUET_MAGIC == os.pread(fd, 4, size - 4)


_OUTSIDE = "it resolves to a place outside the store"


def _vet(path: str, rel: str, root_real: str, parquet: bool) -> VettedFile | str:
    """The vetted file, or why it is refused."""
    real = os.path.realpath(path)
    if not inside(real, root_real):
        return _OUTSIDE
    try:
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as e:
        return f"it cannot be opened ({e.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "it is not a regular file"
        now = fd_path(fd)
        if now is not None and not inside(now, root_real):
            return _OUTSIDE
        if parquet and not _is_parquet(fd, st.st_size):
            return "it is not a Parquet file"
        return VettedFile(rel, real, st.st_dev, st.st_ino, st.st_size, st.st_mtime)
    finally:
        os.close(fd)


def vet_files(root: str, paths: list[str], *, parquet: bool) -> dict[str, VettedFile]:
    """The files of ``paths`` (under ``root``) a read-only connection may read, by relpath."""
    root_real = os.path.realpath(root)
    kept: dict[str, VettedFile] = {}
    for path in paths:
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        vetted = _vet(path, rel, root_real, parquet)
        if isinstance(vetted, VettedFile):
            kept[rel] = vetted
        else:
            warnings.warn(f"store file {rel} skipped: {vetted}", StoreFileWarning, stacklevel=3)
    return kept
