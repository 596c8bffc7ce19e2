"""Media on a local disk: which names are videos or images, their natural order, and the
:class:`LocalMedia` record that the archive hands to the decoders.

A leaf module (it imports nothing from raystack): the S3 cache (``io``), the archive
listing and the decoders all name media the same way through it.

    suffix("Test/Test001.AVI")                    # ".avi"
    natural_sorted(["img10.jpg", "img2.jpg"])     # ["img2.jpg", "img10.jpg"]
    LocalMedia("/cache/cams/a.9b2c.mp4", "video", uri="s3://cams/a.mp4")
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

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

_DIGITS = re.compile(r"(\d+)")


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


@dataclass(frozen=True)
class LocalMedia:
    """A video file or a frame folder on the local disk, ready to decode.

    Attributes:
        path: the local video file, or the local folder of a frame folder.
        kind: ``"video"`` (a container file) or ``"frames"`` (a folder of images).
        uri: where the media came from (an ``s3://`` URI, or ``path`` itself): readers
            name it in errors and as their ``uri``, so messages and the manifest name the
            archive's object, not a cache file.
        members: frame folders only: the local image paths, in natural order.
        member_uris: the archive's names of ``members`` (same order), for messages;
            empty means ``members`` themselves.
    """

    path: str
    kind: str = "video"
    uri: str = ""
    members: tuple[str, ...] = ()
    member_uris: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """What messages call this media: ``uri`` if set, else ``path``."""
        return self.uri or self.path

    @property
    def member_names(self) -> tuple[str, ...]:
        """What messages call each member (``member_uris``, else the local paths)."""
        return self.member_uris or self.members
