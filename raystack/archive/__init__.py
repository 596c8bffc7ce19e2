"""Archives of videos: list them (local or S3), give each a stable id, and materialise one
on local disk for the decoders. Probing the listed videos is :mod:`raystack.scan.probe`.

srcs = list_archive("/data/ped2")          # [VideoSource(relpath="testing/Test001", ...)]
media = materialise(srcs[0])               # LocalMedia: what raystack.decode.open_reader takes
"""

from __future__ import annotations

from raystack.archive.ids import video_id
from raystack.archive.listing import VideoSource, list_archive, source_from_uri
from raystack.archive.materialise import materialise
from raystack.media import natural_key, natural_sorted

__all__ = [
    "VideoSource",
    "list_archive",
    "materialise",
    "natural_key",
    "natural_sorted",
    "source_from_uri",
    "video_id",
]
