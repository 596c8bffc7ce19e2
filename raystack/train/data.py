"""Training clips from an archive of normal videos, the held-out split, and the data fingerprint.

Every training video is decoded once at the model's ``img_size`` (the same reader and resize
as the scan) and kept in memory as uint8, or in an on-disk npy cache keyed by the video's
fingerprint; FR also computes the optical flow of every frame pair once, with the scan's
backend, stored as float16 in the model range. With ``tiles`` on, videos are decoded at the
working size (source / ``tile_scale``) instead and every sample is a random ``img_size``
crop of it, the same window over all frames and flows of a clip (``crops.py``).

Samples (``i`` is a target frame of one video; alignment is exactly ``FrameScorer``'s):
- FP: input frames ``i-t .. i-1`` stacked on channels, oldest first, target frame ``i``:
  ``x (b, 3t, H, W)``, ``y (b, 3, H, W)``, both in [-1, 1]. The clip starting at frame ``s``
  is the window ``s .. s+t`` (t+1 frames), whose target is frame ``s + t``.
- FR: the flow into frame ``i`` (``flows[i-1]``, frame i-1 -> i) is input and target;
  ``prev`` is ``flows[i-2]``, the previous flow of the motion-difference loss (eq. 7).

Validation split, the checkpoint-selection rule's data: the last ``val_fraction`` of the
frames of every training video are held out; their frames are targets of validation clips
only (inputs may reach back into the training part). The rule itself (lowest validation
loss, ties to the later epoch; never test labels) lives in ``checkpoints.py``.

Listing, cache keys and the data fingerprint live in ``listing.py``.

    data = prepare_data(cfg, "fp", model.config)
    batch = data.train.batch([0, 1])      # {"x": (2, 3t, H, W), "y": (2, 3, H, W)} float32
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange

from raystack.errors import ArchiveError, ConfigError, RaystackError
from raystack.train.listing import (  # noqa: F401 - the data API's names, re-exported
    CACHE_VERSION,
    TEST_FOLDERS,
    data_fingerprint,
    list_training_videos,
    video_key,
)

# Frames decoded (and flowed) per read: bounds the float temporaries of long videos.
READ_CHUNK = 256
CONTEXT = {"fr": 2}  # FR targets need flows[i-1] and flows[i-2]; FP needs t frames before


def context_of(task: str, t: int) -> int:
    """First target frame a task can train on: t for FP, 2 for FR (see module docstring)."""
    return CONTEXT.get(task, t)


# --- decoding and flow ----------------------------------------------------------------


@dataclass
class DecodedVideo:
    """One training video, decoded."""

    relpath: str
    frames: np.ndarray  # uint8 (T, H, W, 3) RGB
    flows: np.ndarray | None = None  # float16 (T-1, 2, H, W) model range; flows[i]: i -> i+1


def _save_npy(path: Path, array: np.ndarray) -> None:
    # Temp file + rename: two workers filling the same cache never see half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached(path: Path | None, make: Callable[[], np.ndarray]) -> np.ndarray:
    if path is not None and path.is_file():
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
    array = make()
    if path is not None:
        _save_npy(path, array)
    return array


def decode_frames(src: Any, size: tuple[int, int], *, scale: float | None = None,
                  tail: tuple[float, int] | None = None,
                  head: tuple[float, int] | None = None) -> np.ndarray:
    """All frames of ``src`` as uint8 (T, H, W, 3) at ``size`` = (H, W), as the scan decodes;
    with ``scale``, at the working size of a tiled scan with ``size`` tiles (crops.py).

    ``tail = (fraction, context)`` decodes only the last ``round(fraction * T)`` frames and
    the ``context`` frames before them (the held-out frames calibrations read), not the
    whole video: on hours of footage the rest would cost minutes per checkpoint.
    ``head = (fraction, most)`` decodes the frames before that tail instead, at most
    ``most`` of them from the start (the scene prior's training frames)."""
    from raystack.archive import materialise
    from raystack.decode import open_reader
    from raystack.train.crops import working_size

    with open_reader(materialise(src), size=(size[1], size[0]), sequential=True) as reader:
        if scale is not None:  # the source size is known once the reader is open
            reader.size = working_size(reader.width, reader.height, scale, tile=size)
            size = (reader.size[1], reader.size[0])
        n = reader.num_frames
        first = 0 if tail is None else max(0, n - round(tail[0] * n) - int(tail[1]))
        if head is not None:
            n = min(n - round(head[0] * n), int(head[1]))
        parts = [reader.read(s, min(s + READ_CHUNK, n)) for s in range(first, n, READ_CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0, *size, 3), np.uint8)


def make_flow(name: str, preset: str) -> Any:
    """The flow estimator training uses (the scan's backend and preset)."""
    from raystack.flow import create_flow

    return create_flow(name, preset=preset) if name == "dis" else create_flow(name)


def compute_flows(frames: np.ndarray, estimator: Any) -> np.ndarray:
    """Model-range flows (T-1, 2, H, W) float16 of a clip, in chunks sharing one frame."""
    from raystack.flow import flow_to_model_input

    n = len(frames)
    out = np.empty((max(n - 1, 0), 2, *frames.shape[1:3]), np.float16)
    for s in range(0, n - 1, READ_CHUNK):
        e = min(s + READ_CHUNK, n - 1)
        out[s:e] = flow_to_model_input(estimator(np.ascontiguousarray(frames[s : e + 1])))
    return out


def load_videos(
    sources: Sequence[Any],
    *,
    size: tuple[int, int],
    scale: float | None = None,
    flow: Any = None,
    cache_dir: str | os.PathLike | None = None,
    memo: dict[str, np.ndarray] | None = None,
    on_video: Callable[[str], None] | None = None,
) -> tuple[list[DecodedVideo], list[tuple[str, str]]]:
    """Decode every source (and its flows when ``flow`` is an estimator).

    Args:
        sources: VideoSources from :func:`list_training_videos`.
        size: (H, W) to decode at: the model's ``img_size``.
        scale: decode at a tiled scan's working size instead (training on tiles).
        flow: a flow estimator (``make_flow``) for FR, or None.
        cache_dir: npy cache folder, or None for memory only.
        memo: in-process dict of decoded frames by video key, shared between tasks.
        on_video: called with each relpath when it is done (progress).

    Returns:
        ``(videos, skipped)``; skipped lists ``(relpath, reason)`` of undecodable videos,
        which a run reports and trains without.
    """
    root = Path(cache_dir) if cache_dir else None
    videos, skipped = [], []
    for src in sources:
        key = video_key(src, size if scale is None else ("scale", float(scale)))
        try:
            if memo is not None and key in memo:
                frames = memo[key]
            else:
                path = root / f"frames-{key}.npy" if root else None
                frames = _cached(path, lambda src=src: decode_frames(src, size, scale=scale))
                if memo is not None:
                    memo[key] = frames
            flows = None
            if flow is not None:
                path = root / f"flow-{key}-{flow.name}.npy" if root else None
                flows = _cached(path, lambda frames=frames: compute_flows(frames, flow))
        except RaystackError as err:
            skipped.append((src.relpath, str(err)))
            continue
        videos.append(DecodedVideo(src.relpath, frames, flows))
        if on_video is not None:
            on_video(src.relpath)
    return videos, skipped


# --- clips ----------------------------------------------------------------------------


def split_targets(
    n_frames: int, *, context: int, val_fraction: float, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Target frames of the training and validation clips of one video.

    The last ``round(val_fraction * n_frames)`` frames are held out; training targets are
    ``context, context + stride, ...`` before them, validation targets every held-out
    frame from ``context`` on.
    """
    n_val = round(val_fraction * n_frames) if val_fraction > 0 else 0
    split = n_frames - n_val
    train = np.arange(context, split, stride, dtype=np.int64)
    val = np.arange(max(split, context), n_frames, dtype=np.int64)
    return train, val


class ClipSet:
    """Samples of one task over decoded videos: ``(video, target frame)`` pairs.

    With ``crop`` = (h, w) (training on tiles) each sample is the window at
    ``crop_origin(seed, epoch, sample)``; the training loop sets ``epoch`` before each epoch.
    """

    def __init__(self, videos: Sequence[DecodedVideo], task: str, t: int,
                 video_idx: np.ndarray, targets: np.ndarray, flow_scale: float = 10.0,
                 crop: tuple[int, int] | None = None, seed: int = 0) -> None:
        self.flow_scale = float(flow_scale)  # FR: the model's px per model-range unit
        self.videos = list(videos)
        self.task = task
        self.t = t
        self.video_idx = np.asarray(video_idx, np.int64)
        self.targets = np.asarray(targets, np.int64)
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, idx: np.ndarray) -> ClipSet:
        """The samples at positions ``idx``."""
        return ClipSet(self.videos, self.task, self.t, self.video_idx[idx], self.targets[idx],
                       self.flow_scale, self.crop, self.seed)

    def window(self, k: int) -> tuple[slice, slice]:
        """``(rows, cols)`` of sample ``k``'s crop (the whole frame without ``crop``)."""
        if self.crop is None:
            return slice(None), slice(None)
        from raystack.train.crops import crop_origin

        frames = self.videos[self.video_idx[k]].frames
        y0, x0 = crop_origin(self.seed, self.epoch, k, space=frames.shape[1:3], crop=self.crop)
        return slice(y0, y0 + self.crop[0]), slice(x0, x0 + self.crop[1])

    def batch(self, idx: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stacked float32 tensors of samples ``idx`` (see the module docstring)."""
        pairs = [(self.videos[self.video_idx[k]], int(self.targets[k]), self.window(k))
                 for k in idx]
        if self.task != "fr":  # fp and m2s2l: t input frames, then the target frame
            t = self.t
            clips = np.stack([v.frames[i - t : i + 1, ys, xs]
                              for v, i, (ys, xs) in pairs])  # (b, t+1, H, W, 3)
            x = torch.from_numpy(clips).float().mul_(2.0 / 255.0).sub_(1.0)
            x = rearrange(x, "b t h w c -> b t c h w")
            return {"x": rearrange(x[:, :t], "b t c h w -> b (t c) h w").contiguous(),
                    "y": x[:, t].contiguous()}
        from raystack.flow import rescale_flow

        cur = np.stack([v.flows[i - 1][:, ys, xs] for v, i, (ys, xs) in pairs]).astype(np.float32)
        prev = np.stack([v.flows[i - 2][:, ys, xs] for v, i, (ys, xs) in pairs]
                        ).astype(np.float32)
        x = torch.from_numpy(rescale_flow(cur, self.flow_scale))
        return {"x": x, "y": x, "prev": torch.from_numpy(rescale_flow(prev, self.flow_scale))}


def build_clip_sets(
    videos: Sequence[DecodedVideo], *, task: str, t: int, stride: int, val_fraction: float,
    val_clips: int, flow_scale: float = 10.0, crop: tuple[int, int] | None = None,
    seed: int = 0,
) -> tuple[ClipSet, ClipSet]:
    """Training and validation :class:`ClipSet` of the decoded videos (``crop``: tiles)."""
    context = context_of(task, t)
    tv, tt, vv, vt = [], [], [], []
    for k, video in enumerate(videos):
        train, val = split_targets(len(video.frames), context=context,
                                   val_fraction=val_fraction, stride=stride)
        tv.append(np.full(len(train), k)), tt.append(train)
        vv.append(np.full(len(val), k)), vt.append(val)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
    train_set = ClipSet(videos, task, t, cat(tv), cat(tt), flow_scale, crop, seed)
    val_set = ClipSet(videos, task, t, cat(vv), cat(vt), flow_scale, crop, seed)
    if len(val_set) > val_clips:
        val_set = val_set.subset(np.linspace(0, len(val_set) - 1, val_clips).round().astype(int))
    return train_set, val_set


@dataclass
class TrainingData:
    """What one stream trains on."""

    task: str
    t: int
    img_size: tuple[int, int]
    fingerprint: str
    train: ClipSet
    val: ClipSet
    videos: list[str] = field(default_factory=list)  # relpaths trained on
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relpath, reason)
    flow: str | None = None  # flow estimator name (FR)
    tile_scale: float | None = None  # training on img_size crops of source / tile_scale

    def summary(self) -> str:
        size = f"{self.img_size[0]}x{self.img_size[1]}"
        if self.tile_scale is not None:
            scale = f"1/{self.tile_scale:g}" if self.tile_scale else "automatic"
            size = f"{scale} scale in {size} tiles"
        text = (f"{self.task}: {len(self.videos)} videos at {size}, "
                f"{len(self.train)} training clips, {len(self.val)} validation clips")
        if self.skipped:
            text += f", {len(self.skipped)} skipped: " + "; ".join(
                f"{r} ({why})" for r, why in self.skipped)
        return text


def prepare_data(
    cfg: Any,
    task: str,
    model_config: Any,
    *,
    sources: Sequence[Any] | None = None,
    memo: dict[str, np.ndarray] | None = None,
    on_video: Callable[[str], None] | None = None,
) -> TrainingData:
    """List (unless ``sources`` are given), decode and cut the clips of one stream.

    Args:
        cfg: the :class:`~raystack.train.config.TrainConfig`.
        task: ``"fp"`` or ``"fr"``.
        model_config: the model's config (``img_size``, ``context``, FR's ``flow_scale``).

    Raises:
        ArchiveError: no video could be decoded, or none is long enough for one clip.
    """
    if sources is None:
        sources = list_training_videos(cfg.archive, limit=cfg.limit)
    size = tuple(model_config.img_size)
    # Frames before each target: the model's context (FP's in_frames, M2S2L's longest
    # window + 1; FR's single flow).
    t = int(model_config.context)
    estimator = make_flow(cfg.flow, cfg.flow_preset) if task == "fr" else None
    scale = float(cfg.tile_scale) if getattr(cfg, "tiles", False) else None
    videos, skipped = load_videos(sources, size=size, scale=scale, flow=estimator,
                                  cache_dir=cfg.cache_dir, memo=memo, on_video=on_video)
    train, val = build_clip_sets(videos, task=task, t=t, stride=cfg.stride,
                                 val_fraction=cfg.val_fraction, val_clips=cfg.val_clips,
                                 flow_scale=getattr(model_config, "flow_scale", 10.0),
                                 crop=size if scale is not None else None, seed=cfg.seed)
    if len(train) == 0:
        why = "; ".join(f"{r}: {m}" for r, m in skipped) or (
            f"every video is shorter than {context_of(task, t) + 1} frames plus the held-out tail")
        msg = f"{cfg.archive}: no {task} training clips ({why})"
        raise ArchiveError(msg)
    if cfg.val_fraction > 0 and len(val) == 0:
        msg = (f"{cfg.archive}: val_fraction = {cfg.val_fraction} holds out no {task} clip "
               "(videos too short); raise val_fraction or set it to 0 (last epoch exported)")
        raise ConfigError(msg)
    used = {v.relpath for v in videos}
    flow_name = estimator.name if estimator is not None else None
    return TrainingData(
        task=task, t=t, img_size=size,
        fingerprint=data_fingerprint([s for s in sources if s.relpath in used], size=size, t=t,
                                     flow=flow_name, tile_scale=scale),
        train=train, val=val, videos=sorted(used), skipped=skipped, flow=flow_name,
        tile_scale=scale,
    )
