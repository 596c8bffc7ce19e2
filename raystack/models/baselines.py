"""The label-free baseline streams as a scoring model: ``diff`` and ``motion``.

``diff`` is the PSNR of predicting each frame by the one before it, ``motion`` the
worst-patch flow magnitude statistic (:mod:`raystack.scoring`). Every scan writes them beside
the learned streams: a learned score is only worth its cost where it beats them.

They have no parameters and nothing to learn, so :class:`Baselines` implements only the
scoring half of the contract (:class:`~raystack.models.contract.ScoringModel`), not
:class:`~raystack.models.contract.TrainableModel`. It is an ``nn.Module`` anyway so that
``FrameScorer`` moves and switches it like the learned models.

    scores = Baselines().score_batch(frames, flows)   # (B, 2, 3, H, W), (B, 1, 2, H, W)
    scores["diff"].psnr.shape == scores["motion"].psnr.shape == (B,)
"""

from __future__ import annotations

import torch
import torch.nn as nn

from raystack.models.contract import ScoringModel, StreamScores
from raystack.scoring import BASELINE_STREAMS, patch_psnr, patch_size_for, region_outputs


class Baselines(nn.Module, ScoringModel):
    """``diff`` from the last two frames, ``motion`` from the flow into the target."""

    streams = BASELINE_STREAMS
    context = 1
    needs_flow = True  # the motion stream reads the flow
    img_size = None  # any size

    def score_batch(
        self, frames: torch.Tensor, flows: torch.Tensor | None = None, *, region: str = "frame",
        zero: torch.Tensor | None = None,
    ) -> dict[str, StreamScores[torch.Tensor]]:
        """``diff`` in ``region``; ``motion``'s statistic is the worst patch's in either
        region (see scoring.py), but its box follows ``region`` as every stream's does:
        the worst patch under ``"patch"``, none under ``"frame"`` (the row then points at
        the frame, or at its worst tile in a tiled scan).

        ``zero``: (B,) bool, the samples whose flow is zero by construction (pairs the
        gate's change stage found still and did not flow); their ``motion`` is computed
        once and shared. None: every sample is computed."""
        self.check_window(frames, flows)
        with torch.autocast(device_type=frames.device.type, enabled=False):
            # diff is copy_last_psnr, with the box of its worst patch
            diff, diff_box, diff_w = region_outputs(frames[:, -2].float(),
                                                    frames[:, -1].float(), region)
            motion, motion_box, motion_w = self._motion(flows[:, -1].float(), region, zero)
        return {"diff": StreamScores(diff, box=diff_box, windows=diff_w),
                "motion": StreamScores(motion, box=motion_box if region == "patch" else None,
                                       windows=motion_w)}

    @staticmethod
    def _motion(flow: torch.Tensor, region: str, zero: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(psnr, box, windows)`` of ``motion`` on (B, 2, H, W) flows, ``zero`` (B,) the
        ones known to be zero.

        A frame the gate's change stage found still has zero flow, and every zero flow gets
        the same answer: it is computed on one of them and repeated. On a still stretch
        that is most of the batch, and its worst patch was the costliest part (the box of
        equal windows floods the whole frame, a ring at a time). The stage says which
        flows it left zero; finding them in the data cost as much again."""
        if zero is not None and int(zero.sum()) > 1:
            zero = zero.to(device=flow.device, dtype=torch.bool)
            work = ~zero
            work[int(zero.nonzero()[0, 0])] = True  # the one zero flow computed
            src = torch.cumsum(work.long(), 0) - 1  # where each sample's answer lies
            src[zero] = int(src[zero][0])
            p, b, w = Baselines._motion(flow[work], region)
            return p[src], None if b is None else b[src], None if w is None else w[src]
        if region == "frame":  # no box: skip growing one (a still frame's is all of it)
            return patch_psnr(flow.new_zeros(flow.shape), flow,
                              patch_size_for(tuple(flow.shape[-2:]))), None, None
        return region_outputs(flow.new_zeros(flow.shape), flow,
                              "calibrated" if region == "calibrated" else "patch")
