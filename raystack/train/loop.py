"""Plain-Python training of one stream (FP, FR or M2S2L); no Ray here, the Ray adapter reuses it.

- AdamW at the paper's 2e-4, weight decay on weight matrices only (nanoGPT's habit).
- One cosine schedule over the run's TOTAL number of steps (optional linear warm-up) that
  never restarts: a resumed run restores optimizer, scheduler, epoch and RNG state and
  continues the same curve (the public VADMamba code restarts it mid-training).
- Gradient-norm clipping; per-epoch metrics: loss parts, codebook usage and perplexity over
  the whole epoch, clips/s, and loss and PSNR on the held-out normal clips.
- Clip order is a function of (seed, epoch) only, and every optimiser step sees the same
  global batch whatever the number of workers: worker r of N takes the r-th of every N
  samples of it. Resume therefore needs no sampler state.

Every family trains through its own loss (:class:`raystack.models.contract.TrainableModel`:
``model.loss(model(batch["x"]), batch)``); metrics and validation live in
:mod:`raystack.train.metrics`, epoch checkpoints and the selection rule in
:mod:`raystack.train.checkpoints`.

    trainer = StreamTrainer(cfg, "fp", data)
    metrics = trainer.run_epoch()     # {"epoch": 1, "loss": ..., "val_loss": ..., ...}
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from raystack.errors import ConfigError
from raystack.models.contract import TrainableModel
from raystack.precision import autocast, autocast_dtype
from raystack.train.checkpoints import (
    checkpoints_to_delete,
    read_checkpoint_dir,
    select_epoch,
    write_checkpoint,
)
from raystack.train.data import TrainingData
from raystack.train.metrics import CodebookUse, Reducer, to_device, validate
from raystack.train.storage import RunStorage, checkpoint_dir_name

# Keys of a saved state that must match for a resume to continue the same run.
_RESUME_KEYS = ("model_name", "data_fingerprint", "total_steps", "steps_per_epoch")

Emit = Callable[[dict[str, Any]], None]


def lr_factor(
    step: int, *, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0
) -> float:
    """Multiplier of the base learning rate for optimiser step ``step`` (0-based).

    Linear warm-up over ``warmup_steps``, then one cosine from 1 down to ``min_ratio`` at
    ``total_steps``; it stays at ``min_ratio`` after that, it never restarts.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def steps_per_epoch(n_clips: int, *, batch_size: int, clips_per_epoch: int = 0) -> int:
    """Optimiser steps of one epoch (incomplete last batches are dropped)."""
    drawn = clips_per_epoch or n_clips
    return drawn // batch_size


def epoch_batches(
    n_clips: int, *, batch_size: int, clips_per_epoch: int, seed: int, epoch: int
) -> np.ndarray:
    """Global batches of one epoch, (steps, batch_size) sample indices.

    A function of (seed, epoch) only; ``clips_per_epoch`` larger than ``n_clips`` draws
    further permutations, so no clip repeats before all were seen.
    """
    steps = steps_per_epoch(n_clips, batch_size=batch_size, clips_per_epoch=clips_per_epoch)
    rng = np.random.default_rng([seed, epoch])
    need = steps * batch_size
    order = np.concatenate([rng.permutation(n_clips) for _ in range(-(-need // n_clips))])
    return order[:need].reshape(steps, batch_size)


def make_adamw(groups: list[dict[str, Any]], *, lr: float,
               device: torch.device) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel where the device has one (CPU and CUDA).

    The fused step is the same update in one pass over each tensor; the per-tensor loop
    it replaces took 191 ms against 25 ms for three 1M-element tensors on this project's
    2-core CPU, and about a tenth of a small preset's profiled step.
    Results agree with the loop to float rounding (tests/train/test_train_speed.py).
    """
    if device.type in ("cpu", "cuda"):
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    return torch.optim.AdamW(groups, lr=lr)


class StreamTrainer:
    """Model, optimiser, schedule and metrics of one stream; one call per epoch.

    Args:
        cfg: the :class:`~raystack.train.config.TrainConfig`.
        task: ``"fp"``, ``"fr"`` or ``"m2s2l"``.
        data: what :func:`~raystack.train.data.prepare_data` returned for ``task``.
        device: where to train.
        rank, world_size: this worker's place among the DDP workers (0, 1 in process).
        wrap: turns the model into its distributed form (Ray's ``prepare_model``); the
            unwrapped model stays in ``self.module`` for checkpoints and validation.
    """

    def __init__(
        self,
        cfg: Any,
        task: str,
        data: TrainingData,
        *,
        device: str | torch.device = "cpu",
        rank: int = 0,
        world_size: int = 1,
        wrap: Callable[[nn.Module], nn.Module] | None = None,
    ) -> None:
        from raystack.models import create_model

        self.cfg, self.task, self.data = cfg, task, data
        self.device = torch.device(device)
        self.rank, self.world_size = rank, world_size
        self.model_name = cfg.model_name(task)
        torch.manual_seed(cfg.seed)
        module = create_model(self.model_name, **cfg.model_overrides)
        if not isinstance(module, TrainableModel):
            msg = f"{self.model_name}: {type(module).__name__} has no training loss to train with"
            raise ConfigError(msg)
        self.module = module.to(self.device)
        self.model = wrap(self.module) if wrap is not None else self.module
        # Forward and loss under autocast; weights, gradients and AdamW stay float32. fp16's
        # narrow range needs loss scaling, bf16 (float32's exponent) does not.
        from raystack.models.presets import train_recipe

        self.amp_dtype = autocast_dtype(
            cfg.amp, self.device, cpu_bf16=bool(train_recipe(self.model_name).get("cpu_bf16")))
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp_dtype == torch.float16)
        decay = [p for p in self.module.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.module.parameters() if p.requires_grad and p.dim() < 2]
        self.opt = make_adamw(
            [{"params": decay, "weight_decay": cfg.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.schedule(task)[0], device=self.device,
        )
        self.steps_per_epoch = steps_per_epoch(
            len(data.train), batch_size=cfg.batch_size, clips_per_epoch=cfg.budget(task)[1])
        if self.steps_per_epoch < 1:
            msg = (f"{task}: {len(data.train)} training clips cannot fill one batch of "
                   f"{cfg.batch_size}; lower batch_size or add footage")
            raise ConfigError(msg)
        self.epochs = cfg.budget(task)[0]
        self.total_steps = self.epochs * self.steps_per_epoch
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt,
            lambda step: lr_factor(step, total_steps=self.total_steps,
                                   warmup_steps=cfg.schedule(task)[1],
                                   min_ratio=cfg.min_lr_ratio),
        )
        self.reducer = Reducer()
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []
        self.lrs: list[float] = []  # learning rate of every step this process ran

    # -- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What resume needs besides the weights (which live in the checkpoint's model.pt)."""
        from raystack.config import to_dict

        return {
            "task": self.task,
            "model_name": self.model_name,
            "epoch": self.epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "data_fingerprint": self.data.fingerprint,
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "config": to_dict(self.cfg),
        }

    def load_state(self, model_state: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Restore weights and training state from an epoch checkpoint.

        Raises:
            ConfigError: the checkpoint belongs to a run with other data or schedule.
        """
        mine = {"model_name": self.model_name, "data_fingerprint": self.data.fingerprint,
                "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch}
        diff = [f"{k}: {state.get(k)!r} -> {mine[k]!r}" for k in _RESUME_KEYS
                if state.get(k) != mine[k]]
        if diff:
            msg = (f"cannot resume run {self.cfg.name!r} ({self.task}) with other settings or "
                   f"data ({'; '.join(diff)}); rerun with the original settings or choose a "
                   "new name")
            raise ConfigError(msg)
        self.module.load_state_dict(model_state)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):  # absent before mixed precision, and empty when it is off
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])

    @property
    def best(self) -> dict[str, Any] | None:
        """The history entry the selection rule picks so far."""
        return select_epoch(self.history)

    # -- one epoch -----------------------------------------------------------------------

    def run_epoch(self, emit: Emit | None = None) -> dict[str, Any]:
        """Train one epoch, validate, record and return its metrics (global over workers)."""
        cfg = self.cfg
        epoch = self.epoch + 1
        self.data.train.epoch = epoch  # tiles: fresh crop positions every epoch
        order = epoch_batches(len(self.data.train), batch_size=cfg.batch_size,
                              clips_per_epoch=cfg.budget(self.task)[1], seed=cfg.seed,
                              epoch=epoch)
        codebook = CodebookUse(self.module)
        sums: dict[str, float] = {}
        n_local = 0
        params = [p for p in self.module.parameters() if p.requires_grad]
        self.model.train()
        t0 = time.perf_counter()
        for step, global_idx in enumerate(order):
            idx = global_idx[self.rank :: self.world_size]
            batch = to_device(self.data.train.batch(idx), self.device)
            with autocast(self.amp_dtype, self.device):
                loss, parts, out = self._loss(self.model, batch)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)  # clip the true gradients
            max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
            parts["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
            self.lrs.append(self.opt.param_groups[0]["lr"])
            self.scaler.step(self.opt)  # skipped, and the scale lowered, on inf/nan (fp16)
            self.scaler.update()
            self.sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            n_local += len(idx)
            codebook.add(out)
            if emit is not None:
                emit({"kind": "step", "task": self.task, "epoch": epoch, "step": step + 1,
                      "steps": len(order), "loss": parts["total"]})
        train_s = time.perf_counter() - t0
        keys = sorted(sums)
        totals = self.reducer.sum(
            torch.tensor([sums[k] for k in keys] + [n_local], dtype=torch.float64))
        n = float(totals[-1])
        metrics: dict[str, Any] = {"epoch": epoch, "task": self.task}
        metrics.update({("loss" if k == "total" else f"loss_{k}"): float(totals[i]) / n
                        for i, k in enumerate(keys) if k != "grad_norm"})
        metrics["grad_norm"] = float(totals[keys.index("grad_norm")]) / n
        metrics.update(codebook.metrics(self.reducer))
        metrics["lr"] = self.lrs[-1]
        metrics["clips"] = int(n)
        metrics["train_s"] = round(train_s, 3)
        metrics["clips_per_s"] = n / max(train_s, 1e-9)
        metrics.update(self.validate())
        self.epoch = epoch
        self.history.append(dict(metrics))
        metrics["best"] = self.best is not None and self.best["epoch"] == epoch
        return metrics

    def _loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float], Any]:
        out = model(batch["x"])  # through the DDP wrapper, so gradients synchronise
        loss, parts = self.module.loss(out, batch)
        return loss, parts, out

    @property
    def precision(self) -> str:
        """What the forward runs in, for the start line: "float32" or "bf16 autocast"."""
        names = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}
        return names.get(self.amp_dtype, "float32")

    def validate(self) -> dict[str, float]:
        """Validation metrics of the held-out clips (:func:`raystack.train.metrics.validate`)."""
        return validate(self.module, self.data.val, task=self.task, device=self.device,
                        batch_size=self.cfg.batch_size, rank=self.rank,
                        world_size=self.world_size, reducer=self.reducer)


@dataclass
class StreamOutcome:
    """What training one stream produced."""

    task: str
    history: list[dict[str, Any]]
    epochs: list[int]  # epochs whose checkpoint exists in the storage
    resumed_from: int | None  # epoch the run continued from, None when it started fresh
    steps_per_epoch: int = 0
    data_summary: str = ""
    fingerprint: str | None = None  # data fingerprint of what it trained on


def fit_in_process(
    cfg: Any,
    task: str,
    data: TrainingData,
    storage: RunStorage,
    *,
    device: str | torch.device = "cpu",
    emit: Emit | None = None,
) -> StreamOutcome:
    """Train ``task`` in this process, one checkpoint per epoch, resuming from the latest.

    Rerunning with the same storage and run name continues after the last complete epoch;
    a finished run trains nothing more.
    """
    trainer = StreamTrainer(cfg, task, data, device=device)
    resumed_from = None
    found = storage.checkpoints(task)
    if found:
        epoch, rel = found[-1]
        with tempfile.TemporaryDirectory() as tmp:
            trainer.load_state(*read_checkpoint_dir(storage.get_dir(rel, tmp)))
        resumed_from = epoch
    if emit is not None:
        emit({"kind": "start", "task": task, "epochs": trainer.epochs, "start_epoch": trainer.epoch,
              "steps": trainer.steps_per_epoch, "workers": 1, "data": data.summary(),
              "precision": trainer.precision, "resumed_from": resumed_from})
    while trainer.epoch < trainer.epochs:
        metrics = trainer.run_epoch(emit)
        with tempfile.TemporaryDirectory() as tmp:
            write_checkpoint(trainer, tmp, run_name=cfg.name)
            storage.upload_dir(tmp, f"{task}/{checkpoint_dir_name(trainer.epoch)}")
        epochs = [e for e, _ in storage.checkpoints(task)]
        for e in checkpoints_to_delete(epochs, trainer.history, cfg.keep_checkpoints):
            storage.delete_dir(f"{task}/{checkpoint_dir_name(e)}")
        if emit is not None:
            emit({"kind": "epoch", **metrics})
    return StreamOutcome(task, trainer.history, [e for e, _ in storage.checkpoints(task)],
                         resumed_from, trainer.steps_per_epoch, data.summary(), data.fingerprint)
