"""Calibrate the gate's two floors on the held-out normal frames of a training run, and
record them in the exported checkpoint (``extra["gate"]``) for ``raystack scan --gate``.

Each floor is a low quantile (:data:`raystack.gate.FLOOR_QUANTILE`) of its statistic over
the last ``val_fraction`` of every training video, decoded and flowed as the scan does:
below it lie only frames stiller than nearly every normal frame.

- ``floor_px``, the motion floor: :func:`raystack.gate.motion_px`, worst-patch RMS flow in
  px. With ``tiles`` it is taken per tile of the working frame, as a tiled scan gates, and
  each frame counts by its worst tile: a tile is gated when it moves less than the most
  moving tile of (nearly) every normal frame. A quantile over all tiles would sit below
  the sensor noise of an empty tile, since most tiles of normal footage are empty, and
  gate nothing (``bench/still_stretch_bench.py --tiles``: 0% of a still stretch).
- ``diff_floor``, the change floor: :func:`raystack.gate.change_levels`, the worst
  patch's RMS frame difference in 8-bit levels over the whole (working) frame, which a scan
  reads before computing any flow: a frame below it is gated without flow. It is the
  least change of any held-out frame the motion floor lets through to the models (not a
  quantile of its own: a 1% quantile of change gated frames the motion stage scores, and
  cost AUC), so on the calibration footage the change stage gates no frame that the
  motion stage would score.

A normal archive that is itself often still gives low floors that gate little: the floors
err towards scoring.

    record = calibrate_gate(cfg, sources, img_size=(128, 128))
    write_gate_record("runs/r1/fp.pt", record)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from raystack.gate import FLOOR_QUANTILE, GATE_KEY, calibrate_floor, change_levels, motion_px


def tile_boxes(size: tuple[int, int], tile: tuple[int, int]) -> np.ndarray:
    """(N, 4) boxes of ``tile`` (h, w) covering a ``size`` (H, W) frame, the last row and
    column flush with the edge (a frame smaller than a tile is one box of itself)."""
    (fh, fw), (th, tw) = size, tile
    th, tw = min(th, fh), min(tw, fw)
    ys = sorted({*range(0, fh - th + 1, th), fh - th})
    xs = sorted({*range(0, fw - tw + 1, tw), fw - tw})
    return np.array([[x, y, x + tw, y + th] for y in ys for x in xs], np.int64)


def calibrate_gate(cfg: Any, sources: list[Any], *, img_size: tuple[int, int],
                   quantile: float = FLOOR_QUANTILE) -> dict[str, Any]:
    """The gate record of a run: ``floor_px``, ``diff_floor`` and how they were found.

    Args:
        cfg: the run's ``TrainConfig`` (val_fraction, flow, flow_preset, tiles, tile_scale).
        sources: the training videos (``list_training_videos``).
        img_size: (H, W) of the model's input.

    Raises:
        ValueError: no held-out frame to calibrate on (val_fraction 0, videos too short).
    """
    from raystack.flow import flow_to_model_input
    from raystack.scoring import patch_size_for
    from raystack.train.data import decode_frames, make_flow

    estimator = make_flow(cfg.flow, cfg.flow_preset)
    stats, changes = [], []
    for src in sources:
        held = decode_frames(src, img_size, scale=cfg.tile_scale if cfg.tiles else None,
                             tail=(cfg.val_fraction, 0))
        if len(held) < 2:
            continue
        flows = flow_to_model_input(estimator(np.ascontiguousarray(held)))
        boxes = (tile_boxes(held.shape[1:3], img_size) if cfg.tiles
                 else np.array([[0, 0, held.shape[2], held.shape[1]]]))
        stats.append(motion_px(flows, boxes))  # (frames, tiles)
        changes.append(change_levels(held, patch_size_for(img_size)))
    if not stats:
        msg = (f"{cfg.archive}: no held-out frames to calibrate the gate on (val_fraction = "
               f"{cfg.val_fraction})")
        raise ValueError(msg)
    levels = np.concatenate(changes)
    values = np.concatenate(stats).max(axis=1)  # each frame's worst tile (whole: itself)
    floor = calibrate_floor(values, quantile)
    return {"floor_px": floor, "quantile": quantile,
            "frames": int(values.size), "median_px": float(np.median(values)),
            "statistic": "worst-patch RMS flow, px at the model input" + (
                " (per tile; quantile of each frame's worst tile)" if cfg.tiles else ""),
            "flow": cfg.flow, "flow_preset": cfg.flow_preset,
            "diff_floor": change_floor(levels, values >= floor),
            "diff_median": float(np.median(levels)),
            "diff_statistic": "worst-patch RMS frame difference, 8-bit levels at the model's "
                              "pixel scale, over the whole frame"}


def change_floor(levels: np.ndarray, scored: np.ndarray) -> float | None:
    """The change floor: the least change (``levels``, per frame) of the frames the motion
    stage scores (``scored``); None (no change stage) when it scores none of them."""
    levels = np.asarray(levels, np.float64)[np.asarray(scored, bool)]
    levels = levels[np.isfinite(levels)]
    return float(levels.min()) if levels.size else None


def write_gate_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Rewrite the checkpoint at ``path`` with ``record`` as ``extra["gate"]``, atomically."""
    from raystack.models.checkpoint import write_checkpoint_extra

    write_checkpoint_extra(path, GATE_KEY, record)
