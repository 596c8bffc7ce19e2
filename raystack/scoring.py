"""Pure scoring math of the evaluation protocol (docs/evaluation.md), free of Ray and models.

Shapes: ``psnr(pred, target)`` takes (B, C, H, W) tensors in [-1, 1] and returns (B,)
PSNR in dB; ``gaussian_smooth`` takes a 1-D array over the frames of one video. Per-video
normalisation and fusion have one definition, the SQL macros ``normalised()`` and
``fused()`` (schemas/sql/v3_query.sql), which ``raystack eval`` runs too; smoothing is
:func:`gaussian_smooth`, which SQL calls as ``rs_gaussian_smooth``.

    psnr(torch.zeros(2, 3, 8, 8), torch.full((2, 3, 8, 8), 0.1))  # -> tensor([26.0206, 26.0206])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only for the annotation: the query layer imports this module
    import torch  # and must not pay torch's ~1.4 s import for it

# An exact prediction would give an infinite PSNR; clamping the MSE caps it at 100 dB so
# per-video min-max normalisation stays finite.
MSE_FLOOR = 1e-10


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR of images in [-1, 1]: mapped to [0, 1], ``10 log10(1 / mse)`` over C*H*W."""
    if pred.shape != target.shape:
        msg = f"psnr: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}"
        raise ValueError(msg)
    import torch.nn.functional as F

    # (p - t) of the [0, 1] images is half the [-1, 1] difference, so a quarter of the
    # squared one. This runs on every frame of every scan, the diff baseline's included:
    # mse_loss squares in the one pass that subtracts (the same value and gradient as
    # squaring the half difference), and a mean over the dims, not over flatten(1), does
    # not copy the channels-last or windowed views the scan hands it.
    err = F.mse_loss(pred.float(), target.float(), reduction="none")
    mse = err.mean(dim=tuple(range(1, err.dim()))).mul_(0.25).clamp_min(MSE_FLOOR)
    return 10.0 * (1.0 / mse).log10()


def psnr_np(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`psnr` for (B, ...) arrays in [-1, 1]."""
    p = (np.asarray(pred, dtype=np.float64) + 1.0) * 0.5
    t = (np.asarray(target, dtype=np.float64) + 1.0) * 0.5
    mse = np.maximum(((p - t) ** 2).reshape(len(p), -1).mean(axis=1), MSE_FLOOR)
    return 10.0 * np.log10(1.0 / mse)


def gaussian_smooth(x: np.ndarray, sigma: float = 10.0) -> np.ndarray:
    """Temporal smoothing of one video's scores, exactly scipy's gaussian_filter1d.

    ``mode='mirror', truncate=4`` as the protocol fixes; ``sigma <= 0`` returns the input.
    (The public VADMamba code used cv2.GaussianBlur, whose 1-D meaning changed in OpenCV 5.)
    """
    from scipy.ndimage import gaussian_filter1d

    x = np.asarray(x, dtype=np.float64)
    if sigma <= 0 or x.size == 0:
        return x.copy()
    return gaussian_filter1d(x, sigma=sigma, mode="mirror", truncate=4.0)


# --- reductions of an error map, and the trivial baseline streams ---------------------

# Side of the square patch of :func:`patch_psnr` at a 256-pixel frame; it scales with the
# frame (16 px at 128), so a patch always covers about one walker's torso.
PATCH_AT_256 = 32
REGIONS = ("frame", "patch", "calibrated")


def patch_size_for(img_size: tuple[int, int]) -> int:
    """Patch side for a frame of ``img_size`` (H, W): :data:`PATCH_AT_256` scaled, >= 4."""
    return max(4, round(PATCH_AT_256 * min(img_size) / 256))


def patch_psnr(pred: torch.Tensor, target: torch.Tensor, patch: int) -> torch.Tensor:
    """Per-sample PSNR of the WORST ``patch`` x ``patch`` window (stride patch/2), in dB.

    The same mapping as :func:`psnr`; the mean squared error is taken over C and the
    window, and the largest window error of each sample gives its PSNR. A person doing
    something unusual covers a few percent of a frame, so whole-frame PSNR dilutes them in
    the sensor noise of everything else; the worst window does not.
    """
    pooled, _, _ = window_errors(pred, target, patch)
    return 10.0 * (1.0 / pooled.flatten(1).amax(dim=1).clamp_min(MSE_FLOOR)).log10()


# The box of a worst-patch score covers the windows connected to the worst one whose error
# is at least this share of its error: a car or a group spans several windows, and a box
# of the worst window alone would cover a tenth of it.
GROW = 0.5


def worst_patch(
    pred: torch.Tensor, target: torch.Tensor, patch: int, *, grow: float = GROW
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`patch_psnr` and where that worst window lies.

    Args:
        pred, target: (B, C, H, W) in [-1, 1].
        patch: window side in pixels (clipped to the frame), stride ``patch // 2``.
        grow: the box spans the windows 8-connected to the worst one whose error is at least
            ``grow`` times its error (1.0: the worst window alone, save exact ties).

    Returns:
        ``(psnr, box)``: (B,) float32 dB of the worst window and (B, 4) int64
        ``(x0, y0, x1, y1)`` of the region grown around it in the input's pixels, x1/y1
        exclusive. Ties for the worst window go to the first in raster order.
    """
    pooled, k, stride = window_errors(pred, target, patch)
    return worst_window(pooled[:, None], k, stride, grow=grow)


def window_errors(pred: torch.Tensor, target: torch.Tensor, patch: int
                  ) -> tuple[torch.Tensor, int, int]:
    """(B, oh, ow) mean squared error (over C and the window, in the PSNR's [0, 1] units) of
    every ``patch`` x ``patch`` window at stride ``patch // 2``, and the window side and
    stride used (the side clipped to the frame)."""
    import torch.nn.functional as F

    if pred.shape != target.shape or pred.dim() != 4:
        msg = (f"patch_psnr: pred {tuple(pred.shape)} and target {tuple(target.shape)} "
               "must both be (B, C, H, W)")
        raise ValueError(msg)
    err = ((pred.float() - target.float()) * 0.5).pow(2).mean(dim=1, keepdim=True)
    k = min(patch, *err.shape[-2:])
    stride = max(1, k // 2)
    return F.avg_pool2d(err, k, stride=stride)[:, 0], k, stride


def worst_window(pooled: torch.Tensor, k: int, stride: int, *, grow: float = GROW
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(psnr, box)`` of the largest window of ``pooled`` (B, 1, oh, ow): ``10 log10(1 /
    value)`` in dB and the region grown around it (:func:`worst_patch`)."""
    mse, idx = pooled.flatten(1).max(dim=1)
    box = grown_box(pooled, idx, mse * grow, k, stride)
    return 10.0 * (1.0 / mse.clamp_min(MSE_FLOOR)).log10(), box


def grown_box(pooled: torch.Tensor, idx: torch.Tensor, floor: torch.Tensor, k: int,
              stride: int) -> torch.Tensor:
    """(B, 4) pixel box of the windows of ``pooled`` (B, 1, oh, ow) that are 8-connected to
    window ``idx`` (B,) through windows of value >= ``floor`` (B,); windows are ``k`` px
    wide at ``stride``."""
    import torch
    import torch.nn.functional as F

    b, _, oh, ow = pooled.shape
    keep = pooled >= floor.view(b, 1, 1, 1)
    region = torch.zeros_like(keep)
    region.view(b, -1)[torch.arange(b), idx] = True
    for _ in range(oh * ow):  # flood fill, one ring a step; stops when nothing grows
        grown = F.max_pool2d(region.float(), 3, stride=1, padding=1).bool() & keep
        if torch.equal(grown, region):
            break
        region = grown
    rows, cols = region.any(dim=3)[:, 0], region.any(dim=2)[:, 0]  # (B, oh), (B, ow)
    r = torch.arange(oh, device=pooled.device)
    c = torch.arange(ow, device=pooled.device)
    y0 = torch.where(rows, r, oh).amin(1) * stride
    y1 = torch.where(rows, r, -1).amax(1) * stride + k
    x0 = torch.where(cols, c, ow).amin(1) * stride
    x1 = torch.where(cols, c, -1).amax(1) * stride + k
    return torch.stack([x0, y0, x1, y1], dim=1).long()


def region_psnr(pred: torch.Tensor, target: torch.Tensor, region: str = "frame") -> torch.Tensor:
    """:func:`psnr` (``region="frame"``, the papers' protocol) or :func:`patch_psnr`."""
    return region_scores(pred, target, region)[0]


def region_scores(
    pred: torch.Tensor, target: torch.Tensor, region: str = "frame"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`region_psnr` and, for ``region="patch"``, the worst patch's (B, 4) box
    (:func:`worst_patch`); the box is None for ``"frame"``, which has no location."""
    return region_outputs(pred, target, region)[:2]


def region_outputs(
    pred: torch.Tensor, target: torch.Tensor, region: str = "frame"
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(psnr, box, windows)`` of one error map, what a stream's scores are made of.

    ``"frame"``: whole-frame PSNR, no box, no windows. ``"patch"``: the worst patch and its
    box (:func:`worst_patch`). ``"calibrated"``: the (B, oh, ow) window errors
    (:func:`region_windows`), which ``FrameScorer`` turns into the calibrated score and its
    box, and meanwhile the uncalibrated worst window's PSNR without a box (the grown box of
    a window that calibration may not pick would be a flood fill for nothing).
    """
    if region == "frame":
        return psnr(pred, target), None, None
    if region == "patch":
        return (*worst_patch(pred, target, patch_size_for(tuple(pred.shape[-2:]))), None)
    if region == "calibrated":
        windows = region_windows(pred, target)
        worst = windows.flatten(1).amax(dim=1).clamp_min(MSE_FLOOR)
        return 10.0 * (1.0 / worst).log10(), None, windows
    msg = f"score region {region!r}: choose one of {REGIONS}"
    raise ValueError(msg)


def region_windows(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, oh, ow) window errors of :func:`window_errors` at the frame's patch size: what a
    ``region="calibrated"`` score is made of."""
    return window_errors(pred, target, patch_size_for(tuple(pred.shape[-2:])))[0]


def window_geometry(img_size: tuple[int, int]) -> tuple[int, int, tuple[int, int]]:
    """``(k, stride, (oh, ow))`` of :func:`region_windows` on a frame of ``img_size``."""
    h, w = (int(v) for v in img_size)
    k = min(patch_size_for((h, w)), h, w)
    stride = max(1, k // 2)
    return k, stride, ((h - k) // stride + 1, (w - k) // stride + 1)


def calibrated_scores(windows: torch.Tensor, normal: torch.Tensor, img_size: tuple[int, int]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``calibrated`` score: the worst window of the error RELATIVE to the error normal
    footage has at that place.

    A frame predictor errs most where normal footage is hard to predict: where people
    enter the view, along busy paths, at a tile's border. A worst-window score is then
    held by those places in every frame, and an unusual event where normal footage is
    quiet (a runner on an empty stretch, erratic turns, someone in a flower bed) must beat
    the busiest normal spot of the frame. Dividing each window's error by its normal
    reference (:mod:`raystack.normal_error`: a high quantile of that window's
    error over held-out normal frames, plus the median of those quantiles, so that nearly
    error-free places cannot turn noise into alarms) ranks windows by how unusual their
    error is for that place.

    Args:
        windows: (B, oh, ow) :func:`region_windows` errors.
        normal: (B, oh, ow) or (oh, ow) positive references of the same windows.
        img_size: (H, W) of the frames the windows cover (for the box).

    Returns:
        ``(psnr, box)``: (B,) ``10 log10(normal / error)`` of the window with the largest
        ratio, in dB (high = normal, as every stream), and its grown (B, 4) box.
    """
    k, stride, _ = window_geometry(img_size)
    ratio = windows.float() / normal.float().clamp_min(MSE_FLOOR)
    return worst_window(ratio[:, None], k, stride)


# The trivial streams every scan writes beside the learned ones, from the same decoded
# frames and flow: a learned score is only worth its cost when it beats them.
BASELINE_STREAMS = ("diff", "motion")


def copy_last_psnr(prev: torch.Tensor, cur: torch.Tensor, region: str = "frame") -> torch.Tensor:
    """``diff``: the PSNR of predicting each frame by the one before it (B, 3, H, W) each."""
    return region_psnr(prev, cur, region)


def motion_scores(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`motion_psnr` and its worst patch's (B, 4) box (:func:`worst_patch`)."""
    return worst_patch(flow.new_zeros(flow.shape), flow, patch_size_for(tuple(flow.shape[-2:])))


def motion_psnr(flow: torch.Tensor) -> torch.Tensor:
    """``motion``: the zero-flow PSNR of the worst patch of a model-range flow (B, 2, H, W).

    A monotone function of the largest patch-mean squared flow magnitude, so high = still
    (normal), like every other stream; it is always the worst patch, as the statistic is
    only useful when a small fast object is not averaged away.
    """
    return motion_scores(flow)[0]
