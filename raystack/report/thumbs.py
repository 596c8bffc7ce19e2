"""Event thumbnails: the peak frame of an event, read back from the source video.

    data_uri = frame_thumbnail("cams/cam01.mp4", 1234, width=192)   # "data:image/jpeg;base64,..."

A thumbnail that cannot be read (file moved, S3 unreachable) returns None and the report
says so in place of the picture; the report never fails for a thumbnail.
"""

from __future__ import annotations

import base64

from raystack.errors import RaystackError


def frame_thumbnail(uri: str, frame: int, *, width: int = 192) -> tuple[str | None, str | None]:
    """(data URI of a JPEG of ``frame``, None) or (None, why it could not be read)."""
    import cv2

    from raystack.decode import open_reader

    try:
        with open_reader(uri, size=None) as reader:
            rgb = reader.read(frame, frame + 1)[0]
    except (RaystackError, OSError, ValueError) as e:
        return None, f"{uri} frame {frame}: {e}"
    h, w = rgb.shape[:2]
    height = max(1, round(h * width / w))
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return None, f"{uri} frame {frame}: JPEG encoding failed"
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii"), None
