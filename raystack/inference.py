"""Per-frame PSNR of a clip under one or more VQ-MaU models: the scoring core of scan and eval.

``FrameScorer`` holds the models (one per score stream: ``fp`` and/or ``fr``), batches the
target frames of a clip, runs under ``torch.inference_mode`` (with autocast on CUDA, the
selective scan and PSNR staying fp32) and returns one PSNR array per stream, all aligned on
the same target frames. PSNR is the protocol's (docs/evaluation.md, :func:`raystack.scoring.psnr`),
on frames and on model-range flow alike.

Alignment: with ``context = max(t for FP, 1 for FR)`` the scored frames are
``context .. T-1``. FP scores frame i from frames i-t .. i-1; FR scores frame i by
reconstructing ``flows[i-1]``, the flow from frame i-1 to frame i.

    scorer = FrameScorer.from_checkpoints(["fp.pt", "fr.pt"])
    out = scorer.score(frames, flows)   # frames (T, H, W, 3), flows (T-1, 2, H, W) in [-1, 1]
    out["fp"].shape == out["fr"].shape == (T - scorer.context,)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from raystack.scoring import BASELINE_STREAMS, REGIONS, copy_last_psnr, motion_psnr, region_psnr

AMP_MODES = ("auto", "off", "bf16", "fp16")


def default_threads() -> int:
    """Torch threads for this process: OMP_NUM_THREADS when set (Ray sets it per actor),
    else the CPUs this process may run on (its affinity mask, not the machine's count)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _resolve_amp(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    if amp in (None, False, "off"):
        return None
    if amp is True:
        amp = "auto"
    if amp not in AMP_MODES:
        msg = f"amp={amp!r}: choose one of {AMP_MODES}"
        raise ValueError(msg)
    if amp == "auto":
        # On CPU autocast slows these small convs and linears down; only CUDA gains.
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


class FrameScorer:
    """Scores clips with a set of models, one per stream (e.g. ``{"fp": m1, "fr": m2}``).

    Attributes:
        streams: stream names in insertion order, e.g. ``("fp", "fr")``.
        context: frames before the first scoreable frame (max over streams: t for FP, 1 for FR).
        needs_flow: whether :meth:`score` needs ``flows``.
        img_size: (H, W) the models expect; decode to this size.
        checkpoints: per stream, the checkpoint info when built by :meth:`from_checkpoints`.
    """

    def __init__(
        self,
        models: dict[str, nn.Module],
        *,
        device: str | torch.device = "auto",
        batch_size: int = 8,
        threads: int | None = None,
        amp: str | bool | None = "auto",
        region: str = "frame",
        baselines: bool = True,
    ) -> None:
        if not models:
            msg = "FrameScorer needs at least one model, e.g. {'fp': model}"
            raise ValueError(msg)
        if batch_size < 1:
            msg = f"FrameScorer: batch_size={batch_size} must be >= 1"
            raise ValueError(msg)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.threads = default_threads() if threads is None else int(threads)
        torch.set_num_threads(self.threads)
        self.batch_size = batch_size
        self.amp_dtype = _resolve_amp(amp, self.device)
        if region not in REGIONS:
            msg = f"FrameScorer: region={region!r}; choose one of {REGIONS}"
            raise ValueError(msg)
        self.region = region
        self.baselines = bool(baselines)

        self.models: dict[str, nn.Module] = {}
        self.tasks: dict[str, str] = {}
        self._context: dict[str, int] = {}
        self._writes: dict[str, tuple[str, ...]] = {}  # model key -> the streams it scores
        sizes = set()
        needs_flow = False
        for stream, model in models.items():
            config = getattr(model, "config", None)
            task = getattr(config, "task", None)
            if hasattr(model, "score_batch"):
                # A self-describing model (e.g. M2S2L) names its streams, its context and
                # whether it needs flow, and scores windows of context + 1 frames itself.
                self._context[stream] = int(model.context)
                self._writes[stream] = tuple(model.score_streams)
                needs_flow = needs_flow or bool(getattr(model, "needs_flow", False))
            elif task in ("fp", "fr"):
                self._context[stream] = config.in_frames if task == "fp" else 1
                self._writes[stream] = (stream,)
                needs_flow = needs_flow or task == "fr"
            else:
                msg = (f"FrameScorer: model for stream {stream!r} has no fp/fr config.task "
                       "and no score_batch method")
                raise ValueError(msg)
            self.models[stream] = model.to(self.device).eval()
            self.tasks[stream] = task
            sizes.add(tuple(config.img_size))
        if len(sizes) != 1:
            msg = f"FrameScorer: models expect different image sizes {sorted(sizes)}"
            raise ValueError(msg)
        self.img_size: tuple[int, int] = sizes.pop()
        learned = tuple(s for k in self.models for s in self._writes[k])
        if set(learned) & set(BASELINE_STREAMS):
            msg = f"FrameScorer: stream names {BASELINE_STREAMS} are the baselines' own"
            raise ValueError(msg)
        self.learned_streams: tuple[str, ...] = learned
        self.streams: tuple[str, ...] = learned + (BASELINE_STREAMS if self.baselines else ())
        if self.baselines:
            needs_flow = True  # the motion baseline reads the flow
        if len(set(self.streams)) != len(self.streams):
            msg = f"FrameScorer: two models write the same stream ({self.streams})"
            raise ValueError(msg)
        self.context: int = max(self._context.values())
        self.needs_flow: bool = needs_flow
        self.checkpoints: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | os.PathLike] | str | os.PathLike,
                         **kw: Any) -> FrameScorer:
        """Load each checkpoint; its stream is named after its task (``fp`` / ``fr``)."""
        from raystack.models.checkpoint import checkpoint_hash, load_checkpoint

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        models: dict[str, nn.Module] = {}
        infos: dict[str, dict[str, Any]] = {}
        for path in paths:
            model, info = load_checkpoint(path)
            stream = model.config.task
            if stream in models:
                msg = (f"FrameScorer: two {stream} checkpoints ({infos[stream]['path']} and "
                       f"{path}); give one per stream")
                raise ValueError(msg)
            models[stream] = model
            infos[stream] = {**info, "path": str(path), "sha256": checkpoint_hash(path)}
        scorer = cls(models, **kw)
        scorer.checkpoints = infos
        return scorer

    def _check_clip(self, frames: np.ndarray, flows: np.ndarray | None) -> None:
        h, w = self.img_size
        if frames.ndim != 4 or frames.shape[1:] != (h, w, 3):
            msg = f"FrameScorer.score: frames must be (T, {h}, {w}, 3); got {frames.shape}"
            raise ValueError(msg)
        if self.needs_flow:
            if flows is None:
                msg = ("FrameScorer.score: needs flows (T-1, 2, H, W) for the fr stream or the "
                       "motion baseline (baselines=False scores without)")
                raise ValueError(msg)
            expected = (max(len(frames) - 1, 0), 2, h, w)
            if flows.shape != expected:
                msg = f"FrameScorer.score: flows must be {expected}; got {flows.shape}"
                raise ValueError(msg)

    def _inputs(self, stream: str, idx: list[int], clip: torch.Tensor,
                flow: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Model input and target for target frames ``idx`` (CPU tensors)."""
        if self.tasks[stream] == "fp":
            t = self._context[stream]
            x = torch.stack([clip[i - t : i].reshape(-1, *clip.shape[2:]) for i in idx])
            return x, clip[idx]  # (b, t*3, H, W), (b, 3, H, W)
        from raystack.flow import rescale_flow

        # (b, 2, H, W): flow of frame i-1 -> i, in the model's own flow scale
        pair = rescale_flow(flow[[i - 1 for i in idx]], self.models[stream].config.flow_scale)
        return pair, pair

    def score(self, frames: np.ndarray, flows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-frame PSNR of frames ``context .. T-1`` for every stream.

        Args:
            frames: float32 (T, H, W, 3) in [-1, 1] at ``img_size``.
            flows: model-range float32 (T-1, 2, H, W), ``flows[i]`` the flow from frame i to
                i+1; required when ``needs_flow``.

        Returns:
            ``{stream: float32 array of length max(T - context, 0)}``; a stream whose model
            reports an aux score (M2S2L's memory distance) maps to ``(psnr, aux)`` instead.
        """
        frames = np.asarray(frames, dtype=np.float32)
        flows = None if flows is None else np.asarray(flows, dtype=np.float32)
        self._check_clip(frames, flows)
        targets = list(range(self.context, len(frames)))
        out = {s: np.empty(len(targets), dtype=np.float32) for s in self.streams}
        aux: dict[str, np.ndarray] = {}
        if not targets:
            return out
        clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W)
        flow = torch.from_numpy(np.ascontiguousarray(flows)) if self.needs_flow else None
        autocast = torch.autocast(
            device_type=self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )
        with torch.inference_mode(), autocast:
            for start in range(0, len(targets), self.batch_size):
                idx = targets[start : start + self.batch_size]
                for stream, model in self.models.items():
                    if hasattr(model, "score_batch"):
                        ctx = self._context[stream]
                        win = torch.stack([clip[i - ctx : i + 1] for i in idx])
                        scored = model.score_batch(win.to(self.device), region=self.region)
                        for s, (p, a) in scored.items():
                            out[s][start : start + len(idx)] = p.float().cpu().numpy()
                            if a is not None:
                                aux.setdefault(s, np.full(len(targets), np.nan, np.float32))
                                aux[s][start : start + len(idx)] = a.float().cpu().numpy()
                        continue
                    x, target = self._inputs(stream, idx, clip, flow)
                    x = x.to(self.device, non_blocking=True)
                    pred = model(x).pred
                    with torch.autocast(device_type=self.device.type, enabled=False):
                        values = region_psnr(pred.float(), target.to(self.device).float(),
                                             self.region)
                    out[stream][start : start + len(idx)] = values.cpu().numpy()
                if self.baselines:
                    prev, cur = clip[[i - 1 for i in idx]], clip[idx]
                    out["diff"][start : start + len(idx)] = copy_last_psnr(
                        prev, cur, self.region).numpy()
                    out["motion"][start : start + len(idx)] = motion_psnr(
                        flow[[i - 1 for i in idx]]).numpy()
        return {s: (out[s], aux[s]) if s in aux else out[s] for s in self.streams}
