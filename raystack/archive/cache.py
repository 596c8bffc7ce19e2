"""Bring S3 objects to the decoders: a local file cache, ranged reads, small whole reads.

Videos are fetched once into a cache folder, streamed to disk (never whole in memory)
and renamed into place atomically, under a name keyed by bucket, key and ETag so that a
changed object is fetched again. Probing reads only the bytes it needs through
:class:`S3RangeFile`; frame-folder images are small and read whole with :func:`read_object`.

    path = fetch("s3://cams/2024/cam01.mp4", etag="9b2c...", max_bytes=50 * 2**30)
    # ~/.cache/raystack/s3/cams/2024/cam01.9b2c....mp4

An overnight scan reads more video than a worker's disk holds, so ``max_bytes`` caps the
cache: after each download the least recently used videos go first (a hit refreshes a
file's mtime), sparing any used in the last :data:`TRIM_GRACE_S` seconds, which a reader
may be about to open. Partial downloads left by killed workers are swept after an hour.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from raystack import retry
from raystack.archive.ids import suffix, unsafe_segments
from raystack.archive.s3 import parse_s3_uri, s3_client
from raystack.errors import ArchiveError, RaystackError, UndecodableVideoError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,254}$")
_ETAG_CHARS = re.compile(r"[^A-Za-z0-9-]")
_CHUNK = 1 << 20  # bytes per write while streaming a download
# Files used this recently are never evicted: the fetcher opens its file right after
# fetch() returns, and segments of one video on other workers reuse it within minutes.
TRIM_GRACE_S = 300.0
_PART_MAX_AGE_S = 3600.0  # a .part- file this old belongs to a writer that died


def default_cache_dir() -> Path:
    """``$RAYSTACK_CACHE`` if set, else ``~/.cache/raystack/s3``."""
    env = os.environ.get("RAYSTACK_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "raystack" / "s3"


def check_key(uri: str) -> tuple[str, str]:
    """Split ``uri`` and refuse keys that could escape a local folder (``..``, ``.``, ...).

    Raises:
        UndecodableVideoError: the bucket or key is unsafe to mirror on disk.
    """
    bucket, key = parse_s3_uri(uri)
    if not _BUCKET.match(bucket) or bucket in (".", ".."):
        raise UndecodableVideoError(uri, f"bucket name {bucket!r} is not a valid S3 bucket name")
    bad = unsafe_segments(key)
    if bad:
        reason = (
            f"unsafe S3 key: path segment(s) {bad} could escape the local cache; "
            "rename the object without '..' or '.' segments"
        )
        raise UndecodableVideoError(uri, reason)
    return bucket, key


def cache_path(uri: str, etag: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the object ``uri`` with ``etag`` lives in the cache (nothing is fetched).

    Raises:
        UndecodableVideoError: the key is unsafe (see :func:`check_key`).
    """
    bucket, key = check_key(uri)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    ext = suffix(key)
    stem = key[: len(key) - len(ext)] if ext else key
    tag = _ETAG_CHARS.sub("", etag)[:40] or "noetag"
    path = root / bucket / f"{stem}.{tag}{ext}"
    # check_key already refuses '..'; this guards against anything it might miss.
    if not path.resolve().is_relative_to(root.resolve()):
        raise UndecodableVideoError(uri, f"S3 key would be cached outside {root}; refusing it")
    return path


def _client_error(uri: str, err: Exception, what: str) -> RaystackError:
    code = getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__)
    if code in ("412", "PreconditionFailed"):
        msg = f"{uri}: the object changed since it was listed; list the archive again"
        return ArchiveError(msg)
    if code in ("404", "NoSuchKey", "NotFound"):
        return UndecodableVideoError(uri, f"object does not exist ({what})")
    msg = f"{uri}: cannot {what}: {code}: {err}"
    return ArchiveError(msg)


def head(uri: str) -> dict:
    """``head_object`` of ``uri``; errors become domain errors naming the object."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        return retry.call(lambda: s3_client().head_object(Bucket=bucket, Key=key),
                          what="read the metadata of", where=uri)
    except (ClientError, BotoCoreError) as e:
        raise _client_error(uri, e, "read its metadata") from e


def _stream_to(f, bucket: str, key: str, etag: str | None) -> None:
    """Chunked GET into ``f``; a connection dropped mid-body resumes with a Range GET, and
    an unreachable endpoint is retried through the outage (:mod:`raystack.retry`)."""
    written = 0

    def get_rest() -> None:
        nonlocal written
        kwargs = {"IfMatch": f'"{etag}"'} if etag else {}
        if written:
            kwargs["Range"] = f"bytes={written}-"
        body = s3_client().get_object(Bucket=bucket, Key=key, **kwargs)["Body"]
        for chunk in body.iter_chunks(_CHUNK):
            f.write(chunk)
            written += len(chunk)

    retry.call(get_rest, what="download", where=f"s3://{bucket}/{key}")


def trim_cache(
    root: str | os.PathLike,
    max_bytes: int,
    *,
    keep: Iterable[str | os.PathLike] = (),
    grace_s: float = TRIM_GRACE_S,
    now: float | None = None,
) -> list[Path]:
    """Delete least recently used files under ``root`` until at most ``max_bytes`` remain.

    Files used (mtime) within ``grace_s`` seconds and the files in ``keep`` stay even if
    the cache then remains over the cap; ``.part-`` files older than an hour are always
    removed. A file another process deletes first is skipped. Returns the deleted paths.
    """
    now = time.time() if now is None else now
    kept = {Path(k).resolve() for k in keep}
    files, removed = [], []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if name.startswith(".part-"):
                if now - st.st_mtime > _PART_MAX_AGE_S and _unlink(path):
                    removed.append(path)
                continue
            files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in files)
    for mtime, size, path in sorted(files):
        if total <= max_bytes:
            break
        if now - mtime < grace_s or path.resolve() in kept:
            continue
        if _unlink(path):
            removed.append(path)
            total -= size
    return removed


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def fetch(
    uri: str,
    etag: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Local path of the S3 object ``uri``, downloading it into the cache if needed.

    The body streams in chunks to a temporary file beside the target, which is then
    renamed into place: readers in other processes see nothing or the whole file, and
    a long video is never held in memory. With ``etag`` the GET is conditional on it,
    so an object replaced after listing is reported instead of read. With
    ``max_bytes`` the cache is trimmed to that size after a download
    (:func:`trim_cache`); a hit marks the file as recently used.

    Raises:
        UndecodableVideoError: the key is unsafe or the object does not exist.
        ArchiveError: S3 refused the download or the object changed since listing.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    check_key(uri)
    if etag is None:
        etag = (head(uri).get("ETag") or "").strip('"')
    path = cache_path(uri, etag, cache_dir)
    if path.is_file():
        try:
            os.utime(path)
        except FileNotFoundError:  # evicted by another worker just now: fetch it again
            pass
        except OSError:  # a read-only shared cache: use the file, it just is not marked
            return path
        else:
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    bucket, key = parse_s3_uri(uri)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            _stream_to(f, bucket, key, etag or None)
        os.replace(tmp, path)
    except (ClientError, BotoCoreError) as e:
        raise _client_error(uri, e, "download it") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if max_bytes is not None:
        root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        trim_cache(root, max_bytes, keep=[path])
    return path


def read_object(uri: str) -> bytes:
    """The whole body of a small object (one image of a frame folder)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = check_key(uri)
    try:
        return retry.call(lambda: s3_client().get_object(Bucket=bucket, Key=key)["Body"].read(),
                          what="read", where=uri)
    except (ClientError, BotoCoreError) as e:
        raise _client_error(uri, e, "read it") from e


class S3RangeFile(io.RawIOBase):
    """A read-only, seekable file over ranged GETs of one S3 object.

    Reads go through a block buffer (1 MiB by default), so a demuxer that reads a
    header and seeks to an index costs a few requests, not a download.
    """

    def __init__(self, uri: str, size: int, etag: str | None = None, block: int = 1 << 20) -> None:
        super().__init__()
        self.uri = uri
        self._bucket, self._key = check_key(uri)
        self._size = int(size)
        self._etag = etag
        self._block = block
        self._pos = 0
        self._buf = b""
        self._buf_start = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _fill(self, start: int, length: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        stop = min(self._size, start + max(length, self._block)) - 1
        kwargs = {"IfMatch": f'"{self._etag}"'} if self._etag else {}
        def get() -> bytes:
            resp = s3_client().get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{stop}", **kwargs
            )
            return resp["Body"].read()

        try:
            self._buf = retry.call(get, what="read a byte range of", where=self.uri)
        except (ClientError, BotoCoreError) as e:
            raise _client_error(self.uri, e, "read a byte range") from e
        self._buf_start = start

    def readinto(self, b) -> int:
        if self._pos >= self._size:
            return 0
        want = min(len(b), self._size - self._pos)
        off = self._pos - self._buf_start
        if off < 0 or off + want > len(self._buf):
            self._fill(self._pos, want)
            off = 0
        chunk = self._buf[off : off + want]
        b[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)
