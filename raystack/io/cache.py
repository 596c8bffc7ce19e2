"""The S3 download cache: objects fetched once to local disk, under a size cap.

Videos are fetched once into a cache folder, streamed to disk (never whole in memory)
and renamed into place atomically, under a name keyed by bucket, key and ETag so that a
changed object is fetched again. The images of a frame folder go into one folder keyed by
the folder's ETag (:func:`fetch_folder`). Reads that need no local copy (probing) are in
:mod:`raystack.io.ranged`.

    path = fetch("s3://cams/2024/cam01.mp4", etag="9b2c...", max_bytes=50 * 2**30)
    # ~/.cache/raystack/s3/cams/2024/cam01.9b2c....mp4
    paths = fetch_folder("s3://cams/ped/Test001", members, etag="71fe...")
    # [~/.cache/raystack/s3/cams/ped/Test001.71fe.../001.tif, ...]

An overnight scan reads more video than a worker's disk holds, so ``max_bytes`` caps the
cache: after each download the least recently used videos go first (a hit refreshes a
file's mtime), sparing any used in the last :data:`TRIM_GRACE_S` seconds, which a reader
may be about to open. Partial downloads left by killed workers are swept after an hour.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from raystack import retry
from raystack.errors import UndecodableVideoError
from raystack.io.s3 import client_error, parse_s3_uri, s3_client
from raystack.media import suffix

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


def unsafe_segments(key: str) -> list[str]:
    """Path segments of an S3 key that would escape or alias a local folder.

    ``..`` and ``.`` segments, a leading '/', backslashes and NUL cannot be mirrored
    under a cache directory safely.
    """
    bad = [seg for seg in key.split("/") if seg in ("..", ".")]
    if key.startswith("/"):
        bad.append("/ (leading)")
    if "\\" in key:
        bad.append("\\")
    if "\x00" in key:
        bad.append("NUL")
    return bad


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


def head(uri: str) -> dict:
    """``head_object`` of ``uri``; errors become domain errors naming the object."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        return retry.call(lambda: s3_client().head_object(Bucket=bucket, Key=key),
                          what="read the metadata of", where=uri)
    except (ClientError, BotoCoreError) as e:
        raise client_error(uri, e, "read its metadata") from e


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
    check_key(uri)
    if etag is None:
        etag = (head(uri).get("ETag") or "").strip('"')
    path = cache_path(uri, etag, cache_dir)
    if _hit(path):
        return path
    _download(uri, path, etag)
    if max_bytes is not None:
        root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        trim_cache(root, max_bytes, keep=[path])
    return path


def _hit(path: Path) -> bool:
    """Whether ``path`` is cached; a hit is marked as recently used for :func:`trim_cache`."""
    if not path.is_file():
        return False
    try:
        os.utime(path)
    except FileNotFoundError:  # evicted by another worker just now: fetch it again
        return False
    except OSError:  # a read-only shared cache: use the file, it just is not marked
        return True
    return True


def _download(uri: str, path: Path, etag: str | None) -> None:
    """Stream ``uri`` to a temporary file beside ``path``, then rename it into place."""
    from botocore.exceptions import BotoCoreError, ClientError

    path.parent.mkdir(parents=True, exist_ok=True)
    bucket, key = parse_s3_uri(uri)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            _stream_to(f, bucket, key, etag or None)
        os.replace(tmp, path)
    except (ClientError, BotoCoreError) as e:
        raise client_error(uri, e, "download it") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch_folder(
    uri: str,
    members: Sequence[str],
    etag: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    max_bytes: int | None = None,
    workers: int = 8,
) -> list[Path]:
    """Local paths of the images ``members`` of the S3 frame folder ``uri``, in order.

    They are downloaded (``workers`` at a time) into one cache folder named by ``uri`` and
    the folder's ``etag``, which changes whenever any image does, so the images need no
    ETag of their own. An image deleted since listing leaves no file at its path (a reader
    counts it as one bad frame, as a damaged image); with ``max_bytes`` the cache is then
    trimmed, sparing this folder.

    Raises:
        UndecodableVideoError: the folder's key is unsafe, or a member is not an image
            directly inside it.
        ArchiveError: S3 refused a download.
    """
    folder = cache_path(uri, etag, cache_dir)
    base = uri.rstrip("/") + "/"
    paths: list[Path] = []
    for member in members:
        name = member[len(base):] if member.startswith(base) else ""
        if not name or "/" in name:
            raise UndecodableVideoError(uri, f"{member} is not an image directly inside it")
        check_key(member)
        paths.append(folder / name)

    def one(i: int) -> None:
        if not _hit(paths[i]):
            with contextlib.suppress(UndecodableVideoError):  # deleted since listing
                _download(members[i], paths[i], None)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(paths)))) as pool:
        list(pool.map(one, range(len(paths))))
    if max_bytes is not None:
        root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        trim_cache(root, max_bytes, keep=paths)
    return paths
