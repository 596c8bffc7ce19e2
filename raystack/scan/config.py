"""Typed configuration of a scan, shared by ``raystack scan``, ``jobs/scan.py`` and the tests.

    cfg = load_config(ScanConfig, "jobs/scan.example.toml", section="scan", workers=2)
    cfg = ScanConfig(archive="s3://cams/2024", checkpoints=("fp.pt",), store="./store")

:func:`resolve_run_id` gives a run id when none is set; :func:`check_config` rejects
values a run cannot start with, naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from raystack.config import load_config
from raystack.errors import ConfigError
from raystack.scoring import REGIONS


@dataclass(frozen=True)
class ScanConfig:
    """Everything a scan needs; every field has a default so a TOML file sets only a few."""

    # Local paths among the fields, made absolute when a config is loaded or a scan starts.
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("archive", "checkpoints", "store", "cache_dir",
                                              "flow_checkpoint")

    # Archive to scan: a local folder, a single video file, or s3://bucket/prefix.
    archive: str = ""
    # Model checkpoints (FP, FR, ...); their streams are all scored in one pass over the frames.
    checkpoints: tuple[str, ...] = ()
    # Output store: a local folder or s3://bucket/prefix (created if missing).
    store: str = ""
    # Run id; None makes a fresh one from the UTC time. Rerunning with the same id resumes.
    run_id: str | None = None
    # Ray actors (workers); 0 = as many as fit the cluster's CPUs (GPUs) at cpus_per_worker.
    workers: int = 0
    # CPUs per actor, which is also its torch thread count; 0 = the CPUs split evenly over
    # `workers` if set, else 1 (one single-threaded actor per CPU: the faster shape on CPU,
    # bench/results/scan_pipeline.json; each actor holds its own copy of the models).
    cpus_per_worker: int = 0
    # GPUs per actor; unset = 1 when the cluster has GPUs and device is not "cpu" (one actor
    # per GPU with the node's CPUs split over them, docs/gpu.md), else 0. 0.5 packs two actors
    # on a GPU; 0 keeps the actors on the CPU even on GPU nodes.
    gpus_per_worker: float | None = None
    # Scored frames per work unit. A long video splits into segments of this length that
    # different workers share; each re-reads the model's context (16 frames for FP) before it.
    segment_frames: int = 512
    # Frames decoded, flowed and scored together inside a unit: bounds memory per actor
    # and lets decoding the next chunk overlap the model on this one. Unset: 64 scored
    # whole (a 64-frame chunk at 256x256 is ~50 MB of float frames), 16 tiled (frames and
    # flow at the working size; raystack.scan.worker.TILED_CHUNK_FRAMES).
    chunk_frames: int | None = None
    # Decoded chunks queued ahead of the model per unit (the prefetch depth); 0 = decode
    # between model calls in the same thread (no overlap, no helper thread).
    prefetch_chunks: int = 2
    # Tell each worker which unit it gets next, so that unit's first chunks decode while
    # the model still works on the current one (no gap between units).
    prefetch_next_unit: bool = True
    # Optical flow backend for models that need flow (FR): "dis" (CPU), "farneback", "ptlflow".
    flow: str = "dis"
    # DIS preset: "ultrafast" | "fast" | "medium" (ignored by other backends).
    flow_preset: str = "fast"
    # flow = "ptlflow" only: the ptlflow model (e.g. "rapidflow") and its LOCAL checkpoint
    # file (never downloaded); it runs on the actor's device, the GPU when it has one.
    flow_model: str = ""
    flow_checkpoint: str = ""
    # How a frame's error map becomes its score: "frame" (PSNR over the whole frame, the
    # papers' protocol), "patch" (PSNR of the worst patch, ~1/8 of the frame side) or
    # "calibrated" (the worst patch relative to the error held-out normal footage has at
    # that place, recorded by `raystack train`; the baselines are calibrated alike).
    score_region: str = "frame"
    # Score overlapping tiles of each frame, downscaled by tile_scale, instead of the whole
    # frame resized to the model's input (the papers' protocol, and the benchmark's). Each
    # row's psnr is then its worst tile's, psnr_mean the mean over tiles, box_* the worst
    # tile; it costs one model call per tile (bench/results/tiles_cost.json). Chunks are
    # decoded at the working size: at 640x360 a 64-frame chunk with its flow is ~370 MB,
    # times prefetch_chunks + 1, hence the shorter tiled chunk_frames default.
    tiles: bool = False
    # Downscale factor of the frame the tiles cover (2: 1920x1080 -> 960x540); 0 = auto:
    # a 360-px-tall working frame (1080p/3, 720p/2, 4K/6), where a 60-px person at 1080p
    # stays 20 px tall in a 128-px tile (raystack/tiles.py gives the numbers).
    tile_scale: float = 0.0
    # Fraction of a tile side neighbouring tiles share: 0.25 keeps anything up to a
    # quarter tile wholly inside some tile.
    tile_overlap: float = 0.25
    # Score every stride-th frame (the multiples of it): the models' context is taken at the
    # same stride and flow between the frames used, as if the camera ran at fps / stride;
    # frames and times stay those of the source. 1 = every frame (the papers' protocol).
    stride: int = 1
    # Motion gating: frames (tiles) whose worst-patch flow is below the gate floor skip the
    # learned models; their rows say gated, score their task's trivial answer and count as
    # normal (anomaly 0). Off by default: it changes what is scored (a still anomaly, e.g.
    # someone lying on the ground without moving, is gated), so a run opts in
    # (docs/evaluation.md#motion-gating-and-stride).
    gate: bool = False
    # The floor in px of worst-patch RMS flow at the model's input size; 0 = the floor the
    # checkpoints recorded in training (the lowest of them). Setting it turns gating on.
    gate_floor: float = 0.0
    # The gate's first stage, read before any flow: a frame whose worst-patch RMS change
    # from the frame before is below this many 8-bit levels is still, and its flow is not
    # computed. 0 = the floor the checkpoints recorded (the lowest; a checkpoint without one
    # leaves every frame to the motion stage); -1 = off. Applies only when gating is on.
    gate_diff_floor: float = 0.0
    # Also write the trivial streams `diff` (copy-last PSNR) and `motion` (worst-patch flow
    # magnitude) from the same decode and flow, so every evaluation can compare with them.
    baselines: bool = True
    # Also write the `presence` stream when the checkpoints record a scene prior (`raystack
    # train` fits one: where normal footage has foreground at all; raystack/scene_prior.py):
    # it finds a person standing where nobody stands, which no frame predictor sees. It
    # reads the prior's persistence before each target (24 frames tiled, 8 whole): a tiled
    # scan with it starts at frame 23.
    presence: bool = True
    # Model batch size (frames per forward); None keeps the FrameScorer's default for the
    # actor's device (raystack.inference.default_batch_size: 8 on CPU, 64 on CUDA).
    batch_size: int | None = None
    # "auto" (CUDA if Ray gave the actor a GPU, else CPU), "cpu" or "cuda" (refused on a
    # cluster without GPUs).
    device: str = "auto"
    # Scan only the first N videos of the listing (sorted by path); None = all.
    limit: int | None = None
    # List, probe and plan, print the plan, write nothing and start no Ray.
    dry_run: bool = False
    # Ray cluster to join ("auto", "ray://host:10001", "host:6379"); None = RAY_ADDRESS if
    # set (as under `ray job submit`), else start a private local Ray for this scan.
    address: str | None = None
    # Attempts per unit that fail because of the input (an unexpected error while scoring
    # it). A bad file (an undecodable video) fails at once: a domain error is final for this
    # run and retried only by a rerun.
    max_attempts: int = 3
    # Attempts per unit that fail because of the infrastructure (its worker died, the store
    # or the network stayed away longer than storage_retry_s): waiting cures those.
    max_infra_attempts: int = 10
    # Seconds before a failed unit is tried again, doubling with each failure of the unit
    # (capped at 60 s); other units run meanwhile.
    retry_backoff_s: float = 2.0
    # Restarts of a crashed worker allowed within any actor_restart_window_s seconds; a
    # worker that crashes more often than that is given up (the others carry on).
    max_actor_restarts: int = 20
    actor_restart_window_s: float = 600.0
    # Seconds every read and write of the store and the archive keeps retrying through an
    # outage (connection refused, timeouts, 5xx), with exponential backoff, before the
    # attempt fails as an infrastructure failure.
    storage_retry_s: float = 300.0
    # Object store of the local Ray in MiB: only manifest rows travel through it (workers
    # write their scores straight to the store), so a small store leaves RAM to the models.
    object_store_mb: int = 512
    # Local folder for S3 videos fetched for decoding; None = $RAYSTACK_CACHE or ~/.cache.
    cache_dir: str | None = None
    # Size cap of that folder per node in GiB: least recently used videos are deleted
    # after each download (0 = no cap).
    cache_max_gb: float = 50.0
    # Live progress bar on stderr; the final summary is printed either way.
    progress: bool = True

    def cache_max_bytes(self) -> int | None:
        """The cache cap in bytes, or None for no cap."""
        return int(self.cache_max_gb * 2**30) if self.cache_max_gb > 0 else None


def load_scan_config(path: str | Path | None = None, **overrides: Any) -> ScanConfig:
    """Load the ``[scan]`` table of a TOML file (or nothing) and apply overrides."""
    return load_config(ScanConfig, path, section="scan" if path is not None else None, **overrides)


def resolve_run_id(cfg: ScanConfig) -> ScanConfig:
    """``cfg`` with a run id: the configured one, or ``scan-YYYYmmddTHHMMSSZ`` (UTC)."""
    if cfg.run_id:
        return cfg
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return dataclasses.replace(cfg, run_id=f"scan-{stamp}")


def check_config(cfg: ScanConfig) -> None:
    """Raise :class:`ConfigError` for a config no scan can start with."""

    def bad(key: str, why: str) -> None:
        msg = f"scan config: {key} = {getattr(cfg, key)!r}: {why}"
        raise ConfigError(msg)

    if not cfg.archive:
        bad("archive", "set the archive to scan (a folder, a video file or s3://bucket/prefix)")
    if not cfg.dry_run and not cfg.store:
        bad("store", "set the output store (a folder or s3://bucket/prefix)")
    if cfg.score_region not in REGIONS:
        bad("score_region", "choose 'frame' (the papers' protocol), 'patch' (worst patch) or "
                            "'calibrated' (worst patch relative to normal footage)")
    if not cfg.checkpoints:
        bad("checkpoints", "give at least one model checkpoint (--checkpoint PATH, repeatable)")
    if isinstance(cfg.checkpoints, str):
        bad("checkpoints", "must be a list of paths, e.g. checkpoints = [\"fp.pt\"]")
    for key in ("segment_frames", "chunk_frames", "max_attempts", "object_store_mb"):
        if getattr(cfg, key) is not None and int(getattr(cfg, key)) < 1:
            bad(key, "must be >= 1")
    for key in ("workers", "cpus_per_worker", "prefetch_chunks", "max_actor_restarts"):
        if int(getattr(cfg, key)) < 0:
            bad(key, "must be >= 0")
    if int(cfg.max_infra_attempts) < 1:
        bad("max_infra_attempts", "must be >= 1")
    for key in ("retry_backoff_s", "actor_restart_window_s", "storage_retry_s"):
        if float(getattr(cfg, key)) < 0:
            bad(key, "must be >= 0 seconds")
    if cfg.stride < 1:
        bad("stride", "must be >= 1 (1 scores every frame, 2 every second one)")
    if cfg.gate_floor < 0:
        bad("gate_floor", "must be >= 0 px (0: the floor the checkpoints recorded)")
    if cfg.gate_diff_floor < 0 and cfg.gate_diff_floor != -1:
        bad("gate_diff_floor", "must be >= 0 levels (0: the floor the checkpoints recorded), "
                               "or -1 to compute every frame's flow")
    if cfg.tile_scale < 0:
        bad("tile_scale", "must be > 0 (a downscale factor, 2 halves the frame) or 0 for auto")
    if not 0 <= cfg.tile_overlap < 1:
        bad("tile_overlap", "must be in [0, 1): the fraction of a tile side neighbours share")
    if cfg.cache_max_gb < 0:
        bad("cache_max_gb", "must be >= 0 (0 = no cap)")
    if cfg.gpus_per_worker is not None and cfg.gpus_per_worker < 0:
        bad("gpus_per_worker", "must be >= 0")
    if cfg.limit is not None and cfg.limit < 1:
        bad("limit", "must be >= 1 (or unset for the whole archive)")
    if cfg.flow not in ("dis", "farneback", "ptlflow"):
        bad("flow", "choose 'dis' (CPU), 'farneback' or 'ptlflow' (GPU, with flow_model and "
                    "flow_checkpoint)")
    if cfg.flow == "ptlflow" and not (cfg.flow_model and cfg.flow_checkpoint):
        bad("flow", "ptlflow needs flow_model (e.g. 'rapidflow') and flow_checkpoint (a local "
                    "checkpoint file; nothing is downloaded)")
    if cfg.device not in ("auto", "cpu", "cuda"):
        bad("device", "choose 'auto', 'cpu' or 'cuda'")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        bad("batch_size", "must be >= 1 (or unset for the scorer's default)")


def flow_options(cfg: ScanConfig, device: str) -> dict[str, Any]:
    """Keyword arguments of ``raystack.flow.create_flow(cfg.flow, ...)`` in an actor whose
    models run on ``device``."""
    if cfg.flow == "dis":
        return {"preset": cfg.flow_preset}
    if cfg.flow == "ptlflow":
        return {"model": cfg.flow_model, "ckpt_path": cfg.flow_checkpoint, "device": device}
    return {}
