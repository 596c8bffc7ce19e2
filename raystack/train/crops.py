"""Training on tiles: the working size, random crop positions, and the checkpoint's tiling.

A tiled scan scores tiles of the model's ``img_size`` over each frame downscaled by
``tile_scale`` (the working size, :class:`raystack.tiles.TileGrid`: 0 = the automatic scale,
a 360-px working height; frames smaller than a tile are upscaled to fill it). Training with
``tiles = true`` sees the same: frames decoded at the grid's working size, and a crop of
``img_size`` at a random position, the same for every frame (and flow) of one clip. Flows
are computed on the working-size frames, so their pixels are working-size pixels, as the
tiled scan gives the FR model.

Crop positions are a pure function of ``(seed, epoch, sample)``: a resumed run, another
worker count or another batch order draws the same crop for the same clip. Validation uses
epoch 0 for every epoch, so its loss compares across epochs.

The checkpoint records the tiling (:mod:`raystack.models.tiling`), so a scan with other
tiling warns.

    working_size(1920, 1080, 2.0, tile=(128, 128))      # (960, 540)
    crop_origin(0, 3, 17, space=(540, 960), crop=(256, 256))  # (y0, x0)
"""

from __future__ import annotations

import numpy as np


def working_size(width: int, height: int, scale: float, *, tile: tuple[int, int]
                 ) -> tuple[int, int]:
    """``(width, height)`` the tiled scan decodes a ``width x height`` source at, for tiles
    of ``tile`` = (H, W) and ``scale`` (0 = automatic): the same :class:`TileGrid`."""
    from raystack.tiles import TileGrid

    h, w = TileGrid.for_frame((height, width), tile=tile, scale=scale).work_size
    return w, h


def crop_origin(
    seed: int, epoch: int, sample: int, *, space: tuple[int, int], crop: tuple[int, int]
) -> tuple[int, int]:
    """Top-left ``(y0, x0)`` of a ``crop`` = (h, w) window inside ``space`` = (H, W).

    Uniform over every position the window fits at, drawn from ``(seed, epoch, sample)``.

    Raises:
        ValueError: the window does not fit.
    """
    (hh, ww), (h, w) = space, crop
    if h > hh or w > ww:
        msg = f"crop {h}x{w} does not fit in a {hh}x{ww} frame"
        raise ValueError(msg)
    rng = np.random.default_rng([int(seed), int(epoch), int(sample)])
    return int(rng.integers(0, hh - h + 1)), int(rng.integers(0, ww - w + 1))
