"""Names inside an archive: which files are videos or frames, natural order, stable ids.

A video's id depends only on its path inside the archive, so the same archive copied
between a local folder and an S3 prefix keeps its ids (and its scores stay joinable).

    video_id("Test/Test001")          # "test-test001-<8 hex of sha1('Test/Test001')>"
    sorted(names, key=natural_key)    # img2.jpg before img10.jpg
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

# Container formats ffmpeg (and so decord and PyAV) reads; lower-case, with the dot.
VIDEO_EXTS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".avi",
        ".mkv",
        ".mov",
        ".webm",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".ts",
        ".mts",
        ".m2ts",
        ".3gp",
        ".ogv",
        ".asf",
        ".vob",
        ".mj2",
    }
)
# Still-image formats OpenCV decodes: UCSD Ped2 ships .tif, Avenue/ShanghaiTech .jpg.
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".pgm", ".ppm"})

# Folders that hold ground-truth masks next to the frames (UCSD's ``Test001_gt``) are
# not videos to scan; list_archive skips names matching these patterns by default.
DEFAULT_EXCLUDE = ("*_gt",)

_DIGITS = re.compile(r"(\d+)")
_SLUG = re.compile(r"[^a-z0-9]+")


def suffix(name: str) -> str:
    """Lower-case extension of the last path segment, with the dot ('' when none)."""
    last = name.rstrip("/").rsplit("/", 1)[-1]
    dot = last.rfind(".")
    return last[dot:].lower() if dot > 0 else ""


def is_video_name(name: str) -> bool:
    return suffix(name) in VIDEO_EXTS


def is_image_name(name: str) -> bool:
    return suffix(name) in IMAGE_EXTS


def is_hidden(name: str) -> bool:
    """Dot-files and macOS AppleDouble companions (``._001.tif``) are never media."""
    return name.rstrip("/").rsplit("/", 1)[-1].startswith(".")


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``img2.jpg`` < ``img10.jpg``.

    Each part is tagged so numbers and text never compare with each other directly;
    the name itself breaks ties (``img2`` vs ``img02``, ``A`` vs ``a``) deterministically.
    """
    parts = _DIGITS.split(name)
    return (tuple((1, int(p)) if p.isdigit() else (0, p.lower()) for p in parts), name)


def natural_sorted(names: Iterable[str]) -> list[str]:
    return sorted(names, key=natural_key)


def video_id(relpath: str) -> str:
    """Stable id of the video at ``relpath`` ('/'-separated path inside the archive).

    The slug keeps ids readable in SQL; the sha1 of the full relpath (extension
    included) keeps ``a.mp4`` and ``a.avi`` apart.
    """
    rel = relpath.strip("/")
    stem = rel[: -len(suffix(rel))] if suffix(rel) else rel
    slug = _SLUG.sub("-", stem.lower()).strip("-")[:80].rstrip("-") or "video"
    return f"{slug}-{hashlib.sha1(rel.encode()).hexdigest()[:8]}"


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
