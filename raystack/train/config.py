"""Typed configuration of a training run, shared by ``raystack train``, ``jobs/train.py`` and tests.

    cfg = load_train_config("jobs/train.example.toml", epochs=4, workers=2)
    cfg = TrainConfig(archive="/data/synth/train", model="fp+fr", preset="small")

:func:`check_config` rejects values no run can start with, naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from raystack.config import load_config
from raystack.errors import ConfigError
from raystack.precision import AMP_MODES

MODELS = {"fp": ("fp",), "fr": ("fr",), "fp+fr": ("fp", "fr"), "m2s2l": ("m2s2l",)}
# Registry family of each task: VQ-MaU tasks are f"vqmau_{task}", M2S2L is its own family.
FAMILY = {"fp": "vqmau_fp", "fr": "vqmau_fr", "m2s2l": "m2s2l"}
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; every field has a default so a TOML file sets a few."""

    # Local paths among the fields, made absolute when a config is loaded or a run starts:
    # Ray Train workers run in another folder.
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("archive", "storage", "export_dir", "cache_dir")

    # Training videos, normal footage only: a local folder, a video file or s3://bucket/prefix.
    # Point it at the training split (e.g. ARCHIVE/train): a listing that contains a folder
    # named test/testing is refused, so test videos never leak into training by accident.
    archive: str = ""
    # Streams to train: "fp" (frame prediction), "fr" (flow reconstruction) or "fp+fr"
    # (FP first, then FR, the paper's order; our FR does not read FP's weights).
    model: str = "fp"
    # Preset size; the model is f"vqmau_{task}.{preset}": "tiny" (tests), "small" (CPU demo),
    # "ped2" / "shanghaitech" / "avenue" or "paper" (the paper's sizes, for GPUs).
    preset: str = "small"
    # Config fields of the model replaced on top of the preset (create_model overrides),
    # e.g. {img_size = [64, 64]} in a TOML [train.model_overrides] table.
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # Passes over the training clips (or over clips_per_epoch samples of them); None = the
    # model's recipe (models/presets.py TRAIN_RECIPES: FP small 3, FR small 2; else 10).
    epochs: int | None = None
    # Global batch: split evenly over the workers, so a run's optimisation steps do not
    # depend on how many workers share them. Must be a multiple of max(workers, 1).
    batch_size: int = 8
    # Clips drawn per epoch (without replacement, reshuffled every epoch); 0 = all of them;
    # None = the model's recipe (FP small 2400, FR small 1000; else 0).
    clips_per_epoch: int | None = None
    # Frames between the targets of consecutive training clips of a video (1 = every frame).
    stride: int = 1
    # Held-out normal footage for checkpoint selection: the last fraction of every training
    # video (0 = none; the last epoch is then exported). Never test labels.
    val_fraction: float = 0.1
    # Validation clips used at most (evenly spaced over the held-out ones), to bound its cost.
    val_clips: int = 256
    # AdamW peak learning rate; None = the model's recipe (models/presets.py TRAIN_RECIPES:
    # 3e-3 for the small and tiny VQ-MaU presets, measured in docs/models.md; else the
    # paper's 2e-4). Weight decay: torch's AdamW default.
    lr: float | None = None
    weight_decay: float = 0.01
    # Cosine decay over ALL steps of the run to lr * min_lr_ratio; it never restarts, and a
    # resumed run continues the same curve.
    min_lr_ratio: float = 0.05
    # Linear warm-up steps before the cosine (0 = none; None = the model's recipe).
    warmup_steps: int | None = None
    # Gradient-norm clipping (0 = off): VQ codebook jumps early in training spike gradients.
    grad_clip: float = 1.0
    # Train on tiles, as a tiled scan scores (`raystack scan --tiles`): frames decoded at the
    # working size (source / tile_scale) and a random img_size crop of it per clip, the same
    # window over all frames and flows of the clip. Off = whole frames resized to img_size
    # (the papers' protocol). The checkpoint records it; a scan with other tiling warns.
    tiles: bool = False
    # Downscale of the source before tiling, as `raystack scan`'s (raystack/tiles.py): 0 =
    # automatic, a 360-px working height (scale 3 at 1080p, 2 at 720p); 2 turns 1920x1080
    # into 960x540. Frames smaller than a tile are upscaled to fill it. Only with tiles on.
    tile_scale: float = 0.0
    # Optical flow for FR: must match the scan's (raystack scan --flow), or FR scores flows
    # unlike the ones it learnt. "dis" (OpenCV DIS, CPU) or "farneback".
    flow: str = "dis"
    # DIS preset: "ultrafast" | "fast" | "medium"; scan's default is "fast".
    flow_preset: str = "fast"
    # Where runs live: a local folder or s3://bucket/prefix. A run is STORAGE/<name>/.
    storage: str = "runs"
    # Run name; rerunning with the same storage and name resumes from its latest checkpoint.
    # None = "train-<model>-<UTC time>" (a fresh run).
    name: str | None = None
    # Training processes: 0 or 1 trains in this process (no Ray); N >= 2 runs a Ray Train
    # TorchTrainer with N DDP workers (gloo on CPU, nccl on GPU).
    workers: int = 0
    # CPUs per Ray worker, which is also its torch thread count; 0 = all CPUs / workers.
    cpus_per_worker: int = 0
    # "auto" (CUDA when available), "cpu" or "cuda"; Ray workers get one GPU each on "cuda".
    device: str = "auto"
    # Mixed precision of forward and loss (raystack/precision.py): "auto" = bf16 on CUDA
    # (fp16 where the GPU lacks bf16), and for the paper-size presets on CPUs with AMX-BF16;
    # float32 elsewhere. "off", "bf16" or "fp16" (with a gradient scaler) force it.
    # Weights, gradients and optimiser state stay float32.
    amp: str = "auto"
    # Ray Train retries of a failed worker group, each resuming from the latest checkpoint.
    max_failures: int = 1
    # Epoch checkpoints kept per stream: None = all; N = the N best by validation loss
    # plus the latest (which resume needs).
    keep_checkpoints: int | None = None
    # Seed of model init, clip order and dropout; the same seed gives the same clip order.
    seed: int = 0
    # Folder for decoded frames and flows (npy, keyed by each video's fingerprint), reused
    # across runs and Ray workers; None keeps them in memory only.
    cache_dir: str | None = None
    # Local folder for the exported checkpoints fp.pt / fr.pt that `raystack scan` takes;
    # None = STORAGE/<name> for local storage, ./<name> for S3 storage (also uploaded).
    export_dir: str | None = None
    # Train on the first N videos of the listing only (sorted by path); None = all.
    limit: int | None = None
    # Ray cluster to join; None = RAY_ADDRESS when set, else a private local Ray.
    address: str | None = None
    # Object store of the local Ray in MiB: only metrics and progress travel through it.
    object_store_mb: int = 512
    # Live progress bar on stderr; per-epoch lines are printed either way.
    progress: bool = True

    @property
    def tasks(self) -> tuple[str, ...]:
        """Streams in training order, e.g. ``("fp", "fr")``."""
        return MODELS[self.model]

    def schedule(self, task: str) -> tuple[float, int]:
        """``(peak lr, warm-up steps)`` of ``task``: the configured ones, else its recipe."""
        from raystack.models.presets import train_recipe

        recipe = train_recipe(self.model_name(task))
        lr = self.lr if self.lr is not None else recipe["lr"]
        warmup = self.warmup_steps if self.warmup_steps is not None else recipe["warmup_steps"]
        return float(lr), int(warmup)

    def budget(self, task: str) -> tuple[int, int]:
        """``(epochs, clips per epoch)`` of ``task``: the configured ones, else its recipe."""
        from raystack.models.presets import train_recipe

        recipe = train_recipe(self.model_name(task))
        epochs = self.epochs if self.epochs is not None else recipe["epochs"]
        clips = self.clips_per_epoch if self.clips_per_epoch is not None \
            else recipe["clips_per_epoch"]
        return int(epochs), int(clips)

    def model_name(self, task: str) -> str:
        """The registry name of ``task``'s model, e.g. ``vqmau_fp.small``."""
        return f"{FAMILY[task]}.{self.preset}"


def model_presets(model: str) -> list[str]:
    """The presets every stream of ``model`` has, e.g. ``tiny, small, ped2, ...`` for fp+fr."""
    from raystack.models import list_models

    per_task = [
        {n.split(".", 1)[1] for n in list_models(f"{FAMILY[t]}.*", aliases=True)}
        for t in MODELS[model]
    ]
    common = set.intersection(*per_task) if per_task else set()
    order = ("tiny", "small", "ped2", "avenue", "shanghaitech", "paper")
    return sorted(common, key=lambda p: (order.index(p) if p in order else len(order), p))


def load_train_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Load the ``[train]`` table of a TOML file (or nothing) and apply overrides."""
    section = "train" if path is not None else None
    return load_config(TrainConfig, path, section=section, **overrides)


def resolve_name(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with a run name: the configured one, or ``train-<model>-YYYYmmddTHHMMSSZ``."""
    if cfg.name:
        return cfg
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    model = cfg.model.replace("+", "-")
    return dataclasses.replace(cfg, name=f"train-{model}-{stamp}")


def check_config(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` for a config no training run can start with."""

    def bad(key: str, why: str) -> None:
        msg = f"train config: {key} = {getattr(cfg, key)!r}: {why}"
        raise ConfigError(msg)

    if not cfg.archive:
        bad("archive", "set the training videos (a folder, a video file or s3://bucket/prefix)")
    if cfg.model not in MODELS:
        bad("model", f"choose one of {sorted(MODELS)}")
    presets = model_presets(cfg.model)
    if cfg.preset not in presets:
        close = difflib.get_close_matches(str(cfg.preset), presets, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        bad("preset", f"{hint}presets of {cfg.model}: {', '.join(presets)}")
    for key in ("epochs", "batch_size", "stride", "object_store_mb"):
        if getattr(cfg, key) is not None and int(getattr(cfg, key)) < 1:
            bad(key, "must be >= 1")
    for key in ("workers", "cpus_per_worker", "clips_per_epoch", "warmup_steps", "max_failures",
                "val_clips"):
        if getattr(cfg, key) is not None and int(getattr(cfg, key)) < 0:
            bad(key, "must be >= 0")
    if cfg.batch_size % max(cfg.workers, 1):
        bad("batch_size", f"must be a multiple of workers ({cfg.workers}): it is the global "
                          "batch, split evenly over the workers")
    if not 0.0 <= cfg.val_fraction < 0.5:
        bad("val_fraction", "must be in [0, 0.5): the held-out tail of each training video")
    if (cfg.lr is not None and cfg.lr <= 0) or cfg.weight_decay < 0 or cfg.grad_clip < 0:
        bad("lr", "lr must be > 0, weight_decay and grad_clip >= 0")
    if not 0.0 <= cfg.min_lr_ratio <= 1.0:
        bad("min_lr_ratio", "must be in [0, 1]")
    if cfg.device not in DEVICES:
        bad("device", f"choose one of {DEVICES}")
    if cfg.amp not in AMP_MODES:
        bad("amp", f"choose one of {', '.join(AMP_MODES)}")
    if not cfg.tile_scale >= 0:
        bad("tile_scale", "must be >= 0 (0 = automatic, 1 = full resolution, 2 = half, ...)")
    if cfg.flow not in ("dis", "farneback"):
        bad("flow", "training computes flow on CPU: choose 'dis' or 'farneback'")
    if cfg.keep_checkpoints is not None and cfg.keep_checkpoints < 1:
        bad("keep_checkpoints", "must be >= 1 (or unset to keep all)")
    if cfg.limit is not None and cfg.limit < 1:
        bad("limit", "must be >= 1 (or unset for every video)")
    if not isinstance(cfg.model_overrides, dict):
        bad("model_overrides", "must be a table of model config fields, e.g. {img_size = [64, 64]}")
    if cfg.name is not None and (not cfg.name or "/" in cfg.name or cfg.name.startswith(".")):
        bad("name", "must be a plain folder name (no '/', not starting with '.')")
