"""Score work units: the plain class each scan worker holds, usable without Ray.

:class:`UnitScorer` loads the models once; ``scorer(unit)`` decodes the unit's frames
(with their context), computes flow when a model needs it, runs every model stream and
returns one ``scores`` row per (frame, stream). :meth:`UnitScorer.run` also writes the
unit's Parquet file and returns its manifest row, turning a bad file into a ``failed``
row instead of an exception.

    scorer = UnitScorer(["fp.pt", "fr.pt"], store=Store("./store"), run_id="r1")
    table = scorer(unit)              # pa.Table, scores schema: 2 streams x unit.frames rows
    row = scorer.run(unit, attempt=1) # {"status": "done", "rows": ..., "model_s": ...}

Tiled scoring (``tiles=True``): frames are decoded at the working size of a
:class:`~raystack.tiles.TileGrid` instead of the models' size, flow is computed there, and
every tile is scored like a frame; each row then reports the worst tile
(:mod:`raystack.regions`). Either way the rows carry where in the source frame their score
comes from (schema v2's ``box_*`` / ``patch_*``).

Decoding and flow run on a background thread (:mod:`raystack.scan.reading`), so they
overlap the model; given the unit that comes next (``run(unit, next_unit=...)``), its
first chunks are decoded while the model finishes this one. The model runs in the
caller's thread (one model call at a time, so concurrent calls are safe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raystack.errors import InfrastructureError, RaystackError
from raystack.regions import (
    FrameRegions,
    concat_regions,
    first_tile,
    reduce_tiles,
    whole_frame,
)
from raystack.scan.chunks import Chunk, strided_targets
from raystack.scan.manifest import INFRASTRUCTURE, INPUT, manifest_row, utcnow, worker_name
from raystack.scan.plan import WorkUnit
from raystack.scan.reading import ReadAhead, ReadOptions, UnitReading
from raystack.store.schema import table_schema
from raystack.tiles import DEFAULT_OVERLAP, TileGrid

# (chunk, grid) -> (n, N) bool: the tiles of each scored frame not worth scoring.
TileGate = Callable[[Chunk, TileGrid], np.ndarray]

# Scored frames per chunk when none is given. A whole-frame chunk holds frames at the
# model's size (64 at 256x256: ~50 MB of float32 frames); a tiled one holds frames and flow
# at the working size (~4.6 MB a frame at 640x360), prefetch_chunks + 1 chunks at once, and
# the model's batches fill from a chunk's many tiles, so a shorter chunk saves memory at no
# cost in frames/s (bench/results/tiles_memory.json).
CHUNK_FRAMES = 64
TILED_CHUNK_FRAMES = 16


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
        flow_options: keyword arguments of ``create_flow`` instead of the preset (ptlflow's
            model, checkpoint and device: :func:`raystack.scan.config.flow_options`).
        chunk_frames: scored frames decoded and scored together; None:
            :data:`CHUNK_FRAMES` scored whole, :data:`TILED_CHUNK_FRAMES` tiled.
        prefetch_chunks: chunks decoded ahead of the model on a helper thread; 0 decodes
            in the caller's thread, between model calls (no overlap).
        cache_dir: local cache of S3 videos.
        cache_max_bytes: size cap of that cache, least recently used videos first out
            (None: no cap).
        region: ``"frame"``, ``"patch"`` or ``"calibrated"`` scoring
            (:class:`~raystack.inference.FrameScorer`; calibrated reads the checkpoints'
            normal-error references for each video's tile grid).
        baselines: also score the trivial ``diff`` and ``motion`` streams.
        presence: also score the ``presence`` stream when a checkpoint records a scene
            prior (:mod:`raystack.scene_prior`).
        tiles: score overlapping tiles of a downscaled frame instead of the whole frame
            resized to the models' size (:mod:`raystack.tiles`).
        tile_scale: the tiles' downscale factor; 0 = automatic (360-px working height).
        tile_overlap: fraction of a tile side that neighbouring tiles share.
        tile_gate: picks tiles to skip per frame; None scores all. Skipped tiles leave
            the worst, the mean and the count (:mod:`raystack.regions`).
        gate_floor: motion gating (:mod:`raystack.gate`): frames (tiles) whose worst-patch
            flow is below this many px skip the learned models; their learned rows carry
            ``gated = true`` and a trivial score (:func:`raystack.gate.trivial_psnr`). None:
            no gating.
        gate_diff_floor: the gate's change stage, with ``gate_floor``
            (:class:`raystack.gate.ChangeStage`): a frame that changed no more than one the
            motion stage just verified still, and less than this many 8-bit levels
            (:func:`raystack.gate.change_levels`), is gated without computing its flow
            (zero flow stands in for it). None: every frame's flow is computed.
        stride: score every stride-th frame (:func:`raystack.scan.chunks.strided_targets`);
            units must be planned with context = the models' context x stride.
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
        flow_options: dict[str, Any] | None = None,
        chunk_frames: int | None = None,
        prefetch_chunks: int = 2,
        cache_dir: str | None = None,
        cache_max_bytes: int | None = None,
        region: str = "frame",
        baselines: bool = True,
        presence: bool = True,
        tiles: bool = False,
        tile_scale: float = 0.0,
        tile_overlap: float = DEFAULT_OVERLAP,
        tile_gate: TileGate | None = None,
        gate_floor: float | None = None,
        gate_diff_floor: float | None = None,
        stride: int = 1,
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
        self.scorer = FrameScorer.from_checkpoints(list(checkpoints), presence=presence,
                                                   tiles=tiles, **kwargs)
        self.streams = tuple(self.scorer.streams)
        self.learned = frozenset(self.scorer.learned_streams)
        if int(stride) < 1:
            msg = f"UnitScorer: stride={stride} must be >= 1"
            raise ValueError(msg)
        self.stride = int(stride)
        self.gate_floor = None if gate_floor is None else float(gate_floor)
        self.gate_diff_floor = (None if gate_diff_floor is None or self.gate_floor is None
                                else float(gate_diff_floor))
        # Source frames of history a unit decodes: the models' context at the stride.
        self.context = int(self.scorer.context) * self.stride
        self.size = (int(self.scorer.img_size[1]), int(self.scorer.img_size[0]))  # (W, H)
        self.tiles = bool(tiles)
        self.tile_scale = float(tile_scale)
        self.tile_overlap = float(tile_overlap)
        self.tile_gate = tile_gate
        self._grids: dict[tuple[int, int], TileGrid] = {}
        self._normal_refs: dict[tuple, dict[str, np.ndarray]] = {}
        self._flow = None
        if self.scorer.needs_flow or self.gate_floor is not None:  # the gate reads flow
            from raystack.flow import create_flow

            kw = flow_options if flow_options is not None else (
                {"preset": flow_preset} if flow == "dis" else {})
            self._flow = create_flow(flow, **kw)
        self.store = store
        self.run_id = run_id
        self.chunk_frames = int(chunk_frames) if chunk_frames is not None else (
            TILED_CHUNK_FRAMES if self.tiles else CHUNK_FRAMES)
        self.prefetch_chunks = int(prefetch_chunks)
        self.cache_dir = cache_dir
        self.cache_max_bytes = cache_max_bytes
        # Every column of the current schema, the v2 region columns included.
        self.schema = table_schema("scores")
        # Models run in the caller's thread: in a (synchronous) Ray actor that is the main
        # thread. Torch's OpenMP pool belongs to the thread that calls it; moving the model
        # to another thread cost ~12% at the paper size, alternating between two threads
        # ~19% (measured here, 2 cores), so the next unit is prefetched by a helper thread
        # that only decodes, never by a second caller.
        self._model_lock = threading.Lock()
        self.read_options = ReadOptions(
            size=self._work_size if self.tiles else self.size, chunk_frames=self.chunk_frames,
            flow=self._flow_model_range if self._flow is not None else None,
            cache_dir=cache_dir, cache_max_bytes=cache_max_bytes, threads=threads or 0,
            stride=self.stride,
            still=self._change_stage if self.gate_diff_floor is not None else None)
        self.ahead = ReadAhead(
            lambda unit: UnitReading(unit, self.read_options, depth=self.prefetch_chunks),
            accepts=lambda unit: unit.context == self.context and self.prefetch_chunks > 0)
        self._flow_lock = threading.Lock()

    def grid(self, source_size: tuple[int, int]) -> TileGrid:
        """The tiles of source frames of ``source_size`` (H, W), made once per size."""
        if source_size not in self._grids:
            self._grids[source_size] = TileGrid.for_frame(
                source_size, self.scorer.img_size, self.tile_scale, self.tile_overlap)
        return self._grids[source_size]

    def _grid_at(self, work_size: tuple[int, int]) -> TileGrid:
        """The grid made for a source whose working size is ``work_size`` (H, W): the one
        :meth:`_work_size` made when that source's reader opened."""
        for g in list(self._grids.values()):
            if tuple(g.work_size) == tuple(work_size):
                return g
        msg = f"no tile grid of working size {work_size} (known: {list(self._grids)})"
        raise RuntimeError(msg)

    def _work_size(self, width: int, height: int) -> tuple[int, int]:
        """(W, H) to decode a source of this size at: its grid's working size."""
        h, w = self.grid((int(height), int(width))).work_size
        return (w, h)

    def _flow_model_range(self, frames_u8: np.ndarray) -> np.ndarray:
        from raystack.flow import flow_to_model_input

        with self._flow_lock:  # one flow backend object, shared by concurrent calls
            return flow_to_model_input(self._flow(frames_u8))

    # --- scoring -------------------------------------------------------------------------

    def _change_stage(self) -> Any:
        """A unit's gate change stage: its verdict on a flowed pair is the motion stage's
        (every tile below the motion floor; tiles are those of the frames' grid)."""
        from raystack.gate import ChangeStage, gate_mask, motion_px
        from raystack.scoring import patch_size_for

        def verify(flow: np.ndarray) -> bool:
            h, w = flow.shape[-2:]
            boxes = (self._grid_at((h, w)).boxes if self.tiles
                     else np.array([[0, 0, w, h]]))
            return bool(gate_mask(motion_px(flow, boxes), self.gate_floor).all())

        return ChangeStage(self.gate_diff_floor, patch_size_for(tuple(self.scorer.img_size)),
                           verify)

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
        parts: dict[str, list[FrameRegions]] = {s: [] for s in self.streams}
        gated_parts: list[np.ndarray] = []
        try:
            for k, chunk in enumerate(reading):
                if k == 0:  # this unit's video is open and decoding: start the next one
                    self.ahead.hint(next_unit)
                with self._model_lock:
                    t0 = time.perf_counter()
                    scored, gated = self._score_chunk(chunk, reading.source_size)
                    reading.timings["model_s"] += time.perf_counter() - t0
                n = len(chunk.targets)
                gated_parts.append(gated)
                for s in self.streams:
                    if len(scored[s].psnr) != n:
                        msg = (f"stream {s!r} returned {len(scored[s].psnr)} scores for a "
                               f"{n}-frame chunk")
                        raise RuntimeError(msg)
                    parts[s].append(scored[s])
        finally:
            reading.close()
        fps = unit.fps if unit.fps > 0 else (reading.fps or 0.0)
        timings, bad = reading.timings, reading.bad
        gated = np.concatenate(gated_parts) if gated_parts else np.zeros(0, bool)
        table = self._table(unit, fps, {s: concat_regions(p) for s, p in parts.items()}, gated)
        if bad:
            keep = pc.invert(pc.is_in(table["frame"], pa.array(sorted(bad), pa.int64())))
            table = table.filter(keep)
        return table, timings, bad

    def _gated(self, chunk: Chunk, boxes: np.ndarray) -> np.ndarray | None:
        """(n, N) tiles the gate keeps from the learned models; None: no gate. A target the
        change stage found still is gated whole (it has no flow); the others' tiles are
        gated where the flow into them is below the motion floor."""
        if self.gate_floor is None:
            return None
        from raystack.gate import gate_mask, motion_px

        n = len(chunk.targets)
        into = chunk.flows[len(chunk.flows) - n :]  # flows[r - 1] leads into frame row r
        if chunk.still is None:
            return gate_mask(motion_px(into, boxes), self.gate_floor)
        still = chunk.still[len(chunk.still) - n :]
        gated = np.ones((n, len(boxes)), bool)
        moving = np.flatnonzero(~still)
        if len(moving):
            gated[moving] = gate_mask(motion_px(into[moving], boxes), self.gate_floor)
        return gated

    def _score_chunk(self, chunk: Chunk, source_size: tuple[int, int]
                     ) -> tuple[dict[str, FrameRegions], np.ndarray]:
        """Per-stream regions of the chunk's scored frames, whole or tiled (a whole frame is
        one tile at the models' size), and which frames the gate kept from the learned
        models: those whose every tile the tile gate kept was gated. A gated tile's learned
        score is the trivial answer on that tile (:func:`raystack.gate.trivial_tiles`), so
        the worst and the mean run over the same tiles as the baselines'."""
        n = len(chunk.targets)
        if self.tiles:
            grid = self.grid(source_size)
            boxes = grid.boxes
            skip = (np.zeros((n, grid.count), bool) if self.tile_gate is None
                    else np.asarray(self.tile_gate(chunk, grid), bool))
        else:
            h, w = self.scorer.img_size
            boxes, skip = np.array([[0, 0, w, h]]), np.zeros((n, 1), bool)
        gated = self._gated(chunk, boxes)
        normal = (self._normal(boxes, chunk.frames.shape[1:3])
                  if self.scorer.region == "calibrated" else None)
        out = self.scorer.score_tiles(chunk.frames, chunk.flows, boxes, skip, gated, normal,
                                      chunk.still)
        if gated is None:
            gated = np.zeros_like(skip)
        else:
            from raystack.gate import fill_trivial_tiles

            out = fill_trivial_tiles(out, self.learned, chunk.frames, chunk.flows, boxes,
                                     gated & ~skip, self.scorer.region, normal, chunk.still)
        frame_gated = (~skip).any(axis=1) & (skip | gated).all(axis=1)
        if self.tiles:
            return {s: reduce_tiles(out[s], grid, skip) for s in out}, frame_gated
        return {s: whole_frame(first_tile(v), source_size, self.scorer.img_size)
                for s, v in out.items()}, frame_gated

    def _normal(self, boxes: np.ndarray, work_size: tuple[int, int]) -> dict[str, np.ndarray]:
        """Per stream, the normal window errors the checkpoints recorded for these tiles
        (``score_region = "calibrated"``, :mod:`raystack.normal_error`)."""
        from raystack.normal_error import references_for

        key = (tuple(int(v) for v in work_size), boxes.tobytes())
        if key not in self._normal_refs:
            self._normal_refs[key] = references_for(self.scorer.checkpoints, boxes, work_size)
        return self._normal_refs[key]

    def __call__(self, unit: WorkUnit) -> pa.Table:
        """The ``scores`` rows of ``unit``: one per (frame in [start, stop), stream)."""
        return self.score(unit)[0]

    def _table(self, unit: WorkUnit, fps: float, regions: dict[str, FrameRegions],
               gated: np.ndarray) -> pa.Table:
        """The unit's rows, streams one after the other; a frame whose every tile a gate
        skipped has no score and no row (:mod:`raystack.regions`). A learned stream's row of
        a frame the motion gate kept from it says ``gated`` (its score,
        :func:`raystack.gate.trivial_psnr`, was filled in per chunk; baseline rows are always
        scored)."""
        frames = strided_targets(unit.start, unit.stop, self.stride)
        ts = frames / fps if fps > 0 else np.full(len(frames), np.nan)
        parts = []
        for s in self.streams:
            r = regions[s]
            g = gated if s in self.learned else np.zeros(len(frames), bool)
            keep = np.ones(len(frames), bool) if r.tiles is None else (r.tiles > 0) | g
            r, g = r.keep(keep), g[keep]
            n = int(keep.sum())
            cols: dict[str, Any] = {
                "run_id": pa.array([self.run_id] * n, pa.string()),
                "video_id": pa.array([unit.video_id] * n, pa.string()),
                "frame": pa.array(frames[keep], pa.int64()),
                "timestamp_s": pa.array(ts[keep], pa.float64()),
                "model": pa.array([s] * n, pa.string()),
                "psnr": pa.array(r.psnr, pa.float32()),
                # NaN marks "no aux score" inside the models; the table says it with null.
                "aux": pa.array(r.aux, pa.float32(), from_pandas=True),
                "gated": pa.array(g, pa.bool_()),
            }
            for name, values in r.columns().items():
                typ = self.schema.field(name).type
                cols[name] = pa.nulls(n, typ) if values is None else pa.array(values, typ)
            parts.append(pa.table([cols[k] for k in self.schema.names], schema=self.schema))
        if not parts:
            return self.schema.empty_table()
        return pa.concat_tables(parts)

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
        learned = pc.is_in(table["model"], pa.array(sorted(self.learned), pa.string()))
        frames = table.filter(learned if self.learned else pc.is_valid(table["frame"]))
        counts = {"scored_frames": pc.count_distinct(frames["frame"]).as_py(),
                  "gated_frames": pc.count_distinct(
                      frames.filter(pc.equal(frames["gated"], True))["frame"]).as_py()}
        return manifest_row(unit, "done", rows=table.num_rows, attempt=attempt,
                            worker=worker_name(), started_at=started, timings=timings,
                            run_id=self.run_id, warning=bad_frames_warning(bad), **counts)


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

