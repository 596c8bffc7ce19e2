"""Event thumbnails: the peak frame of an event, read back from the source video.

    jpeg, why = frame_thumbnail("cams/cam01.mp4", 1234, width=192)   # (bytes, None)

A thumbnail that cannot be read (file moved, S3 unreachable) returns (None, why): the report
shows a placeholder and lists the file among its warnings; it never fails for a thumbnail.
"""

from __future__ import annotations

from raystack.errors import RaystackError


def frame_thumbnail(uri: str, frame: int, *, width: int = 192) -> tuple[bytes | None, str | None]:
    """(JPEG bytes of ``frame``, None) or (None, why it could not be read)."""
    import cv2

    from raystack.archive import materialise
    from raystack.decode import open_reader

    try:
        with open_reader(materialise(uri), size=None) as reader:
            rgb = reader.read(frame, frame + 1)[0]
    except (RaystackError, OSError, ValueError, IndexError) as e:
        return None, str(e) or type(e).__name__
    h, w = rgb.shape[:2]
    height = max(1, round(h * width / w))
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return None, "JPEG encoding failed"
    return buf.tobytes(), None
