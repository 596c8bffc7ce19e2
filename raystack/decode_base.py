"""What every reader shares: the :class:`VideoReader` interface, resizing, the model's
pixel range, and :func:`local_media` (what a reader may open). No decoder is imported
here, so each reader module can import it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from raystack.errors import UndecodableVideoError
from raystack.media import LocalMedia, is_hidden, is_image_name, natural_sorted


def to_model_range(frames_uint8: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1] (0 -> -1, 255 -> 1), same shape."""
    return frames_uint8.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def resize_rgb(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize one (H, W, 3) uint8 frame to ``size`` = (width, height); None keeps it.

    Every reader resizes through here so that switching readers never changes pixels.
    Bilinear, as ``cv2.resize``'s default in the public VADMamba/MNAD data loaders (the
    evaluation protocol's preprocessing); INTER_AREA would alias less but took 1.3 ms per
    640x480 frame here against 0.11 ms, more than decoding the frame.
    """
    if size is None or (frame.shape[1], frame.shape[0]) == tuple(size):
        return np.ascontiguousarray(frame)
    import cv2

    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_LINEAR)


def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        msg = f"size must be (width, height) with positive values, got {size!r}"
        raise ValueError(msg)
    return (w, h)


class VideoReader:
    """Reads frame ranges of one video. Use as a context manager.

    Attributes:
        uri: the file or folder read (the S3 URI for cached objects).
        num_frames, fps: as the container (or the folder) declares them.
        width, height: size of the SOURCE frames; reads are resized to ``size``.
        size: (width, height) of what :meth:`read` returns, or None for the source size.
    """

    backend = "base"

    def __init__(self, uri: str, size: tuple[int, int] | None) -> None:
        self.uri = uri
        self.size = _check_size(size)
        self.num_frames = 0
        self.fps = 0.0
        self.width = 0
        self.height = 0
        # Frames replaced because they could not be decoded: index -> "file: reason". Only
        # frame folders skip frames (one bad image); a bad video file fails as a whole.
        self.bad_frames: dict[int, str] = {}

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - readers without handles have nothing to close
        pass

    def resize_to(self, size: tuple[int, int] | None) -> None:
        """Make later reads return frames of ``size`` (width, height); None: the source's.

        For callers whose size depends on the source's (a tiled scan's working frame),
        known only once the reader is open.
        """
        self.size = _check_size(size)

    @property
    def out_shape(self) -> tuple[int, int]:
        """(height, width) of the frames :meth:`read` returns."""
        return (self.size[1], self.size[0]) if self.size else (self.height, self.width)

    def _check_range(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self.num_frames:
            msg = f"{self.uri}: frame range [{start}, {stop}) outside [0, {self.num_frames})"
            raise IndexError(msg)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, *self.out_shape, 3), np.uint8)

    def _kept(self, start: int, stop: int, step: int) -> range:
        """The frames a read of ``[start, stop)`` at ``step`` returns, checked."""
        self._check_range(start, stop)
        if int(step) != step or step < 1:
            msg = f"{self.uri}: read step must be a positive integer, got {step!r}"
            raise ValueError(msg)
        return range(start, stop, int(step))

    def read(self, start: int, stop: int, step: int = 1) -> np.ndarray:
        """Frames ``start, start + step, ...`` below ``stop`` as uint8 (T, H, W, 3) RGB,
        resized to ``size``. Every frame of the range is decoded (a sequential codec needs
        them), so a read from ``stop`` continues without a seek; the frames between kept
        ones are neither converted nor resized (a strided scan's ``--stride``)."""
        raise NotImplementedError


def local_media(src: str | os.PathLike | LocalMedia) -> LocalMedia:
    """``src`` as :class:`~raystack.media.LocalMedia`: a local video file, or a local folder
    whose images (naturally sorted, hidden files skipped) are a frame folder.

    Raises:
        ValueError: ``src`` is a URI (``s3://...``): the readers take local media only.
        UndecodableVideoError: nothing is at the path, or a folder holds no images.
    """
    if isinstance(src, LocalMedia):
        return src
    text = os.fspath(src)
    if "://" in text:
        msg = (f"the decoders read local media only, not {text!r}: materialise it first "
               "(raystack.archive.materialise(source) gives a local copy)")
        raise ValueError(msg)
    path = os.path.abspath(os.path.expanduser(text))
    if os.path.isdir(path):
        images = natural_sorted(f for f in os.listdir(path)
                                if is_image_name(f) and not is_hidden(f)
                                and os.path.isfile(os.path.join(path, f)))
        if not images:
            raise UndecodableVideoError(path, "folder holds no image files (jpg, png, tif, ...)")
        return LocalMedia(path, "frames", path, tuple(os.path.join(path, f) for f in images))
    if not os.path.exists(path):
        raise UndecodableVideoError(path, "file does not exist")
    return LocalMedia(path, "video", path)
