"""Event thumbnails: frames of an event read back from the source video, boxes drawn on.

    jpeg, why = frame_thumbnail("cams/cam01.mp4", 1234, width=192)   # (bytes, None)
    shots, why = frame_thumbnails(uri, [Shot(1234, 192, marks), Shot(1200, 120, [])])
    shots[0].jpeg, shots[0].drawn                                     # bytes, {"patch"}

All the frames of one source are read through one open reader (a strip is several frames).

A thumbnail that cannot be read (file moved, S3 unreachable) returns (None, why): the report
shows a placeholder and lists the file among its warnings; it never fails for a thumbnail.
:func:`is_outage` tells a source the storage could not serve (S3 or a network share away)
from one that is gone or broken, for the command's exit code (docs/cli.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raystack.errors import InfrastructureError, RaystackError
from raystack.report.boxes import Mark, draw_marks

OUTAGE_PREFIX = "storage unavailable: "  # starts the ``why`` of a source an outage hid


def is_outage(why: str | None) -> bool:
    """Whether :func:`frame_thumbnail`'s ``why`` says the storage, not the file, failed."""
    return bool(why) and why.startswith(OUTAGE_PREFIX)


@dataclass
class Shot:
    frame: int
    width: int  # of the thumbnail, pixels; the height keeps the frame's aspect
    marks: list[Mark] = field(default_factory=list)  # boxes in source pixels
    jpeg: bytes = b""  # set by frame_thumbnails
    drawn: set[str] = field(default_factory=set)  # the kinds of box drawn on it


def frame_thumbnail(uri: str, frame: int, *, width: int = 192) -> tuple[bytes | None, str | None]:
    """(JPEG bytes of ``frame``, None) or (None, why it could not be read)."""
    shots, why = frame_thumbnails(uri, [Shot(frame, width)])
    return (shots[0].jpeg, None) if shots else (None, why)


def frame_thumbnails(uri: str, shots: list[Shot]) -> tuple[list[Shot], str | None]:
    """``shots`` with their JPEG and boxes drawn, or ([], why the source could not be read)."""
    import cv2

    from raystack.archive import materialise
    from raystack.decode import open_reader
    from raystack.exitcodes import describe, storage_reason

    try:
        with open_reader(materialise(uri), size=None) as reader:
            rgb = {f: reader.read(f, f + 1)[0] for f in sorted({s.frame for s in shots})}
    except (RaystackError, OSError, ValueError, IndexError) as e:
        if isinstance(e, InfrastructureError) or storage_reason(e) is not None:
            return [], OUTAGE_PREFIX + describe(e)
        return [], str(e) or type(e).__name__
    for shot in shots:
        frame = rgb[shot.frame]
        h, w = frame.shape[:2]
        height = max(1, round(h * shot.width / w))
        small = cv2.resize(frame, (shot.width, height), interpolation=cv2.INTER_AREA)
        shot.drawn = draw_marks(small, shot.marks, shot.width / w)
        # Full-resolution colour where a box is drawn: 4:2:0 chroma subsampling washes a
        # 1-px line out to grey.
        params = [cv2.IMWRITE_JPEG_QUALITY, 85]
        if shot.drawn:
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), params)
        if not ok:
            return [], "JPEG encoding failed"
        shot.jpeg = buf.tobytes()
    return shots, None
