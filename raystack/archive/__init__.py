"""Archives of videos: list them (local or S3), give each a stable id, probe them.

srcs = list_archive("/data/ped2")          # [VideoSource(relpath="testing/Test001", ...)]
table = probe_archive(srcs)                # pa.Table, the `videos` table
"""

from __future__ import annotations

from raystack.archive.ids import natural_key, natural_sorted, video_id
from raystack.archive.listing import VideoSource, list_archive, source_from_uri
from raystack.archive.probe import probe_archive, probe_source

__all__ = [
    "VideoSource",
    "list_archive",
    "natural_key",
    "natural_sorted",
    "probe_archive",
    "probe_source",
    "source_from_uri",
    "video_id",
]
