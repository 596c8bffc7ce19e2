"""How many scan actors a cluster holds and what each reserves (pure, no Ray).

    pool_shape(ScanConfig(workers=0), node_cpus=[2], node_gpus=[0])   # PoolShape(2, 1, 0.0)
    pool_shape(ScanConfig(), node_cpus=[16], node_gpus=[1])           # PoolShape(1, 16, 1.0)
    actor_device("auto", gpu_ids=[])                                  # "cpu"
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from raystack.errors import ConfigError
from raystack.scan.config import ScanConfig


@dataclasses.dataclass(frozen=True)
class PoolShape:
    """How many actors and what each reserves."""

    workers: int
    cpus_per_worker: int
    gpus_per_worker: float


def gpus_per_worker(cfg: ScanConfig, node_gpus: Sequence[float]) -> float:
    """The GPUs each actor asks for: the configured share, or unset, one GPU per actor when
    the cluster has GPUs and the scan may use them (device not "cpu"), else none."""
    if cfg.gpus_per_worker is not None:
        return float(cfg.gpus_per_worker)
    has_gpu = sum(int(g) for g in node_gpus) > 0
    if cfg.device == "cuda" and not has_gpu:
        msg = ("device = 'cuda' but the Ray cluster has no GPUs; use device 'auto' or 'cpu', "
               "or join a cluster with GPUs (--address)")
        raise ConfigError(msg)
    return 1.0 if has_gpu and cfg.device != "cpu" else 0.0


def actor_device(device: str, gpu_ids: Sequence[object]) -> str:
    """The torch device an actor scores on: "auto" is CUDA only when Ray gave the actor a
    GPU. Ray leaves CUDA_VISIBLE_DEVICES alone for an actor without GPUs, so
    ``torch.cuda.is_available()`` would send every CPU actor of a GPU node to the GPU."""
    if device != "auto":
        return device
    return "cuda" if len(gpu_ids) > 0 else "cpu"


def pool_shape(
    cfg: ScanConfig, node_cpus: Sequence[float], node_gpus: Sequence[float]
) -> PoolShape:
    """Actors and their resources for a cluster whose nodes have these CPUs and GPUs.

    Pure: ``workers = 0`` fills the cluster; ``cpus_per_worker = 0`` splits the CPUs
    evenly over the workers; an unset ``gpus_per_worker`` is :func:`gpus_per_worker`'s
    (one actor per GPU on a GPU cluster, its node's CPUs shared out). A request that
    cannot be placed is refused (an actor that never starts would hold its units forever).
    """
    cpus = [int(c) for c in node_cpus if c >= 1]
    if not cpus:
        msg = "the Ray cluster has no CPUs to run scan workers on"
        raise ConfigError(msg)
    gpw = gpus_per_worker(cfg, node_gpus)
    total_cpu, big = sum(cpus), max(cpus)
    if gpw > 0:
        slots = [int(g / gpw + 1e-9) for g in node_gpus]
        if sum(slots) == 0:
            msg = f"gpus_per_worker = {gpw} but the Ray cluster has GPUs {list(node_gpus)}"
            raise ConfigError(msg)
        workers = cfg.workers or sum(slots)
        per_node = max(slots)
        cpw = cfg.cpus_per_worker or max(1, min(big // max(per_node, 1), total_cpu // workers))
    elif cfg.workers:
        workers = cfg.workers
        cpw = cfg.cpus_per_worker or max(1, min(big, total_cpu // workers))
    else:
        # One single-threaded actor per CPU: torch scales poorly from 1 to 2 threads on
        # these models, so on 2 cores two 1-thread actors scored 1.05-2x the frames/s of
        # one 2-thread actor (bench/results/scan_pipeline.json).
        cpw = cfg.cpus_per_worker or 1
        workers = sum(c // cpw for c in cpus)
    fits = sum(c // cpw for c in cpus)
    if cpw > big or workers > fits:
        msg = (
            f"{workers} workers x {cpw} CPUs do not fit the Ray cluster (node CPUs {cpus}); "
            f"lower --workers or cpus_per_worker (at most {fits} workers of {cpw} CPUs fit)"
        )
        raise ConfigError(msg)
    return PoolShape(workers, cpw, gpw)
