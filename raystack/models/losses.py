"""Training losses of VADMamba's two tasks (paper section II, eqs. 2-7), all differentiable.

- FP:  L = L2(pred, target) + L_vq + L_gd, where L_gd is the gradient loss of Liu et al.'s
  future-frame prediction: L1 between the absolute spatial differences of target and pred.
- FR:  L = L2 + L_vq + (1 - SSIM) + 0.01 * L_md. SSIM is pytorch-msssim's differentiable SSIM
  (computed by ``raystack.models.ssim``: the same value through faster kernels) on flows
  mapped from [-1, 1] to [0, 1] (data_range 1); the public code computes it on detached
  numpy arrays, so it trains nothing. L_md is the motion-difference loss: a
  Charbonnier penalty sqrt(d^2 + eps^2), eps = 1e-3, on d = ||M||_2 - ||M_hat||_2, with the
  norm taken per pixel over the 2 flow channels. Following eq. (7), M = O_t - O_{t-1} and
  M_hat = O_hat_t - O_{t-1} when the previous flow O_{t-1} is given; without it M = O_t and
  M_hat = O_hat_t (the loss then compares flow magnitudes).

Inputs are (b, c, H, W) in the model range [-1, 1]; each loss returns ``(total, parts)`` with
``parts`` a dict of detached scalars for logging.

``trivial`` (a named deviation, ``VQMaUConfig.relative_loss``): each prediction term is
divided by the same term of the trivial prediction (copy-last for FP, zero flow for FR) on
the same batch, detached. On fixed-camera footage copying the last frame already gives an
L2 of ~1e-3, so the raw terms are three orders below the VQ term and the gradients above the
head fall under Adam's epsilon; relative terms are ~1 at the start and < 1 exactly when the
model beats the trivial answer.

    total, parts = fp_loss(pred, target, vq_loss)   # parts: {"l2", "vq", "gd", "total"}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FR_MD_WEIGHT = 0.01  # weight of the motion-difference loss in L_FR (paper)
CHARBONNIER_EPS = 1e-3  # epsilon of eq. (7)
SSIM_WIN = 11  # pytorch-msssim's default Gaussian window; shrunk for small images


def _check_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        msg = (f"{name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} "
               "must both be (b, c, H, W)")
        raise ValueError(msg)


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of | |dT| - |dP| | along x plus along y (eq. 4, Liu et al. 2018).

    An axis of length 1 has no differences and contributes 0.
    """
    _check_pair(pred, target, "gradient_loss")
    total = pred.new_zeros(())
    for dim in (-1, -2):
        if pred.shape[dim] > 1:
            d_p = pred.diff(dim=dim).abs()
            d_t = target.diff(dim=dim).abs()
            total = total + (d_t - d_p).abs().mean()
    return total


def charbonnier(x: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """Mean of sqrt(x^2 + eps^2): a smooth L1 that stays differentiable at 0."""
    return torch.sqrt(x * x + eps * eps).mean()


def motion_difference_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    prev_flow: torch.Tensor | None = None,
    eps: float = CHARBONNIER_EPS,
) -> torch.Tensor:
    """Charbonnier of the difference of per-pixel motion magnitudes (eq. 7).

    Args:
        pred, target: (b, 2, H, W) reconstructed and true flow O_hat_t, O_t.
        prev_flow: (b, 2, H, W) the previous flow O_{t-1}, or None (see module docstring).
    """
    _check_pair(pred, target, "motion_difference_loss")
    if prev_flow is not None:
        _check_pair(prev_flow, target, "motion_difference_loss(prev_flow)")
        pred, target = pred - prev_flow, target - prev_flow
    return charbonnier(flow_magnitude(target) - flow_magnitude(pred), eps)


def flow_magnitude(flow: torch.Tensor) -> torch.Tensor:
    """Per-pixel L2 norm over the channels of (b, c, H, W) -> (b, H, W).

    ``torch.linalg.vector_norm(flow, dim=1)``, with its gradient 0 at zero motion, written
    elementwise: the norm along a short strided axis is a slow reduction on the CPU
    (about a third of FR's loss with backward at 128x128).
    """
    sq = flow[:, 0] * flow[:, 0]
    for i in range(1, flow.shape[1]):
        sq = sq + flow[:, i] * flow[:, i]
    # clamp: sqrt'(0) is infinite; the clamp passes no gradient below it, as the norm does
    return sq.clamp_min(1e-30).sqrt()


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Differentiable mean SSIM of model-range images (mapped to [0, 1], data_range 1).

    The Gaussian window (11 at full size) shrinks to the largest odd size that fits the
    image, because pytorch-msssim silently skips smoothing along a too-short axis.
    """
    from raystack.models.ssim import ssim_fast

    _check_pair(pred, target, "ssim")
    side = min(pred.shape[-2:])
    win = min(SSIM_WIN, side if side % 2 else side - 1)
    if win < 3:
        msg = f"ssim: images of {tuple(pred.shape[-2:])} are too small for a 3x3 window"
        raise ValueError(msg)
    # SSIM's constants assume [0, 1]; autocast's bf16 would wreck its variance terms.
    with torch.autocast(device_type=pred.device.type, enabled=False):
        return ssim_fast((pred.float() + 1) / 2, (target.float() + 1) / 2, win=win)


def _relative(term, pred: torch.Tensor, target: torch.Tensor,
              trivial: torch.Tensor | None, *args) -> torch.Tensor:
    value = term(pred, target, *args)
    if trivial is None:
        return value
    with torch.no_grad():
        ref = term(trivial.float(), target, *args).clamp_min(1e-6)
    return value / ref


def fp_loss(
    pred: torch.Tensor, target: torch.Tensor, vq_loss: torch.Tensor,
    trivial: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_FP = L2 + L_vq + L_gd for a predicted frame (b, 3, H, W); ``trivial``: see above."""
    _check_pair(pred, target, "fp_loss")
    pred, target = pred.float(), target.float()
    l2 = _relative(F.mse_loss, pred, target, trivial)
    gd = _relative(gradient_loss, pred, target, trivial)
    total = l2 + vq_loss + gd
    parts = {"l2": l2, "vq": vq_loss, "gd": gd, "total": total}
    return total, {k: float(v.detach()) for k, v in parts.items()}


def fr_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    vq_loss: torch.Tensor,
    prev_flow: torch.Tensor | None = None,
    trivial: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_FR = L2 + L_vq + (1 - SSIM) + 0.01 * L_md for a reconstructed flow (b, 2, H, W)."""
    _check_pair(pred, target, "fr_loss")
    pred, target = pred.float(), target.float()
    prev = None if prev_flow is None else prev_flow.float()
    l2 = _relative(F.mse_loss, pred, target, trivial)
    sim = _relative(lambda p, t: 1.0 - ssim(p, t), pred, target, trivial)
    md = _relative(motion_difference_loss, pred, target, trivial, prev)
    total = l2 + vq_loss + sim + FR_MD_WEIGHT * md
    parts = {"l2": l2, "vq": vq_loss, "ssim": sim, "md": md, "total": total}
    return total, {k: float(v.detach()) for k, v in parts.items()}


def trivial_prediction(task: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The cheap answer to a training batch, (b, c, H, W): zero flow for FR, else the last
    input frame of ``batch["x"]`` (b, t*3, H, W) -- what ``trivial`` above refers to."""
    y = batch["y"]
    if task == "fr":
        return torch.zeros_like(y)
    return batch["x"][:, -y.shape[1] :]


def task_loss(
    task: str,
    pred: torch.Tensor,
    target: torch.Tensor,
    vq_loss: torch.Tensor,
    prev_flow: torch.Tensor | None = None,
    trivial: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Dispatch to :func:`fp_loss` or :func:`fr_loss` by a model config's ``task``."""
    if task == "fp":
        return fp_loss(pred, target, vq_loss, trivial)
    if task == "fr":
        return fr_loss(pred, target, vq_loss, prev_flow, trivial)
    msg = f"unknown task {task!r}; expected 'fp' or 'fr'"
    raise ValueError(msg)
