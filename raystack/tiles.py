"""Where the tiles of a tiled scan lie: pure geometry, no decoding, no models.

A tiled scan downscales each source frame by ``scale`` to a *working* frame and covers it
with overlapping tiles of the model's input size; every tile is scored as if it were a
whole frame, so the model sees objects at ``1 / scale`` of their source size instead of
squashed to the model's input.

    grid = TileGrid.for_frame((1080, 1920), tile=(128, 128))   # auto scale 3, overlap 0.25
    grid.work_size            # (360, 640): (H, W) the decoder resizes to
    grid.boxes.shape          # (28, 4): (x0, y0, x1, y1) per tile, working pixels
    grid.source_boxes[-1]     # [1536, 696, 1920, 1080]: the last tile, flush with the edge

Defaults, for a 1920x1080 camera and the ``small`` presets (128 px tiles). A person seen
by a surveillance camera is ~60-200 px tall at 1080p (the issue's example: 60 px). The
whole-frame protocol squashes 1920x1080 into 256x256 (1/7.5 across, 1/4.2 down): that
person becomes an 8x14 px smudge, and at 128x128 a 4x7 one. :data:`WORKING_HEIGHT` = 360
gives scale 3 at 1080p (2 at 720p, 6 at 4K, so mixed archives see people alike): the
60 px person is 20 px tall and undistorted, ~1/6 of a tile, the size a walker has in the
benchmark frames the models are built for (Avenue: ~80 px at 256). Overlap 0.25 (a 32 px
margin of 128) keeps anything up to 32 px wholly inside some tile. That makes 7 x 4 = 28
tiles per 1080p frame, each as costly as a whole frame at 128 px (bench/tiles_bench.py).

Frames smaller than a tile: the working frame is never smaller than a tile in either
dimension. When ``source / scale`` would be, the frame is upscaled instead, keeping its
aspect ratio, until its tighter dimension fills the tile: a square frame smaller than a
tile becomes exactly one tile, a 160x100 frame at 128 px tiles becomes 205x128 with two
overlapping tiles. Padding was the alternative, but the models never saw padded borders in
training, so a border of padding would read as an anomaly in every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Working-frame height of the automatic scale (``scale=0``): 1080p / 3, see the docstring.
WORKING_HEIGHT = 360
DEFAULT_OVERLAP = 0.25


def auto_scale(source_height: int) -> float:
    """The default downscale factor: the working frame :data:`WORKING_HEIGHT` px tall, never
    upscaling (a 240p frame keeps scale 1)."""
    return max(1.0, source_height / WORKING_HEIGHT)


def tile_starts(length: int, tile: int, overlap: float) -> np.ndarray:
    """Starts of tiles of side ``tile`` covering ``[0, length)``, consecutive tiles
    overlapping by at least ``overlap * tile`` px, the first at 0 and the last flush with
    the end (the spacing is spread evenly, so the overlap is the same all along)."""
    if length <= tile:
        return np.zeros(1, np.int64)
    step = max(1, math.floor(tile * (1.0 - overlap)))
    n = math.ceil((length - tile) / step) + 1
    return np.round(np.linspace(0, length - tile, n)).astype(np.int64)


@dataclass(frozen=True)
class TileGrid:
    """Tiles of one source frame size (see module docstring).

    Attributes:
        source_size: (H, W) of the source frames.
        work_size: (H, W) of the working frame: the source downscaled by the effective
            scale, never smaller than a tile.
        tile: (H, W) of a tile: the model's ``img_size``.
        overlap: requested overlap of neighbouring tiles, a fraction of the tile side.
    """

    source_size: tuple[int, int]
    work_size: tuple[int, int]
    tile: tuple[int, int]
    overlap: float

    @classmethod
    def for_frame(
        cls, source_size: tuple[int, int], tile: tuple[int, int], scale: float = 0.0,
        overlap: float = DEFAULT_OVERLAP,
    ) -> TileGrid:
        """The grid for source frames of ``source_size`` (H, W).

        Args:
            source_size: (H, W) of the source frames.
            tile: (H, W) of a tile, the model's input size.
            scale: downscale factor (2: 1920x1080 -> 960x540); 0 = :func:`auto_scale`.
            overlap: fraction of a tile side neighbours share, in [0, 1).
        """
        h, w = (int(v) for v in source_size)
        th, tw = (int(v) for v in tile)
        if h < 1 or w < 1 or th < 1 or tw < 1:
            msg = f"TileGrid: source {source_size} and tile {tile} must be positive (H, W)"
            raise ValueError(msg)
        if not 0.0 <= overlap < 1.0:
            msg = f"TileGrid: overlap={overlap} must be in [0, 1)"
            raise ValueError(msg)
        if scale < 0:
            msg = f"TileGrid: scale={scale} must be > 0 (or 0 for the automatic scale)"
            raise ValueError(msg)
        scale = float(scale) or auto_scale(h)
        # Upscale rather than pad a frame smaller than a tile (module docstring).
        scale = min(scale, h / th, w / tw)
        work = (max(th, round(h / scale)), max(tw, round(w / scale)))
        return cls((h, w), work, (th, tw), float(overlap))

    @property
    def scale(self) -> tuple[float, float]:
        """(y, x) source pixels per working pixel."""
        return (self.source_size[0] / self.work_size[0], self.source_size[1] / self.work_size[1])

    @cached_property
    def boxes(self) -> np.ndarray:
        """(N, 4) int64 tile boxes ``(x0, y0, x1, y1)`` in working pixels, x1/y1 exclusive,
        in raster order (rows top to bottom)."""
        th, tw = self.tile
        ys = tile_starts(self.work_size[0], th, self.overlap)
        xs = tile_starts(self.work_size[1], tw, self.overlap)
        y0, x0 = (a.ravel() for a in np.meshgrid(ys, xs, indexing="ij"))
        return np.stack([x0, y0, x0 + tw, y0 + th], axis=1)

    @property
    def count(self) -> int:
        return len(self.boxes)

    @cached_property
    def source_boxes(self) -> np.ndarray:
        """:attr:`boxes` in source pixels (N, 4) int64, the last row/column flush with the
        source frame's edge."""
        return self.to_source(self.boxes)

    def to_source(self, boxes: np.ndarray) -> np.ndarray:
        """(..., 4) ``(x0, y0, x1, y1)`` boxes in working pixels -> source pixels (int64,
        rounded, clipped to the frame)."""
        sy, sx = self.scale
        b = np.asarray(boxes, dtype=np.float64) * np.array([sx, sy, sx, sy])
        out = np.round(b).astype(np.int64)
        h, w = self.source_size
        return np.clip(out, 0, np.array([w, h, w, h]))
