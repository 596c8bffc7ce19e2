"""Chunked decoding with context and flow, and the prefetch thread: no models, no Ray."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from raystack.scan.chunks import iter_chunks, prefetch


class _Reader:
    """A 'video' whose frame i is filled with the value i; counts what it decodes (a
    sequential codec: every frame up to the last one returned) and what it returns."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.decoded: list[int] = []
        self.returned: list[int] = []

    def read(self, a: int, b: int, step: int = 1) -> np.ndarray:
        assert 0 <= a <= b <= self.n
        kept = range(a, b, step)
        self.decoded += range(a, b)
        self.returned += kept
        return np.stack([np.full((2, 2, 3), i, np.uint8) for i in kept]) if kept else \
            np.zeros((0, 2, 2, 3), np.uint8)


def _flow(frames: np.ndarray) -> np.ndarray:
    """'Flow' of pair (i, i+1) encodes both frame values, so misalignment shows."""
    v = frames[:, 0, 0, 0].astype(np.float32)
    out = np.zeros((len(frames) - 1, 2, 2, 2), np.float32)
    out[:, 0] = v[:-1, None, None]
    out[:, 1] = v[1:, None, None]
    return out


@pytest.mark.parametrize(("start", "stop", "context", "chunk"),
                         [(16, 100, 16, 7), (16, 17, 16, 64), (1, 40, 1, 8), (4, 37, 4, 3),
                          (0, 10, 0, 4), (20, 60, 4, 16)])
def test_chunks_carry_context_and_decode_each_frame_once(start, stop, context, chunk):
    reader = _Reader(stop)
    timings: dict[str, float] = {}
    chunks = list(iter_chunks(reader, start=start, stop=stop, context=context,
                              chunk_frames=chunk, flow=_flow, timings=timings))
    assert [f for c in chunks for f in range(c.start, c.stop)] == list(range(start, stop))
    assert reader.decoded == list(range(start - context, stop))  # each frame decoded once
    for c in chunks:
        want = np.arange(c.start - context, c.stop)
        got = np.rint((c.frames[:, 0, 0, 0] + 1) * 255 / 2).astype(int)
        assert got.tolist() == want.tolist()
        assert c.flows.shape[0] == len(c.frames) - 1
        assert c.flows[:, 0, 0, 0].tolist() == want[:-1].tolist()
        assert c.flows[:, 1, 0, 0].tolist() == want[1:].tolist()
    assert set(timings) == {"decode_s", "flow_s"}


@pytest.mark.parametrize(("start", "stop", "context", "chunk", "stride"),
                         [(32, 100, 16, 7, 2), (12, 50, 4, 5, 3), (9, 40, 2, 4, 4)])
def test_strided_chunks_return_only_the_frames_used(start, stop, context, chunk, stride):
    # The codec decodes each source frame once across the chunks, but only the multiples
    # of the stride (the targets and their context) are returned by the reader.
    reader = _Reader(stop)
    chunks = list(iter_chunks(reader, start=start, stop=stop, context=context,
                              chunk_frames=chunk, flow=_flow, stride=stride))
    first = start - context * stride
    used = [f for f in range(first, stop) if f % stride == 0]
    assert reader.returned == used
    assert reader.decoded == list(range(used[0], stop))  # each once, no seek back
    for c in chunks:
        got = np.rint((c.frames[:, 0, 0, 0] + 1) * 255 / 2).astype(int)
        assert got.tolist() == [f for f in used if c.start - context * stride <= f < c.stop]
        assert c.flows[:, 1, 0, 0].tolist() == got[1:].tolist()


def test_chunks_without_flow_and_bad_start():
    chunks = list(iter_chunks(_Reader(30), start=4, stop=30, context=4, chunk_frames=10))
    assert all(c.flows is None for c in chunks) and len(chunks) == 3
    with pytest.raises(ValueError, match="needs 4 frames"):
        list(iter_chunks(_Reader(30), start=2, stop=30, context=4, chunk_frames=10))


def test_prefetch_runs_ahead_in_order_and_reraises():
    produced: list[int] = []

    def items():
        for i in range(10):
            produced.append(i)
            assert threading.current_thread() is not threading.main_thread()
            yield i
        msg = "disk gone"
        raise OSError(msg)

    it = prefetch(items(), depth=2)
    assert next(it) == 0
    got = [0]
    with pytest.raises(OSError, match="disk gone"):
        for x in it:
            got.append(x)
    assert got == list(range(10))


def test_prefetch_stops_the_producer_when_the_consumer_stops():
    closed = threading.Event()

    def items():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetch(items(), depth=1)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert closed.wait(5)



class _Stage:
    """A change stage that calls pairs still by the frame they leave (the value i of frame
    i), flowing the others in stretches of consecutive pairs."""

    def __init__(self, still_at):
        self.still_at = still_at

    def flow(self, frames, flow, out):
        v = frames[:, 0, 0, 0].astype(int)
        still = np.array([int(a) in self.still_at for a in v[:-1]], bool)
        assert out.shape == (len(frames) - 1, 2, *frames.shape[1:3]) and not out.any()
        for i in np.flatnonzero(~still):
            out[i] = flow(frames[i : i + 2])[0]
        return out, still


@pytest.mark.parametrize(("still_at", "context", "chunk"),
                         [(set(), 4, 8), (set(range(0, 60)), 4, 8), ({7, 8, 9, 20, 33}, 4, 8),
                          (set(range(10, 40)), 16, 7), ({0, 1, 59}, 1, 64)])
def test_the_change_stage_flows_only_the_pairs_it_needs(still_at, context, chunk):
    """iter_chunks hands every new pair (the one into the chunk's first new frame included)
    to the unit's change stage once, and Chunk.still lines up with Chunk.flows across
    chunks and their context."""
    start, stop = 16, 60
    flowed: list[int] = []

    def flow(frames):
        v = frames[:, 0, 0, 0].astype(int)
        flowed.extend(v[1:].tolist())  # the frame each computed pair leads into
        return _flow(frames) + 1.0  # + 1: a computed flow is never zero here

    chunks = list(iter_chunks(_Reader(stop), start=start, stop=stop, context=context,
                              chunk_frames=chunk, flow=flow, still=_Stage(still_at)))
    assert flowed == [i + 1 for i in range(start - context, stop - 1) if i not in still_at]
    for c in chunks:
        pairs = np.arange(c.start - context, c.stop - 1)
        assert c.still.tolist() == [int(i) in still_at for i in pairs]
        assert np.all(c.flows[c.still] == 0)
        moving = c.flows[~c.still]
        assert moving[:, 0, 0, 0].tolist() == (pairs[~c.still] + 1).tolist()
        assert moving[:, 1, 0, 0].tolist() == (pairs[~c.still] + 2).tolist()
