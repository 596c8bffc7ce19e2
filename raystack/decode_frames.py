"""The frame-folder reader: a folder of images (UCSD Ped2, Avenue, ShanghaiTech style)
read as a video, where one unreadable image costs one frame, not the whole folder.

    with FrameFolderReader("/d/Test004", members, size=(256, 256)) as r:
        clip = r.read(0, 40)     # uint8 (40, 256, 256, 3); a corrupt 017.jpg is filled in
        r.bad_frames             # {17: "/d/Test004/017.jpg: OpenCV cannot decode ..."}

A corrupt image in a folder of frames is a damaged frame, not a damaged video: the reader
fills it with the nearest readable frame (the previous one, else the next) so the model's
input keeps its shape and timing, and records the frame in :attr:`bad_frames` so the scan
writes no score for it and names it in the manifest. A read with no decodable frame within
:data:`FILL_REACH` of it still fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from raystack.decode_base import VideoReader, resize_rgb
from raystack.errors import UndecodableVideoError

# How far (in frames) to look for a readable neighbour of a read whose frames are all bad.
FILL_REACH = 16


def decode_image(data: bytes, name: str) -> np.ndarray:
    """An encoded image (the bytes of a jpg, png, tif, ...) as uint8 (H, W, 3) RGB.

    Raises:
        UndecodableVideoError: OpenCV cannot decode it (names ``name``).
    """
    import cv2

    buf = np.frombuffer(data, np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    return _rgb(bgr, name)


def load_image(path: str, name: str | None = None) -> np.ndarray:
    """The local image file ``path`` as uint8 (H, W, 3) RGB; errors name ``name`` (default
    ``path``: a materialised S3 image is named by its URI).

    Grayscale, 16-bit and RGBA images are converted; anything OpenCV cannot decode
    raises :class:`UndecodableVideoError` naming the image.
    """
    import cv2

    name = name or path
    if "://" in path:
        msg = f"load_image reads local files only, not {path!r}; materialise the folder first"
        raise ValueError(msg)
    if not os.path.isfile(path):
        raise UndecodableVideoError(name, "image file does not exist")
    return _rgb(cv2.imread(path, cv2.IMREAD_COLOR), name)


def _rgb(bgr: np.ndarray | None, name: str) -> np.ndarray:
    import cv2

    if bgr is None:
        raise UndecodableVideoError(
            name, "OpenCV cannot decode this image (corrupt or not an image)"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def first_decodable(members: Sequence[str], uri: str, *, names: Sequence[str] = (),
                    load: Callable[[str, str], np.ndarray] = load_image,
                    reverse: bool = False, reach: int = FILL_REACH) -> tuple[int, np.ndarray]:
    """``(index, image)`` of the first image that decodes, from the start (or the end).

    ``load(member, name)`` reads one image (default: a local file); ``names`` are what
    errors call the members (default: the members themselves).

    Raises:
        UndecodableVideoError: none of the first ``reach`` images decodes (names the first).
    """
    names = names or members
    order = range(len(members) - 1, -1, -1) if reverse else range(len(members))
    first_err: UndecodableVideoError | None = None
    for n, i in enumerate(order):
        if n >= reach:
            break
        try:
            return i, load(members[i], names[i])
        except UndecodableVideoError as e:
            first_err = first_err or e
    where = "last" if reverse else "first"
    tried = min(reach, len(members))
    reason = f"none of its {where} {tried} images can be decoded ({first_err})"
    raise UndecodableVideoError(uri, reason)


class FrameFolderReader(VideoReader):
    """Reads a folder of local images (natural order) as a video at an assumed frame rate.

    ``names`` are what errors and :attr:`bad_frames` call the members (their archive
    URIs when the folder was materialised from S3); default: the members themselves.
    A member whose file is missing is a bad frame, like a corrupt one.
    """

    backend = "frames"

    def __init__(self, uri: str, members: Sequence[str], *,
                 names: Sequence[str] = (), size=(256, 256), fps: float = 25.0):
        super().__init__(uri, size)
        if not members:
            raise UndecodableVideoError(uri, "folder holds no image files (jpg, png, tif, ...)")
        self.members = tuple(members)
        self.names = tuple(names) or self.members
        if len(self.names) != len(self.members):
            msg = f"{len(self.names)} names for {len(self.members)} members"
            raise ValueError(msg)
        self.num_frames = len(self.members)
        self.fps = float(fps)
        _, image = first_decodable(self.members, uri, names=self.names)
        self.height, self.width = image.shape[:2]
        self._good: tuple[int, np.ndarray] | None = None  # latest readable frame, resized

    def _load(self, i: int) -> np.ndarray | None:
        try:
            frame = resize_rgb(load_image(self.members[i], self.names[i]), self.size)
        except UndecodableVideoError as e:
            self.bad_frames[i] = str(e)
            return None
        self._good = (i, frame)
        return frame

    def _neighbour(self, start: int, stop: int) -> np.ndarray:
        """A readable frame next to ``[start, stop)`` for a read where none decodes."""
        if self._good is not None and start - FILL_REACH <= self._good[0] < start:
            return self._good[1]
        for i in [*range(start - 1, max(-1, start - 1 - FILL_REACH), -1),
                  *range(stop, min(self.num_frames, stop + FILL_REACH))]:
            if i not in self.bad_frames and (frame := self._load(i)) is not None:
                return frame
        reason = (f"no image of frames {start}..{stop - 1} or within {FILL_REACH} frames of "
                  f"them can be decoded (e.g. {self.bad_frames.get(start, '?')})")
        raise UndecodableVideoError(self.uri, reason)

    def read(self, start: int, stop: int, step: int = 1) -> np.ndarray:
        kept = self._kept(start, stop, step)
        if kept.step > 1 and kept:
            # Only the kept images are opened; a bad one is filled as a full read fills it.
            frames = [self._load(i) for i in kept]
            if all(f is not None for f in frames):
                return np.stack(frames)
            return self.read(start, kept[-1] + 1)[:: kept.step]
        if start == stop:
            return self._empty()
        before = self._good if self._good is not None and self._good[0] < start else None
        frames = [self._load(i) for i in range(start, stop)]
        if any(f is None for f in frames):
            fill = before[1] if before is not None else None
            if all(f is None for f in frames) and fill is None:
                fill = self._neighbour(start, stop)
            for k, f in enumerate(frames):  # previous readable frame, else the next one
                if f is not None:
                    fill = f
                elif fill is not None:
                    frames[k] = fill
            nxt = None
            for k in range(len(frames) - 1, -1, -1):
                if frames[k] is None:
                    frames[k] = nxt if nxt is not None else self._neighbour(start, stop)
                else:
                    nxt = frames[k]
        return np.stack(frames)
