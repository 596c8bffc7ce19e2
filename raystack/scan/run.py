"""``scan()``: list, probe and plan an archive, score every unit on Ray, resume on rerun.

    result = scan(ScanConfig(archive="s3://cams/2024", checkpoints=("fp.pt",), store="./st"))
    result.summary.ok, result.summary.rows     # True, 1_234_560
    status("./st", result.run_id)              # the same summary, from the manifest

A run is identified by its run id. Its ``run.json`` records what fixes the units and the
scores (archive, checkpoint hashes, context, segment size, flow backend); a rerun with the
same id and the same settings skips the units whose latest attempt is done, and a rerun
with different settings is refused, since mixing them would mix incomparable scores.
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC
from typing import Any

from raystack import retry
from raystack.config import resolve_paths, to_dict
from raystack.console import console
from raystack.errors import ConfigError
from raystack.redact import redact_uri
from raystack.scan.config import ScanConfig, check_config, resolve_run_id
from raystack.scan.manifest import Manifest, ScanSummary, manifest_row, summarize_table
from raystack.scan.plan import PROBE_SUFFIX, Outcome, Plan, plan_units

# Settings that change which units exist or what their scores mean.
IDENTITY_KEYS = ("archive", "context", "segment_frames", "streams", "checkpoints", "flow",
                 "flow_preset", "flow_model", "score_region", "tiles", "stride", "gate_floor",
                 "gate_diff_floor")


@dataclasses.dataclass
class ScanResult:
    """What :func:`scan` did."""

    run_id: str
    plan: Plan
    summary: ScanSummary
    wall_s: float
    skipped_done: int = 0  # units already done by an earlier invocation of the run
    store: str = ""
    dry_run: bool = False
    workers: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # what ran
    # Storage retries the driver made in this invocation (its manifest and run.json writes;
    # each worker reports its own as workers[i]["storage_retries"]).
    driver_storage_retries: int = 0

    @property
    def storage_retries(self) -> int:
        """Retries of store or archive operations in this invocation, driver and workers."""
        return self.driver_storage_retries + sum(int(w.get("storage_retries", 0))
                                                 for w in self.workers)

    @property
    def ok(self) -> bool:
        return self.summary.ok


def _model_info(cfg: ScanConfig) -> dict[str, Any]:
    """Context, streams and checkpoint hashes, by loading the models once in the driver.

    Loading here fails fast on a bad checkpoint, before any worker starts. A checkpoint
    trained with other tiling than the scan's is warned about (models/tiling.py says
    why not refused); the warnings are printed and kept in run.json's ``models``.
    """
    from raystack.inference import FrameScorer
    from raystack.models.tiling import tiling_mismatch
    from raystack.scan.gate_floor import resolve_diff_floor, resolve_gate_floor

    fs = FrameScorer.from_checkpoints(list(cfg.checkpoints), device="cpu",
                                      region=cfg.score_region, baselines=cfg.baselines,
                                      presence=cfg.presence, tiles=cfg.tiles)
    ckpts = {s: {"path": i["path"], "sha256": i["sha256"], "preset": i.get("preset")}
             for s, i in fs.checkpoints.items()}
    # Units decode the models' context at the stride: context x stride source frames.
    gate_floor = resolve_gate_floor(cfg, fs.checkpoints)
    own = fs.models_context * cfg.stride
    info = {"context": int(fs.context) * cfg.stride, "streams": list(fs.streams),
            "short_note": None if fs.scene_prior is None or fs.context * cfg.stride <= own else (
                f"presence reads {fs.scene_prior.persist} frames up to each one it scores; "
                f"with --no-presence the models need {own + 1}"),
            "checkpoints": ckpts, "gate_floor": gate_floor,
            "gate_diff_floor": resolve_diff_floor(cfg, fs.checkpoints, gate_floor),
            "calibrated": _check_calibrated(cfg, fs.checkpoints),
            "img_size": list(fs.img_size), "needs_flow": bool(fs.needs_flow),
            "tiling_warnings": [w for i in fs.checkpoints.values() if (w := tiling_mismatch(
                i, tiles=cfg.tiles, tile_scale=cfg.tile_scale))]}
    del fs
    return info


def _check_calibrated(cfg: ScanConfig, checkpoints: dict[str, dict[str, Any]]) -> bool:
    """Whether the scan is calibrated; refuses, before any worker starts, a calibrated scan
    whose checkpoints record no normal errors (names them)."""
    from raystack.normal_error import check_recorded

    if cfg.score_region != "calibrated":
        return False
    check_recorded(checkpoints)
    return True


def _identity(cfg: ScanConfig, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "archive": redact_uri(cfg.archive),  # as run.json stores it, so resumes compare equal
        "context": info["context"],
        "segment_frames": cfg.segment_frames,
        "streams": info["streams"],
        "checkpoints": {s: c["sha256"] for s, c in info["checkpoints"].items()},
        "flow": cfg.flow if info["needs_flow"] else None,
        "flow_preset": cfg.flow_preset if info["needs_flow"] and cfg.flow == "dis" else None,
        "flow_model": cfg.flow_model if info["needs_flow"] and cfg.flow == "ptlflow" else None,
        "score_region": cfg.score_region,
        # Tiled and whole-frame scores of one stream are not comparable; None = whole.
        "tiles": ({"scale": cfg.tile_scale, "overlap": cfg.tile_overlap} if cfg.tiles
                  else None),
        # Which frames are scored, and which of them by the models.
        "stride": cfg.stride,
        "gate_floor": info.get("gate_floor"),
        "gate_diff_floor": info.get("gate_diff_floor"),
    }


def _check_resume(previous: dict[str, Any], identity: dict[str, Any], run_id: str) -> None:
    before = previous.get("identity", {})
    diff = [k for k in IDENTITY_KEYS if k in before and before[k] != identity.get(k)]
    if diff:
        lines = "; ".join(f"{k}: recorded {before[k]!r}, now {identity.get(k)!r}" for k in diff)
        msg = (
            f"run {run_id!r} was started with other settings ({lines}); resuming would mix "
            "incomparable units or scores. Rerun with the recorded settings, or choose a "
            "new --run-id"
        )
        raise ConfigError(msg)


def _probe(cfg: ScanConfig) -> tuple[list[Any], Any]:
    from raystack.archive import list_archive
    from raystack.scan.probe import probe_archive

    sources = list_archive(cfg.archive)
    if cfg.limit is not None:
        sources = sources[: cfg.limit]
    return sources, probe_archive(sources)


def scan(cfg: ScanConfig | None = None, **overrides: Any) -> ScanResult:
    """Scan an archive into a store (see module docstring).

    Args:
        cfg: the scan configuration; ``overrides`` replace its fields.

    Returns:
        A :class:`ScanResult`; ``result.ok`` is False when any unit failed.

    Raises:
        ConfigError: invalid settings, or a resume with settings other than the run's.
        ArchiveError: the archive cannot be listed.
    """
    cfg = resolve_paths(dataclasses.replace(cfg or ScanConfig(), **overrides))
    check_config(cfg)
    retry.configure(total_s=cfg.storage_retry_s)  # the driver's own store and archive I/O
    cfg = resolve_run_id(cfg)
    run_id = str(cfg.run_id)
    t_start = time.perf_counter()
    info = _model_info(cfg)
    # The workers gate with the floors resolved here (the checkpoints' or the configured).
    cfg = dataclasses.replace(cfg, gate=info["gate_floor"] is not None,
                              gate_floor=info["gate_floor"] or 0.0,
                              gate_diff_floor=info["gate_diff_floor"] or -1)
    for line in info["tiling_warnings"]:
        console(stderr=True).print(f"warning: {line}", style="yellow", markup=False,
                                   highlight=False)
    sources, videos = _probe(cfg)
    plan = plan_units(videos, context=info["context"], segment_frames=cfg.segment_frames,
                      sources=sources, short_note=info.get("short_note"))
    if cfg.dry_run:
        s = ScanSummary(run_id=run_id, pending=len(plan.units) + len(plan.outcomes))
        return ScanResult(run_id, plan, s, time.perf_counter() - t_start, dry_run=True)

    from raystack.exitcodes import storage_guard
    from raystack.store.layout import check_name

    check_name(run_id, "run id")
    resume = (f"the units finished so far are recorded: once the store is writable again, "
              f"rerun with --run-id {run_id} to resume")
    with storage_guard(f"store {redact_uri(str(cfg.store))}", resume):
        return _scan_into_store(cfg, run_id, info, plan, videos, t_start)


def _scan_into_store(
    cfg: ScanConfig, run_id: str, info: dict[str, Any], plan: Plan, videos: Any, t_start: float
) -> ScanResult:
    """Record the run, score the units that are not done yet, and summarise the manifest."""
    from raystack import retry
    from raystack.store import Store

    retries_before = retry.stats()["retries"]
    store = Store(cfg.store).ensure()
    identity = _identity(cfg, info)
    previous = store.read_json(f"runs/{run_id}/run.json", default=None)
    if previous is not None:
        _check_resume(previous, identity, run_id)
    from raystack.models.checkpoint import code_version

    run_doc = {
        "config": to_dict(cfg),
        "identity": identity,
        "models": info,
        "code_version": code_version(),
        "started_at": (previous or {}).get("started_at") or _now_iso(),
        "invocations": [*(previous or {}).get("invocations", []), {"started_at": _now_iso()}],
        "plan": _plan_doc(plan),
        "finished_at": None,
    }
    store.write_run_json(run_id, run_doc)
    store.write_table("videos", run_id, "videos", videos)

    manifest = Manifest(store, run_id).track()  # rows kept in memory, files compacted
    latest = manifest.latest()
    for o in plan.outcomes:  # videos with no unit: record how they stand, once per change
        prev = latest.get(o.unit_id)
        if prev is None or prev["status"] != o.status or prev.get("error") != o.error:
            attempt = prev["attempt"] + 1 if prev else 1
            manifest.record(manifest_row(o, o.status, attempt=attempt, error=o.error))
    _resolve_probe_failures(manifest, latest, plan)
    todo = []
    for u in plan.units:
        prev = latest.get(u.unit_id)
        if prev is None or prev["status"] != "done":
            todo.append((u, prev["attempt"] + 1 if prev else 1))
    skipped = len(plan.units) - len(todo)

    workers = _run_pool(cfg, run_id, todo, manifest) if todo else []
    manifest.compact()  # one file for `status` and the next resume to read

    wall = time.perf_counter() - t_start
    summary = summarize_table(manifest.table(), run_id=run_id,
                              expected_units=len(plan.units) + len(plan.outcomes))
    run_doc["finished_at"] = _now_iso()
    driver_retries = retry.stats()["retries"] - retries_before
    run_doc["invocations"][-1].update(finished_at=run_doc["finished_at"], wall_s=wall,
                                      units_run=len(todo), units_skipped=skipped,
                                      workers=workers, driver_storage_retries=driver_retries)
    run_doc["result"] = {"done": summary.done, "failed": len(summary.failed),
                         "rows": summary.rows, "pending": summary.pending,
                         "skipped": len(summary.skipped), "warnings": len(summary.warnings)}
    store.write_run_json(run_id, run_doc)
    return ScanResult(run_id, plan, summary, wall, skipped, store.uri, workers=workers,
                      driver_storage_retries=driver_retries)


def _run_pool(
    cfg: ScanConfig, run_id: str, todo: list, manifest: Manifest
) -> list[dict[str, Any]]:
    from raystack.scan.pipeline import ActorPool, ray_session
    from raystack.scan.progress import ScanProgress

    frames = sum(u.frames for u, _ in todo)
    with ray_session(cfg), ScanProgress(len(todo), frames, enabled=cfg.progress,
                                        description=f"scan {run_id}") as progress:
        pool = ActorPool.start(cfg, run_id)
        try:

            def on_result(row: dict[str, Any], final: bool) -> None:
                manifest.record(row)  # the driver records every attempt as it arrives
                if not final:
                    progress.retry()
                else:
                    frames_done = row["end_frame"] - row["start_frame"]
                    ok = row["status"] == "done"
                    progress.advance(frames=frames_done if ok else 0, failed=not ok)

            pool.run(todo, on_result)
        finally:
            pool.stop()
    return [{**w, "ray_address": pool.address} for w in pool.last_workers]


def _resolve_probe_failures(manifest: Manifest, latest: dict[str, dict], plan: Plan) -> None:
    """A video that failed probing before and probes now (the file was fixed) gets its
    probe entry closed with a ``done`` row, so the old failure no longer fails the run.
    A video that is gone from the archive keeps its failure: the run never scanned it."""
    planned = {u.video_id for u in plan.units} | {o.video_id for o in plan.outcomes
                                                  if not o.unit_id.endswith(f"-{PROBE_SUFFIX}")}
    for uid, row in latest.items():
        if uid.endswith(f"-{PROBE_SUFFIX}") and row["status"] == "failed" \
                and row["video_id"] in planned:
            fixed = Outcome(uid, row["video_id"], row["uri"], "done", 0, None)
            manifest.record(manifest_row(fixed, "done", attempt=row["attempt"] + 1))


def _plan_doc(plan: Plan) -> dict[str, Any]:
    return {"videos": plan.videos, "units": len(plan.units), "frames": plan.frames,
            "context": plan.context, "segment_frames": plan.segment_frames,
            "probe_failures": len(plan.probe_failures), "short_videos": len(plan.short_videos),
            "entries": len(plan.units) + len(plan.outcomes)}


def _now_iso() -> str:
    from datetime import datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def status(store: Any, run_id: str) -> ScanSummary:
    """The summary of a run from its manifest (and the plan size from its run.json).

    Args:
        store: a store URI or ``raystack.store.Store``.
        run_id: the run.

    Raises:
        StoreError: the run has no run.json in the store.
    """
    from raystack.scan.manifest_files import read_manifest
    from raystack.store import Store

    st = store if hasattr(store, "read_run_json") else Store(os.fspath(store))
    doc = st.read_run_json(run_id)
    expected = (doc.get("plan") or {}).get("entries")
    table, _ = read_manifest(st, run_id, dedupe=False)  # summarize_table drops the copies
    return summarize_table(table, run_id=run_id, expected_units=expected)
