"""Ray Train adapter: the plain loop of ``loop.py`` inside a ``TorchTrainer`` (Ray Train V2).

One ``TorchTrainer`` run per stream (FP, then FR), with ``N`` DDP workers (gloo on CPU,
nccl on GPU; ``ray.train.torch.prepare_model``). Each worker decodes the training videos
(or reads them from ``cache_dir``), sets its torch threads to its CPUs and takes its own
shard of every global batch (worker r of N: samples r, r+N, ...). After every epoch rank
0 reports the metrics and a checkpoint folder (``model.pt`` holds the unwrapped
``model.module`` weights, ``state.pt`` the optimizer/scheduler/RNG/epoch); the others
report metrics only.

Resume (Ray 2.60 has no ``Trainer.restore``): the trainer is rebuilt with the same
``RunConfig(storage_path=STORAGE/<name>, name=<task>)``; Ray finds its snapshot there and
``ray.train.get_checkpoint()`` hands the workers the latest checkpoint. Epoch folders
written by an in-process run (no Ray snapshot) are found by listing instead, so a run can
switch between ``workers <= 1`` and Ray. ``FailureConfig(max_failures)`` restarts a worker
group that died, from the latest checkpoint, within the same call.

Progress: rank 0 sends its events through a ``ray.util.queue.Queue`` (a 0-CPU actor); the
driver replays them on the console while ``fit()`` runs.

    outcomes = fit_with_ray(cfg, RunStorage("runs", "night1"), emit=TrainProgress().handle)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

from raystack.errors import RaystackError
from raystack.threads import OMP_SPIN
from raystack.train.loop import Emit, StreamOutcome
from raystack.train.storage import RunStorage, checkpoint_dir_name

# Test hook: the rank-0 worker exits hard (as if killed) right after reporting this epoch.
FAULT_EXIT_AFTER_EPOCH = "RAYSTACK_FAULT_TRAIN_EXIT_AFTER_EPOCH"
# Fewest seconds between two step events sent to the driver.
STEP_EVENT_EVERY_S = 0.5
# glibc maps every >= 32 MiB temporary afresh without MALLOC_MMAP_THRESHOLD_; OMP_SPIN lets
# idle OpenMP threads leave the core to the scan kernels soon (docs/platform.md).
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", **OMP_SPIN}


class TrainingFailed(RaystackError):
    """A Ray Train run ended in error after its retries; the cause is chained."""


@contextlib.contextmanager
def ray_session(cfg: Any) -> Iterator[None]:
    """Connect to Ray for a training run: an initialised Ray is used as is; ``cfg.address``
    or ``RAY_ADDRESS`` joins that cluster; otherwise a private local Ray starts, the same
    one a scan gets (:func:`raystack.ray_local.private_ray`: no token-authentication
    warning, no API server, its session folder removed at the end and nothing left
    running after a killed driver), and is shut down at the end."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        try:
            yield
        finally:
            ray.shutdown()
        return
    from raystack.ray_local import private_ray

    # Progress and errors reach the driver through the queue and the Result; worker logs
    # stay in Ray's session folder while it runs. Forwarding them would mostly repeat a
    # warning of Ray Train's placement-group cleaner, which cannot reach the state API
    # without the dashboard.
    with private_ray(os.cpu_count() or 1, int(cfg.object_store_mb) * 1024 * 1024,
                     log_to_driver=False):
        yield


def _worker_emit(queue: Any, rank: int) -> Emit:
    """Rank 0 forwards events to the driver (steps at most every STEP_EVENT_EVERY_S)."""
    last = [0.0]

    def emit(event: dict[str, Any]) -> None:
        if rank != 0:
            return
        now = time.monotonic()
        if event.get("kind") == "step" and event["step"] != event["steps"]:
            if now - last[0] < STEP_EVENT_EVERY_S:
                return
            last[0] = now
        queue.put(event)

    return emit


def _load_latest(trainer: Any, storage: RunStorage, task: str) -> int | None:
    """Restore the latest checkpoint (Ray's, else the storage's); returns its epoch or None."""
    import ray.train

    from raystack.train.checkpoints import read_checkpoint_dir

    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as folder:
            trainer.load_state(*read_checkpoint_dir(folder))
        return trainer.epoch
    found = storage.checkpoints(task)
    if not found:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        trainer.load_state(*read_checkpoint_dir(storage.get_dir(found[-1][1], tmp)))
    return trainer.epoch


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """What every Ray Train worker runs: data, DDP model, epochs, reports."""
    import ray.train
    import ray.train.torch
    import torch

    from raystack.allocator import keep_freed_memory
    from raystack.models import get_config
    from raystack.train.checkpoints import write_checkpoint
    from raystack.train.data import prepare_data
    from raystack.train.loop import StreamTrainer

    cfg, task = config["cfg"], config["task"]
    torch.set_num_threads(int(config["threads"]))
    keep_freed_memory()  # the trim threshold; WORKER_ENV already set the mmap one
    # DDP notes that depthwise-conv gradients arrive in another stride order: harmless.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    emit = _worker_emit(config["queue"], rank)
    storage: RunStorage = config["storage"]  # the driver's, with its S3 endpoint and keys

    data = prepare_data(cfg, task, get_config(cfg.model_name(task), **cfg.model_overrides))
    trainer = StreamTrainer(cfg, task, data, device=ray.train.torch.get_device(), rank=rank,
                            world_size=world, wrap=ray.train.torch.prepare_model)
    resumed_from = _load_latest(trainer, storage, task)
    emit({"kind": "start", "task": task, "epochs": trainer.epochs, "start_epoch": trainer.epoch,
          "steps": trainer.steps_per_epoch, "workers": world, "data": data.summary(),
          "precision": trainer.precision,
          "resumed_from": resumed_from})
    exit_after = int(os.environ.get(FAULT_EXIT_AFTER_EPOCH, "0") or 0)
    while trainer.epoch < trainer.epochs:
        metrics = trainer.run_epoch(emit)
        reported = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        if rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                write_checkpoint(trainer, tmp, run_name=cfg.name)
                ray.train.report(reported, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                                 checkpoint_dir_name=checkpoint_dir_name(trainer.epoch))
        else:
            ray.train.report(reported, checkpoint=None)
        emit({"kind": "epoch", **metrics})
        if rank == 0 and trainer.epoch == exit_after:
            os._exit(1)
    return {"history": trainer.history, "resumed_from": resumed_from,
            "steps_per_epoch": trainer.steps_per_epoch, "data": data.summary(),
            "fingerprint": data.fingerprint}


@contextlib.contextmanager
def _drain(queue: Any, emit: Emit | None) -> Iterator[None]:
    """Replay the workers' events on the driver from a thread while the body runs."""
    stop = threading.Event()

    def pump() -> None:
        from ray.util.queue import Empty

        while True:
            try:
                event = queue.get(timeout=0.2)
            except Empty:
                if stop.is_set():
                    return
                continue
            if emit is not None:
                emit(event)

    thread = threading.Thread(target=pump, name="train-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _fit_task(cfg: Any, task: str, storage: RunStorage, *, use_gpu: bool, cpus: int,
              emit: Emit | None) -> StreamOutcome:
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    storage_path, filesystem = storage.ray_storage()
    keep = cfg.keep_checkpoints
    score = "val_loss" if keep is not None and cfg.val_fraction > 0 else None
    env = {**WORKER_ENV, "OMP_NUM_THREADS": str(cpus),
           **{k: v for k, v in os.environ.items() if k == FAULT_EXIT_AFTER_EPOCH}}
    queue = Queue(actor_options={"num_cpus": 0})
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg, "task": task, "threads": cpus, "queue": queue,
                           "storage": storage},
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.workers, use_gpu=use_gpu,
            resources_per_worker={"CPU": cpus, **({"GPU": 1} if use_gpu else {})},
        ),
        run_config=ray.train.RunConfig(
            name=task, storage_path=storage_path, storage_filesystem=filesystem,
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=keep, checkpoint_score_attribute=score,
                checkpoint_score_order="min"),
            worker_runtime_env={"env_vars": env},
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
        ),
    )
    # fit() installs its own SIGINT handler (Ctrl-C aborts the run) and leaves it behind.
    previous = signal.getsignal(signal.SIGINT)
    try:
        with _drain(queue, emit):
            result = trainer.fit()
    except Exception as err:  # TrainingFailedError wraps whatever the workers raised
        msg = f"training {task} of run {cfg.name!r} failed: {err}"
        raise TrainingFailed(msg) from err
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
        with contextlib.suppress(Exception):
            queue.shutdown()
    out = result.return_value or {}
    return StreamOutcome(
        task=task, history=list(out.get("history", [])),
        epochs=[e for e, _ in storage.checkpoints(task)],
        resumed_from=out.get("resumed_from"), steps_per_epoch=int(out.get("steps_per_epoch", 0)),
        data_summary=str(out.get("data", "")), fingerprint=out.get("fingerprint"),
    )


def fit_with_ray(
    cfg: Any, storage: RunStorage, *, emit: Emit | None = None
) -> dict[str, StreamOutcome]:
    """Train every stream of ``cfg`` with Ray Train, one after the other (FP, then FR)."""
    import ray

    with ray_session(cfg):
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        use_gpu = cfg.device == "cuda" or (cfg.device == "auto" and gpus >= cfg.workers)
        cpus = cfg.cpus_per_worker or max(1, int(resources.get("CPU", 1)) // cfg.workers)
        return {task: _fit_task(cfg, task, storage, use_gpu=use_gpu, cpus=cpus, emit=emit)
                for task in cfg.tasks}
