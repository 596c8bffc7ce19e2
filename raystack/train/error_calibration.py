"""Calibrate each stream's normal error per window on the held-out normal frames of a training
run, and record it in the exported checkpoint (``extra["normal_error"]``) for ``raystack scan
--score-region calibrated``.

A frame predictor's error is not the same everywhere on normal footage: it is high where
people enter the view, along busy paths and at a tile's border, and near zero on empty
ground. ``calibrated`` scores divide each window's error by what normal footage shows at
that window (:func:`raystack.scoring.calibrated_scores`), so the record holds, per stream
and per tile of the scan's grid, a reference for every window of the error map
(:func:`raystack.normal_error.window_references`).

The held-out frames are the last ``val_fraction`` of every training video, decoded and
flowed as the scan does (``tiles``: at the working size, in the scan's tile grid), scored
by the exported checkpoint itself and the ``diff``/``motion`` baselines, which a
calibrated scan calibrates the same way (the comparison stays like for like).

    records = calibrate_checkpoints(cfg, sources, ["runs/r1/fp.pt", "runs/r1/fr.pt"])
    write_checkpoint_extra("runs/r1/fp.pt", NORMAL_KEY, records["runs/r1/fp.pt"])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raystack.normal_error import QUANTILE, RECORD_VERSION, window_references
from raystack.scoring import BASELINE_STREAMS


def calibrate_normal_error(cfg: Any, sources: list[Any], checkpoint: str,
                           quantile: float = QUANTILE) -> dict[str, Any]:
    """The normal-error record of one exported checkpoint (:func:`calibrate_checkpoints`)."""
    return calibrate_checkpoints(cfg, sources, [checkpoint], quantile)[checkpoint]


def calibrate_checkpoints(cfg: Any, sources: list[Any], checkpoints: list[str],
                          quantile: float = QUANTILE) -> dict[str, dict[str, Any]]:
    """The normal-error record of each of a run's exported checkpoints, from one decode and
    one flow of the held-out frames: each record holds its own streams' references and the
    baselines'.

    Args:
        cfg: the run's ``TrainConfig`` (val_fraction, flow, flow_preset, tiles, tile_scale).
        sources: the training videos (``list_training_videos``).
        checkpoints: the exported checkpoints to calibrate (one input size, as a run's).

    Raises:
        ValueError: no held-out frame to calibrate on, or videos of several sizes in a
            tiled run (one tile grid per record).
    """
    from raystack.decode_base import to_model_range
    from raystack.flow import flow_to_model_input
    from raystack.inference import FrameScorer
    from raystack.tiles import DEFAULT_OVERLAP, TileGrid
    from raystack.train.data import decode_frames, make_flow

    scorer = FrameScorer.from_checkpoints(list(checkpoints), region="calibrated",
                                          device=getattr(cfg, "device", "auto"))
    size = scorer.img_size
    estimator = make_flow(cfg.flow, cfg.flow_preset)
    per_stream: dict[str, list[np.ndarray]] = {s: [] for s in scorer.streams}
    geometry: tuple[tuple[int, int], np.ndarray] | None = None
    for src in sources:
        clip = decode_frames(src, size, scale=cfg.tile_scale if cfg.tiles else None,
                             tail=(cfg.val_fraction, scorer.context))
        if len(clip) <= scorer.context:  # no held-out frame with its context before it
            continue
        work = tuple(int(v) for v in clip.shape[1:3])
        if cfg.tiles:  # the scan's grid: its boxes depend on the working size alone
            boxes = TileGrid(work, work, tuple(size), DEFAULT_OVERLAP).boxes
        else:
            boxes = np.array([[0, 0, size[1], size[0]]])
        if geometry is not None and (geometry[0] != work or not np.array_equal(geometry[1], boxes)):
            msg = (f"{cfg.archive}: training videos decode to several working sizes "
                   f"({geometry[0]} and {work}); calibrated scores need one camera size")
            raise ValueError(msg)
        geometry = (work, boxes)
        flows = flow_to_model_input(estimator(np.ascontiguousarray(clip)))
        out = scorer.score_tiles(to_model_range(clip), flows, boxes)
        for s in scorer.streams:
            per_stream[s].append(out[s].windows)
    if geometry is None or not any(len(v) for v in per_stream.values()):
        msg = (f"{cfg.archive}: no held-out frames to calibrate normal errors on "
               f"(val_fraction = {cfg.val_fraction})")
        raise ValueError(msg)
    refs = {s: window_references(np.concatenate(v), quantile).tolist()
            for s, v in per_stream.items()}
    common = {"version": RECORD_VERSION, "quantile": quantile,
              "floor": "median of the quantiles",
              "frames": int(sum(len(a) for a in per_stream[scorer.streams[0]])),
              "img_size": list(size), "work_size": list(geometry[0]),
              "boxes": geometry[1].tolist()}
    # A checkpoint carries only its own streams (and the baselines): combined later with
    # another run's model, it must not bring references of a model it was not.
    own = set(BASELINE_STREAMS)
    return {str(info["path"]): {**common, "references": {
                s: refs[s] for s in scorer.streams if s in own or s in scorer.models[task].streams}}
            for task, info in scorer.checkpoints.items()}
