"""``train(config)``: the library entry point behind ``raystack train`` and ``jobs/train.py``.

Streams train one after the other (FP first, then FR, the paper's order). ``workers`` 0 or
1 trains in this process; 2 or more run Ray Train (``ray_train.py``). Either way every
epoch leaves a checkpoint in ``STORAGE/<name>/<task>/`` and a rerun with the same storage
and name resumes. At the end each stream's checkpoint chosen by the selection rule
(``loop.SELECTION_RULE``: lowest validation loss on held-out normal clips, never test
labels) is exported as ``<task>.pt``, the file ``raystack scan --checkpoint`` takes, and
``STORAGE/<name>/train.json`` records config, data, per-epoch history and the choice.

    result = train(TrainConfig(archive="synth/train", model="fp+fr", preset="small",
                               epochs=6, workers=2, storage="runs", name="demo"))
    result.checkpoints     # {"fp": "runs/demo/fp.pt", "fr": "runs/demo/fr.pt"}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raystack.config import resolve_paths, to_dict
from raystack.errors import ConfigError, RaystackError
from raystack.train.checkpoints import SELECTION_RULE, select_epoch
from raystack.train.config import TrainConfig, check_config, resolve_name
from raystack.train.loop import StreamOutcome, fit_in_process
from raystack.train.metrics import baseline_name
from raystack.train.progress import TrainProgress
from raystack.train.storage import (
    MODEL_FILE,
    STATE_FILE,
    SUMMARY_FILE,
    RunStorage,
    checkpoint_dir_name,
)

# Settings that shape a run's optimisation: a resumed run must keep them.
RUN_KEYS = ("preset", "model_overrides", "epochs", "batch_size", "clips_per_epoch", "stride",
            "val_fraction", "val_clips", "lr", "weight_decay", "min_lr_ratio", "warmup_steps",
            "grad_clip", "flow", "flow_preset", "seed", "limit")


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    name: str
    run_dir: str  # STORAGE/<name> (a local path or an s3:// URI)
    checkpoints: dict[str, str]  # task -> local exported checkpoint (what scan takes)
    stored: dict[str, str]  # task -> the exported checkpoint in the storage
    selected: dict[str, dict[str, Any]]  # task -> history entry of the chosen epoch
    history: dict[str, list[dict[str, Any]]]  # task -> per-epoch metrics
    resumed_from: dict[str, int | None]  # task -> epoch continued from (None: fresh)
    data_fingerprint: dict[str, str | None]
    workers: int
    seconds: float
    data: dict[str, str] = field(default_factory=dict)  # task -> data summary

    def summary(self) -> str:
        lines = [f"run {self.name} ({self.run_dir}), {self.seconds:.1f} s, "
                 f"{'in process' if self.workers <= 1 else f'{self.workers} Ray workers'}"]
        for task, sel in self.selected.items():
            val = (f", val loss {sel['val_loss']:.4f}, {sel['val_psnr']:.2f} dB"
                   if "val_loss" in sel else "")
            if "val_baseline_psnr" in sel:
                val += (f" vs {baseline_name(task)} {sel['val_baseline_psnr']:.2f} dB "
                        f"({sel['val_gain_db']:+.2f} dB)")
            lines.append(f"  {task}: epoch {sel['epoch']} of {len(self.history[task])} selected"
                         f"{val} -> {self.checkpoints[task]}")
        return "\n".join(lines)

    def warnings(self) -> list[str]:
        """One line per exported model that does not beat its trivial baseline on the
        held-out normal clips: its scores are then unlikely to beat the baseline streams."""
        out = []
        for task, sel in self.selected.items():
            gain = sel.get("val_gain_db")
            if gain is not None and gain <= 0.0:
                out.append(
                    f"warning: {task} ({self.checkpoints[task]}) does not beat "
                    f"{baseline_name(task)} on held-out normal footage: {sel['val_psnr']:.2f} "
                    f"vs {sel['val_baseline_psnr']:.2f} dB ({gain:+.2f} dB). Train longer "
                    "(--epochs), on more normal footage, or with a residual preset; its scan "
                    "scores will likely lose to the diff/motion streams."
                )
        return out


def _device(cfg: TrainConfig) -> str:
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        msg = "train config: device = 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'"
        raise RaystackError(msg)
    return cfg.device


def _history_from_storage(storage: RunStorage, outcome: StreamOutcome) -> list[dict[str, Any]]:
    """The history saved with the latest checkpoint (when a worker did not return one)."""
    import torch

    if not outcome.epochs:
        return []
    rel = f"{outcome.task}/{checkpoint_dir_name(max(outcome.epochs))}/{STATE_FILE}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / STATE_FILE
        with storage.fs.open_input_stream(storage.path(rel)) as src:
            local.write_bytes(src.read())
        return list(torch.load(local, map_location="cpu", weights_only=True)["history"])


def _export(cfg: TrainConfig, storage: RunStorage, outcome: StreamOutcome,
            gate: dict[str, Any] | None = None) -> tuple[Path, dict]:
    """Copy the selected epoch's model.pt to ``<export_dir>/<task>.pt``, with the run's gate
    record (:mod:`raystack.train.gate_calibration`) when there is one; :func:`_publish`
    copies it to the storage once every checkpoint is calibrated."""
    task = outcome.task
    chosen = select_epoch(outcome.history, set(outcome.epochs))
    if chosen is None:
        msg = f"run {cfg.name!r}: no {task} checkpoint in {storage.uri(task)} to export"
        raise RaystackError(msg)
    if cfg.export_dir:
        export_dir = Path(cfg.export_dir).expanduser()
    else:
        export_dir = Path(cfg.name) if storage.is_s3 else Path(storage.root)
    export_dir.mkdir(parents=True, exist_ok=True)
    local = export_dir / f"{task}.pt"
    src = f"{task}/{checkpoint_dir_name(chosen['epoch'])}/{MODEL_FILE}"
    fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".tmp", dir=export_dir)
    try:
        with os.fdopen(fd, "wb") as f, storage.fs.open_input_stream(storage.path(src)) as s:
            while block := s.read(1 << 20):
                f.write(block)
        os.replace(tmp, local)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if gate is not None:
        from raystack.train.gate_calibration import write_gate_record

        write_gate_record(local, gate)
    return local, chosen


def _publish(storage: RunStorage, task: str, local: Path) -> str:
    """Copy an exported checkpoint to the run's storage (unless it is already there)."""
    in_storage = f"{task}.pt"
    if storage.is_s3 or local.absolute() != Path(storage.path(in_storage)):
        storage.put_file(local, in_storage)
    return storage.uri(in_storage)


def train(cfg: TrainConfig, *, progress: TrainProgress | None = None) -> TrainResult:
    """Train the streams of ``cfg`` on its archive's normal videos; resume a named run.

    Args:
        cfg: the run's :class:`~raystack.train.config.TrainConfig`.
        progress: where events go (default: a :class:`TrainProgress` on stderr).

    Returns:
        A :class:`TrainResult`; ``result.checkpoints`` are the files ``raystack scan`` takes.

    Raises:
        ConfigError: invalid settings, or a resume whose settings or data differ.
        ArchiveError: the archive cannot be listed, holds test videos, or nothing decodes.
        TrainingFailed: a Ray Train run failed after its retries.
    """
    cfg = resolve_paths(cfg)  # Ray Train workers run in another folder
    check_config(cfg)
    cfg = resolve_name(cfg)
    from raystack.models import get_config
    from raystack.train.data import list_training_videos, prepare_data

    for task in cfg.tasks:  # unknown presets or overrides fail before any decoding
        get_config(cfg.model_name(task), **cfg.model_overrides)
    storage = RunStorage(cfg.storage, cfg.name)
    sources = list_training_videos(cfg.archive, limit=cfg.limit)
    _check_resume(cfg, storage)
    storage.write_json(SUMMARY_FILE, {**_summary_head(cfg), "status": "running"})
    own_progress = progress is None
    progress = progress or TrainProgress(enabled=cfg.progress)
    t0 = time.perf_counter()
    try:
        if cfg.workers <= 1:
            import torch

            from raystack.allocator import keep_freed_memory
            from raystack.threads import default_threads

            torch.set_num_threads(default_threads())
            keep_freed_memory()  # this process is the trainer: its steps reuse the pages
            device = _device(cfg)
            memo: dict = {}  # decoded frames shared by FP and FR
            outcomes = {}
            for task in cfg.tasks:
                model_cfg = get_config(cfg.model_name(task), **cfg.model_overrides)
                data = prepare_data(cfg, task, model_cfg, sources=sources, memo=memo)
                outcomes[task] = fit_in_process(cfg, task, data, storage, device=device,
                                                emit=progress.handle)
        else:
            from raystack.train.ray_train import fit_with_ray

            outcomes = fit_with_ray(cfg, storage, emit=progress.handle)
    finally:
        if own_progress:
            progress.close()
    seconds = time.perf_counter() - t0

    result = TrainResult(name=cfg.name, run_dir=storage.uri(), checkpoints={}, stored={},
                         selected={}, history={}, resumed_from={}, data_fingerprint={},
                         workers=cfg.workers, seconds=seconds)
    gate = _gate_record(cfg, sources)
    exported = {}
    for task, outcome in outcomes.items():
        if not outcome.history:
            outcome.history = _history_from_storage(storage, outcome)
        exported[task], result.selected[task] = _export(cfg, storage, outcome, gate)
    _record_normal_error(cfg, sources, list(exported.values()))
    _record_scene_prior(cfg, sources, list(exported.values()))
    for task, outcome in outcomes.items():
        result.checkpoints[task] = str(exported[task])
        result.stored[task] = _publish(storage, task, exported[task])
        result.history[task] = outcome.history
        result.resumed_from[task] = outcome.resumed_from
        result.data_fingerprint[task] = outcome.fingerprint
        result.data[task] = outcome.data_summary
    storage.write_json(SUMMARY_FILE, _summary_doc(cfg, result))
    return result


def _gate_record(cfg: TrainConfig, sources: list[Any]) -> dict[str, Any] | None:
    """The motion gate's floor on the run's held-out frames, for every exported checkpoint
    (one input size per run); None, with a warning, when there is nothing to calibrate on:
    the checkpoints then work for every scan but ``--gate`` without ``--gate-floor``."""
    from raystack.console import console
    from raystack.models import get_config
    from raystack.train.gate_calibration import calibrate_gate

    size = tuple(get_config(cfg.model_name(cfg.tasks[0]), **cfg.model_overrides).img_size)
    try:
        return calibrate_gate(cfg, sources, img_size=size)
    except ValueError as e:
        console(stderr=True).print(f"warning: no gate floor recorded: {e}", style="yellow",
                                   markup=False, highlight=False)
        return None


def _record_normal_error(cfg: TrainConfig, sources: list[Any], local: list[Path]) -> None:
    """Write each exported checkpoint's normal window errors into it (``--score-region
    calibrated``), all from one pass over the held-out frames; a warning, not a failure,
    when there is nothing to calibrate on: the checkpoints then score every region but
    ``calibrated``."""
    from raystack.console import console
    from raystack.models.checkpoint import write_checkpoint_extra
    from raystack.normal_error import NORMAL_KEY
    from raystack.train.error_calibration import calibrate_checkpoints

    if not local:
        return
    try:
        records = calibrate_checkpoints(cfg, sources, [str(p) for p in local])
    except ValueError as e:
        names = ", ".join(str(p) for p in local)
        console(stderr=True).print(f"warning: no normal errors recorded in {names}: {e}",
                                   style="yellow", markup=False, highlight=False)
        return
    for path in local:
        write_checkpoint_extra(path, NORMAL_KEY, records[str(path)])


def _record_scene_prior(cfg: TrainConfig, sources: list[Any], local: list[Path]) -> None:
    """Write the camera's scene prior into each exported checkpoint (the scan's ``presence``
    stream); a warning, not a failure, when it cannot be fitted: the checkpoints then scan
    without that stream."""
    from raystack.console import console
    from raystack.models import get_config
    from raystack.models.checkpoint import write_checkpoint_extra
    from raystack.scene_prior import SCENE_KEY
    from raystack.train.scene_calibration import fit_scene_record

    if not local:
        return
    size = tuple(get_config(cfg.model_name(cfg.tasks[0]), **cfg.model_overrides).img_size)
    try:
        record = fit_scene_record(cfg, sources, img_size=size)
    except ValueError as e:
        names = ", ".join(str(p) for p in local)
        console(stderr=True).print(f"warning: no scene prior recorded in {names}: {e}",
                                   style="yellow", markup=False, highlight=False)
        return
    for path in local:
        write_checkpoint_extra(path, SCENE_KEY, record)


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


def _check_resume(cfg: TrainConfig, storage: RunStorage) -> None:
    """Refuse, before any work, to continue a run under settings that change its schedule.

    ``workers`` may change (the global batch is the same), and so may ``model`` (a run of
    ``fp`` can be continued as ``fp+fr``: FP resumes or is done, FR starts).
    """
    prior = storage.read_json(SUMMARY_FILE)
    if not prior or "config" not in prior:
        return
    mine = _plain(to_dict(cfg))
    diff = [f"{k}: {prior['config'].get(k)!r} -> {mine[k]!r}" for k in RUN_KEYS
            if k in prior["config"] and prior["config"][k] != mine[k]]
    if diff:
        msg = (f"run {cfg.name!r} in {storage.uri()} was started with other settings "
               f"({'; '.join(diff)}); rerun with the original ones to resume it, or choose "
               "a new name")
        raise ConfigError(msg)


def _summary_head(cfg: TrainConfig) -> dict[str, Any]:
    from raystack.models.checkpoint import code_version

    return {"name": cfg.name, "config": _plain(to_dict(cfg)), "code_version": code_version(),
            "selection_rule": SELECTION_RULE}


def _summary_doc(cfg: TrainConfig, result: TrainResult) -> dict[str, Any]:
    return {
        **_summary_head(cfg),
        "status": "finished",
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(result.seconds, 3),
        "streams": {
            task: {
                "checkpoint": result.stored[task],
                "selected_epoch": result.selected[task]["epoch"],
                "selected_metrics": result.selected[task],
                "data": result.data[task],
                "data_fingerprint": result.data_fingerprint[task],
                "resumed_from": result.resumed_from[task],
                "history": result.history[task],
            }
            for task in result.selected
        },
    }
