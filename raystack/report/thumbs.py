"""Event thumbnails: the peak frame of an event, read back from the source video.

    jpeg, why = frame_thumbnail("cams/cam01.mp4", 1234, width=192)   # (bytes, None)

A thumbnail that cannot be read (file moved, S3 unreachable) returns (None, why): the report
shows a placeholder and lists the file among its warnings; it never fails for a thumbnail.
:func:`is_outage` tells a source the storage could not serve (S3 or a network share away)
from one that is gone or broken, for the command's exit code (docs/cli.md).
"""

from __future__ import annotations

from raystack.errors import InfrastructureError, RaystackError

OUTAGE_PREFIX = "storage unavailable: "  # starts the ``why`` of a source an outage hid


def is_outage(why: str | None) -> bool:
    """Whether :func:`frame_thumbnail`'s ``why`` says the storage, not the file, failed."""
    return bool(why) and why.startswith(OUTAGE_PREFIX)


def frame_thumbnail(uri: str, frame: int, *, width: int = 192) -> tuple[bytes | None, str | None]:
    """(JPEG bytes of ``frame``, None) or (None, why it could not be read)."""
    import cv2

    from raystack.archive import materialise
    from raystack.decode import open_reader
    from raystack.exitcodes import describe, storage_reason

    try:
        with open_reader(materialise(uri), size=None) as reader:
            rgb = reader.read(frame, frame + 1)[0]
    except (RaystackError, OSError, ValueError, IndexError) as e:
        if isinstance(e, InfrastructureError) or storage_reason(e) is not None:
            return None, OUTAGE_PREFIX + describe(e)
        return None, str(e) or type(e).__name__
    h, w = rgb.shape[:2]
    height = max(1, round(h * width / w))
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return None, "JPEG encoding failed"
    return buf.tobytes(), None
