"""Motion gating: which frames (or tiles) are still enough to skip the learned models.

Two stages. The change stage (:func:`change_levels`, :class:`ChangeStage`) reads only the
decoded frames and lets a still stretch skip its flow once the motion stage has verified
it. The motion stage's statistic is the one the ``motion`` baseline stream already
computes: the flow into a frame, reduced to its worst patch
(:func:`raystack.scoring.motion_scores`). Here it
is expressed as the worst patch's RMS flow length in pixels of the frame the model sees, so the
*floor* reads as a physical quantity (``0.3`` px: nothing in the frame moved more than a
third of a pixel between the two frames scored):

    stat = motion_px(flows, boxes)            # (n, N) px: n target frames, N tiles
    gated = gate_mask(stat, floor_px=0.3)     # True where the learned models are skipped
    floor = calibrate_floor(normal_stats)     # a low quantile over normal footage
    stage = ChangeStage(diff_floor, patch=16, verify=lambda flow: ...)  # one per unit
    flows, still = stage.flow(frames_u8, flow_fn)  # still pairs: zero flow, not computed

``motion`` PSNR and the px statistic are the same number in two units
(:func:`px_from_motion_psnr`): the motion stream's ``10 log10(1 / mse)`` with mse the
patch-mean of ``(flow / 2)^2`` in model range (``px / FLOW_SCALE``).

Gated frames still get the baseline streams (they are computed anyway); a learned stream's
gated row is written with ``gated = true`` and the score of its trivial answer
(:func:`trivial_psnr`; in a tiled scan per tile, :func:`trivial_tiles`, so a frame's worst
and mean tile cover the same tiles gated or not), and ``normalised()`` gives it anomaly 0
(docs/evaluation.md#motion-gating-and-stride).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

# Where a checkpoint keeps its calibrated floor: extra[GATE_KEY] = {"floor_px": ..., ...}.
GATE_KEY = "gate"
# Default quantile of the normal frames' statistic the floor is set at: almost no normal
# frame with motion in it falls below it, frames stiller than every normal one do.
FLOOR_QUANTILE = 0.01
# Frame pairs :func:`change_levels` handles per call: bounds its float32 scratch.
_CHANGE_BLOCK = 64


def px_from_motion_psnr(psnr_db: np.ndarray | float) -> np.ndarray:
    """Worst-patch RMS flow in px from ``motion`` PSNR in dB (high PSNR = still)."""
    from raystack.flow import FLOW_SCALE

    # mse = mean over both channels of (flow_mr / 2)^2 = 10^(-psnr/10), so the RMS of the
    # flow vector's length is 2 sqrt(2) 10^(-psnr/20) in model range, x FLOW_SCALE in px.
    return 2.0 * np.sqrt(2.0) * FLOW_SCALE * np.power(10.0, -np.asarray(psnr_db,
                                                                      np.float64) / 20.0)


def motion_px(flows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The gate statistic of every (frame, tile): worst-patch RMS flow in px.

    Args:
        flows: model-range float (n, 2, H, W), the flow INTO each of the n target frames.
        boxes: (N, 4) int tile boxes ``(x0, y0, x1, y1)`` in the flows' pixels (one box
            covering the frame for whole-frame scoring).

    Returns:
        float32 (n, N).
    """
    import torch

    from raystack.scoring import motion_scores

    flows = np.asarray(flows, np.float32)
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    out = np.empty((len(flows), len(boxes)), np.float32)
    if len(flows) == 0:
        return out
    t = torch.from_numpy(np.ascontiguousarray(flows))
    with torch.inference_mode():
        for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            psnr, _ = motion_scores(t[:, :, y0:y1, x0:x1])
            out[:, k] = px_from_motion_psnr(psnr.numpy())
    return out


def change_levels(frames_u8: np.ndarray, patch: int) -> np.ndarray:
    """The gate's first, flow-free statistic: how much each frame changed from the one
    before it, as the worst ``patch`` x ``patch`` window's RMS difference in 8-bit levels.

    The windows are those of the ``diff`` baseline and the worst-patch scores (stride
    ``patch // 2``, the remainder at the right and bottom edges left out), taken over the
    whole frame: a frame below the floor has no window, so no tile, that changed.

    Args:
        frames_u8: uint8 (T, H, W, C) consecutive frames at the model's pixel scale.
        patch: window side in pixels (:func:`raystack.scoring.patch_size_for`).

    Returns:
        float32 (T - 1,): the change into frames 1 .. T-1.
    """
    import cv2

    frames = np.asarray(frames_u8)
    if frames.ndim != 4 or frames.dtype != np.uint8:
        msg = f"change_levels: need uint8 (T, H, W, C) frames, got {frames.dtype} {frames.shape}"
        raise ValueError(msg)
    t, h, w, c = frames.shape
    out = np.zeros(max(t - 1, 0), np.float32)
    p = max(2, min(int(patch), h, w)) // 2 * 2  # even: a window is 2 x 2 half-windows
    s = p // 2
    ny, nx = h // s, w // s
    if t < 2 or ny < 2 or nx < 2:
        return out
    # OpenCV's saturating uint8 kernels: ~6x cheaper than the same in numpy float32, so
    # the check costs a small share of the flow it saves (bench/gate_cost_bench.py). A
    # block of frames goes through each kernel in one call, stacked as one tall image: on
    # a still stretch the per-frame calls cost as much as the arithmetic.
    crop = frames[:, : ny * s, : nx * s]
    for a in range(0, t - 1, _CHANGE_BLOCK):
        b = min(a + _CHANGE_BLOCK, t - 1)
        k = b - a
        cur = np.ascontiguousarray(crop[a + 1 : b + 1]).reshape(k * ny * s, nx * s * c)
        prev = np.ascontiguousarray(crop[a:b]).reshape(k * ny * s, nx * s * c)
        d = cv2.absdiff(cur, prev)
        sq = cv2.multiply(d, d, dtype=cv2.CV_32F).reshape(k * ny * s, nx * s, c)
        # s x s block means: the integer factor keeps every block inside one frame
        half = cv2.resize(sq, (nx, k * ny), interpolation=cv2.INTER_AREA)
        half = half.reshape(k, ny, nx, -1).sum(axis=-1)
        win = half[:, :-1, :-1] + half[:, 1:, :-1] + half[:, :-1, 1:] + half[:, 1:, 1:]
        out[a:b] = np.sqrt(win.max(axis=(1, 2)) / (4 * c))
    return out


class ChangeStage:
    """The gate's first stage over one video's frame pairs, in order: which pairs need no
    flow, because the frame did not change enough to move.

    A pair is still, and its flow is neither computed nor needed, when its change
    (:func:`change_levels`) is at most that of a pair the motion stage has just verified
    still from its flow, in the same still stretch, and below ``floor`` (the calibrated
    least change of a normal frame the motion stage scores). So a stretch starts with the
    motion stage's verdict on real flow; the frames after it skip flow only while they
    change no more than a frame of the same scene that the flow showed still. The first
    frame that changes more gets its flow again (and, moving, ends the stretch). A change
    statistic alone, against a floor, gated frames the flow would have scored: slow or
    distant movers change few pixels (docs/evaluation.md#motion-gating-and-stride).

    Args:
        floor: the change floor in 8-bit levels (``extra["gate"]["diff_floor"]``).
        patch: window side of :func:`change_levels` at the frames' scale.
        verify: model-range flow (1, 2, H, W) of one pair -> whether the motion stage gates
            the frame (every tile of it below the motion floor).
    """

    def __init__(self, floor: float, patch: int,
                 verify: Callable[[np.ndarray], bool]) -> None:
        self.floor = float(floor)
        self.patch = int(patch)
        self.verify = verify
        self.level: float | None = None  # the stretch's largest verified still change

    def flow(self, frames_u8: np.ndarray, flow: Callable[[np.ndarray], np.ndarray],
             out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(flows, still) of the consecutive ``frames_u8`` (T, H, W, 3): model-range flows
        (T-1, 2, H, W), zero where ``still`` (T-1,) says the pair was not flowed.

        ``out``: float32 zeros (T-1, 2, H, W) the flows are written into and returned (the
        scan's chunk buffer); allocated when None. Still pairs are never written, so on a
        still stretch the buffer's pages are never touched."""
        change = change_levels(frames_u8, self.patch)
        n = len(change)
        still = np.zeros(n, bool)
        shape = (n, 2, *frames_u8.shape[1:3])
        if out is None:
            out = np.zeros(shape, np.float32)
        elif out.shape != shape:
            msg = f"ChangeStage.flow: out must be {shape}; got {out.shape}"
            raise ValueError(msg)
        i = 0
        while i < n:
            if self.level is not None and change[i] <= self.level:
                still[i] = True
                i += 1
                continue
            # Pairs at or above the floor can never start a stretch: flow them in one call.
            j = i + 1
            if change[i] >= self.floor:
                while j < n and change[j] >= self.floor:
                    j += 1
            f = flow(frames_u8[i : j + 1])
            out[i:j] = f
            if change[j - 1] < self.floor and self.verify(f[-1:]):
                self.level = max(self.level or 0.0, float(change[j - 1]))
            else:
                self.level = None
            i = j
        return out, still


def gate_mask(stat_px: np.ndarray, floor_px: float | None) -> np.ndarray:
    """True where the statistic is below the floor (still: skip the learned models);
    all False without a floor (gating off)."""
    stat_px = np.asarray(stat_px)
    if floor_px is None:
        return np.zeros(stat_px.shape, bool)
    return stat_px < float(floor_px)


def calibrate_floor(stats_px: np.ndarray, quantile: float = FLOOR_QUANTILE) -> float:
    """The floor from the statistic over normal frames: its ``quantile`` (a low one).

    Raises:
        ValueError: no finite statistic to calibrate on, or a quantile outside (0, 0.5].
    """
    if not 0 < quantile <= 0.5:
        msg = f"gate floor quantile {quantile}: choose a low quantile in (0, 0.5]"
        raise ValueError(msg)
    x = np.asarray(stats_px, np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        msg = "gate floor: no normal frame to calibrate on"
        raise ValueError(msg)
    return float(np.quantile(x, quantile))


def trivial_psnr(stream: str, prev: np.ndarray, cur: np.ndarray, flow: np.ndarray | None,
                 region: str = "frame", normal: np.ndarray | None = None) -> np.ndarray:
    """What a gated frame's learned-stream row is stored with: the PSNR of the stream's
    trivial answer at that frame, in the stream's score region.

    The trivial answers are the ones training validates against (``train/metrics.py``):
    copying the last frame for a frame predictor (``fp``, ``m2s2l_app``), zero flow for
    ``fr``, a zero difference for ``m2s2l_mot``. On a still frame they are as good as a
    prediction gets (only sensor noise is left), so the estimate sits at the top of the
    model's own scale, where the ungated scan put those frames too.

    Args:
        prev, cur: float (k, H, W, 3) in [-1, 1]: the frame before each gated frame, and it.
        flow: model-range float (k, 2, H, W), the flow into each (needed for ``fr``).
        region: ``"frame"``, ``"patch"`` or ``"calibrated"``, as the scan scores.
        normal: ``"calibrated"`` only: (k, oh, ow) the stream's normal window errors of
            each sample's tile (:mod:`raystack.normal_error`).

    Returns:
        float32 (k,).
    """
    import torch

    from raystack.scoring import calibrated_scores, region_psnr, region_windows

    p = torch.from_numpy(np.ascontiguousarray(prev, np.float32)).permute(0, 3, 1, 2)
    c = torch.from_numpy(np.ascontiguousarray(cur, np.float32)).permute(0, 3, 1, 2)
    if stream == "fr":
        target = torch.from_numpy(np.ascontiguousarray(flow, np.float32))
        pred = torch.zeros_like(target)
    elif stream == "m2s2l_mot":  # M2S2L's motion decoder predicts (I_i - I_{i-1}) / 2
        target = (c - p) / 2
        pred = torch.zeros_like(target)
    else:
        pred, target = p, c
    with torch.inference_mode():
        if region == "calibrated":
            if normal is None:
                msg = f"trivial_psnr({stream!r}): a calibrated score needs the normal references"
                raise ValueError(msg)
            windows = region_windows(pred, target)
            ref = torch.from_numpy(np.ascontiguousarray(normal, np.float32))
            return calibrated_scores(windows, ref, tuple(pred.shape[-2:]))[0].numpy().astype(
                np.float32)
        return region_psnr(pred, target, region).numpy().astype(np.float32)


def trivial_tiles(stream: str, frames: np.ndarray, flows: np.ndarray | None,
                  boxes: np.ndarray, gated: np.ndarray, region: str = "frame",
                  normal: np.ndarray | None = None, still: np.ndarray | None = None
                  ) -> np.ndarray:
    """:func:`trivial_psnr` of every gated (target, tile), each on its own tile.

    Args:
        frames: float (T, H, W, 3) in [-1, 1], the n targets last (a scan chunk).
        flows: model-range float (T-1, 2, H, W), ``flows[i]`` from frame i to i+1; needed
            for ``fr``.
        boxes: (N, 4) int tile boxes ``(x0, y0, x1, y1)`` in the frames' pixels, all one size.
        gated: (n, N) bool, the tiles to score.
        normal: ``"calibrated"``: (N, oh, ow) the stream's normal window errors per tile.
        still: (T-1,) bool, the pairs the change stage left with zero flow
            (``Chunk.still``); None: none.

    Returns:
        float32 (n, N): the trivial answer's PSNR on the gated tiles, NaN elsewhere.
    """
    gated = np.asarray(gated, bool)
    out = np.full(gated.shape, np.nan, np.float32)
    pairs = np.argwhere(gated)  # row-major, the order out[gated] assigns in
    if not len(pairs):
        return out
    idx = pairs[:, 0] + len(frames) - gated.shape[0]
    cuts = [(int(i), *(int(v) for v in boxes[t])) for i, t in zip(idx, pairs[:, 1], strict=True)]
    work = np.ones(len(cuts), bool)  # the cuts trivial_psnr is computed on
    shared = None  # the one zero-flow cut whose answer every zero-flow cut takes
    if stream == "fr" and flows is not None and still is not None and region != "calibrated":
        # Zero flow (a frame the change stage gated) is scored perfectly by zero flow: the
        # same number on every such tile, so it is computed once.
        zero = np.asarray(still, bool)[idx - 1]
        if zero.any():
            shared = int(np.flatnonzero(zero)[0])
            work = ~zero
            work[shared] = True
    sel = [c for c, w in zip(cuts, work, strict=True) if w]
    prev = np.stack([frames[i - 1, y0:y1, x0:x1] for i, x0, y0, x1, y1 in sel])
    cur = np.stack([frames[i, y0:y1, x0:x1] for i, x0, y0, x1, y1 in sel])
    flow = None if flows is None else np.stack(
        [flows[i - 1, :, y0:y1, x0:x1] for i, x0, y0, x1, y1 in sel])
    ref = None if normal is None else np.asarray(normal)[pairs[work, 1]]
    values = np.empty(len(cuts), np.float32)
    values[work] = trivial_psnr(stream, prev, cur, flow, region, ref)
    if shared is not None:
        values[~work] = values[shared]
    out[gated] = values
    return out


def fill_trivial_tiles(scores: dict[str, Any], streams: Iterable[str], frames: np.ndarray,
                       flows: np.ndarray | None, boxes: np.ndarray, gated: np.ndarray,
                       region: str = "frame", normal: dict[str, np.ndarray] | None = None,
                       still: np.ndarray | None = None) -> dict[str, Any]:
    """``scores`` (stream -> (n, N) StreamScores of a tiled chunk) with the gated tiles of
    ``streams`` (the learned ones, which skipped them) scored by :func:`trivial_tiles`
    (calibrated against ``normal[stream]`` under ``region="calibrated"``; ``still`` the
    chunk's zero-flow pairs, as there)."""
    out = dict(scores)
    for s in streams:
        same = same_as_baseline(s, region)
        if same in scores:  # computed already, tile for tile: the baseline's own score
            fill = np.where(gated, np.asarray(scores[same].psnr, np.float32), np.nan)
        else:
            ref = None if normal is None else normal[s]
            fill = trivial_tiles(s, frames, flows, boxes, gated, region, ref, still)
        psnr = np.where(np.isnan(fill), out[s].psnr, fill).astype(np.float32)
        out[s] = dataclasses.replace(out[s], psnr=psnr)
    return out


def same_as_baseline(stream: str, region: str) -> str | None:
    """The baseline stream whose score is ``stream``'s trivial answer in ``region``, or None.

    Copying the last frame is ``diff``'s prediction, in the scan's region; zero flow is
    ``motion``'s, whose score is always the worst patch, so ``fr`` matches it under
    ``"patch"`` only. Calibrated scores divide by each stream's own references: none match.
    """
    if region not in ("frame", "patch"):
        return None
    if stream in ("fp", "m2s2l_app"):
        return "diff"
    if stream == "fr" and region == "patch":
        return "motion"
    return None
