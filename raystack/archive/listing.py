"""List the videos of an archive: a local folder, a single file, or ``s3://bucket/prefix``.

A *video* is a container file (mp4, avi, mkv, ...) or a folder of frames (jpg, png, tif,
...; UCSD Ped2 and Avenue/ShanghaiTech style), whose images are naturally sorted.
Everything else (labels, notes, stray files) is ignored.

    srcs = list_archive("s3://cams/ped2")        # [VideoSource(relpath="Test/Test001", ...)]
    srcs[0].kind, len(srcs[0].members)           # ("frames", 180)
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from raystack import retry
from raystack.archive.ids import DEFAULT_EXCLUDE, video_id
from raystack.errors import ArchiveError, UndecodableVideoError
from raystack.io.s3 import is_s3_uri, parse_s3_uri, s3_client
from raystack.media import VIDEO_EXTS, is_image_name, is_video_name, natural_key, natural_sorted
from raystack.redact import redact_uri


@dataclass(frozen=True)
class VideoSource:
    """One video of an archive, as listed (nothing decoded yet).

    Attributes:
        uri: absolute local path or ``s3://bucket/key``; for frame folders the folder.
        relpath: path relative to the archive root, '/'-separated.
        kind: ``"video"`` (a container file) or ``"frames"`` (a folder of images).
        video_id: stable id derived from ``relpath`` only (:func:`raystack.archive.ids.video_id`).
        size_bytes: file size, or the sum over a frame folder's images.
        etag: S3 ETag without quotes (frame folders: sha1 of the members' ETags).
        mtime: last modification time (UTC).
        members: frame folders only: the image URIs in natural order.
    """

    uri: str
    relpath: str
    kind: str
    video_id: str
    size_bytes: int | None
    etag: str | None
    mtime: datetime | None
    members: tuple[str, ...] = ()


def _source(uri, relpath, kind, size, etag, mtime, members=()) -> VideoSource:
    return VideoSource(uri, relpath, kind, video_id(relpath), size, etag, mtime, tuple(members))


def _excluded(relpath: str, exclude: Sequence[str]) -> bool:
    """True when any segment of ``relpath`` matches an exclude pattern."""
    segs = relpath.split("/")
    return any(fnmatch.fnmatch(s, pat) for s in segs for pat in exclude)


def _hidden(relpath: str) -> bool:
    # '.' and '..' are not hidden: they make a key unsafe, which probing reports.
    return any(s.startswith(".") and s not in (".", "..") for s in relpath.split("/"))


def list_archive(
    uri: str | os.PathLike, *, exclude: Sequence[str] = DEFAULT_EXCLUDE
) -> list[VideoSource]:
    """List the videos under ``uri``, sorted by ``relpath``.

    Args:
        uri: a local folder, a single local file, ``s3://bucket/prefix`` (a folder-like
            prefix) or ``s3://bucket/key`` (one object).
        exclude: glob patterns; a video any of whose path segments matches is skipped
            (default: UCSD ground-truth folders ``*_gt``).

    Raises:
        ArchiveError: the folder, bucket or prefix does not exist, cannot be listed, or
            holds no video (a scan of it would silently do nothing).
    """
    uri = str(uri)
    srcs = _list_s3(uri, exclude) if is_s3_uri(uri) else _list_local(uri, exclude)
    if not srcs:
        msg = (f"archive {redact_uri(uri)} holds no videos: no video file "
               f"({', '.join(sorted(VIDEO_EXTS)[:6])}, ...) and no folder of images (jpg, png, "
               f"tif, ...) under it{_excluded_note(exclude)}; is the path right?")
        raise ArchiveError(msg)
    return sorted(srcs, key=lambda s: s.relpath)


def _excluded_note(exclude: Sequence[str]) -> str:
    return f" (skipped: {', '.join(exclude)})" if exclude else ""


# --- local ----------------------------------------------------------------------------


def _local_root(uri: str) -> Path:
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return Path(path).expanduser().absolute()


def _stat(path: Path) -> tuple[int | None, datetime | None]:
    try:
        st = path.stat()
    except OSError:
        return None, None  # a dangling link: probing reports it
    return st.st_size, datetime.fromtimestamp(st.st_mtime, tz=UTC)


def _frames_source_local(folder: Path, relpath: str, images: list[str]) -> VideoSource:
    names = natural_sorted(images)
    stats = [_stat(folder / n) for n in names]
    sizes = [s for s, _ in stats if s is not None]
    times = [t for _, t in stats if t is not None]
    return _source(
        str(folder),
        relpath,
        "frames",
        sum(sizes),
        None,
        max(times) if times else None,
        [str(folder / n) for n in names],
    )


def _list_local(uri: str, exclude: Sequence[str]) -> list[VideoSource]:
    root = _local_root(uri)
    if root.is_file():
        size, mtime = _stat(root)
        return [_source(str(root), root.name, "video", size, None, mtime)]
    if not root.is_dir():
        msg = f"archive {uri!r} does not exist (expected a folder, a video file or s3://bucket/prefix)"
        raise ArchiveError(msg)
    out: list[VideoSource] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=None):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not _excluded(d, exclude)
        )
        files = [f for f in filenames if not f.startswith(".")]
        images = [f for f in files if is_image_name(f)]
        if images:
            # The archive root itself may be one frame folder; name it after itself.
            rel = root.name if rel_dir == "." else rel_dir
            out.append(_frames_source_local(here, rel, images))
        for f in files:
            if not is_video_name(f):
                continue
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            if _excluded(rel, exclude):
                continue
            size, mtime = _stat(here / f)
            out.append(_source(str(here / f), rel, "video", size, None, mtime))
    return out


# --- S3 -------------------------------------------------------------------------------


def _s3_error(uri: str, err: Exception) -> ArchiveError:
    code = getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__)
    msg = (
        f"cannot list {uri}: {code}: {err}; "
        "check the bucket name, AWS credentials and AWS_ENDPOINT_URL"
    )
    return ArchiveError(msg)


def _iter_objects(bucket: str, prefix: str, uri: str) -> Iterator[dict]:
    from botocore.exceptions import BotoCoreError, ClientError

    def pages() -> list[dict]:
        paginator = s3_client().get_paginator("list_objects_v2")
        return [o for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                for o in page.get("Contents", [])]

    try:
        yield from retry.call(pages, what="list", where=uri)
    except (ClientError, BotoCoreError) as e:
        raise _s3_error(uri, e) from e


def _etag(raw: str | None) -> str | None:
    return raw.strip('"') if raw else None


def _frames_etag(etags: list[str | None]) -> str:
    return hashlib.sha1("\n".join(e or "" for e in etags).encode()).hexdigest()


def _head(bucket: str, key: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return retry.call(lambda: s3_client().head_object(Bucket=bucket, Key=key),
                          what="read the metadata of", where=f"s3://{bucket}/{key}")
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        uri = f"s3://{bucket}/{key}"
        raise _s3_error(uri, e) from e


def _list_s3(uri: str, exclude: Sequence[str]) -> list[VideoSource]:
    bucket, key = parse_s3_uri(uri)
    base = key if (not key or key.endswith("/")) else key + "/"
    objects = [o for o in _iter_objects(bucket, base, uri) if not o["Key"].endswith("/")]
    if not objects and key and not key.endswith("/"):
        head = _head(bucket, key)
        if head is not None:
            name = key.rsplit("/", 1)[-1]
            return [
                _source(
                    uri,
                    name,
                    "video",
                    head.get("ContentLength"),
                    _etag(head.get("ETag")),
                    head.get("LastModified"),
                )
            ]
    if not objects:
        msg = f"archive {uri} holds no objects (is the prefix right? bucket {bucket!r}, "
        msg += f"prefix {base!r})"
        raise ArchiveError(msg)

    out: list[VideoSource] = []
    folders: dict[str, list[dict]] = {}
    for obj in objects:
        rel = obj["Key"][len(base) :]
        if _hidden(rel) or _excluded(rel, exclude):
            continue
        if is_image_name(rel):
            folders.setdefault(rel.rpartition("/")[0], []).append(obj)
        elif is_video_name(rel):
            out.append(
                _source(
                    f"s3://{bucket}/{obj['Key']}",
                    rel,
                    "video",
                    obj.get("Size"),
                    _etag(obj.get("ETag")),
                    obj.get("LastModified"),
                )
            )
    root_name = key.rstrip("/").rsplit("/", 1)[-1] or bucket
    for rel_dir, objs in folders.items():
        objs = sorted(objs, key=lambda o: _natural_obj_key(o["Key"]))
        prefix = f"{base}{rel_dir}" if rel_dir else base.rstrip("/")
        out.append(
            _source(
                f"s3://{bucket}/{prefix}",
                rel_dir or root_name,
                "frames",
                sum(o.get("Size", 0) for o in objs),
                _frames_etag([_etag(o.get("ETag")) for o in objs]),
                max(o["LastModified"] for o in objs),
                [f"s3://{bucket}/{o['Key']}" for o in objs],
            )
        )
    return out


def _natural_obj_key(key: str) -> tuple:
    return natural_key(key.rsplit("/", 1)[-1])


# --- one source from a URI ------------------------------------------------------------


def source_from_uri(uri: str | os.PathLike) -> VideoSource:
    """The :class:`VideoSource` of one video file or frame folder named directly.

    Its ``relpath`` is the last path segment, as when the file is listed on its own.

    Raises:
        ArchiveError: nothing exists at ``uri``.
        UndecodableVideoError: ``uri`` is a folder without images.
    """
    uri = str(uri)
    if is_s3_uri(uri):
        bucket, key = parse_s3_uri(uri)
        head = _head(bucket, key) if key and not key.endswith("/") else None
        if head is not None:
            return _source(
                uri,
                key.rsplit("/", 1)[-1],
                "video",
                head.get("ContentLength"),
                _etag(head.get("ETag")),
                head.get("LastModified"),
            )
        base = key.rstrip("/") + "/" if key.strip("/") else ""
        objs = [
            o
            for o in _iter_objects(bucket, base, uri)
            if "/" not in o["Key"][len(base) :]
            and is_image_name(o["Key"])
            and not _hidden(o["Key"][len(base) :])
        ]
        if not objs:
            msg = f"{uri} is neither an object nor a folder of images"
            raise ArchiveError(msg)
        objs = sorted(objs, key=lambda o: _natural_obj_key(o["Key"]))
        name = key.rstrip("/").rsplit("/", 1)[-1] or bucket
        return _source(
            f"s3://{bucket}/{base.rstrip('/')}",
            name,
            "frames",
            sum(o.get("Size", 0) for o in objs),
            _frames_etag([_etag(o.get("ETag")) for o in objs]),
            max(o["LastModified"] for o in objs),
            [f"s3://{bucket}/{o['Key']}" for o in objs],
        )
    path = _local_root(uri)
    if path.is_file():
        size, mtime = _stat(path)
        return _source(str(path), path.name, "video", size, None, mtime)
    if path.is_dir():
        images = [
            f.name
            for f in path.iterdir()
            if f.is_file() and is_image_name(f.name) and not f.name.startswith(".")
        ]
        if not images:
            raise UndecodableVideoError(
                str(path), "folder holds no image files (jpg, png, tif, ...)"
            )
        return _frames_source_local(path, path.name, images)
    msg = f"{uri} does not exist"
    raise ArchiveError(msg)
