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

The checkpoint records the tiling in ``extra["tiling"]``: ``{"tiles": false}`` or
``{"tiles": true, "tile_scale": 2.0}``; checkpoints written before it are whole-frame.
A scan whose tiling differs from the checkpoint's is WARNED, not refused
(:func:`tiling_mismatch`): scores stay well defined (the model sees objects at another
scale than it learnt, so it is less sensitive), and crossing the two is a legitimate
experiment (whole-frame checkpoint scanned tiled, as the quality benchmark's control).

    working_size(1920, 1080, 2.0, tile=(128, 128))      # (960, 540)
    crop_origin(0, 3, 17, space=(540, 960), crop=(256, 256))  # (y0, x0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

TILING_KEY = "tiling"


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


def tiling_record(tiles: bool, tile_scale: float) -> dict[str, Any]:
    """What a checkpoint keeps of its training's tiling (``extra["tiling"]``)."""
    return {"tiles": True, "tile_scale": float(tile_scale)} if tiles else {"tiles": False}


def checkpoint_tiling(info: dict[str, Any]) -> dict[str, Any]:
    """The tiling a checkpoint was trained with; checkpoints without the record: whole-frame."""
    record = (info.get("extra") or {}).get(TILING_KEY)
    return dict(record) if isinstance(record, dict) else {"tiles": False}


def tiling_mismatch(info: dict[str, Any], *, tiles: bool, tile_scale: float) -> str | None:
    """A warning when a scan's tiling differs from the checkpoint's training, else None.

    Args:
        info: the checkpoint's info (``load_checkpoint``'s second value, or its payload).
        tiles, tile_scale: the scan's settings.
    """
    trained = checkpoint_tiling(info)
    name = info.get("path") or info.get("preset") or "checkpoint"
    if bool(trained.get("tiles")) != bool(tiles):
        how = "tiles" if trained.get("tiles") else "whole frames"
        now = "tiled" if tiles else "whole-frame"
        return (f"{name}: trained on {how}, used for a {now} scan: objects appear at another "
                "scale than it learnt; train with the scan's --tiles setting for best results")
    if tiles and abs(float(trained.get("tile_scale", tile_scale)) - float(tile_scale)) > 1e-6:
        return (f"{name}: trained on tiles at tile_scale {trained['tile_scale']}, scanned at "
                f"{tile_scale}: objects appear at another scale than it learnt")
    return None
