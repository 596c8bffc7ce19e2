"""Probe listed videos into the ``videos`` table: frames, fps, size, codec, or why not.

Probing sits beside planning: it turns listed sources into the rows that
:func:`raystack.scan.plan.plan_units` cuts into work units. It reads a container's header
and decodes its first and last frame (a truncated file fails here, not halfway through a
scan). S3 videos are probed through ranged reads, without downloading them. A bad file
never stops probing: its row carries a ``probe_error`` that names the file and the reason.

    table = probe_archive("s3://cams/2024")      # pa.Table, schema table_schema("videos")
    table.filter(pc.is_null(table["probe_error"])).num_rows
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from raystack.archive.listing import VideoSource, list_archive
from raystack.decode import inspect_video
from raystack.decode_frames import decode_image, first_decodable, load_image
from raystack.errors import InfrastructureError, RaystackError, UndecodableVideoError
from raystack.io.cache import check_key
from raystack.io.ranged import S3RangeFile, read_object
from raystack.io.s3 import is_s3_uri, parse_s3_uri, s3_client
from raystack.media import suffix
from raystack.store.schema import table_schema


def _probe_video(src: VideoSource, verify: bool) -> dict[str, Any]:
    if is_s3_uri(src.uri):
        check_key(src.uri)
        if not src.size_bytes:
            raise UndecodableVideoError(src.uri, "object is empty (0 bytes)")
        with S3RangeFile(src.uri, src.size_bytes, src.etag) as f:
            info = inspect_video(f, src.uri, verify=verify)
    else:
        if not os.path.isfile(src.uri):
            raise UndecodableVideoError(src.uri, "file does not exist (or is a dangling link)")
        if os.path.getsize(src.uri) == 0:
            raise UndecodableVideoError(src.uri, "file is empty (0 bytes)")
        info = inspect_video(src.uri, src.uri, verify=verify)
    return {
        "frames": info.frames,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "codec": info.codec,
    }


def _load_member(member: str, name: str) -> np.ndarray:
    """One image of a frame folder: read whole from S3 (no cache: probing reads only the
    first and last images), or from the local disk."""
    if is_s3_uri(member):
        return decode_image(read_object(member), name)
    return load_image(member, name)


def _probe_frames(src: VideoSource, fps: float, verify: bool) -> dict[str, Any]:
    if not src.members:
        raise UndecodableVideoError(src.uri, "folder holds no image files (jpg, png, tif, ...)")
    # One bad image is one bad frame (the scan skips and records it), not a bad folder.
    _, image = first_decodable(src.members, src.uri, load=_load_member)
    height, width = image.shape[:2]
    if verify and len(src.members) > 1:
        first_decodable(src.members, src.uri, load=_load_member, reverse=True)
    kinds = sorted({suffix(m).lstrip(".") for m in src.members})
    return {
        "frames": len(src.members),
        "fps": float(fps),
        "width": width,
        "height": height,
        "codec": "+".join(kinds),
    }


_EDGE = 1 << 20  # bytes read at each end of a file for its fingerprint


def _edges(uri: str, size: int) -> tuple[bytes, bytes]:
    if is_s3_uri(uri):
        with S3RangeFile(uri, size, None) as f:
            head = f.read(_EDGE)
            f.seek(max(size - _EDGE, 0))
            return head, f.read(_EDGE)
    with open(uri, "rb") as f:
        head = f.read(_EDGE)
        f.seek(max(size - _EDGE, 0))
        return head, f.read(_EDGE)


def _size(uri: str) -> int:
    if is_s3_uri(uri):
        bucket, key = parse_s3_uri(uri)
        return int(s3_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    return os.path.getsize(uri)


def content_id(src: VideoSource) -> str:
    """``sha256:`` + 32 hex of the video's size and its first and last MiB (a frame folder:
    its total size, its image names, its first and last image): the same bytes give the same
    id whatever the archive root; a file re-encoded, cut or grown does not.

    Not a full-content hash (that would read every archive twice): two files of equal size
    whose first and last MiB are equal collide.
    """
    digest = hashlib.sha256()
    if src.kind == "frames":
        names = [m.rstrip("/").rsplit("/", 1)[-1] for m in src.members]
        digest.update(json.dumps(["frames", src.size_bytes, names]).encode())
        for member in (src.members[0], src.members[-1]):
            head, tail = _edges(member, _size(member))
            digest.update(head + tail)
    else:
        size = src.size_bytes if src.size_bytes is not None else _size(src.uri)
        head, tail = _edges(src.uri, size)
        digest.update(json.dumps(["video", size]).encode() + head + tail)
    return "sha256:" + digest.hexdigest()[:32]


def probe_source(src: VideoSource, *, frames_fps: float = 25.0, verify: bool = True) -> dict:
    """One row of the ``videos`` table for ``src``; never raises for a bad file.

    Args:
        src: a listed video.
        frames_fps: frame rate assumed for frame folders (they carry none).
        verify: also decode the last frame (or image), so truncated files are caught.

    Returns:
        A dict with the columns of ``schemas/v1/videos.json``; ``probe_error`` names the
        file and the reason when the video cannot be read, and the media columns are
        then null.
    """
    row: dict[str, Any] = {
        "video_id": src.video_id,
        "uri": src.uri,
        "relpath": src.relpath,
        "kind": src.kind,
        "size_bytes": src.size_bytes,
        "etag": src.etag,
        "mtime": src.mtime,
        "frames": None,
        "fps": None,
        "width": None,
        "height": None,
        "duration_s": None,
        "codec": None,
        "probe_error": None,
        "content_id": None,
    }
    try:
        media = (
            _probe_frames(src, frames_fps, verify)
            if src.kind == "frames"
            else _probe_video(src, verify)
        )
    except InfrastructureError:
        raise  # S3 stayed away past the retry budget: no verdict on the file
    except RaystackError as e:
        row["probe_error"] = str(e)
    except (OSError, ValueError, RuntimeError) as e:
        # Anything else a malformed file provokes in a decoder still only fails this row.
        row["probe_error"] = f"{src.uri}: {type(e).__name__}: {e}"
    else:
        row.update(media, duration_s=media["frames"] / media["fps"])
        try:
            row["content_id"] = content_id(src)
        # Best effort, like the row itself: a file that vanished or an S3 error since it was
        # decoded leaves no fingerprint rather than failing the archive's probe.
        except Exception:  # noqa: BLE001
            row["content_id"] = None
    return row


def probe_archive(
    uri_or_sources: str | os.PathLike | Iterable[VideoSource],
    *,
    frames_fps: float = 25.0,
    verify: bool = True,
    workers: int = 4,
) -> pa.Table:
    """List (if given a URI) and probe an archive into the ``videos`` table.

    Args:
        uri_or_sources: an archive URI for :func:`list_archive`, or listed sources.
        frames_fps: frame rate assumed for frame folders.
        verify: decode each video's last frame too (see :func:`probe_source`).
        workers: videos probed at once (threads; probing mostly waits on I/O).

    Returns:
        A table with schema ``table_schema("videos")``, one row per source, in order.
    """
    if isinstance(uri_or_sources, (str, os.PathLike)):
        sources = list_archive(uri_or_sources)
    else:
        sources = list(uri_or_sources)

    def one(src: VideoSource) -> dict:
        return probe_source(src, frames_fps=frames_fps, verify=verify)

    if workers > 1 and len(sources) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(one, sources))
    else:
        rows = [one(s) for s in sources]
    return pa.Table.from_pylist(rows, schema=table_schema("videos"))
