"""Decode clips of a video file or a frame folder: RGB, resized, optionally in [-1, 1].

Three readers share one interface (:class:`VideoReader`): decord (random access, and
sequential reads of ordinary files: fastest here, see ``bench/decode_bench.py``), PyAV
(sequential segments of very long files, which it opens without indexing them), and an
image-folder reader for UCSD/Avenue-style frame folders. The readers take local media
only: a video of an S3 archive is materialised on local disk first
(:func:`raystack.archive.materialise`), so nothing here knows about S3.

    with open_reader("cam01.mp4", size=(256, 256), sequential=True) as r:
        clip = r.read(0, 32)                 # uint8 (32, 256, 256, 3), RGB
    x = to_model_range(clip)                 # float32 in [-1, 1], same shape

Every failure a file can cause raises :class:`~raystack.errors.UndecodableVideoError`
naming the file and the reason.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from raystack.decode_base import VideoReader, local_media, resize_rgb, to_model_range
from raystack.errors import UndecodableVideoError
from raystack.media import LocalMedia

# Which reader serves which access pattern (bench/decode_bench.py, results in
# bench/results/decode.json). On the synthetic archive decord decoded sequential 32-frame
# chunks resized to 256x256 as fast as or faster than PyAV in every variant (PyAV/decord
# 0.60-0.95; an earlier "PyAV 2x faster" measurement did not hold), so it serves
# sequential reads too.
# But decord's open reads every packet of the file to build its index (12 ms for a
# 6,000-frame, 27 MB file from the page cache, PyAV 1.4 ms; at disk speed if cold), and a scan
# opens a long file once per segment; past LONG_VIDEO_BYTES that pass costs more than
# decord's decode advantage over a segment, and PyAV, which opens in ~2 ms and seeks by
# timestamp, reads sequential segments instead.
# A strided scan (--stride N) decodes every frame but converts only every N-th: PyAV skips
# the conversion of the others, while decord converts every frame it decodes. Strided
# sequential reads at camera sizes to 256x256, PyAV/decord, one decoder thread (a scan
# actor's): 1.02-1.33 at stride 2, 1.08-1.59 at stride 4 (h264 and mpeg4 720p, h264 1080p;
# bench/results/decode_camera_stride.json); with default threads at the synth's sizes
# 0.96-1.28 at stride 2, 1.10-1.55 at stride 4 (decode.json). So they use PyAV.
STRIDED_SEQUENTIAL_BACKEND = "pyav"
SEQUENTIAL_BACKEND = "decord"
LONG_VIDEO_SEQUENTIAL_BACKEND = "pyav"
LONG_VIDEO_BYTES = 1 << 30
RANDOM_BACKEND = "decord"
BACKENDS = ("decord", "pyav")


# --- decord: random access and sequential reads of ordinary files -------------------


class DecordReader(VideoReader):
    """decord's reader: an exact frame index over the whole file, any-order access."""

    backend = "decord"

    def __init__(self, path: str, *, uri: str | None = None, size=(256, 256), threads: int = 0):
        super().__init__(uri or path, size)
        import decord

        # decord raises RuntimeError from Python, DECORDError from C++, and asserts on
        # streams without frames.
        self._errors = (RuntimeError, AssertionError, IndexError, decord.DECORDError)
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
            self.num_frames = len(self._vr)
            self.fps = float(self._vr.get_avg_fps())
            first = self._vr[0].asnumpy()
        except self._errors as e:
            reason = f"decord cannot open it: {_short(e)} (not a video, truncated, or unsupported)"
            raise UndecodableVideoError(self.uri, reason) from e
        self.height, self.width = first.shape[:2]

    def read(self, start: int, stop: int, step: int = 1) -> np.ndarray:
        kept = self._kept(start, stop, step)
        out = np.empty((len(kept), *self.out_shape, 3), np.uint8)
        if not kept:
            return out
        try:
            # Frame by frame, not get_batch: a batch is allocated (and faulted in) whole
            # at source size on every call, 3x the cost of decoding at 720p
            # (bench/results/decode_camera.json). Between kept frames decord reads on:
            # its seeks and skip_frames cost more than converting the frames skipped.
            self._vr.seek_accurate(start)  # free when the last read ended at start
            for i in range(start, stop):
                frame = self._vr.next()  # StopIteration: fewer frames than indexed
                if (i - start) % kept.step == 0:
                    out[(i - start) // kept.step] = resize_rgb(frame.asnumpy(), self.size)
        except (*self._errors, StopIteration) as e:
            msg = (
                f"decord failed reading frames [{start}, {stop}): {_short(e)}; truncated or corrupt"
            )
            raise UndecodableVideoError(self.uri, msg) from e
        return out

    def close(self) -> None:
        self._vr = None


# --- PyAV: probing, and sequential segments of long files -----------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What a container says about its first video stream, checked by decoding."""

    frames: int
    fps: float
    width: int
    height: int
    codec: str


class _AVStream:
    """One PyAV video stream that yields ``(index, frame)`` from any start frame.

    The index of the first frame after a seek comes from its timestamp; later frames are
    counted, so timestamp jitter cannot duplicate or skip an index. Without an index the
    timestamp is read at a constant frame rate (camera footage), which a variable-rate
    file breaks; :meth:`build_index` reads every packet's timestamp once (as decord does
    at every open) and makes seeks exact for any rate.
    """

    def __init__(self, file: Any, uri: str, threads: int = 0) -> None:
        import av

        self.uri = uri
        try:
            self.container = av.open(file, mode="r")
        except (av.error.FFmpegError, OSError, ValueError) as e:
            reason = f"not a readable video container: {_short(e)}"
            reason += " (not a video, truncated, or unsupported)"
            raise UndecodableVideoError(uri, reason) from e
        if not self.container.streams.video:
            self.container.close()
            raise UndecodableVideoError(uri, "the file holds no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.thread_count = threads
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.fps = float(rate) if rate else 0.0
        if self.fps <= 0:
            self.close()
            raise UndecodableVideoError(uri, "the video stream declares no frame rate")
        self.time_base = self.stream.time_base
        self.start_pts = self.stream.start_time or 0
        self.codec = self.stream.codec_context.name
        self._gen: Iterator[tuple[int, Any]] | None = None
        self.next_index = -1  # index the generator yields next; -1 = none open
        self._pts: list[int] | None = None  # every frame's timestamp, sorted (build_index)

    def build_index(self) -> int:
        """Read every packet's timestamp; seeks are then exact. Returns the frame count."""
        import av

        pts = []
        try:
            for pkt in self.container.demux(self.stream):
                if pkt.size > 0:
                    pts.append(pkt.pts)
        except av.error.FFmpegError as e:
            raise UndecodableVideoError(self.uri, f"demuxing failed: {_short(e)}") from e
        self._gen, self.next_index = None, -1
        declared = int(self.stream.frames)
        if 0 < len(pts) < declared:
            reason = (f"declares {declared} frames but holds packets of {len(pts)}; "
                      "truncated or corrupt")
            raise UndecodableVideoError(self.uri, reason)
        # No timestamps (raw streams): the constant-rate reading is all there is.
        self._pts = sorted(pts) if pts and None not in pts else None
        return len(pts)

    def declared_frames(self) -> int:
        """Frame count from the container, or from indexing its packets when it has none."""
        if self.stream.frames > 0:
            return int(self.stream.frames)
        return self.build_index()

    def _index_of(self, pts: int | None) -> int | None:
        if pts is None:
            return None
        if self._pts is not None:
            i = bisect.bisect_left(self._pts, pts)
            return i if i < len(self._pts) and self._pts[i] == pts else None
        return round(float((pts - self.start_pts) * self.time_base) * self.fps)

    def _timestamp_of(self, index: int) -> int:
        if self._pts is not None:
            return self._pts[min(index, len(self._pts) - 1)]
        return self.start_pts + int(index / self.fps / self.time_base)

    def _frames_after_seek(self, target: int) -> Iterator[tuple[int, Any]]:
        """Seek to the keyframe before ``target``; yields (index, frame) from there."""
        import av

        try:
            # If the timestamp seek overshoots (irregular timestamps), back off, then
            # fall back to decoding from the start.
            for t in (target, target - int(2 * self.fps) - 1, target - int(10 * self.fps) - 1, 0):
                t = max(0, t)
                ts = self._timestamp_of(t)
                self.container.seek(ts, stream=self.stream, backward=True, any_frame=False)
                decoded = self.container.decode(self.stream)
                first = next(decoded, None)
                if first is None:
                    return
                idx = 0 if t == 0 else self._index_of(first.pts)
                if idx is not None and idx <= target:
                    break
            yield idx, first
            for frame in decoded:
                idx += 1
                yield idx, frame
        except av.error.FFmpegError as e:
            raise UndecodableVideoError(self.uri, f"decoding failed: {_short(e)}") from e

    def frames(self, start: int, stop: int) -> Iterator[Any]:
        """Yield the PyAV frames with indices in ``[start, stop)``; continue if positioned."""
        if self._gen is None or self.next_index != start:
            self._gen = self._frames_after_seek(start)
        want = start
        while want < stop:
            try:
                idx, frame = next(self._gen)
            except StopIteration:
                self._gen, self.next_index = None, -1
                reason = f"the stream ends before frame {want} (of {stop} wanted)"
                raise UndecodableVideoError(self.uri, reason) from None
            if idx < want:
                continue
            if idx > want:
                self._gen, self.next_index = None, -1
                reason = f"cannot position at frame {want}: decoding resumed at frame {idx}"
                raise UndecodableVideoError(self.uri, reason)
            want += 1
            self.next_index = want
            yield frame

    def close(self) -> None:
        self._gen = None
        self.container.close()


def inspect_video(file: Any, uri: str, *, verify: bool = True) -> VideoInfo:
    """Read a container's header and decode its first (and, with ``verify``, last) frame.

    ``file`` is a local path or a seekable binary file object (e.g. a ranged S3 reader).

    Raises:
        UndecodableVideoError: not a video, no frames, or the declared last frame is
            missing (a truncated file).
    """
    s = _AVStream(file, uri, threads=1)
    try:
        n = s.declared_frames()
        if n <= 0:
            raise UndecodableVideoError(uri, "the video stream holds no frames")
        first = next(s.frames(0, 1))
        width, height = first.width, first.height
        if verify and n > 1:
            try:
                list(s.frames(n - 1, n))
            except UndecodableVideoError as e:
                reason = f"declares {n} frames but its last frame cannot be decoded"
                reason += "; truncated or corrupt"
                raise UndecodableVideoError(uri, reason) from e
        return VideoInfo(n, s.fps, width, height, s.codec)
    finally:
        s.close()


class PyAVReader(VideoReader):
    """PyAV's reader: opens without indexing the file and seeks by timestamp, so a
    segment of a very long file costs one seek; consecutive reads continue decoding.

    ``num_frames`` (from the videos table) spares containers that store no frame count
    (some mkv/webm) a pass over all packets at every open. ``exact`` makes that pass
    always, to index every frame's timestamp: seeks are then exact in a variable-rate
    file too, as decord's are (a strided scan's reader; long files skip it).
    """

    backend = "pyav"

    def __init__(
        self,
        path: str,
        *,
        uri: str | None = None,
        size=(256, 256),
        threads: int = 0,
        num_frames: int | None = None,
        exact: bool = False,
    ):
        super().__init__(uri or path, size)
        self._s = _AVStream(path, self.uri, threads=threads)
        try:
            if exact:
                num_frames = self._s.build_index()
            self.num_frames = num_frames or self._s.declared_frames()
            if self.num_frames <= 0:
                raise UndecodableVideoError(self.uri, "the video stream holds no frames")
            first = next(self._s.frames(0, 1))
        except BaseException:
            self._s.close()
            raise
        self.fps = self._s.fps
        self.width, self.height = first.width, first.height

    def read(self, start: int, stop: int, step: int = 1) -> np.ndarray:
        kept = self._kept(start, stop, step)
        out = np.empty((len(kept), *self.out_shape, 3), np.uint8)
        if not kept:
            return out
        # Frames between kept ones are decoded (the codec needs them) but never converted
        # to RGB, which costs more than decoding at camera resolution. Decoding goes on to
        # ``stop``, so a read from ``stop`` continues without a seek.
        for i, frame in enumerate(self._s.frames(start, stop)):
            if i % kept.step == 0:
                out[i // kept.step] = resize_rgb(frame.to_ndarray(format="rgb24"), self.size)
        return out

    def close(self) -> None:
        self._s.close()


# --- entry points ---------------------------------------------------------------------


def _short(err: BaseException) -> str:
    """The useful part of a decoder's message (no errno, path or C++ source location)."""
    strerror = getattr(err, "strerror", None)  # PyAV's FFmpegError
    if isinstance(strerror, str) and strerror:
        return strerror
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else type(err).__name__
    if ".cc:" in line:  # decord: "[time] /path/video_reader.cc:83: ERROR opening: ..."
        line = line.split(".cc:", 1)[1].split(":", 1)[-1].strip()
    return line


def open_reader(
    src: str | os.PathLike | LocalMedia,
    *,
    size: tuple[int, int] | None = (256, 256),
    sequential: bool = False,
    backend: str | None = None,
    threads: int = 0,
    frames_fps: float = 25.0,
    num_frames: int | None = None,
    step: int = 1,
) -> VideoReader:
    """Open a reader for local media: a video file, a frame folder, or a :class:`LocalMedia`.

    Args:
        src: a local path or the :class:`~raystack.media.LocalMedia` that
            :func:`raystack.archive.materialise` gives for a listed (maybe S3) source.
        size: (width, height) of the frames returned, or None to keep the source size.
        sequential: the caller reads consecutive ranges (a scan segment): use the
            sequential reader (:data:`SEQUENTIAL_BACKEND`; PyAV for files over
            :data:`LONG_VIDEO_BYTES`, whose whole-file index decord rebuilds per open).
        backend: force ``"decord"`` or ``"pyav"`` for video files.
        threads: decoder threads (0 = the library's default).
        frames_fps: frame rate assumed for frame folders.
        num_frames: the probed frame count, if known; the PyAV reader then skips
            counting packets in containers that store no count.
        step: with ``sequential``, the step the caller's reads will take (a scan's
            ``--stride``); above 1 the sequential reader is
            :data:`STRIDED_SEQUENTIAL_BACKEND`.

    Raises:
        UndecodableVideoError: the file cannot be decoded (names it and says why).
        ValueError: ``src`` is a URI, or ``backend`` is unknown.
    """
    media = local_media(src)
    if media.kind == "frames":
        return FrameFolderReader(media.name, media.members, names=media.member_names,
                                 size=size, fps=frames_fps)
    if backend is not None and backend not in BACKENDS:
        msg = f"unknown decode backend {backend!r}; choose one of {BACKENDS}"
        raise ValueError(msg)
    path = media.path
    if not os.path.isfile(path):
        raise UndecodableVideoError(media.name, "file does not exist")
    if os.path.getsize(path) == 0:
        raise UndecodableVideoError(media.name, "file is empty (0 bytes)")
    long = sequential and os.path.getsize(path) > LONG_VIDEO_BYTES
    if backend is None:
        if not sequential:
            backend = RANDOM_BACKEND
        elif long:
            backend = LONG_VIDEO_SEQUENTIAL_BACKEND
        else:
            backend = STRIDED_SEQUENTIAL_BACKEND if step > 1 else SEQUENTIAL_BACKEND
    if backend == "pyav":
        # Exact seeks cost a pass over the packets (decord's index costs the same), which
        # only a long file's segments cannot afford.
        return PyAVReader(path, uri=media.name, size=size, threads=threads,
                          num_frames=num_frames, exact=not long)
    return DecordReader(path, uri=media.name, size=size, threads=threads)


def read_clip(
    src: str | os.PathLike | LocalMedia, start: int, stop: int, *,
    size: tuple[int, int] | None = (256, 256)
) -> np.ndarray:
    """Frames ``[start, stop)`` of ``src`` as float32 (T, H, W, 3) in [-1, 1]."""
    with open_reader(src, size=size) as r:
        return to_model_range(r.read(start, stop))


# The frame-folder reader lives in its own module.
from raystack.decode_frames import FrameFolderReader, load_image  # noqa: E402

__all__ = [
    "BACKENDS",
    "DecordReader",
    "FrameFolderReader",
    "PyAVReader",
    "VideoInfo",
    "VideoReader",
    "inspect_video",
    "load_image",
    "local_media",
    "open_reader",
    "read_clip",
    "resize_rgb",
    "to_model_range",
]
