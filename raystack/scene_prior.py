"""The scene prior of a fixed camera, and the ``presence`` stream it scores: foreground that
stays where normal footage (almost) never holds any.

A frame predictor cannot see a person who stands still: a still person is the easiest thing
to predict. What makes a loiterer anomalous is *where* they are: in a flower bed, on a track,
at a door nobody uses. A fixed camera's normal footage says where people go, so
``raystack train`` fits, on the run's normal training frames at the scan's working size:

- ``background``: the per-pixel median of the frames (uint8 RGB);
- ``noise``: the per-pixel median absolute deviation from it (sensor noise, compression,
  flowers in the wind), the largest over the channels;
- ``exceed``: per cell of ``cell`` x ``cell`` pixels and per share level of :data:`LEVELS`,
  the fraction of normal frames in which the cell's foreground share stayed at or above
  that level for the last ``persist`` frames (its *persistent* share: the smallest over
  those frames; :data:`PERSIST` for a new prior, the record's own for a recorded one).
  ``occupancy`` (the mean share) is kept for reading, not for scoring.

A pixel is foreground when it differs from the background by more than
``THRESHOLD + NOISE_K * noise`` grey levels after a per-frame, per-channel gain (lighting
drift). A frame's cell then gets ``p``, the normal fraction at the largest level its
persistent share reaches (1 below the first level; at least ``1 / (frames + 1)``), and the
stream's score is ``10 log10 p`` of the worst cell in each tile: 0 dB where normal footage
does the same, down to ``-10 log10(frames + 1)`` for someone standing where nobody ever
stands (high = normal, in dB like every other stream). Its box is that cell. A walker
crossing a cell nobody else crosses holds it for well under a second and is not
persistent; a car parked on the road is, when the road is usually empty.

It is learned from normal footage but is not a deep model, and it sees nothing that moves
where people normally move: it is reported beside the ``diff`` and ``motion`` baselines, and
the learned streams are fused with it, never replaced (docs/models.md, "The scene prior").

    prior = fit_scene_prior([clip_a, clip_b])           # uint8 (T, H, W, 3) normal clips
    tail = presence_tail(frames_u8, prior)              # (T - prior.persist + 1, gh, gw): p
    psnr, box = presence_scores(tail, prior, boxes)     # (.., N), (.., N, 4) in tile pixels
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
# Frames a cell's foreground must persist in a new prior of a tiled scan's working frame:
# about a second at 25 fps. There a walker holds a distant cell (a person's width) for a
# third of a second or more, so 8 frames took walkers a little off the usual paths for
# people standing there; 24 was chosen on the tiled validation archive. Whole frames at
# the model's input size keep 8, which their validation archive preferred (docs/models.md,
# "How long foreground must stay"). A recorded prior keeps the persistence it was fitted
# with.
PERSIST = 24
WHOLE_FRAME_PERSIST = 8
# Share levels the normal tail fractions are kept at.
LEVELS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8)
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
    occupancy: np.ndarray  # (gh, gw) float32 in [0, 1]: mean share (for reading)
    exceed: np.ndarray  # (gh, gw, len(LEVELS)) float32: normal tail fractions
    cell: int
    frames: int = 0  # normal frames the fractions are over
    persist: int = PERSIST  # frames a share must hold to count (the fractions' own)

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
                "persist": int(self.persist), "levels": list(LEVELS),
                "background": torch.from_numpy(np.ascontiguousarray(self.background)),
                "noise": torch.from_numpy(np.ascontiguousarray(self.noise, np.float32)),
                "occupancy": torch.from_numpy(np.ascontiguousarray(self.occupancy, np.float32)),
                "exceed": torch.from_numpy(np.ascontiguousarray(self.exceed, np.float32))}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str = "checkpoint") -> ScenePrior:
        """The prior of a checkpoint record.

        Raises:
            ValueError: a record of another version or inconsistent shapes (names ``where``).
        """
        if (int(record.get("version", -1)) != RECORD_VERSION
                or tuple(record.get("levels", ())) != LEVELS):
            msg = (f"{where}: scene prior record version {record.get('version')!r}; this "
                   f"raystack reads version {RECORD_VERSION} (retrain, or scan with --no-presence)")
            raise ValueError(msg)
        if int(record.get("persist", -1)) < 1:
            msg = (f"{where}: scene prior record has persistence {record.get('persist')!r}; "
                   "it must be at least 1 frame (retrain, or scan with --no-presence)")
            raise ValueError(msg)
        bg = np.asarray(record["background"], np.uint8)
        prior = cls(bg, np.asarray(record["noise"], np.float32),
                    np.asarray(record["occupancy"], np.float32),
                    np.asarray(record["exceed"], np.float32), int(record["cell"]),
                    int(record.get("frames", 0)), int(record["persist"]))
        grid = grid_shape(prior.size, prior.cell)
        if (bg.ndim != 3 or bg.shape[2] != 3 or prior.noise.shape != bg.shape[:2]
                or prior.occupancy.shape != grid
                or prior.exceed.shape != (*grid, len(LEVELS))):
            msg = (f"{where}: scene prior record has inconsistent shapes (background "
                   f"{bg.shape}, noise {prior.noise.shape}, occupancy {prior.occupancy.shape}, "
                   f"exceed {prior.exceed.shape})")
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
                    background_frames: int = BACKGROUND_FRAMES,
                    persist: int = PERSIST) -> ScenePrior:
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
    occ = np.zeros(grid_shape((h, w), cell), np.float64)
    exceed = np.zeros((*occ.shape, len(LEVELS)), np.float64)
    levels = np.asarray(LEVELS, np.float32)
    for c in clips:
        shares = clip_shares(c, background, noise, cell)
        occ += shares.sum(axis=0)
        held = persistent(shares, persist)
        exceed += (held[..., None] >= levels).sum(axis=0)
    return ScenePrior(background, noise.astype(np.float32), (occ / total).astype(np.float32),
                      (exceed / total).astype(np.float32), cell, total, int(persist))


def clip_shares(frames: np.ndarray, background: np.ndarray, noise: np.ndarray, cell: int
                ) -> np.ndarray:
    """(T, gh, gw) foreground shares of the cells of uint8 ``frames``, in bounded memory."""
    if not len(frames):
        return np.zeros((0, *grid_shape(frames.shape[1:3], cell)), np.float32)
    return np.concatenate([cell_shares(foreground(frames[s:s + 64], background, noise), cell)
                           for s in range(0, len(frames), 64)])


def persistent(shares: np.ndarray, k: int = PERSIST) -> np.ndarray:
    """(T, gh, gw): each cell's smallest share over its last ``k`` frames (fewer at the
    start of ``shares``)."""
    out = np.array(shares, np.float32, copy=True)
    for j in range(1, min(k, len(out))):
        np.minimum(out[j:], shares[:-j], out=out[j:])
    return out


def presence_tail(frames: np.ndarray, prior: ScenePrior) -> np.ndarray:
    """(T - persist + 1, gh, gw): for every frame of uint8 ``frames`` (T, H, W, 3) at the
    prior's working size that has ``prior.persist - 1`` frames before it, each cell's normal
    tail fraction ``p`` of its persistent share (module doc).

    Raises:
        ValueError: frames of another size than the prior's (both named), or fewer than
            ``prior.persist`` frames.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or tuple(frames.shape[1:3]) != prior.size:
        msg = (f"scene prior fitted on {prior.size[1]}x{prior.size[0]} frames; these are "
               f"{'x'.join(map(str, frames.shape[2:0:-1])) if frames.ndim == 4 else frames.shape}"
               " (scan at the training run's size and tiling, or with --no-presence)")
        raise ValueError(msg)
    k = int(prior.persist)
    if len(frames) < k:
        msg = f"presence_tail: needs at least {k} frames (the persistence); got {len(frames)}"
        raise ValueError(msg)
    held = persistent(clip_shares(frames, prior.background, prior.noise, prior.cell), k)
    return normal_tail(held[k - 1:], prior)


def normal_tail(held: np.ndarray, prior: ScenePrior) -> np.ndarray:
    """(T, gh, gw): the normal tail fraction ``p`` of persistent shares ``held`` (T, gh, gw):
    at the largest level each reaches, 1 below the first, at least ``1 / (frames + 1)``."""
    k = np.searchsorted(np.asarray(LEVELS, np.float32), held, side="right") - 1
    p = np.take_along_axis(prior.exceed[None], np.clip(k, 0, None)[..., None], axis=-1)[..., 0]
    p = np.where(k < 0, 1.0, p)
    return np.maximum(p, 1.0 / (prior.frames + 1)).astype(np.float32)


def presence_scores(tail: np.ndarray, prior: ScenePrior, boxes: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per tile, the score of its worst cell and that cell's box.

    Args:
        tail: (T, gh, gw) normal tail fractions from :func:`presence_tail`.
        prior: the prior it was computed with (cell size, frame size).
        boxes: (N, 4) tile boxes ``(x0, y0, x1, y1)`` in the working frame.

    Returns:
        ``10 log10 p`` of the worst (rarest) cell whose centre lies in each tile,
        float32 (T, N), and its box clipped to the tile, int32 (T, N, 4) in the tile's
        pixels (a tile holding no cell centre takes the cell under its own centre).
    """
    tail = np.asarray(tail, np.float32)
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    t, gh, gw = tail.shape
    c = prior.cell
    h, w = prior.size
    cy = np.minimum(np.arange(gh) * c + c / 2, h - 0.5)
    cx = np.minimum(np.arange(gw) * c + c / 2, w - 0.5)
    psnr = np.zeros((t, len(boxes)), np.float32)
    box = np.zeros((t, len(boxes), 4), np.int32)
    flat = tail.reshape(t, -1)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        rows = np.flatnonzero((cy >= y0) & (cy < y1))
        cols = np.flatnonzero((cx >= x0) & (cx < x1))
        if not len(rows):
            rows = np.array([min(int((y0 + y1) / 2) // c, gh - 1)])
        if not len(cols):
            cols = np.array([min(int((x0 + x1) / 2) // c, gw - 1)])
        idx = (rows[:, None] * gw + cols[None, :]).ravel()
        sub = flat[:, idx]
        arg = sub.argmin(axis=1)
        psnr[:, k] = 10.0 * np.log10(sub[np.arange(t), arg])
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
