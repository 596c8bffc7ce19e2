"""Writing frames as the archives raystack scans hold them: video files or image folders."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

VIDEO_FORMATS = {"mp4": ".mp4", "avi": ".avi", "mkv": ".mkv"}
FRAME_FORMATS = {"frames": ".jpg", "jpg": ".jpg", "png": ".png", "tif": ".tif"}
_CODECS = {"mpeg4": "mpeg4", "mp4v": "mpeg4", "h264": "libx264", "libx264": "libx264"}

def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 25.0,
    codec: str = "mpeg4",
    bit_rate: int | None = None,
    pix_fmt: str = "yuv420p",
    container_options: dict[str, str] | None = None,
) -> int:
    """Encode RGB uint8 (H, W, 3) or grayscale (H, W) frames into ``path`` with PyAV.

    The container follows the extension (mp4, avi, mkv, mov, ...); ``container_options``
    go to the muxer (e.g. ``{"movflags": "faststart"}``). The encoder runs on one thread
    so that the same frames always give the same stream. Returns the number of frames
    written.
    """
    import av

    path = Path(path)
    container = av.open(str(path), mode="w", options=container_options or {})
    stream = None
    n = 0
    try:
        for frame in frames:
            if stream is None:
                h, w = frame.shape[:2]
                rate = Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001
                stream = container.add_stream(_CODECS.get(codec, codec), rate=rate)
                stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
                # ~1 bit a pixel keeps mpeg4 close to the rendered frames at these sizes.
                stream.bit_rate = bit_rate or max(200_000, int(w * h * fps))
                stream.codec_context.thread_count = 1
            fmt = "rgb24" if frame.ndim == 3 else "gray"
            for pkt in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=fmt)
            ):
                container.mux(pkt)
            n += 1
        if stream is not None:
            for pkt in stream.encode():
                container.mux(pkt)
    finally:
        container.close()
    return n


def write_frames(folder: str | Path, frames: Iterable[np.ndarray], *, ext: str = ".jpg") -> int:
    """Write RGB frames as ``folder/0000.jpg, 0001.jpg, ...`` (Avenue/ShanghaiTech style)."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    n = 0
    for n, frame in enumerate(frames, start=1):  # noqa: B007
        img = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if frame.ndim == 3 else frame
        if not cv2.imwrite(str(folder / f"{n - 1:04d}{ext}"), img, params):
            msg = f"OpenCV could not write {folder / f'{n - 1:04d}{ext}'}"
            raise OSError(msg)
    return n

