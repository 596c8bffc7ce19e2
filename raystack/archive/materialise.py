"""Materialise a listed video on local disk, for the decoders (which read local media only).

A local source is used where it is; an S3 video is fetched once into the download cache
(:func:`raystack.io.cache.fetch`, keyed by its ETag), an S3 frame folder image by image
into one cache folder (:func:`raystack.io.cache.fetch_folder`).

    media = materialise(list_archive("s3://cams/2024")[0], max_bytes=50 * 2**30)
    media.path, media.uri       # ("~/.cache/raystack/s3/cams/2024/cam01.9b2c....mp4", "s3://...")
    with open_reader(media, sequential=True) as r: ...
"""

from __future__ import annotations

import os

from raystack.archive.listing import VideoSource, source_from_uri
from raystack.io.cache import fetch, fetch_folder
from raystack.io.s3 import is_s3_uri
from raystack.media import LocalMedia


def materialise(
    src: VideoSource | str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    max_bytes: int | None = None,
) -> LocalMedia:
    """The local media of ``src``: a listed :class:`VideoSource`, or a path or URI naming
    one video file or frame folder (:func:`~raystack.archive.source_from_uri`).

    Args:
        src: what to materialise.
        cache_dir: the S3 download cache (default ``$RAYSTACK_CACHE`` or
            ``~/.cache/raystack/s3``).
        max_bytes: trim that cache to this size after a download (None: no cap).

    Returns:
        A :class:`~raystack.media.LocalMedia` whose ``uri`` is the source's URI, so
        readers name the archive's object in their errors, not the cache file.

    Raises:
        UndecodableVideoError: an unsafe S3 key, or an object that no longer exists.
        ArchiveError: nothing at ``src``, S3 refused, or the object changed since listing.
    """
    if not isinstance(src, VideoSource):
        src = source_from_uri(src)
    if not is_s3_uri(src.uri):
        return LocalMedia(src.uri, src.kind, src.uri, src.members)
    if src.kind == "frames":
        paths = fetch_folder(src.uri, src.members, src.etag or "",
                             cache_dir=cache_dir, max_bytes=max_bytes)
        folder = str(paths[0].parent) if paths else ""
        return LocalMedia(folder, "frames", src.uri, tuple(str(p) for p in paths), src.members)
    path = fetch(src.uri, src.etag, cache_dir=cache_dir, max_bytes=max_bytes)
    return LocalMedia(str(path), "video", src.uri)
