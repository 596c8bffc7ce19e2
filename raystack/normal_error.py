"""Normal-error references of calibrated scores (``raystack scan --score-region calibrated``):
what a checkpoint records, how a scan finds the references of its tile grid, and the pure
reference math. ``raystack train`` computes them (:mod:`raystack.train.error_calibration`);
:func:`raystack.scoring.calibrated_scores` uses them.

    reference = q + median(q),  q = the QUANTILE of a window's error over held-out frames

    refs = references_for(scorer.checkpoints, boxes, work_size)   # {stream: (N, oh, ow)}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

NORMAL_KEY = "normal_error"
# The level normal footage reaches at a window now and then; how this form was picked, and
# how little six validation videos could separate it from others: docs/models.md,
# "Calibrated scores, measured".
QUANTILE = 0.99
RECORD_VERSION = 1


def window_references(errors: np.ndarray, quantile: float = QUANTILE) -> np.ndarray:
    """(N, oh, ow) references of window errors (frames, N, oh, ow) of normal footage: the
    ``quantile`` over frames of each window, plus the median of those quantiles."""
    errors = np.asarray(errors, np.float64)
    if errors.ndim != 4 or len(errors) == 0:
        msg = f"window_references: need (frames, N, oh, ow) errors, >= 1 frame; got {errors.shape}"
        raise ValueError(msg)
    q = np.quantile(errors, quantile, axis=0)
    return (q + np.median(q)).astype(np.float32)


def check_recorded(checkpoints: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse, naming them, checkpoints (infos by stream) that record no normal errors.

    Raises:
        ConfigError: a checkpoint was trained before calibrated scores, or not by
            ``raystack train``.
    """
    from raystack.errors import ConfigError

    missing = [str(i.get("path", s)) for s, i in checkpoints.items()
               if not (i.get("extra") or {}).get(NORMAL_KEY)]
    if missing:
        msg = (f"--score-region calibrated: checkpoint {', '.join(missing)} records no normal "
               "errors (trained before calibrated scores, or not by `raystack train`); rerun "
               "`raystack train` with that run's name and settings (a finished run is only "
               "re-exported, with the calibration), or scan with --score-region patch")
        raise ConfigError(msg)


def references_for(checkpoints: Mapping[str, Mapping[str, Any]], boxes: np.ndarray,
                   work_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per stream, the (N, oh, ow) references the checkpoints recorded for tiles ``boxes`` of
    a ``work_size`` (H, W) frame: the learned streams from their own checkpoint, the
    baselines from the first that matches.

    Raises:
        ConfigError: a checkpoint records none, or none for this tile grid (names the
            checkpoint and the sizes).
    """
    from raystack.errors import ConfigError

    out: dict[str, np.ndarray] = {}
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    work = [int(v) for v in work_size]
    check_recorded(checkpoints)
    for stream, info in checkpoints.items():
        record = info["extra"][NORMAL_KEY]
        path = info.get("path", stream)
        if record["work_size"] != work or not np.array_equal(
                np.asarray(record["boxes"], np.int64).reshape(-1, 4), boxes):
            msg = (f"--score-region calibrated: checkpoint {path} was calibrated on "
                   f"{record['work_size'][1]}x{record['work_size'][0]} frames in "
                   f"{len(record['boxes'])} tiles, this video is scored at {work[1]}x{work[0]} "
                   f"in {len(boxes)}: calibrate on footage of this camera (same size and "
                   "--tile-scale), or scan with --score-region patch")
            raise ConfigError(msg)
        for s, ref in record["references"].items():
            out.setdefault(s, np.asarray(ref, np.float32))
    return out
