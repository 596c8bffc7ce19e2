"""Fit the camera's scene prior (:mod:`raystack.scene_prior`) on a training run's normal
frames and record it in every exported checkpoint (``extra["scene_prior"]``), for the
``presence`` stream of ``raystack scan``.

The frames are the training part of every video (before the held-out ``val_fraction``),
decoded as the scan decodes them: at the model's input size, or with ``tiles`` at the tiled
scan's working size, since the prior is a map of one camera's working frame. Its
persistence is that kind of frame's (``PERSIST`` tiled, ``WHOLE_FRAME_PERSIST`` whole). At most
:data:`MAX_FRAMES` frames in all are read, spread evenly over the videos from their starts.

    record = fit_scene_record(cfg, sources, img_size=(128, 128))
    write_checkpoint_extra("runs/r1/fp.pt", SCENE_KEY, record)
"""

from __future__ import annotations

from typing import Any

from raystack.scene_prior import PERSIST, WHOLE_FRAME_PERSIST, fit_scene_prior

MAX_FRAMES = 2400


def fit_scene_record(cfg: Any, sources: list[Any], *, img_size: tuple[int, int],
                     max_frames: int = MAX_FRAMES) -> dict[str, Any]:
    """The scene prior record of a run.

    Args:
        cfg: the run's ``TrainConfig`` (val_fraction, tiles, tile_scale, archive).
        sources: the training videos (``list_training_videos``).
        img_size: (H, W) of the model's input.

    Raises:
        ValueError: no training frame, or videos of several working sizes (one camera size
            per prior).
    """
    from raystack.train.data import decode_frames

    per_video = max(8, max_frames // max(1, len(sources)))
    clips = []
    for src in sources:
        clip = decode_frames(src, img_size, scale=cfg.tile_scale if cfg.tiles else None,
                             head=(cfg.val_fraction, per_video))
        if len(clip):
            clips.append(clip)
    sizes = sorted({tuple(c.shape[1:3]) for c in clips})
    if len(sizes) > 1:
        msg = (f"{cfg.archive}: training videos decode to several working sizes {sizes}; a "
               "scene prior needs one camera size")
        raise ValueError(msg)
    persist = PERSIST if cfg.tiles else WHOLE_FRAME_PERSIST
    return fit_scene_prior(clips, persist=persist).to_record(tiles=bool(cfg.tiles))
