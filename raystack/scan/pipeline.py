"""The Ray adapter of a scan: a pool of actors that each hold a UnitScorer, fed by a queue.

This is the only module of the scan that imports Ray. The driver gives each actor one
unit at a time, naming the unit it will get next so the actor decodes that one ahead
(a work queue over ``ray.wait``); it records each result through a callback as it
arrives, and retries a unit whose actor died (bounded attempts; every attempt is
recorded). Actors restart after a crash, within a budget per time window, and are killed at the
end, so their CPUs go back to the cluster.

    with ray_session(cfg):
        pool = ActorPool.start(cfg, run_id="r1")
        pool.run([(unit, 1), ...], on_result=lambda row, final: manifest.record(row))
        pool.stop()

Resources: each actor reserves ``cpus_per_worker`` CPUs (also its torch thread count)
and ``gpus_per_worker`` GPUs, and never more actors are started than the cluster can
place, so actors x threads <= CPUs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from raystack.errors import RaystackError
from raystack.scan.config import ScanConfig
from raystack.scan.manifest import INFRASTRUCTURE, INPUT, manifest_row, utcnow
from raystack.scan.plan import WorkUnit
from raystack.scan.scheduler import RestartBudget, RetryRules, UnitQueue, failure_kind
from raystack.scan.shape import PoolShape, pool_shape
from raystack.threads import OMP_SPIN

__all__ = ["ActorPool", "PoolShape", "ScanError", "pool_shape", "ray_session"]

log = logging.getLogger(__name__)

# Worker processes: glibc maps (and faults in again) every temporary of 32 MiB or more
# unless the threshold is raised; that slowed the chunked scan by ~1.7x (docs/platform.md).
# OMP_SPIN: idle OpenMP threads stop spinning soon, leaving the core to the scan kernels'.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", **OMP_SPIN}
# Fault injection for tests: these driver variables reach the actors through runtime_env.
FAULT_ENV_PREFIX = "RAYSTACK_FAULT_"
# Units whose attempt was cut short by a dying actor are retried; with no live actor left
# after this long, the remaining units are recorded as failed instead of waiting forever.
ACTOR_READY_TIMEOUT_S = 600.0


class ScanError(RaystackError):
    """The scan's workers cannot run (none starts, or none becomes ready in time)."""


@contextlib.contextmanager
def ray_session(cfg: ScanConfig) -> Iterator[bool]:
    """Connect to Ray for the duration of a scan; yields whether this call started it.

    An already initialised Ray (a test's, a notebook's) is used as is and left running.
    ``cfg.address`` or ``RAY_ADDRESS`` (set by ``ray job submit``) joins that cluster.
    Otherwise a private local Ray starts (:func:`raystack.ray_local.private_ray`: never
    someone else's instance, a capped object store, no dashboard) and is shut down and
    cleaned up at the end, also on Ctrl-C, an error or a killed driver.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, ignore_reinit_error=False, logging_level=logging.WARNING,
                 log_to_driver=True)
        try:
            yield True
        finally:
            ray.shutdown()
        return
    from raystack.ray_local import private_ray

    with private_ray(os.cpu_count() or 1, int(cfg.object_store_mb) * 1024 * 1024):
        yield True


class _ScanActor:
    """Actor body: a UnitScorer plus a test hook that kills the process mid-unit."""

    def __init__(self, cfg: ScanConfig, run_id: str, threads: int) -> None:
        import ray

        from raystack import retry
        from raystack.scan.config import flow_options
        from raystack.scan.shape import actor_device
        from raystack.scan.worker import UnitScorer
        from raystack.store import Store

        retry.configure(total_s=cfg.storage_retry_s)
        device = actor_device(cfg.device, ray.get_gpu_ids())
        self.scorer = UnitScorer(
            cfg.checkpoints, store=Store(cfg.store), run_id=run_id, device=device,
            threads=threads, batch_size=cfg.batch_size, flow=cfg.flow,
            flow_options=flow_options(cfg, device), chunk_frames=cfg.chunk_frames,
            prefetch_chunks=cfg.prefetch_chunks, cache_dir=cfg.cache_dir,
            cache_max_bytes=cfg.cache_max_bytes(), region=cfg.score_region,
            baselines=cfg.baselines, presence=cfg.presence, tiles=cfg.tiles,
            tile_scale=cfg.tile_scale,
            tile_overlap=cfg.tile_overlap, stride=cfg.stride,
            gate_floor=cfg.gate_floor if cfg.gate and cfg.gate_floor > 0 else None,
            gate_diff_floor=(cfg.gate_diff_floor if cfg.gate and cfg.gate_diff_floor > 0
                             else None),
        )

    def ready(self) -> dict[str, Any]:
        """Who this worker is and what it runs with (torch threads = the CPUs Ray gave it;
        the device and model batch it chose)."""
        import ray
        import torch

        from raystack.scan.manifest import worker_name

        assigned = ray.get_runtime_context().get_assigned_resources()
        fs = self.scorer.scorer
        return {"worker": worker_name(), "threads": torch.get_num_threads(),
                "cpus": assigned.get("CPU"), "gpus": assigned.get("GPU", 0.0),
                "device": str(fs.device), "batch_size": fs.batch_size,
                "amp": str(fs.amp_dtype).removeprefix("torch.") if fs.amp_dtype else "off"}

    def retry_stats(self) -> dict[str, int]:
        """Storage retries this worker made (:func:`raystack.retry.stats`)."""
        from raystack import retry

        return retry.stats()

    def run(self, unit: WorkUnit, attempt: int, next_unit: WorkUnit | None) -> dict[str, Any]:
        # RAYSTACK_FAULT_CRASH_UNIT=<unit_id>: exit abruptly on that unit's first attempt,
        # as an OOM kill or a segfault would (tests of retry after a dead worker).
        if os.environ.get(f"{FAULT_ENV_PREFIX}CRASH_UNIT") == unit.unit_id and attempt == 1:
            os._exit(17)
        # RAYSTACK_FAULT_POISON_UNIT=<unit_id>: exit on every attempt, as a file that
        # segfaults the decoder would.
        if os.environ.get(f"{FAULT_ENV_PREFIX}POISON_UNIT") == unit.unit_id:
            os._exit(17)
        return self.scorer.run(unit, attempt, next_unit)


@dataclasses.dataclass
class _Slot:
    handle: Any
    name: str = "?"
    info: dict = dataclasses.field(default_factory=dict)
    state: str = "starting"  # starting -> ready; ready -> restarting -> ready | dead
    inflight: int = 0
    ping: Any = None  # ObjectRef of a pending ready() call
    reserved: tuple[WorkUnit, int] | None = None  # its next unit, already decoding there
    restarts: RestartBudget | None = None


class ActorPool:
    """Actors that score units, and the driver loop that feeds them (see module docstring)."""

    def __init__(self, cfg: ScanConfig, run_id: str, shape: PoolShape) -> None:
        import ray

        self.cfg = cfg
        self.run_id = run_id
        self.shape = shape
        self.last_workers: list[dict[str, Any]] = []
        self.address = ray.get_runtime_context().gcs_address  # the cluster it runs on
        env = dict(WORKER_ENV)
        env.update({k: v for k, v in os.environ.items() if k.startswith(FAULT_ENV_PREFIX)})
        env["OMP_NUM_THREADS"] = str(shape.cpus_per_worker)
        remote = ray.remote(_ScanActor).options(
            num_cpus=shape.cpus_per_worker,
            num_gpus=shape.gpus_per_worker,
            # Ray counts restarts over an actor's whole life; the driver's RestartBudget
            # limits them per time window instead and kills a worker that exceeds it.
            max_restarts=-1 if cfg.max_actor_restarts else 0,
            max_task_retries=0,  # the driver retries, so every attempt is recorded
            # Synchronous actor: calls run on the process's main thread, where torch's
            # thread pool is warm (see UnitScorer); the next unit is prefetched by hint.
            max_concurrency=1,
            runtime_env={"env_vars": env},
        )
        self.slots = [
            _Slot(remote.remote(cfg, run_id, shape.cpus_per_worker),
                  restarts=RestartBudget(cfg.max_actor_restarts, cfg.actor_restart_window_s))
            for _ in range(shape.workers)
        ]
        for s in self.slots:
            s.ping = s.handle.ready.remote()

    @classmethod
    def start(cls, cfg: ScanConfig, run_id: str) -> ActorPool:
        """Size the pool from the connected cluster and start its actors."""
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = [n["Resources"].get("CPU", 0.0) for n in nodes]
        gpus = [n["Resources"].get("GPU", 0.0) for n in nodes]
        shape = pool_shape(cfg, cpus, gpus)
        log.info("scan pool: %d workers x %d CPUs x %.2g GPUs", shape.workers,
                 shape.cpus_per_worker, shape.gpus_per_worker)
        return cls(cfg, run_id, shape)

    @property
    def workers(self) -> list[dict[str, Any]]:
        """What each started worker reported: ``{"worker", "threads", "cpus"}``."""
        return [dict(s.info) for s in self.slots if s.info]

    def stop(self) -> None:
        """Kill the actors so their CPUs return to the cluster."""
        import ray

        live = [s for s in self.slots if s.state == "ready" and s.inflight == 0]
        with contextlib.suppress(Exception):  # what each worker had to retry, for run.json
            stats = ray.get([s.handle.retry_stats.remote() for s in live], timeout=10)
            for s, st in zip(live, stats, strict=True):
                s.info["storage_retries"] = st["retries"]
        self.last_workers = self.workers
        for s in self.slots:
            with contextlib.suppress(Exception):
                ray.kill(s.handle, no_restart=True)
        self.slots = []

    # --- the driver loop -------------------------------------------------------------------

    def run(
        self,
        work: Sequence[tuple[WorkUnit, int]],
        on_result: Callable[[dict[str, Any], bool], None],
    ) -> None:
        """Score ``(unit, first attempt)`` pairs; ``on_result(row, final)`` gets every attempt.

        ``final`` is False for an attempt that will be retried. A failed attempt is retried
        after a backoff while the unit has attempts left for its kind of failure
        (:class:`~raystack.scan.scheduler.RetryRules`): a dead worker or a store that stayed
        away is infrastructure; an unexpected error while scoring is input. A ``failed`` row
        of kind ``input`` from the worker (a bad file) is final.
        """
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        rules = RetryRules(max_attempts=self.cfg.max_attempts,
                           max_infra_attempts=self.cfg.max_infra_attempts,
                           backoff_s=self.cfg.retry_backoff_s)
        queue = UnitQueue(work, rules)
        inflight: dict[Any, tuple[_Slot, WorkUnit, int, Any]] = {}
        waiting_since = time.monotonic()

        def unreserve(slot: _Slot) -> None:
            if slot.reserved is not None:
                queue.push_front(slot.reserved)
                slot.reserved = None

        def next_for(slot: _Slot) -> tuple[WorkUnit, int] | None:
            if slot.reserved is not None:
                item, slot.reserved = slot.reserved, None
                return item
            if (item := queue.pop()) is not None:
                return item
            # Nothing ready in the queue: take a unit another worker only has reserved
            # (its prefetch is wasted, but no worker idles at the end of the run).
            for other in self.slots:
                if other.reserved is not None:
                    item, other.reserved = other.reserved, None
                    return item
            return None

        def fail(unit: WorkUnit, attempt: int, started: Any, slot: _Slot | None, err: str,
                 kind: str) -> None:
            row = manifest_row(unit, "failed", attempt=attempt, error=err,
                               worker=slot.name if slot else None, started_at=started,
                               run_id=self.run_id, failure_kind=kind)
            on_result(row, not queue.failed(unit, attempt, kind))

        def queued() -> bool:
            return bool(queue) or any(s.reserved is not None for s in self.slots)

        while queued() or inflight:
            live = [s for s in self.slots if s.state != "dead"]
            if not live:
                for s in self.slots:
                    unreserve(s)
                for unit, attempt in queue.drain():
                    err = ("no live scan worker left (every worker crashed more often than "
                           f"{self.cfg.max_actor_restarts} times in "
                           f"{self.cfg.actor_restart_window_s:.0f} s); a rerun resumes")
                    on_result(manifest_row(unit, "failed", attempt=attempt, error=err,
                                           run_id=self.run_id, failure_kind=INFRASTRUCTURE),
                              True)
                break
            for s in self.slots:
                if s.state != "ready":
                    unreserve(s)  # a restarting or dead worker lost what it had prefetched
                    continue
                if s.inflight == 0 and (item := next_for(s)) is not None:
                    unit, attempt = item
                    if self.cfg.prefetch_next_unit and queue.has_ready():
                        s.reserved = queue.pop()
                    nxt = s.reserved[0] if s.reserved is not None else None
                    ref = s.handle.run.remote(unit, attempt, nxt)
                    inflight[ref] = (s, unit, attempt, utcnow())
                    s.inflight += 1
            pings = {s.ping: s for s in self.slots if s.ping is not None}
            soon = queue.next_in()
            timeout = 1.0 if soon is None else min(1.0, max(0.05, soon))
            ready, _ = ray.wait([*inflight, *pings], num_returns=1, timeout=timeout)
            if ready or (queue.has_ready() and any(s.state == "ready" for s in self.slots)):
                waiting_since = time.monotonic()
            elif not inflight and time.monotonic() - waiting_since > ACTOR_READY_TIMEOUT_S:
                msg = (
                    f"no scan worker became ready within {ACTOR_READY_TIMEOUT_S:.0f} s; does "
                    "the cluster have the CPUs/GPUs asked for (see `ray status`)?"
                )
                raise ScanError(msg)
            for ref in ready:
                if ref in pings:
                    self._on_ping(pings[ref], ref)
                    continue
                slot, unit, attempt, started = inflight.pop(ref)
                slot.inflight -= 1
                try:
                    row = ray.get(ref)
                except RayActorError as e:
                    self._crashed(slot)
                    unreserve(slot)
                    kind = queue.crashed(unit)
                    err = f"worker died: {type(e).__name__}: {_first_line(e)}"
                    if kind == INPUT:
                        err = (f"the worker died while scoring this unit {self.cfg.max_attempts} "
                               "times while other units finished: the file probably crashes "
                               f"the decoder ({err})")
                    fail(unit, attempt, started, slot, err, kind)
                    continue
                except RayTaskError as e:
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    err = f"{type(cause).__name__}: {_first_line(cause)}"
                    fail(unit, attempt, started, slot, err, failure_kind(cause))
                    continue
                if row["status"] == "failed" and row.get("failure_kind") == INFRASTRUCTURE:
                    on_result(row, not queue.failed(unit, attempt, INFRASTRUCTURE))
                else:
                    if row["status"] == "done":
                        queue.finished()
                    on_result(row, True)

    def _on_ping(self, slot: _Slot, ref: Any) -> None:
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        slot.ping = None
        try:
            slot.info = ray.get(ref)
            slot.name = slot.info["worker"]
            slot.state = "ready"
        except ActorUnavailableError:
            slot.ping = slot.handle.ready.remote()  # still restarting: ask again
        except RayActorError as e:
            if slot.state == "starting" and getattr(e, "actor_init_failed", False):
                # UnitScorer.__init__ raised on the worker (the driver loaded the same
                # checkpoints, so this is the worker's environment): stop the scan.
                msg = f"a scan worker could not start: {_first_line(e)}"
                raise ScanError(msg) from e
            # Died again before answering (killed while restarting): one more crash against
            # its budget; an actor Ray cannot restart fails every ping and soon runs out.
            self._crashed(slot)

    def _crashed(self, slot: _Slot) -> None:
        """The actor died mid-unit: stop feeding it until it answers again after its
        restart, or give it up when it crashes more often than its restart budget allows."""
        import ray

        if slot.state == "dead" or (slot.state == "restarting" and slot.ping is not None):
            return  # already counted; its restart is being awaited
        if slot.restarts is None or not slot.restarts.record():
            log.warning("scan worker %s crashed over %d times in %.0f s; giving it up", slot.name,
                        self.cfg.max_actor_restarts, self.cfg.actor_restart_window_s)
            with contextlib.suppress(Exception):
                ray.kill(slot.handle, no_restart=True)
            slot.state, slot.ping = "dead", None
            return
        slot.state = "restarting"
        slot.ping = slot.handle.ready.remote()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
