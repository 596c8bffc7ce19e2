"""The scene prior of a fixed camera, and the ``presence`` stream it scores: foreground where
normal footage (almost) never has any.

A frame predictor cannot see a person who stands still: a still person is the easiest thing
to predict. What makes a loiterer anomalous is *where* they are: in a flower bed, on a track,
at a door nobody uses. A fixed camera's normal footage says where people go, so
``raystack train`` fits, on the run's normal training frames at the scan's working size:

- ``background``: the per-pixel median of the frames (uint8 RGB);
- ``noise``: the per-pixel median absolute deviation from it (sensor noise, compression,
  flowers in the wind), the largest over the channels;
- ``occupancy``: per cell of ``cell`` x ``cell`` pixels, the mean share of the cell's pixels
  that are foreground in a normal frame.

A pixel is foreground when it differs from the background by more than
``THRESHOLD + NOISE_K * noise`` grey levels after a per-frame, per-channel gain (lighting
drift). A frame's cells then get ``ratio = share / (occupancy + EPS)``: near 1 where normal
foreground falls, up to ``1 / EPS`` for a person where nobody goes. The stream's score is
``-10 log10(1 + ratio)`` of the worst cell in each tile (high = normal, in dB like every
other stream), and its box is that cell.

It is learned from normal footage but is not a deep model, and it sees nothing that moves
where people normally move: it is reported beside the ``diff`` and ``motion`` baselines, and
the learned streams are fused with it, never replaced (docs/models.md, "The scene prior").

    prior = fit_scene_prior([clip_a, clip_b])        # uint8 (T, H, W, 3) normal clips
    ratio = presence_ratio(frames_u8, prior)         # (T, gh, gw)
    psnr, box = presence_scores(ratio, prior, boxes)  # (T, N), (T, N, 4) in tile pixels
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from raystack.scoring import BASELINE_STREAMS

PRESENCE_STREAM = "presence"
# The label-free streams a learned score stands beside (eval reports them; fusion 'auto'
# never picks them; schemas/sql/v3_fusion.sql auto_baselines() lists the same).
REFERENCE_STREAMS = (*BASELINE_STREAMS, PRESENCE_STREAM)
SCENE_KEY = "scene_prior"
RECORD_VERSION = 1
# Grey levels above the background a pixel must differ by, on top of NOISE_K x its noise.
THRESHOLD = 20.0
NOISE_K = 4.0
# Occupancy floor of the ratio: a cell normal footage never covers scores at most 1 / EPS.
EPS = 0.01
# Cells per working-frame width: 20 gives 16 px cells at a 320-px working width, about a
# distant person's width on a street camera.
CELLS_ACROSS = 20
# Frames the background and noise are medians of (spread over the clips); more only cost
# memory, and the median of a few hundred frames no longer moves.
BACKGROUND_FRAMES = 300


def cell_size(width: int) -> int:
    """The cell side in pixels for a working frame ``width`` pixels wide."""
    return max(2, round(int(width) / CELLS_ACROSS))


@dataclass(frozen=True)
class ScenePrior:
    """What normal footage of one camera looks like at one working size (module doc)."""

    background: np.ndarray  # (H, W, 3) uint8
    noise: np.ndarray  # (H, W) float32 grey levels
    occupancy: np.ndarray  # (gh, gw) float32 in [0, 1]
    cell: int
    frames: int = 0  # normal frames the occupancy is the mean over

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the working frames it describes."""
        return (int(self.background.shape[0]), int(self.background.shape[1]))

    def to_record(self, *, tiles: bool = False) -> dict[str, Any]:
        """The checkpoint record (``extra["scene_prior"]``): tensors and plain values, as a
        ``weights_only`` checkpoint holds them; ``tiles``: fitted on a tiled scan's working
        frames (else on whole frames at the model's size)."""
        import torch

        return {"version": RECORD_VERSION, "size": list(self.size), "cell": int(self.cell),
                "tiles": bool(tiles),
                "frames": int(self.frames), "threshold": THRESHOLD, "noise_k": NOISE_K,
                "eps": EPS,
                "background": torch.from_numpy(np.ascontiguousarray(self.background)),
                "noise": torch.from_numpy(np.ascontiguousarray(self.noise, np.float32)),
                "occupancy": torch.from_numpy(np.ascontiguousarray(self.occupancy, np.float32))}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str = "checkpoint") -> ScenePrior:
        """The prior of a checkpoint record.

        Raises:
            ValueError: a record of another version or inconsistent shapes (names ``where``).
        """
        if int(record.get("version", -1)) != RECORD_VERSION:
            msg = (f"{where}: scene prior record version {record.get('version')!r}; this "
                   f"raystack reads version {RECORD_VERSION} (retrain, or scan with --no-presence)")
            raise ValueError(msg)
        bg = np.asarray(record["background"], np.uint8)
        prior = cls(bg, np.asarray(record["noise"], np.float32),
                    np.asarray(record["occupancy"], np.float32), int(record["cell"]),
                    int(record.get("frames", 0)))
        if (bg.ndim != 3 or bg.shape[2] != 3 or prior.noise.shape != bg.shape[:2]
                or prior.occupancy.shape != grid_shape(prior.size, prior.cell)):
            msg = (f"{where}: scene prior record has inconsistent shapes (background "
                   f"{bg.shape}, noise {prior.noise.shape}, occupancy {prior.occupancy.shape})")
            raise ValueError(msg)
        return prior


def grid_shape(size: tuple[int, int], cell: int) -> tuple[int, int]:
    """(gh, gw) cells covering an (H, W) frame, the last row and column partial."""
    return (-(-int(size[0]) // cell), -(-int(size[1]) // cell))


def _gain(frames: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(T, 1, 1, 3) per-frame, per-channel brightness relative to the background: lighting
    drift (clouds, auto exposure) scales the whole frame and must not read as foreground."""
    med = np.median(frames.reshape(len(frames), -1, 3), axis=1)
    ref = np.maximum(np.median(background.reshape(-1, 3), axis=0), 1.0)
    return np.maximum(med / ref, 1e-3)[:, None, None, :].astype(np.float32)


def foreground(frames: np.ndarray, background: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: pixels of uint8 ``frames`` (T, H, W, 3) that differ from the
    background by more than the threshold, after the per-frame gain."""
    x = np.asarray(frames, np.float32)
    bg = np.asarray(background, np.float32)
    d = np.abs(x / _gain(x, bg) - bg).max(axis=-1)
    return d > (THRESHOLD + NOISE_K * np.asarray(noise, np.float32))


def cell_shares(mask: np.ndarray, cell: int) -> np.ndarray:
    """(T, gh, gw): the share of foreground pixels in each cell (partial cells: of their own
    pixels)."""
    t, h, w = mask.shape
    gh, gw = grid_shape((h, w), cell)
    pad = np.zeros((t, gh * cell, gw * cell), np.float32)
    pad[:, :h, :w] = mask
    count = np.zeros((gh * cell, gw * cell), np.float32)
    count[:h, :w] = 1.0
    sums = pad.reshape(t, gh, cell, gw, cell).sum(axis=(2, 4))
    return sums / count.reshape(gh, cell, gw, cell).sum(axis=(1, 3))


def fit_scene_prior(clips: Sequence[np.ndarray], *, cell: int | None = None,
                    background_frames: int = BACKGROUND_FRAMES) -> ScenePrior:
    """The prior of normal ``clips`` (uint8 (T, H, W, 3), one working size).

    Raises:
        ValueError: no frame, or clips of different sizes.
    """
    clips = [np.asarray(c, np.uint8) for c in clips if len(c)]
    if not clips:
        msg = "fit_scene_prior: no normal frames to fit the scene prior on"
        raise ValueError(msg)
    sizes = {c.shape[1:] for c in clips}
    if len(sizes) != 1 or next(iter(sizes))[2] != 3:
        msg = f"fit_scene_prior: clips must share one (H, W, 3) size; got {sorted(sizes)}"
        raise ValueError(msg)
    h, w = clips[0].shape[1:3]
    cell = cell_size(w) if cell is None else int(cell)
    total = sum(len(c) for c in clips)
    step = max(1, total // background_frames)
    sample = np.concatenate([c[::step] for c in clips])[:background_frames].astype(np.float32)
    background = np.median(sample, axis=0)
    noise = np.median(np.abs(sample - background), axis=0).max(axis=-1)
    background = np.clip(np.round(background), 0, 255).astype(np.uint8)
    del sample
    acc = np.zeros(grid_shape((h, w), cell), np.float64)
    for c in clips:
        for s in range(0, len(c), 64):  # bounded memory on long clips
            acc += cell_shares(foreground(c[s:s + 64], background, noise), cell).sum(axis=0)
    return ScenePrior(background, noise.astype(np.float32), (acc / total).astype(np.float32),
                      cell, total)


def presence_ratio(frames: np.ndarray, prior: ScenePrior) -> np.ndarray:
    """(T, gh, gw) each cell's foreground share over its normal occupancy (+ EPS) in uint8
    ``frames`` (T, H, W, 3) at the prior's working size.

    Raises:
        ValueError: frames of another size than the prior's (both named).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or tuple(frames.shape[1:3]) != prior.size:
        msg = (f"scene prior fitted on {prior.size[1]}x{prior.size[0]} frames; these are "
               f"{'x'.join(map(str, frames.shape[2:0:-1])) if frames.ndim == 4 else frames.shape}"
               " (scan at the training run's size and tiling, or with --no-presence)")
        raise ValueError(msg)
    shares = cell_shares(foreground(frames, prior.background, prior.noise), prior.cell)
    return shares / (prior.occupancy + EPS)


def presence_scores(ratio: np.ndarray, prior: ScenePrior, boxes: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per tile, the score of its worst cell and that cell's box.

    Args:
        ratio: (T, gh, gw) from :func:`presence_ratio`.
        prior: the prior it was computed with (cell size, frame size).
        boxes: (N, 4) tile boxes ``(x0, y0, x1, y1)`` in the working frame.

    Returns:
        ``-10 log10(1 + ratio)`` of the worst cell whose centre lies in each tile,
        float32 (T, N), and its box clipped to the tile, int32 (T, N, 4) in the tile's
        pixels (a tile holding no cell centre takes the cell under its own centre).
    """
    ratio = np.asarray(ratio, np.float32)
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    t, gh, gw = ratio.shape
    c = prior.cell
    h, w = prior.size
    cy = np.minimum(np.arange(gh) * c + c / 2, h - 0.5)
    cx = np.minimum(np.arange(gw) * c + c / 2, w - 0.5)
    psnr = np.zeros((t, len(boxes)), np.float32)
    box = np.zeros((t, len(boxes), 4), np.int32)
    flat = ratio.reshape(t, -1)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        rows = np.flatnonzero((cy >= y0) & (cy < y1))
        cols = np.flatnonzero((cx >= x0) & (cx < x1))
        if not len(rows):
            rows = np.array([min(int((y0 + y1) / 2) // c, gh - 1)])
        if not len(cols):
            cols = np.array([min(int((x0 + x1) / 2) // c, gw - 1)])
        idx = (rows[:, None] * gw + cols[None, :]).ravel()
        sub = flat[:, idx]
        arg = sub.argmax(axis=1)
        psnr[:, k] = -10.0 * np.log10(1.0 + sub[np.arange(t), arg])
        cell = idx[arg]
        gy, gx = cell // gw, cell % gw
        box[:, k, 0] = np.clip(gx * c, x0, x1) - x0
        box[:, k, 1] = np.clip(gy * c, y0, y1) - y0
        box[:, k, 2] = np.clip((gx + 1) * c, x0, x1) - x0
        box[:, k, 3] = np.clip((gy + 1) * c, y0, y1) - y0
    return psnr, box


def prior_from_checkpoints(checkpoints: Mapping[str, Mapping[str, Any]], *, tiles: bool = False,
                           img_size: tuple[int, int] | None = None) -> ScenePrior | None:
    """The scene prior recorded in the first of ``checkpoints`` (infos by stream, FP first
    when there is one) for this kind of scan: fitted on tiled working frames when ``tiles``,
    else on whole frames at ``img_size``; None when none fits. (A prior of the other kind
    describes other frames: a whole-frame scan of a tiled run scores without ``presence``,
    as its tiling warning says.)"""
    order = sorted(checkpoints, key=lambda s: (s != "fp", s))
    for s in order:
        record = (checkpoints[s].get("extra") or {}).get(SCENE_KEY)
        if not record or bool(record.get("tiles", False)) != bool(tiles):
            continue
        prior = ScenePrior.from_record(record, str(checkpoints[s].get("path", s)))
        if tiles or img_size is None or prior.size == tuple(img_size):
            return prior
    return None
