"""The decoding half of a scan worker: read work units in chunks, one unit ahead.

:class:`UnitReading` is one unit's decode in progress: iterating it yields the unit's
:class:`~raystack.scan.chunks.Chunk` s (decoded and flowed on a helper thread when
``depth > 0``), and it collects the unit's stage times, undecodable frames and the frame rate
its reader found. :class:`ReadAhead` holds at most one reading started for the unit the
caller will ask for next, so that unit's first chunks decode while the model scores this one.

    ahead = ReadAhead(lambda unit: UnitReading(unit, options, depth=2))
    reading = ahead.take(unit)              # the prefetched reading, or a fresh one
    for chunk in reading: ...               # reading.fps is set once the video is open
    ahead.hint(next_unit)                   # start decoding the next unit now
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from raystack.errors import UndecodableVideoError
from raystack.scan.chunks import Chunk, iter_chunks, prefetch
from raystack.scan.plan import WorkUnit


@dataclass(frozen=True)
class ReadOptions:
    """How a worker decodes: what every :class:`UnitReading` of it shares."""

    # (W, H) frames are resized to: the models' img_size; or a function of the source's
    # (W, H) giving it (a tiled scan's working size).
    size: tuple[int, int] | Callable[[int, int], tuple[int, int]]
    chunk_frames: int  # scored frames per chunk
    flow: Callable[[np.ndarray], np.ndarray] | None  # uint8 frames -> model-range flow
    cache_dir: str | None = None  # local cache of S3 videos
    cache_max_bytes: int | None = None
    threads: int = 0  # decoder threads (0: the decoder's default)
    # Score every stride-th frame; units are planned with context = model context * stride.
    stride: int = 1
    # A new gate change stage (raystack.gate.ChangeStage) for each unit read, which
    # leaves the flow of still frames uncomputed; None computes every flow.
    still: Callable[[], Any] | None = None


class UnitReading:
    """Chunks of one unit, decoded at most ``depth`` chunks ahead of the consumer.

    ``depth = 0`` decodes in the consumer's thread, between model calls (no overlap).

    Attributes:
        unit: the unit being read.
        timings: seconds per stage: ``decode_s`` and ``flow_s`` filled as it reads,
            ``model_s`` left to the consumer.
        bad: frames of ``[unit.read_start, unit.stop)`` the reader could not decode
            (index -> reason), complete once iteration ends.
        fps: the frame rate the reader found, set once the video is open (for videos
            the probe gave none); None before.
        source_size: (H, W) of the source frames, set once the video is open; None before.
    """

    def __init__(self, unit: WorkUnit, options: ReadOptions, *, depth: int) -> None:
        self.unit = unit
        self.options = options
        self.timings = {"decode_s": 0.0, "flow_s": 0.0, "model_s": 0.0}
        self.bad: dict[int, str] = {}
        self.fps: float | None = None
        self.source_size: tuple[int, int] | None = None
        self._chunks = prefetch(self._read(), depth=depth)

    def __iter__(self) -> Iterator[Chunk]:
        return self._chunks

    def close(self) -> None:
        """Stop decoding (the helper thread ends and the video closes)."""
        self._chunks.close()

    def _read(self) -> Iterator[Chunk]:
        """Open the video and yield its chunks (on the helper thread when prefetching)."""
        from raystack.archive import materialise
        from raystack.decode import open_reader

        unit, opt = self.unit, self.options
        t0 = time.perf_counter()
        src = unit.source if unit.source is not None else unit.uri
        media = materialise(src, cache_dir=opt.cache_dir, max_bytes=opt.cache_max_bytes)
        size = opt.size if not callable(opt.size) else None
        reader = open_reader(media, size=size, sequential=True, step=opt.stride,
                             threads=opt.threads,
                             frames_fps=unit.fps if unit.fps > 0 else 25.0)
        self.timings["decode_s"] += time.perf_counter() - t0
        with reader:
            self.source_size = (int(reader.height), int(reader.width))
            if callable(opt.size):
                reader.resize_to(opt.size(reader.width, reader.height))
            if reader.num_frames < unit.stop:
                reason = (
                    f"the decoder finds {reader.num_frames} frames, but the unit needs frames "
                    f"up to {unit.stop} (the probe counted {unit.num_frames}); the file changed "
                    "or is truncated"
                )
                raise UndecodableVideoError(unit.uri, reason)
            self.fps = float(reader.fps)
            yield from iter_chunks(
                reader, start=unit.start, stop=unit.stop, context=unit.context // opt.stride,
                chunk_frames=opt.chunk_frames, flow=opt.flow, timings=self.timings,
                stride=opt.stride,
                still=opt.still() if opt.still is not None and opt.flow is not None else None,
            )
            self.bad.update((i, r) for i, r in reader.bad_frames.items()
                            if unit.read_start <= i < unit.stop)


class ReadAhead:
    """At most one :class:`UnitReading` started before it is asked for; thread-safe.

    Args:
        start: starts the reading of a unit.
        accepts: whether a unit may be read ahead (e.g. it was planned with the models'
            context); others are read when asked for.
    """

    def __init__(self, start: Callable[[WorkUnit], UnitReading],
                 accepts: Callable[[WorkUnit], bool] = lambda unit: True) -> None:
        self._start = start
        self._accepts = accepts
        self._pending: dict[str, UnitReading] = {}
        self._lock = threading.Lock()

    def __contains__(self, unit_id: str) -> bool:
        return unit_id in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def take(self, unit: WorkUnit) -> UnitReading:
        """The reading started ahead for ``unit``, else a new one."""
        with self._lock:
            reading = self._pending.pop(unit.unit_id, None)
        return reading or self._start(unit)

    def hint(self, unit: WorkUnit | None) -> None:
        """``unit`` comes next: start reading it unless already started; readings started
        for units that did not come are closed."""
        with self._lock:
            stale, self._pending = self._pending, {}
            if unit is not None and self._accepts(unit):
                self._pending[unit.unit_id] = stale.pop(unit.unit_id, None) or self._start(unit)
        for reading in stale.values():
            reading.close()
