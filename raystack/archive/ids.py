"""Ids of the videos inside an archive, and which folders a listing skips.

A video's id depends only on its path inside the archive, so the same archive copied
between a local folder and an S3 prefix keeps its ids (and its scores stay joinable).

    video_id("Test/Test001")          # "test-test001-<8 hex of sha1('Test/Test001')>"
"""

from __future__ import annotations

import hashlib
import re

from raystack.media import suffix

# Folders that hold ground-truth masks next to the frames (UCSD's ``Test001_gt``) are
# not videos to scan; list_archive skips names matching these patterns by default.
DEFAULT_EXCLUDE = ("*_gt",)

_SLUG = re.compile(r"[^a-z0-9]+")


def video_id(relpath: str) -> str:
    """Stable id of the video at ``relpath`` ('/'-separated path inside the archive).

    The slug keeps ids readable in SQL; the sha1 of the full relpath (extension
    included) keeps ``a.mp4`` and ``a.avi`` apart.
    """
    rel = relpath.strip("/")
    stem = rel[: -len(suffix(rel))] if suffix(rel) else rel
    slug = _SLUG.sub("-", stem.lower()).strip("-")[:80].rstrip("-") or "video"
    return f"{slug}-{hashlib.sha1(rel.encode()).hexdigest()[:8]}"
