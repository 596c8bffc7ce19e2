"""Decode a work unit in chunks with its context, compute flow, and prefetch on a thread.

A unit scores ``[start, stop)`` and needs ``context`` frames of history. It is read in
chunks of ``chunk_frames`` scored frames; each chunk carries the ``context`` frames (and
``context - 1`` flows) before it, kept from the previous chunk instead of decoded again,
so every frame is decoded once and every flow computed once.

    for c in iter_chunks(reader, start=16, stop=528, context=16, chunk_frames=64, flow=est):
        c.frames    # float32 (context + 64, 256, 256, 3) in [-1, 1], frames [c.start - 16, c.stop)
        c.flows     # float32 (context + 63, 2, 256, 256) in [-1, 1], or None without flow
    with prefetch(iter_chunks(...), depth=2) as p:       # decoded on a background thread
        for c in p: ...

Stage times (``decode_s``, ``flow_s``) accumulate in the ``timings`` dict passed in.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class Chunk:
    """Model input for the scored frames ``start, start + step, ... < stop`` of one unit."""

    start: int
    stop: int
    frames: np.ndarray  # float32 (targets + context, H, W, 3) in [-1, 1], every step-th frame
    flows: np.ndarray | None  # float32 (len(frames) - 1, 2, H, W) in [-1, 1], or None
    step: int = 1  # the scan's stride: source frames between two frames of `frames`
    # (len(frames) - 1,) bool: the frame pairs the gate's change stage found still, whose
    # flow was not computed (zero in `flows`); None without that stage.
    still: np.ndarray | None = None

    @property
    def targets(self) -> np.ndarray:
        """Source indices of the scored frames (the last ``len(targets)`` of ``frames``)."""
        return np.arange(self.start, self.stop, self.step, dtype=np.int64)


def strided_targets(start: int, stop: int, stride: int) -> np.ndarray:
    """The frames of ``[start, stop)`` a scan with ``stride`` scores: the multiples of the
    stride, so that units cut anywhere score the same frames of a video."""
    first = -(-int(start) // stride) * stride
    return np.arange(first, int(stop), stride, dtype=np.int64)


def iter_chunks(
    reader: Any,
    *,
    start: int,
    stop: int,
    context: int,
    chunk_frames: int,
    flow: Callable[[np.ndarray], np.ndarray] | None = None,
    timings: dict[str, float] | None = None,
    stride: int = 1,
    still: Any = None,
) -> Iterator[Chunk]:
    """Yield the chunks of scored frames ``[start, stop)`` read from ``reader``.

    Args:
        reader: a ``raystack.decode.VideoReader`` (``read(a, b) -> uint8 (T, H, W, 3)``).
        start, stop: the frames to score; ``start >= context * stride``.
        context: history frames the model needs before each scored frame (model frames:
            ``context * stride`` source frames).
        chunk_frames: scored frames per chunk (the last may be shorter).
        flow: uint8 frames ``(T, H, W, 3)`` -> flow in model range ``(T-1, 2, H, W)``;
            None for models without flow input.
        timings: dict to add ``decode_s`` and ``flow_s`` seconds to.
        stride: score every stride-th source frame (:func:`strided_targets`); the model's
            context frames are taken at the same stride and flow is computed between the
            frames kept, so a model sees the video as if it were recorded at fps / stride.
        still: the gate's change stage for this unit (a :class:`raystack.gate.ChangeStage`:
            ``still.flow(frames, flow) -> (flows, still)``), which computes only the flows
            it needs; the pairs it found still have zero flow and ``Chunk.still`` marks
            them. Needs ``flow``.
    """
    from raystack.decode import to_model_range

    targets = strided_targets(start, stop, stride)
    if len(targets) == 0:
        return
    start = int(targets[0])
    if start < context * stride:
        msg = (f"unit starts at frame {start} but the model needs {context} frames "
               f"(x stride {stride}) before it")
        raise ValueError(msg)
    timings = timings if timings is not None else {}
    timings.setdefault("decode_s", 0.0)
    timings.setdefault("flow_s", 0.0)
    tail: np.ndarray | None = None  # the last `context` uint8 frames already decoded
    tail_flow: np.ndarray | None = None  # the flows between the frames of `tail`
    tail_still: np.ndarray | None = None  # and which of them were still
    decoded_to = start - context * stride
    for k in range(0, len(targets), chunk_frames):
        s, e = int(targets[k]), int(targets[min(k + chunk_frames, len(targets)) - 1]) + 1
        t0 = time.perf_counter()
        # Only the multiples of the stride are converted and resized; the codec decodes the
        # frames between (a sequential stream needs them), the reader drops them. A read
        # ends where the next begins, so the reader goes on without seeking back.
        upto = min(e + (-e) % stride, stop)
        new = reader.read(decoded_to + (-decoded_to) % stride, upto, stride)
        timings["decode_s"] += time.perf_counter() - t0
        decoded_to = upto
        frames = new if tail is None else np.concatenate([tail, new])
        flows = stills = None
        if flow is not None:
            t0 = time.perf_counter()
            # Flow into the first new frame needs the last frame before it (from the tail).
            pairs = new if tail is None or len(tail) == 0 else np.concatenate([tail[-1:], new])
            if still is None:
                new_flow = flow(pairs)
                flows = new_flow if tail_flow is None else np.concatenate([tail_flow, new_flow])
            else:
                # The stage writes only the flows it computes into the chunk's buffer; the
                # still pairs stay the untouched zero pages np.zeros maps (no copy, no fill).
                head = 0 if tail_flow is None else len(tail_flow)
                flows = np.zeros((head + len(pairs) - 1, 2, *pairs.shape[1:3]), np.float32)
                flows[:head] = tail_flow
                _, new_still = still.flow(pairs, flow, out=flows[head:])
                stills = new_still if tail_still is None else np.concatenate(
                    [tail_still, new_still])
            timings["flow_s"] += time.perf_counter() - t0
        assert len(frames) == len(range(s, e, stride)) + context, (len(frames), s, e, context)
        assert flows is None or len(flows) == len(frames) - 1
        yield Chunk(s, e, to_model_range(frames), flows, stride, stills)
        tail = frames[len(frames) - context :]
        if flows is not None:
            tail_flow = flows[len(flows) - max(context - 1, 0) :]
        if stills is not None:
            tail_still = stills[len(stills) - max(context - 1, 0) :]


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class Prefetcher(Iterator[T]):
    """Iterates ``items`` on a background thread, at most ``depth`` items ahead.

    The thread starts at construction, so a unit can be decoded before anyone asks for
    it. Exceptions raised by ``items`` are re-raised by ``next()``, in the consumer.
    :meth:`close` (also on garbage collection and at the end of a ``with``) stops the
    producer and waits for it.
    """

    def __init__(self, items: Iterator[T], depth: int = 2) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._items = items
        self._done = False
        self._thread = threading.Thread(target=self._produce, name="raystack-prefetch",
                                        daemon=True)
        self._thread.start()

    def _put(self, x: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for x in self._items:
                if not self._put(x):
                    return
            self._put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._put(_Failure(e))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        x = self._q.get()
        if x is _END:
            self.close()
            raise StopIteration
        if isinstance(x, _Failure):
            self.close()
            raise x.exc
        return x

    def close(self) -> None:
        self._done = True
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self._stop.set()


class Inline(Iterator[T]):
    """The same interface as :class:`Prefetcher` without a thread: items are produced in
    the consumer's thread when asked for (no overlap)."""

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items

    def __next__(self) -> T:
        return next(self._items)

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Inline[T]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def prefetch(items: Iterator[T], depth: int = 2) -> Prefetcher[T] | Inline[T]:
    """Iterate ``items`` on a background thread, at most ``depth`` items ahead
    (see :class:`Prefetcher`); ``depth = 0`` iterates inline, in the consumer's thread."""
    return Prefetcher(items, depth) if depth > 0 else Inline(items)
