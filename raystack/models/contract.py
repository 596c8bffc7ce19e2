"""The one interface every scoring family implements: VQ-MaU FP/FR, M²S²L and the baselines.

A :class:`ScoringModel` turns windows of decoded frames (and flow) into per-frame scores of
the streams it names. A :class:`TrainableModel` is a scoring model that is also a registry-
built ``nn.Module`` with a training loss. The ``diff``/``motion`` baselines have nothing to
learn, so they implement the scoring half only (:mod:`raystack.models.baselines`);
``FrameScorer`` runs every scoring model alike and ``StreamTrainer`` trains every trainable
one alike, neither asks what family it holds.

Shapes, for a batch of B target frames, each with the ``context`` frames before it:

- ``frames``: (B, context + 1, 3, H, W) in [-1, 1], oldest first; ``frames[:, -1]`` is the
  target frame.
- ``flows``: (B, context, 2, H, W) model-range flow at ``raystack.flow.FLOW_SCALE`` px per
  unit; ``flows[:, k]`` goes from ``frames[:, k]`` to ``frames[:, k + 1]``, so
  ``flows[:, -1]`` is the flow into the target. None unless ``needs_flow``.
- ``score_batch`` returns ``{stream: StreamScores(psnr (B,), aux (B,) or None, box (B, 4)
  or None)}``; ``box`` is the worst patch under ``region="patch"``.

    scores = model.score_batch(frames, flows, region="frame")
    scores["fp"].psnr.shape == (B,)
    total, parts = model.loss(model(batch["x"]), batch)      # TrainableModel only
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

A = TypeVar("A")  # torch.Tensor from a model, numpy.ndarray from FrameScorer.score


@dataclass(frozen=True)
class StreamScores(Generic[A]):
    """Scores of one stream for a batch (or a clip) of target frames.

    Attributes:
        psnr: (B,) float32 PSNR in dB; high means normal.
        aux: (B,) float32 second score of the same frames (M²S²L: the memory distance, NaN
            where no bank is read), or None for a stream that has none.
        box: (B, 4) int ``(x0, y0, x1, y1)`` of the worst patch of the error map in the
            input's pixels (x1/y1 exclusive), when the score is a worst-patch score
            (``region="patch"``, and the ``motion`` baseline always); None for a
            whole-frame score, which has no location.
        windows: (B, oh, ow) float32 error of every window of the error map
            (:func:`raystack.scoring.region_windows`), under ``region="calibrated"`` only:
            ``FrameScorer`` turns them into the calibrated score and box.
    """

    psnr: A
    aux: A | None = None
    box: A | None = None
    windows: A | None = None


class ScoringModel(abc.ABC):
    """Scores target frames from windows of ``context + 1`` frames (see module docstring).

    Implementations are ``nn.Module`` s, so a scorer moves every one of them to its device
    and into eval mode alike.

    Attributes (class attributes or properties of an implementation):
        streams: names of the streams :meth:`score_batch` returns, in order.
        context: frames each target needs before it.
        needs_flow: whether :meth:`score_batch` reads ``flows``.
        img_size: (H, W) the model is built for; None when any size works.
    """

    streams: tuple[str, ...]
    context: int
    needs_flow: bool
    img_size: tuple[int, int] | None

    @abc.abstractmethod
    def score_batch(
        self, frames: torch.Tensor, flows: torch.Tensor | None = None, *, region: str = "frame"
    ) -> dict[str, StreamScores[torch.Tensor]]:
        """Scores of ``frames[:, -1]`` for every stream in :attr:`streams`.

        Args:
            frames: (B, context + 1, 3, H, W) in [-1, 1].
            flows: (B, context, 2, H, W) model-range flow, or None when not ``needs_flow``.
            region: ``"frame"`` (whole-frame PSNR, the papers) or ``"patch"`` (worst
                patch, :func:`raystack.scoring.region_psnr`).
        """

    def check_window(self, frames: torch.Tensor, flows: torch.Tensor | None) -> None:
        """Raise ValueError naming the expected shapes when a window does not fit."""
        name = type(self).__name__
        size = self.img_size if self.img_size is not None else tuple(frames.shape[-2:])
        want = (self.context + 1, 3, *size)
        if frames.dim() != 5 or tuple(frames.shape[1:]) != want:
            msg = (f"{name}.score_batch: frames must be (B, {', '.join(map(str, want))}), the "
                   f"{self.context} context frames plus the target; got {tuple(frames.shape)}")
            raise ValueError(msg)
        if not self.needs_flow:
            return
        want_flow = (len(frames), self.context, 2, *size)
        if flows is None or tuple(flows.shape) != want_flow:
            got = None if flows is None else tuple(flows.shape)
            msg = f"{name}.score_batch: needs flows {want_flow}; got {got}"
            raise ValueError(msg)


class TrainableModel(ScoringModel):
    """A scoring model with parameters, a registry ``config`` and a training loss.

    Implementations are ``nn.Module`` subclasses whose ``forward`` takes ``batch["x"]`` of
    their training batches (:class:`raystack.train.data.ClipSet`).
    """

    config: Any  # the family's frozen config dataclass; checkpoints store it

    @abc.abstractmethod
    def loss(
        self, output: Any, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of ``output = model(batch["x"])``.

        The forward is the caller's so that it can run through a DDP wrapper (gradients
        synchronise there) while the loss runs on the unwrapped model.

        Args:
            output: the model's forward output on ``batch["x"]``.
            batch: ``{"x": inputs, "y": target}``, plus ``"prev"`` (the previous flow) for FR.

        Returns:
            ``(total, parts)``: the scalar loss and detached floats for logging, ``parts``
            holding ``"total"``.
        """
