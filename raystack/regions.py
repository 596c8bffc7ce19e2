"""Where in the frame: the per-frame region columns of the ``scores`` table (schema v2).

A stream's scores of one frame become one row. Scored whole, the row's box is the whole
source frame and its patch the worst patch of the error map (when the stream has one),
mapped from the model's input pixels to the source's. Scored in tiles, ``psnr`` is the
worst tile's (so every query on ``psnr`` reads "the worst place in the frame"),
``psnr_mean`` the mean over the tiles scored, ``tiles`` their count, the box the worst
tile's and the patch the worst patch inside that tile, all in source pixels.

Skipped tiles (a gate decided not to score them) are left out of the worst, the mean and
the count: a skipped tile is one judged not worth scoring, not a normal score. A frame whose
every tile is skipped has no score: :func:`reduce_tiles` gives it ``tiles = 0`` and NaN
scores, and the scan writes no row for it (as for an undecodable frame).

    r = reduce_tiles(out["fp"], grid)       # out = scorer.score_tiles(...), grid: TileGrid
    r.psnr.shape == (n,); r.box.shape == (n, 4); r.columns()["box_x0"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

# The v2 region columns, named once by the store schema (schemas/v2/scores.json).
from raystack.store.schema import BOX_COLUMNS, PATCH_COLUMNS

if TYPE_CHECKING:  # the contract module imports torch; these are numpy functions
    from raystack.models.contract import StreamScores
    from raystack.tiles import TileGrid


@dataclass(frozen=True)
class FrameRegions:
    """One stream's per-frame scores and where they come from, n frames.

    Attributes:
        psnr: (n,) float32: the frame's score (worst tile when tiled).
        aux: (n,) float32 aux of the same tile, NaN where none.
        psnr_mean: (n,) float32 mean tile PSNR, or None when scored whole.
        tiles: (n,) int16 tiles scored, or None when scored whole.
        box: (n, 4) int32 worst tile (or whole frame), source pixels.
        patch: (n, 4) int32 worst patch, source pixels; None without a location.
    """

    psnr: np.ndarray
    aux: np.ndarray
    psnr_mean: np.ndarray | None
    tiles: np.ndarray | None
    box: np.ndarray
    patch: np.ndarray | None

    def columns(self) -> dict[str, np.ndarray | None]:
        """:data:`REGION_COLUMNS` -> (n,) arrays, None for a column that is all NULL."""
        cols: dict[str, np.ndarray | None] = {"psnr_mean": self.psnr_mean, "tiles": self.tiles}
        cols.update({k: self.box[:, i] for i, k in enumerate(BOX_COLUMNS)})
        cols.update({k: None if self.patch is None else self.patch[:, i]
                     for i, k in enumerate(PATCH_COLUMNS)})
        return cols

    def keep(self, rows: np.ndarray) -> FrameRegions:
        """The frames ``rows`` (a bool mask or indices) only."""
        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return FrameRegions(self.psnr[rows], self.aux[rows], take(self.psnr_mean),
                            take(self.tiles), self.box[rows], take(self.patch))


def first_tile(scores: StreamScores[np.ndarray]) -> StreamScores[np.ndarray]:
    """(n,) scores from (n, N) tile scores: the first tile's (the only one of a whole frame)."""
    from raystack.models.contract import StreamScores

    return StreamScores(scores.psnr[:, 0], None if scores.aux is None else scores.aux[:, 0],
                        None if scores.box is None else scores.box[:, 0])


def whole_frame(scores: StreamScores[np.ndarray], source_size: tuple[int, int],
                img_size: tuple[int, int]) -> FrameRegions:
    """Regions of a stream scored on whole frames resized from ``source_size`` (H, W) to
    ``img_size`` (H, W): the box is the whole source frame."""
    n = len(scores.psnr)
    h, w = source_size
    box = np.tile(np.array([[0, 0, w, h]], np.int32), (n, 1))
    patch = None
    if scores.box is not None:
        sx, sy = w / img_size[1], h / img_size[0]
        patch = _clip(np.round(scores.box * np.array([sx, sy, sx, sy])), source_size)
    aux = scores.aux if scores.aux is not None else np.full(n, np.nan, np.float32)
    return FrameRegions(np.asarray(scores.psnr, np.float32), aux.astype(np.float32),
                        None, None, box, patch)


def reduce_tiles(scores: StreamScores[np.ndarray], grid: TileGrid,
                 skip: np.ndarray | None = None) -> FrameRegions:
    """Per-frame regions from (n, N) tile scores of ``grid``'s N tiles.

    Args:
        scores: :meth:`raystack.inference.FrameScorer.score_tiles` output of one stream:
            psnr/aux (n, N), box (n, N, 4) in tile pixels or None.
        grid: the tiles' geometry (working and source pixels).
        skip: (n, N) bool, the tiles that were not scored; None: none skipped.
    """
    psnr = np.asarray(scores.psnr, np.float32)
    n, m = psnr.shape
    skip = np.zeros((n, m), bool) if skip is None else np.asarray(skip, bool)
    scored = ~skip
    count = scored.sum(axis=1)
    masked = np.where(scored, psnr, np.inf)
    worst = masked.argmin(axis=1)  # first worst tile; an all-skipped frame gets tile 0
    rows = np.arange(n)
    empty = count == 0
    frame_psnr = np.where(empty, np.nan, psnr[rows, worst]).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (np.where(scored, psnr, 0.0).sum(axis=1) / count).astype(np.float32)
    aux = (np.full(n, np.nan, np.float32) if scores.aux is None
           else np.where(empty, np.nan, scores.aux[rows, worst]).astype(np.float32))
    box = grid.source_boxes[worst].astype(np.int32)
    patch = None
    if scores.box is not None:
        offset = grid.boxes[worst][:, [0, 1, 0, 1]]  # the tile's corner, working pixels
        patch = grid.to_source(scores.box[rows, worst] + offset).astype(np.int32)
    return FrameRegions(frame_psnr, aux, mean, count.astype(np.int16), box, patch)


def _clip(boxes: np.ndarray, source_size: tuple[int, int]) -> np.ndarray:
    h, w = source_size
    return np.clip(boxes, 0, np.array([w, h, w, h])).astype(np.int32)


def concat_regions(parts: list[FrameRegions]) -> FrameRegions:
    """The regions of consecutive chunks as one (parts in frame order, all scored alike)."""
    if not parts:
        z = np.zeros(0, np.float32)
        return FrameRegions(z, z, None, None, np.zeros((0, 4), np.int32), None)

    def cat(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    return FrameRegions(cat("psnr"), cat("aux"), cat("psnr_mean"), cat("tiles"), cat("box"),
                        cat("patch"))
