"""Score work units: the plain class each scan worker holds, usable without Ray.

:class:`UnitScorer` loads the models once; ``scorer(unit)`` decodes the unit's frames
(with their context), computes flow when a model needs it, runs every model stream and
returns one ``scores`` row per (frame, stream). :meth:`UnitScorer.run` also writes the
unit's Parquet file and returns its manifest row, turning a bad file into a ``failed``
row instead of an exception.

    scorer = UnitScorer(["fp.pt", "fr.pt"], store=Store("./store"), run_id="r1")
    table = scorer(unit)              # pa.Table, scores schema: 2 streams x unit.frames rows
    row = scorer.run(unit, attempt=1) # {"status": "done", "rows": ..., "model_s": ...}

Decoding and flow run on a background thread (:mod:`raystack.scan.reading`), so they
overlap the model; given the unit that comes next (``run(unit, next_unit=...)``), its
first chunks are decoded while the model finishes this one. The model runs in the
caller's thread (one model call at a time, so concurrent calls are safe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raystack.errors import InfrastructureError, RaystackError
from raystack.scan.manifest import INFRASTRUCTURE, INPUT, manifest_row, utcnow, worker_name
from raystack.scan.plan import WorkUnit
from raystack.scan.reading import ReadAhead, ReadOptions, UnitReading
from raystack.store.schema import table_schema


def describe_error(e: BaseException) -> str:
    """``"Type: message"`` for the manifest's error column."""
    return f"{type(e).__name__}: {e}"


class UnitScorer:
    """Scores work units with models loaded once (see module docstring).

    Args:
        checkpoints: model checkpoint paths; all their streams are scored together.
        store: a ``raystack.store.Store`` that :meth:`run` writes score files to.
        run_id: the run the rows belong to.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        threads: torch and OpenCV threads (the CPUs this worker was given), set for the
            whole process; None leaves the process's setting alone.
        batch_size: frames per model forward (None: the scorer's default).
        flow: flow backend name for models that need flow (``raystack.flow.create_flow``).
        flow_preset: DIS preset.
        chunk_frames: scored frames decoded and scored together.
        prefetch_chunks: chunks decoded ahead of the model on a helper thread; 0 decodes
            in the caller's thread, between model calls (no overlap).
        cache_dir: local cache of S3 videos.
        cache_max_bytes: size cap of that cache, least recently used videos first out
            (None: no cap).
        region: ``"frame"`` or ``"patch"`` scoring (:class:`~raystack.inference.FrameScorer`).
        baselines: also score the trivial ``diff`` and ``motion`` streams.
    """

    def __init__(
        self,
        checkpoints: Sequence[str],
        *,
        store: Any = None,
        run_id: str = "",
        device: str = "auto",
        threads: int | None = None,
        batch_size: int | None = None,
        flow: str = "dis",
        flow_preset: str = "fast",
        chunk_frames: int = 64,
        prefetch_chunks: int = 2,
        cache_dir: str | None = None,
        cache_max_bytes: int | None = None,
        region: str = "frame",
        baselines: bool = True,
    ) -> None:
        import torch

        from raystack.inference import FrameScorer

        if threads:
            import cv2

            # Torch and OpenCV (resize, DIS flow) each default to every core of the node;
            # a worker gets `threads` CPUs from Ray and must not use more.
            torch.set_num_threads(int(threads))
            cv2.setNumThreads(int(threads))
        self.threads = threads
        kwargs: dict[str, Any] = {"device": device, "region": region, "baselines": baselines}
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        self.scorer = FrameScorer.from_checkpoints(list(checkpoints), **kwargs)
        self.streams = tuple(self.scorer.streams)
        self.context = int(self.scorer.context)
        self.size = (int(self.scorer.img_size[1]), int(self.scorer.img_size[0]))  # (W, H)
        self._flow = None
        if self.scorer.needs_flow:
            from raystack.flow import create_flow

            kw = {"preset": flow_preset} if flow == "dis" else {}
            self._flow = create_flow(flow, **kw)
        self.store = store
        self.run_id = run_id
        self.chunk_frames = int(chunk_frames)
        self.prefetch_chunks = int(prefetch_chunks)
        self.cache_dir = cache_dir
        self.cache_max_bytes = cache_max_bytes
        # The columns this worker fills (schema v1's); Store.write_table adds the columns of
        # later versions (the v2 region columns) as NULL.
        self.schema = table_schema("scores", 1)
        # Models run in the caller's thread: in a (synchronous) Ray actor that is the main
        # thread. Torch's OpenMP pool belongs to the thread that calls it; moving the model
        # to another thread cost ~12% at the paper size, alternating between two threads
        # ~19% (measured here, 2 cores), so the next unit is prefetched by a helper thread
        # that only decodes, never by a second caller.
        self._model_lock = threading.Lock()
        self.read_options = ReadOptions(
            size=self.size, chunk_frames=self.chunk_frames,
            flow=self._flow_model_range if self._flow is not None else None,
            cache_dir=cache_dir, cache_max_bytes=cache_max_bytes, threads=threads or 0)
        self.ahead = ReadAhead(
            lambda unit: UnitReading(unit, self.read_options, depth=self.prefetch_chunks),
            accepts=lambda unit: unit.context == self.context and self.prefetch_chunks > 0)
        self._flow_lock = threading.Lock()

    def _flow_model_range(self, frames_u8: np.ndarray) -> np.ndarray:
        from raystack.flow import flow_to_model_input

        with self._flow_lock:  # one flow backend object, shared by concurrent calls
            return flow_to_model_input(self._flow(frames_u8))

    # --- scoring -------------------------------------------------------------------------

    def score(
        self, unit: WorkUnit, next_unit: WorkUnit | None = None
    ) -> tuple[pa.Table, dict[str, float], dict[int, str]]:
        """Scores of ``unit``, the seconds spent per stage (decode, flow, model), and the
        frames of ``[start - context, stop)`` that could not be decoded (index -> reason).

        An undecodable frame (a bad image in a frame folder) gets no score row; the frames
        whose input needed it are scored with the nearest readable frame in its place.

        Args:
            unit: the unit to score.
            next_unit: the unit the caller will ask for next, if known: its first chunks
                are decoded while the model works on ``unit``.

        Raises:
            UndecodableVideoError: the video cannot be decoded (names it and says why).
            ValueError: the unit was planned with a context other than the models'.
        """
        if unit.context != self.context:
            msg = (
                f"unit {unit.unit_id} was planned with context {unit.context}, but the models "
                f"need {self.context}; plan with the same checkpoints"
            )
            raise ValueError(msg)
        reading = self.ahead.take(unit)
        per_stream: dict[str, list[np.ndarray]] = {s: [] for s in self.streams}
        aux: dict[str, list[np.ndarray]] = {s: [] for s in self.streams}
        try:
            for k, chunk in enumerate(reading):
                if k == 0:  # this unit's video is open and decoding: start the next one
                    self.ahead.hint(next_unit)
                with self._model_lock:
                    t0 = time.perf_counter()
                    out = self.scorer.score(chunk.frames, chunk.flows)
                    reading.timings["model_s"] += time.perf_counter() - t0
                n = chunk.stop - chunk.start
                for s in self.streams:
                    psnr, extra = out[s].psnr, out[s].aux
                    if len(psnr) != n:
                        msg = f"stream {s!r} returned {len(psnr)} scores for a {n}-frame chunk"
                        raise RuntimeError(msg)
                    per_stream[s].append(psnr)
                    aux[s].append(extra if extra is not None else np.full(n, np.nan, np.float32))
        finally:
            reading.close()
        fps = unit.fps if unit.fps > 0 else (reading.fps or 0.0)
        timings, bad = reading.timings, reading.bad
        table = self._table(unit, fps, per_stream, aux)
        if bad:
            keep = pc.invert(pc.is_in(table["frame"], pa.array(sorted(bad), pa.int64())))
            table = table.filter(keep)
        return table, timings, bad

    def __call__(self, unit: WorkUnit) -> pa.Table:
        """The ``scores`` rows of ``unit``: one per (frame in [start, stop), stream)."""
        return self.score(unit)[0]

    def _table(self, unit: WorkUnit, fps: float, per_stream: dict, aux: dict) -> pa.Table:
        frames = np.arange(unit.start, unit.stop, dtype=np.int64)
        n = len(frames)
        ts = frames / fps if fps > 0 else np.full(n, np.nan)
        cols: dict[str, list] = {k: [] for k in self.schema.names}
        for s in self.streams:
            psnr = np.concatenate(per_stream[s]) if per_stream[s] else np.zeros(0, np.float32)
            extra = np.concatenate(aux[s]) if aux[s] else np.zeros(0, np.float32)
            cols["frame"].append(frames)
            cols["timestamp_s"].append(ts)
            cols["model"].append(np.full(n, s, dtype=object))
            cols["psnr"].append(psnr.astype(np.float32))
            cols["aux"].append(extra.astype(np.float32))
        total = n * len(self.streams)
        arrays = {
            "run_id": pa.array([self.run_id] * total, pa.string()),
            "video_id": pa.array([unit.video_id] * total, pa.string()),
            "frame": pa.array(np.concatenate(cols["frame"]), pa.int64()),
            "timestamp_s": pa.array(np.concatenate(cols["timestamp_s"]), pa.float64()),
            "model": pa.array(np.concatenate(cols["model"]), pa.string()),
            "psnr": pa.array(np.concatenate(cols["psnr"]), pa.float32()),
            # NaN marks "no aux score" inside the models; the table says it with null.
            "aux": pa.array(np.concatenate(cols["aux"]), pa.float32(), from_pandas=True),
        }
        return pa.table([arrays[k] for k in self.schema.names], schema=self.schema)

    # --- one attempt, as a scan runs it --------------------------------------------------

    def run(
        self, unit: WorkUnit, attempt: int = 1, next_unit: WorkUnit | None = None
    ) -> dict[str, Any]:
        """Score ``unit``, write its score file, and return its manifest row.

        The score file is written before the row is returned, so a ``done`` row always
        points at a complete file; its name is the unit id, so a retry overwrites it.
        A :class:`RaystackError` (a bad file) gives a ``failed`` row naming the file and
        the reason (``failure_kind`` ``"input"``, or ``"infrastructure"`` for an
        :class:`InfrastructureError`); any other exception propagates (the caller decides
        on retries).
        """
        if self.store is None:
            msg = "UnitScorer.run needs a store to write to; pass store=Store(uri)"
            raise ValueError(msg)
        started = utcnow()
        try:
            table, timings, bad = self.score(unit, next_unit)
            t0 = time.perf_counter()
            self.store.write_table("scores", self.run_id, unit.unit_id, table)
            timings["write_s"] = time.perf_counter() - t0
        except RaystackError as e:
            # InfrastructureError: the store or the archive stayed away past the retry
            # budget; the pool tries the unit again later. Any other: the file itself.
            kind = INFRASTRUCTURE if isinstance(e, InfrastructureError) else INPUT
            return manifest_row(unit, "failed", attempt=attempt, error=describe_error(e),
                                worker=worker_name(), started_at=started, run_id=self.run_id,
                                failure_kind=kind)
        return manifest_row(unit, "done", rows=table.num_rows, attempt=attempt,
                            worker=worker_name(), started_at=started, timings=timings,
                            run_id=self.run_id, warning=bad_frames_warning(bad))


def bad_frames_warning(bad: dict[int, str], shown: int = 20) -> str | None:
    """The manifest's ``warning`` for undecodable frames: count, indices, first reason."""
    if not bad:
        return None
    idx = sorted(bad)
    listed = ", ".join(map(str, idx[:shown])) + (f", ... ({len(idx) - shown} more)"
                                                 if len(idx) > shown else "")
    noun = "frame" if len(idx) == 1 else "frames"
    return (f"{len(idx)} undecodable {noun} skipped (no score row; neighbours filled in "
            f"as model input): {listed} ({bad[idx[0]]})")

