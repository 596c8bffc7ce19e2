"""Phases d and f of bench/gpu_check.py: inference through FrameScorer, training steps.

Inference: every preset x model (random weights) scored by
:class:`raystack.inference.FrameScorer` on the device, fp32 (``amp="off"``) and with the
autocast FrameScorer picks itself (``amp="auto"``: bf16 on a CUDA device that has it; the
quick CPU mode forces bf16 so the path runs). Frames/s count the whole ``score`` call, the
host-side window assembly and copies included, as a scan sees it. FLOPs per frame are
bench/model_bench.py's count (FlopCounterMode + the scans' analytic FLOPs); the share is
against the same run's bf16 matmul.

Training: :class:`raystack.train.loop.StreamTrainer` (the plain in-process loop, no Ray)
on synthetic in-memory videos: one short warm-up epoch, then ``steps`` optimiser steps whose
``clips_per_s`` the loop itself reports. Each case runs with amp "off" (fp32) and "auto"
(bf16 autocast on CUDA).
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

import numpy as np
import torch
from gpu_common import (
    Ctx,
    flop_share,
    is_oom,
    peak_memory_mib,
    reset_memory,
    short_error,
    time_calls,
)

from raystack.inference import FrameScorer
from raystack.models import create_model, get_config

FAMILIES = {"fp": "vqmau_fp", "fr": "vqmau_fr", "m2s2l": "m2s2l"}
BATCHES = {"tiny": (8, 64, 256), "small": (8, 64, 256), "paper": (1, 16, 64)}


def flops_per_frame(name: str, model: torch.nn.Module, device: torch.device) -> float:
    """Forward FLOPs of one frame of model ``name`` (already on ``device``; the meta device
    does not take the models' fp32 autocast regions in every torch)."""
    if name.startswith("m2s2l"):
        from raystack.models.m2s2l.flops import count_flops as m2s2l_flops

        return float(m2s2l_flops(model)["total_per_frame"])
    from model_bench import count_flops

    c = model.config
    return float(count_flops(model, torch.zeros(1, c.input_channels, *c.img_size,
                                                device=device))["total_per_frame"])


def synthetic_clip(model: Any, n_targets: int, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Random frames in [-1, 1] (context + n_targets, H, W, 3) and flows when it reads them."""
    rng = np.random.default_rng(seed)
    h, w = model.img_size
    t = model.context + n_targets
    frames = rng.uniform(-1, 1, (t, h, w, 3)).astype(np.float32)
    flows = rng.uniform(-0.3, 0.3, (t - 1, 2, h, w)).astype(np.float32) \
        if model.needs_flow else None
    return frames, flows


def score_case(ctx: Ctx, model: Any, stream: str, batch: int, amp: str,
               clip: tuple[np.ndarray, np.ndarray | None]) -> dict[str, Any]:
    scorer = FrameScorer({stream: model}, device=ctx.device, batch_size=batch, amp=amp,
                         baselines=False)
    reset_memory(ctx)
    frames, flows = clip
    last: dict[str, Any] = {}

    def call() -> None:
        last["psnr"] = scorer.score(frames, flows)[model.streams[0]].psnr

    timing = time_calls(call, ctx, min_reps=2, max_reps=20, min_time=0.5 if ctx.quick else 1.0)
    return {"amp": str(scorer.amp_dtype).removeprefix("torch.") if scorer.amp_dtype else "fp32",
            "frames_per_s": batch / timing["mean_s"], "ms_per_batch": timing["mean_s"] * 1e3,
            "reps": timing["reps"], "peak_mem_mib": peak_memory_mib(ctx), "psnr": last["psnr"]}


def phase_inference(ctx: Ctx) -> dict[str, Any]:
    scales = ("tiny",) if ctx.quick else ("paper", "small", "tiny")
    rows: list[dict[str, Any]] = []
    for scale in scales:
        for stream, family in FAMILIES.items():
            name = f"{family}.{scale}"
            try:
                torch.manual_seed(0)
                model = create_model(name).to(ctx.device).eval()
                fl = flops_per_frame(name, model, ctx.device)
            except Exception as e:
                rows.append({"model": name, "error": short_error(e)})
                continue
            batches = (2,) if ctx.quick else BATCHES[scale]
            for batch in batches:
                row: dict[str, Any] = {"model": name, "batch": batch, "gflops_per_frame": fl / 1e9}
                if ctx.left() < 10:
                    rows.append({**row, "skipped": "phase budget spent"})
                    continue
                try:
                    clip = synthetic_clip(model, batch)
                    fp32 = score_case(ctx, model, stream, batch, "off", clip)
                    amp = score_case(ctx, model, stream, batch, "bf16" if ctx.quick else "auto",
                                     clip)
                except Exception as e:
                    rows.append({**row, "error": short_error(e), "oom": is_oom(e)})
                    reset_memory(ctx)
                    continue
                diff = np.abs(fp32.pop("psnr") - amp.pop("psnr"))
                row["max_abs_psnr_diff_db"] = float(np.nanmax(diff))
                for key, case in (("fp32", fp32), ("amp", amp)):
                    case["share_of_bf16_matmul"] = flop_share(fl, case["frames_per_s"],
                                                              ctx.peaks.get("bf16"))
                    row[key] = case
                rows.append(row)
            del model
            reset_memory(ctx)
    return {"rows": rows, "bf16_peak_tflops": (ctx.peaks.get("bf16") or 0) / 1e12,
            "notes": "frames/s = batch / mean wall time of FrameScorer.score on a clip of "
                     "context + batch frames (window assembly and host-device copies "
                     "included); share = gflops_per_frame * frames/s / same-run bf16 matmul"}


def synthetic_training(task: str, preset: str, batch: int, steps: int, device: torch.device,
                       storage: str, overrides: dict[str, Any] | None = None,
                       amp: str = "auto") -> Any:
    """A StreamTrainer over one random in-memory video long enough for ``steps`` batches."""
    from raystack.train.config import TrainConfig
    from raystack.train.data import DecodedVideo, TrainingData, build_clip_sets
    from raystack.train.loop import StreamTrainer

    cfg = TrainConfig(model=task, preset=preset, model_overrides=dict(overrides or {}),
                      epochs=2, batch_size=batch, clips_per_epoch=batch * steps, val_fraction=0.1,
                      val_clips=batch, device=str(device), storage=storage, name="gpu-check",
                      progress=False, amp=amp)
    mc = get_config(cfg.model_name(task), **cfg.model_overrides)
    h, w = mc.img_size
    t = int(mc.context)
    n = t + 2 * batch + 8  # enough distinct clips for a batch after the held-out tail
    rng = np.random.default_rng(0)
    video = DecodedVideo("synthetic.mp4", rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8),
                         rng.uniform(-0.3, 0.3, (n - 1, 2, h, w)).astype(np.float16))
    train, val = build_clip_sets([video], task=task, t=t, stride=1, val_fraction=0.1,
                                 val_clips=batch, flow_scale=getattr(mc, "flow_scale", 10.0))
    data = TrainingData(task=task, t=t, img_size=(h, w), fingerprint="synthetic", train=train,
                        val=val, videos=[video.relpath])
    return StreamTrainer(cfg, task, data, device=device)


def train_case(ctx: Ctx, task: str, preset: str, batch: int, steps: int,
               overrides: dict[str, Any] | None = None, amp: str = "auto") -> dict[str, Any]:
    reset_memory(ctx)
    with tempfile.TemporaryDirectory() as storage:
        trainer = synthetic_training(task, preset, batch, steps, ctx.device, storage, overrides,
                                     amp)
        measured = trainer.cfg
        # warm-up epoch of 2 steps: allocator, cuDNN autotuning; then the measured epoch
        trainer.cfg = dataclasses.replace(measured, clips_per_epoch=2 * batch)
        trainer.run_epoch()
        trainer.cfg = measured
        metrics = trainer.run_epoch()
    return {"task": task, "preset": preset, "batch": batch, "steps": steps,
            "clips_per_s": metrics["clips_per_s"], "train_s": metrics["train_s"],
            "loss": metrics["loss"], "peak_mem_mib": peak_memory_mib(ctx), "amp": amp,
            "precision": trainer.precision}


def phase_training(ctx: Ctx) -> dict[str, Any]:
    if ctx.quick:
        cases = [("fp", "tiny", 2, 2), ("fr", "tiny", 2, 2)]
        overrides = {"img_size": (32, 32)}
    else:
        cases = [("fp", "small", 16, 20), ("fr", "small", 16, 20),
                 ("fp", "paper", 8, 20), ("fr", "paper", 8, 20)]
        overrides = {}
    rows = []
    for task, preset, batch, steps in cases:
        for amp in ("off", "auto"):  # float32, then what `raystack train` picks (bf16 on CUDA)
            if ctx.left() < 15:
                rows.append({"task": task, "preset": preset, "amp": amp,
                             "skipped": "phase budget spent"})
                continue
            try:
                rows.append(train_case(ctx, task, preset, batch, steps, overrides, amp))
            except Exception as e:
                rows.append({"task": task, "preset": preset, "batch": batch, "amp": amp,
                             "error": short_error(e), "oom": is_oom(e)})
                reset_memory(ctx)
    return {"rows": rows, "notes": "StreamTrainer.run_epoch on synthetic clips after a 2-step "
                                   "warm-up epoch, amp off (fp32) and auto (bf16 on CUDA)"}
