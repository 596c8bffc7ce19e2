"""Per-frame scores of a clip under a set of scoring models: the scoring core of scan and eval.

``FrameScorer`` holds the models (anything implementing
:class:`raystack.models.contract.ScoringModel`: VQ-MaU ``fp``/``fr``, M²S²L, and the
``diff``/``motion`` baselines it adds itself), batches the target frames of a clip into
windows of each model's ``context + 1`` frames, runs them under ``torch.inference_mode``
(with autocast on CUDA, the selective scan and PSNR staying fp32) and returns one
:class:`~raystack.models.contract.StreamScores` of numpy arrays per stream, all aligned on
the same target frames. PSNR is the protocol's (docs/evaluation.md,
:func:`raystack.scoring.psnr`), on frames and on model-range flow alike.

Alignment: with ``context`` the largest context of the models (at least the scene prior's
``persist - 1`` with the ``presence`` stream, which reads how long foreground persists: 23
for a new tiled prior, 7 for whole frames), the scored frames
are ``context .. T-1``. A model of context c scores frame i from frames i-c .. i (and flows
i-c .. i-1, ``flows[j]`` being the flow from frame j to j+1): FP from its ``t`` frames
before i, FR from ``flows[i-1]``.

The scorer does not set the process's torch thread count: that belongs to whoever owns
the process (the scan worker, the CLI, a benchmark).

    scorer = FrameScorer.from_checkpoints(["fp.pt", "fr.pt"])
    out = scorer.score(frames, flows)   # frames (T, H, W, 3), flows (T-1, 2, H, W) in [-1, 1]
    out["fp"].psnr.shape == out["fr"].psnr.shape == (T - scorer.context,)
    out["fp"].aux is None                # M2S2L's streams carry their memory distance here
    out["fp"].box is None                # (n, 4) worst-patch boxes with region="patch"
    tiled = scorer.score_tiles(big, big_flows, grid.boxes)  # psnr (n, tiles): a tiled scan
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from raystack.models.baselines import Baselines
from raystack.models.contract import ScoringModel, StreamScores
from raystack.precision import autocast, autocast_dtype
from raystack.scene_prior import PRESENCE_STREAM, ScenePrior
from raystack.scoring import BASELINE_STREAMS, REGIONS

# Frames (tiles) per model call when none is given. On the CPU a batch of 4 already runs
# near the CPU's best frames/s (bench/results/model.json); 8 bounds the window copies. On
# CUDA a forward of 8 small frames leaves an H200 mostly idle and launch-bound (every op is a
# kernel launch, docs/gpu.md); 64 shares that cost while the paper presets' windows stay a
# few GB. bench/gpu_check.py's inference phase measures 1/16/64 to confirm or move it.
CPU_BATCH_SIZE = 8
GPU_BATCH_SIZE = 64
# (target, tile) pairs per call of the baselines (diff, motion): no weights, cheap per sample.
BASELINE_BATCH = 64


def default_batch_size(device: str | torch.device) -> int:
    """The batch a scorer uses on ``device`` when none is given."""
    return GPU_BATCH_SIZE if torch.device(device).type == "cuda" else CPU_BATCH_SIZE


class FrameScorer:
    """Scores clips with a set of scoring models, e.g. ``{"fp": m1, "fr": m2}``.

    Args:
        models: scoring models by name (the checkpoints' task when built by
            :meth:`from_checkpoints`); each writes the streams it names.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        batch_size: target frames per model call; None: :func:`default_batch_size` of
            the device (8 on CPU, 64 on CUDA).
        amp: ``"auto"`` (autocast on CUDA only), ``"off"``, ``"bf16"`` or ``"fp16"``
            (:mod:`raystack.precision`).
        region: ``"frame"`` or ``"patch"`` PSNR (:func:`raystack.scoring.region_psnr`), or
            ``"calibrated"``: the worst patch relative to the ``normal`` references given
            to :meth:`score` / :meth:`score_tiles` (:func:`raystack.scoring.calibrated_scores`).
        baselines: also score the ``diff`` and ``motion`` streams
            (:class:`~raystack.models.baselines.Baselines`).
        scene_prior: also score the ``presence`` stream against this prior of normal
            footage (:mod:`raystack.scene_prior`); frames must be at its working size.

    Attributes:
        streams: stream names in order: every model's, then the baselines'.
        learned_streams: the models' streams only.
        context: frames before the first scoreable frame (max over the models).
        needs_flow: whether :meth:`score` needs ``flows``.
        img_size: (H, W) the models expect; decode to this size.
        checkpoints: per model, the checkpoint info when built by :meth:`from_checkpoints`.
    """

    def __init__(
        self,
        models: Mapping[str, ScoringModel],
        *,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        amp: str | bool | None = "auto",
        region: str = "frame",
        baselines: bool = True,
        scene_prior: ScenePrior | None = None,
    ) -> None:
        if not models:
            msg = "FrameScorer needs at least one model, e.g. {'fp': model}"
            raise ValueError(msg)
        if batch_size is not None and batch_size < 1:
            msg = f"FrameScorer: batch_size={batch_size} must be >= 1"
            raise ValueError(msg)
        if region not in REGIONS:
            msg = f"FrameScorer: region={region!r}; choose one of {REGIONS}"
            raise ValueError(msg)
        for name, model in models.items():
            if not (isinstance(model, ScoringModel) and isinstance(model, nn.Module)):
                msg = (f"FrameScorer: model {name!r} ({type(model).__name__}) does not implement "
                       "raystack.models.contract.ScoringModel as an nn.Module")
                raise TypeError(msg)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.batch_size = default_batch_size(self.device) if batch_size is None else batch_size
        self.amp_dtype = autocast_dtype(amp, self.device)
        self.region = region
        self.baselines = bool(baselines)
        self.models: dict[str, ScoringModel] = {k: m.to(self.device).eval()
                                                for k, m in models.items()}
        self._scorers: list[ScoringModel] = list(self.models.values())
        if self.baselines:
            self._scorers.append(Baselines())

        sizes = {tuple(m.img_size) for m in self._scorers if m.img_size is not None}
        if len(sizes) != 1:
            msg = f"FrameScorer: models expect different image sizes {sorted(sizes)}"
            raise ValueError(msg)
        self.img_size: tuple[int, int] = sizes.pop()
        learned = tuple(s for m in self.models.values() for s in m.streams)
        if set(learned) & {*BASELINE_STREAMS, PRESENCE_STREAM}:
            msg = (f"FrameScorer: stream names {(*BASELINE_STREAMS, PRESENCE_STREAM)} are the "
                   "baselines' and the scene prior's own")
            raise ValueError(msg)
        self.learned_streams: tuple[str, ...] = learned
        self.scene_prior = scene_prior
        self.streams: tuple[str, ...] = tuple(s for m in self._scorers for s in m.streams) + (
            (PRESENCE_STREAM,) if scene_prior is not None else ())
        if len(set(self.streams)) != len(self.streams):
            msg = f"FrameScorer: two models write the same stream ({self.streams})"
            raise ValueError(msg)
        # the models' own history, and presence's: how long foreground persists, persist - 1
        # frames before a target
        self.models_context: int = max([m.context for m in self._scorers], default=0)
        self.context: int = max([self.models_context]
                                + ([scene_prior.persist - 1] if scene_prior is not None else []))
        self.needs_flow: bool = any(m.needs_flow for m in self._scorers)
        self.checkpoints: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | os.PathLike] | str | os.PathLike,
                         *, presence: bool = False, tiles: bool = False,
                         **kw: Any) -> FrameScorer:
        """Load each checkpoint; its model is named after its task (``fp``, ``fr``, ``m2s2l``).
        With ``presence``, the scene prior one of them records (FP's first) for this kind of
        scan (``tiles`` or whole frames) adds the ``presence`` stream; without such a
        record the scorer has no ``presence`` stream."""
        from raystack.models.checkpoint import checkpoint_hash, load_checkpoint
        from raystack.scene_prior import prior_from_checkpoints

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        models: dict[str, ScoringModel] = {}
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
        if presence and "scene_prior" not in kw:
            sizes = {tuple(m.img_size) for m in models.values()}
            kw["scene_prior"] = prior_from_checkpoints(
                infos, tiles=tiles, img_size=sizes.pop() if len(sizes) == 1 else None)
        scorer = cls(models, **kw)
        scorer.checkpoints = infos
        return scorer

    def _check_clip(self, frames: np.ndarray, flows: np.ndarray | None, what: str,
                    size: tuple[int, int] | None = None) -> None:
        h, w = size or self.img_size
        if frames.ndim != 4 or frames.shape[1:] != (h, w, 3):
            msg = f"FrameScorer.{what}: frames must be (T, {h}, {w}, 3); got {frames.shape}"
            raise ValueError(msg)
        if self.needs_flow:
            if flows is None:
                msg = (f"FrameScorer.{what}: needs flows (T-1, 2, H, W) for the fr stream or "
                       "the motion baseline (baselines=False scores without)")
                raise ValueError(msg)
            expected = (max(len(frames) - 1, 0), 2, h, w)
            if flows.shape != expected:
                msg = f"FrameScorer.{what}: flows must be {expected}; got {flows.shape}"
                raise ValueError(msg)

    def score(
        self, frames: np.ndarray, flows: np.ndarray | None = None,
        gated: np.ndarray | None = None, normal: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, StreamScores[np.ndarray]]:
        """Per-frame scores of frames ``context .. T-1`` for every stream.

        Args:
            frames: float32 (T, H, W, 3) in [-1, 1] at ``img_size``.
            flows: model-range float32 (T-1, 2, H, W), ``flows[i]`` the flow from frame i to
                i+1; required when ``needs_flow``.
            gated: (n,) bool, target frames the learned models skip (motion gating, one
                tile per frame in :meth:`score_tiles`' terms); their learned scores are NaN,
                the baselines score them. None: none gated.
            normal: ``region="calibrated"``: per stream, the (1, oh, ow) normal window
                errors (:mod:`raystack.train.error_calibration`); None returns the raw
                window errors in ``windows`` and the uncalibrated worst patch instead.

        Returns:
            ``{stream: StreamScores(psnr, aux, box)}`` in :attr:`streams` order: float32
            arrays of length ``max(T - context, 0)``, ``aux`` None for a stream without
            one; ``box`` int32 (n, 4) worst-patch boxes in the frames' pixels, None for a
            whole-frame score (``region="frame"``).
        """
        frames = np.asarray(frames, dtype=np.float32)
        flows = None if flows is None else np.asarray(flows, dtype=np.float32)
        self._check_clip(frames, flows, "score")
        h, w = self.img_size
        g = None if gated is None else np.asarray(gated, bool).reshape(-1, 1)
        out = self._score(frames, flows, np.array([[0, 0, w, h]]), None, g, normal)
        return {s: StreamScores(v.psnr[:, 0], None if v.aux is None else v.aux[:, 0],
                                None if v.box is None else v.box[:, 0],
                                None if v.windows is None else v.windows[:, 0])
                for s, v in out.items()}

    def score_tiles(
        self, frames: np.ndarray, flows: np.ndarray | None, boxes: np.ndarray,
        skip: np.ndarray | None = None, gated: np.ndarray | None = None,
        normal: Mapping[str, np.ndarray] | None = None, still: np.ndarray | None = None,
    ) -> dict[str, StreamScores[np.ndarray]]:
        """Per-frame scores of every tile of frames ``context .. T-1``, tiles batched together.

        Each tile is cut from the frames (and flows: flow is in pixels of the frame it was
        computed on, and a tile keeps those pixels, so a tile's flow is in the units of
        the model's input frame, as in whole-frame scoring) and scored like a frame.

        Args:
            frames: float32 (T, H, W, 3) in [-1, 1], any size holding the tiles.
            flows: model-range float32 (T-1, 2, H, W), as for :meth:`score`.
            boxes: (N, 4) int tile boxes ``(x0, y0, x1, y1)``, each ``img_size`` big.
            skip: (n, N) bool, True where a tile of a target frame is not scored (its
                scores are NaN, its box zeros); None scores all.
            gated: (n, N) bool, tiles only the learned models skip (motion gating): their
                learned scores are NaN, the baselines still score them. None: none gated.
            normal: per stream, the (N, oh, ow) normal window errors of these tiles
                (``region="calibrated"``, as for :meth:`score`).
            still: (T-1,) bool, the pairs whose flow is zero because the gate's change
                stage did not compute it (``Chunk.still``): scores that depend only on
                the flow are computed once for all of them. None: no such pair.

        Returns:
            ``{stream: StreamScores(psnr, aux, box)}``: psnr and aux (n, N) float32, box
            (n, N, 4) int32 worst patches in the tile's pixels (None as for :meth:`score`).
        """
        frames = np.asarray(frames, dtype=np.float32)
        flows = None if flows is None else np.asarray(flows, dtype=np.float32)
        self._check_clip(frames, flows, "score_tiles", tuple(frames.shape[1:3]))
        boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
        th, tw = self.img_size
        fh, fw = frames.shape[1:3]
        if ((boxes[:, 2] - boxes[:, 0] != tw) | (boxes[:, 3] - boxes[:, 1] != th)
                | (boxes[:, :2] < 0).any(axis=1) | (boxes[:, 2] > fw) | (boxes[:, 3] > fh)).any():
            msg = (f"FrameScorer.score_tiles: every box must be {tw}x{th} (the models' size) "
                   f"inside the {fw}x{fh} frames; got {boxes.tolist()}")
            raise ValueError(msg)
        return self._score(frames, flows, boxes, skip, gated, normal, still)

    def _score(
        self, frames: np.ndarray, flows: np.ndarray | None, boxes: np.ndarray,
        skip: np.ndarray | None, gated: np.ndarray | None = None,
        normal: Mapping[str, np.ndarray] | None = None, still: np.ndarray | None = None,
    ) -> dict[str, StreamScores[np.ndarray]]:
        """Scores (n, N) of the N tiles ``boxes`` of targets ``context .. T-1``: the
        (target, tile) pairs not skipped go through the models ``batch_size`` at a time,
        the learned models leaving out the gated pairs too."""
        targets = np.arange(self.context, len(frames))
        zero_into = None  # (n,) whether the flow into each target is zero by construction
        if still is not None and flows is not None:
            still = np.asarray(still, bool)
            if still.shape != (len(flows),):
                msg = f"FrameScorer: still must be ({len(flows)},); got {still.shape}"
                raise ValueError(msg)
            zero_into = still[targets - 1]
        n, m = len(targets), len(boxes)
        keep = np.ones((n, m), bool) if skip is None else ~np.asarray(skip, bool)
        if keep.shape != (n, m):
            msg = f"FrameScorer.score_tiles: skip must be ({n}, {m}); got {keep.shape}"
            raise ValueError(msg)
        learn = keep if gated is None else keep & ~np.asarray(gated, bool)
        if learn.shape != (n, m):
            msg = f"FrameScorer: gated must be ({n}, {m}); got {learn.shape}"
            raise ValueError(msg)
        # (P, 2) [target row, tile] pairs: every pair for the baselines (cheap, and the
        # gate's own statistic), tile-major so that a batch is one tile's run of targets
        # (cut as views, :meth:`_window`); the ungated ones, frame-major, for the models.
        every, ungated = np.argwhere(keep.T)[:, ::-1], np.argwhere(learn)
        learned = set(map(id, self.models.values()))
        plan = [(mdl, ungated if id(mdl) in learned else every) for mdl in self._scorers]
        psnr = {s: np.full((n, m), np.nan, np.float32) for s in self.streams}
        aux: dict[str, np.ndarray] = {}
        box: dict[str, np.ndarray] = {}
        windows: dict[str, np.ndarray] = {}
        refs = self._normal_refs(normal, m)
        clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W)
        flow = torch.from_numpy(np.ascontiguousarray(flows)) if self.needs_flow else None
        with torch.inference_mode(), autocast(self.amp_dtype, self.device):
            for model, pairs in plan:
                # The parameter-free baselines cost little per sample and much per call
                # (cutting, stacking, converting): a still stretch spent most of its time
                # in their batches of batch_size. A larger batch gives the same scores.
                size = self.batch_size if id(model) in learned else max(self.batch_size,
                                                                       BASELINE_BATCH)
                for start in range(0, len(pairs), size):
                    rows, tiles = pairs[start : start + size].T
                    idx = [(int(targets[r]), boxes[t])
                           for r, t in zip(rows, tiles, strict=True)]
                    win, flow_win = self._window(model, idx, clip, flow)
                    extra = ({} if zero_into is None or id(model) in learned
                             else {"zero": torch.from_numpy(zero_into[rows])})
                    scored = model.score_batch(win, flow_win, region=self.region, **extra)
                    for s, sc in scored.items():
                        psnr[s][rows, tiles] = sc.psnr.float().cpu().numpy()
                        if sc.aux is not None:
                            aux.setdefault(s, np.full((n, m), np.nan, np.float32))
                            aux[s][rows, tiles] = sc.aux.float().cpu().numpy()
                        if sc.box is not None:
                            box.setdefault(s, np.zeros((n, m, 4), np.int32))
                            box[s][rows, tiles] = sc.box.cpu().numpy()
                        if sc.windows is not None:
                            win_np = sc.windows.float().cpu().numpy()
                            windows.setdefault(
                                s, np.full((n, m, *win_np.shape[1:]), np.nan, np.float32))
                            windows[s][rows, tiles] = win_np
        if refs is not None:
            for s, w in windows.items():
                psnr[s], box[s] = self._calibrated(w, refs[s])
            windows = {}
        if self.scene_prior is not None:  # from the target's persist frames up to it
            psnr[PRESENCE_STREAM], found = self._presence(
                frames[self.context - self.scene_prior.persist + 1:], boxes, keep)
            if self.region != "frame":
                box[PRESENCE_STREAM] = found
        return {s: StreamScores(psnr[s], aux.get(s), box.get(s), windows.get(s))
                for s in self.streams}

    def _presence(self, frames: np.ndarray, boxes: np.ndarray, keep: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The ``presence`` scores (n, N) and boxes (n, N, 4) in tiles ``boxes`` of the n
        targets at the end of ``frames`` (model range; persist - 1 more before them); NaN
        (box zeros) where a tile is skipped."""
        from raystack.scene_prior import presence_scores, presence_tail

        if not len(keep):  # no target: nothing to score
            return np.zeros(keep.shape, np.float32), np.zeros((*keep.shape, 4), np.int32)
        u8 = np.clip(np.rint((frames + 1.0) * 127.5), 0, 255).astype(np.uint8)
        psnr, box = presence_scores(presence_tail(u8, self.scene_prior), self.scene_prior,
                                    boxes)
        psnr[~keep] = np.nan
        box[~keep] = 0
        return psnr, box

    def _normal_refs(self, normal: Mapping[str, np.ndarray] | None, tiles: int
                     ) -> dict[str, np.ndarray] | None:
        """The checked references of a calibrated score, or None (no calibration)."""
        if self.region != "calibrated" or normal is None:
            return None
        from raystack.scoring import window_geometry

        _, _, grid = window_geometry(self.img_size)
        refs = {}
        for s in self.streams:
            if s == PRESENCE_STREAM:  # already relative to normal footage, per cell
                continue
            ref = None if s not in normal else np.asarray(normal[s], np.float32)
            if ref is None or ref.shape != (tiles, *grid):
                got = "none" if ref is None else str(ref.shape)
                msg = (f"FrameScorer: calibrated scoring needs {s}'s normal window errors "
                       f"({tiles}, {grid[0]}, {grid[1]}) for these tiles; got {got}")
                raise ValueError(msg)
            refs[s] = ref
        return refs

    def _calibrated(self, windows: np.ndarray, ref: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, N) calibrated PSNR and (n, N, 4) boxes of (n, N, oh, ow) window errors
        against (N, oh, ow) references; NaN (box zeros) where a pair was not scored."""
        from raystack.scoring import calibrated_scores

        n, m = windows.shape[:2]
        psnr = np.full((n, m), np.nan, np.float32)
        box = np.zeros((n, m, 4), np.int32)
        done = np.isfinite(windows).all(axis=(2, 3))
        if done.any():
            rows, tiles = np.nonzero(done)
            p, b = calibrated_scores(torch.from_numpy(windows[rows, tiles]),
                                     torch.from_numpy(ref[tiles]), self.img_size)
            psnr[rows, tiles] = p.numpy()
            box[rows, tiles] = b.numpy()
        return psnr, box

    def _window(
        self, model: ScoringModel, idx: list[tuple[int, np.ndarray]], clip: torch.Tensor,
        flow: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``model``'s input for (target frame, tile box) pairs ``idx``, on the device:
        frames (b, context + 1, 3, h, w) and, when it reads flow, flows (b, context, 2, h, w)."""
        c = model.context

        def cut(x: torch.Tensor, a: int, b: int, box: np.ndarray) -> torch.Tensor:
            x0, y0, x1, y1 = (int(v) for v in box)
            return x[a:b, :, y0:y1, x0:x1]

        first, last = idx[0][0], idx[-1][0]
        if last - first == len(idx) - 1 and all(  # one tile, consecutive targets: a view
                i == first + k and np.array_equal(bx, idx[0][1]) for k, (i, bx) in enumerate(idx)):
            # (b, c + 1, 3, h, w) windows overlapping in the clip's memory, no copy: on a
            # still stretch the copies cost as much as the baselines scoring them
            def windows(x: torch.Tensor, a: int, size: int) -> torch.Tensor:
                span = cut(x, a, a + len(idx) + size - 1, idx[0][1])
                return span.unfold(0, size, 1).permute(0, 4, 1, 2, 3)

            frames = windows(clip, first - c, c + 1).to(self.device, non_blocking=True)
            if not model.needs_flow:
                return frames, None
            return frames, windows(flow, first - c, c).to(self.device, non_blocking=True)
        frames = torch.stack([cut(clip, i - c, i + 1, bx) for i, bx in idx])
        frames = frames.to(self.device, non_blocking=True)
        if not model.needs_flow:
            return frames, None
        flows = torch.stack([cut(flow, i - c, i, bx) for i, bx in idx])
        return frames, flows.to(self.device, non_blocking=True)
