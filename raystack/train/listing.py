"""Which videos a run trains on, the cache key of a decoded video, and the data fingerprint.

Data fingerprint: sha256 of a JSON document holding the sorted ``(relpath, size_bytes,
etag or mtime)`` of the videos trained on, the decode size ``(H, W)``, ``t``, the flow
backend (FR) and the tile scale (tiles on only) - any change to the footage, its decoding
or the clip length changes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from raystack.errors import ArchiveError

# Bumped when decoding or flow of cached arrays changes, so stale caches are not reused.
CACHE_VERSION = 1
# Folder names that hold test footage in the benchmarks and the synthetic archive.
TEST_FOLDERS = ("test", "testing", "test_videos", "testing_videos")


def list_training_videos(archive: str, *, limit: int | None = None) -> list[Any]:
    """The videos of ``archive`` to train on (sorted), refusing test footage.

    Raises:
        ArchiveError: nothing to train on, or the listing holds a test folder.
    """
    from raystack.archive import list_archive

    sources = list_archive(archive)
    tests = sorted({s.relpath for s in sources
                    if any(seg.lower() in TEST_FOLDERS for seg in s.relpath.split("/")[:-1])})
    if tests:
        some = ", ".join(tests[:3]) + (" ..." if len(tests) > 3 else "")
        msg = (f"{archive}: holds test videos ({some}); "
               "train on normal footage only: point archive at the training folder "
               f"(e.g. {archive.rstrip('/')}/train)")
        raise ArchiveError(msg)
    if limit is not None:
        sources = sources[:limit]
    if not sources:
        msg = f"{archive}: no videos to train on (video files or frame folders)"
        raise ArchiveError(msg)
    return sources


def _source_record(src: Any) -> list[Any]:
    stamp = src.etag or (src.mtime.isoformat() if src.mtime is not None else None)
    return [src.relpath, src.size_bytes, stamp]


def video_key(src: Any, size: tuple[int, int] | tuple[str, float]) -> str:
    """Cache key of one decoded video: its identity plus the decode size (H, W), or
    ``("scale", s)`` for a decode at the source size / s."""
    doc = json.dumps([CACHE_VERSION, _source_record(src), list(size)])
    return hashlib.sha256(doc.encode()).hexdigest()[:32]


def data_fingerprint(
    sources: Sequence[Any], *, size: tuple[int, int], t: int, flow: str | None,
    tile_scale: float | None = None,
) -> str:
    """sha256 over the sorted (relpath, size, etag or mtime) + decode size + t + flow backend
    (+ the tile scale when training on tiles; whole-frame fingerprints are unchanged)."""
    doc: dict[str, Any] = {
        "videos": sorted(_source_record(s) for s in sources),
        "size": list(size),
        "t": int(t),
        "flow": flow,
    }
    if tile_scale is not None:
        doc["tile_scale"] = float(tile_scale)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
