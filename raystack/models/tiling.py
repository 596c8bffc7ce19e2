"""The tiling a checkpoint was trained with, and the scan's warning when its own differs.

``raystack train`` records it in the checkpoint's ``extra["tiling"]``: ``{"tiles": false}``
or ``{"tiles": true, "tile_scale": 2.0}`` (0 = the automatic scale); checkpoints written
before it are whole-frame. A scan whose tiling differs is WARNED, not refused
(:func:`tiling_mismatch`): scores stay well defined (the model sees objects at another
scale than it learnt, so it is less sensitive), and crossing the two is a legitimate
experiment (a whole-frame checkpoint scanned tiled, as a benchmark's control). Scales are
compared as configured: automatic and an explicit scale that happens to equal it differ.

    tiling_mismatch(info, tiles=True, tile_scale=0.0)   # None, or the warning's text
"""

from __future__ import annotations

from typing import Any

TILING_KEY = "tiling"


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
