"""Training loss of M²S²L (paper II-E), plus MNAD's memory losses, all differentiable.

    L = w_frame * (L2(I_hat, I) + w_gradient * L_gd(I_hat, I))     frame loss, eq. (7)
      + w_motion * L2(M_hat, M)                                    motion loss, eq. (8)
      + w_separation * L_sep(c, a, m)                              separation loss, eq. (9)
      + w_compact * L_compact + w_separate * L_separate            MNAD memory losses

``L_gd`` is the gradient loss of Liu et al. (shared with VQ-MaU's FP loss). ``L_sep`` is
the mean squared cosine similarity, per location, between the appearance- and the
motion-specific parts and between each of them and the common part: zero when the three
parts are orthogonal, so each decoder gets information the other does not.

    total, parts = m2s2l_loss(model(clip[:, :-1]), clip, model.config)
    total, parts = model.loss(model(batch["x"]), batch)   # FP-style {"x", "y"} batches too
    parts  # {"frame", "pixel", "gradient", "motion", "separation", "compact", "separate", "total"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from raystack.models.losses import gradient_loss
from raystack.models.m2s2l.config import M2S2LConfig

_PAIRS = (("appearance", "motion"), ("common", "appearance"), ("common", "motion"))


def separation_loss(features: dict[str, torch.Tensor], eps: float = 1e-6) -> torch.Tensor:
    """Mean squared cosine similarity of the decomposed parts (0 without decomposition).

    ``cos^2 = (a . b)^2 / (max(|a|^2, eps^2) max(|b|^2, eps^2))``, ``F.cosine_similarity``'s
    definition squared, with each part's squared norm computed once for its two pairs:
    ``F.cosine_similarity`` renormalises both inputs per pair, and its backward's
    broadcast divisions took about 4x this form's time on the paper preset's feature maps.
    """
    pairs = [(a, b) for a, b in _PAIRS if a in features and b in features]
    if not pairs:
        ref = next(iter(features.values()))
        return ref.new_zeros((), dtype=torch.float32)
    parts = {name: features[name].float() for pair in pairs for name in pair}
    sq = {name: v.pow(2).sum(dim=-1).clamp_min(eps * eps) for name, v in parts.items()}
    total = 0.0
    for a, b in pairs:
        dot = (parts[a] * parts[b]).sum(dim=-1)
        total = total + (dot.pow(2) / (sq[a] * sq[b])).mean()
    return total / len(pairs)


def batch_targets(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame and motion targets of a training batch, whichever form it comes in.

    Accepted forms: a (b, context + 1, c, H, W) clip (inputs then target); a mapping with
    that clip under ``"frames"``; or the frame-prediction form ``{"x": inputs, "y":
    target}`` with ``x`` (b, context, c, H, W) or stacked (b, context * c, H, W) and ``y``
    (b, c, H, W). The motion target is the halved difference target - last input frame.
    """
    if isinstance(batch, Mapping) and "frames" not in batch:
        if "x" not in batch or "y" not in batch:
            msg = f"m2s2l_loss: a batch mapping needs 'frames' or 'x' and 'y'; got {sorted(batch)}"
            raise ValueError(msg)
        x, y = batch["x"], batch["y"]
        last = x[:, -1] if x.dim() == 5 else x[:, -y.shape[1]:]
        return y, (y - last) * 0.5
    clip = batch["frames"] if isinstance(batch, Mapping) else batch
    if clip.dim() != 5 or clip.shape[1] < 2:
        msg = f"m2s2l_loss: clips are (b, context + 1, c, H, W); got {tuple(clip.shape)}"
        raise ValueError(msg)
    return clip[:, -1], (clip[:, -1] - clip[:, -2]) * 0.5


def m2s2l_loss(output, batch, config: M2S2LConfig | None = None) -> tuple[torch.Tensor, dict]:
    """The weighted training loss of one batch.

    Args:
        output: the :class:`~raystack.models.m2s2l.model.M2S2LOutput` of the batch's inputs.
        batch: the clip or mapping :func:`batch_targets` accepts.
        config: the weights; the defaults of :class:`M2S2LConfig` when None.

    Returns:
        ``(total, parts)``: the scalar loss and a dict of detached floats for logging.
    """
    c = config if config is not None else M2S2LConfig()
    frame, motion = batch_targets(batch)
    if output.pred.shape != frame.shape or output.motion.shape != motion.shape:
        msg = (f"m2s2l_loss: predictions {tuple(output.pred.shape)} / "
               f"{tuple(output.motion.shape)} do not match the batch's targets "
               f"{tuple(frame.shape)}")
        raise ValueError(msg)
    pred, mot = output.pred.float(), output.motion.float()
    frame, motion = frame.float(), motion.float()
    pixel = F.mse_loss(pred, frame)
    gradient = gradient_loss(pred, frame)
    frame_loss = pixel + c.w_gradient * gradient
    motion_loss = F.mse_loss(mot, motion)
    sep = separation_loss(output.features)
    total = (c.w_frame * frame_loss + c.w_motion * motion_loss + c.w_separation * sep
             + c.w_compact * output.compact + c.w_separate * output.separate)
    parts = {"frame": frame_loss, "pixel": pixel, "gradient": gradient, "motion": motion_loss,
             "separation": sep, "compact": output.compact, "separate": output.separate,
             "total": total}
    return total, {k: float(v.detach()) for k, v in parts.items()}
