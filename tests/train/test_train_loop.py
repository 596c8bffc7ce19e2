"""The plain training loop: schedule, sampling, learning, checkpoints, resume, selection."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from raystack.errors import ConfigError
from raystack.models import get_config
from raystack.train import train
from raystack.train.checkpoints import (
    checkpoints_to_delete,
    read_checkpoint_dir,
    select_epoch,
    write_checkpoint,
)
from raystack.train.data import prepare_data
from raystack.train.loop import StreamTrainer, epoch_batches, lr_factor


def _data(cfg, task):
    return prepare_data(cfg, task, get_config(cfg.model_name(task), **cfg.model_overrides))


def test_lr_factor_is_one_cosine_without_restart():
    total = 100
    f = [lr_factor(s, total_steps=total, warmup_steps=10, min_ratio=0.1) for s in range(150)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    decay = f[10:total + 1]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))  # never rises again
    assert f[total] == pytest.approx(0.1) and all(v == pytest.approx(0.1) for v in f[total:])
    assert lr_factor(50, total_steps=100) == pytest.approx(0.5)


def test_epoch_batches_depend_on_seed_and_epoch_only():
    a = epoch_batches(10, batch_size=4, clips_per_epoch=0, seed=0, epoch=1)
    assert a.shape == (2, 4) and len(set(a.ravel())) == 8
    assert np.array_equal(a, epoch_batches(10, batch_size=4, clips_per_epoch=0, seed=0, epoch=1))
    assert not np.array_equal(a, epoch_batches(10, batch_size=4, clips_per_epoch=0, seed=0,
                                               epoch=2))
    many = epoch_batches(10, batch_size=4, clips_per_epoch=24, seed=0, epoch=1)
    assert many.shape == (6, 4) and sorted(many.ravel()[:10]) == list(range(10))
    # worker r of N takes every N-th sample: the shards add up to the global batch
    shards = [a[0][r::2] for r in range(2)]
    assert sorted(np.concatenate(shards)) == sorted(a[0])


def _eval_l2(trainer: StreamTrainer, batch: dict) -> float:
    trainer.module.eval()
    with torch.no_grad():
        _, parts, _ = trainer._loss(trainer.module, batch)
    trainer.module.train()
    return parts["l2"]


def test_training_lowers_the_loss(tiny_cfg):
    for task in ("fp", "fr"):
        # The paper's formulation: a residual model starts AT copy-last / zero flow, so a
        # few steps cannot lower its loss by 5% (its gain is tested on the validation split).
        cfg = tiny_cfg(model=task, epochs=3, lr=1e-3, warmup_steps=0,
                       model_overrides={"residual": False})
        data = _data(cfg, task)
        trainer = StreamTrainer(cfg, task, data)
        fixed = data.train.batch(list(range(4)))
        before = _eval_l2(trainer, fixed)
        for _ in range(cfg.epochs):
            metrics = trainer.run_epoch()
        assert _eval_l2(trainer, fixed) < 0.95 * before, task
        assert metrics["epoch"] == 3 and metrics["clips"] == 8
        assert 0 < metrics["codebook_usage"] <= 1 and metrics["clips_per_s"] > 0
        assert {"val_loss", "val_psnr", "loss_l2", "loss_vq", "lr"} <= set(metrics)


def test_resumed_run_continues_the_same_schedule(tiny_cfg, tmp_path):
    cfg = tiny_cfg(epochs=3)
    data = _data(cfg, "fp")
    whole = StreamTrainer(cfg, "fp", data)
    for _ in range(3):
        whole.run_epoch()

    first = StreamTrainer(cfg, "fp", data)
    first.run_epoch()
    write_checkpoint(first, tmp_path / "ck", run_name="t")
    torch.manual_seed(1234)  # whatever the process did in between
    second = StreamTrainer(cfg, "fp", data)
    second.load_state(*read_checkpoint_dir(tmp_path / "ck"))
    assert second.epoch == 1
    second.run_epoch()
    second.run_epoch()
    assert len(whole.lrs) == 3 * whole.steps_per_epoch
    assert first.lrs + second.lrs == pytest.approx(whole.lrs, rel=1e-12)
    timing = {"train_s", "clips_per_s"}
    first_epoch = {k: v for k, v in second.history[0].items() if k not in timing}
    # To the bit: the folded scan backward sums each batch element in one thread.
    assert first_epoch == {k: v for k, v in whole.history[0].items() if k not in timing}
    assert second.history[1]["loss"] == pytest.approx(whole.history[1]["loss"], rel=1e-4)
    for a, b in zip(second.module.state_dict().values(), whole.module.state_dict().values(),
                    strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_train_writes_checkpoints_that_scan_loads(tiny_cfg):
    from raystack.inference import FrameScorer
    from raystack.models import load_checkpoint

    result = train(tiny_cfg(model="fp+fr"))
    run = Path(result.run_dir)
    for task in ("fp", "fr"):
        assert sorted(p.name for p in (run / task).iterdir()) == [
            "checkpoint_epoch_0001", "checkpoint_epoch_0002"]
        model, info = load_checkpoint(run / task / "checkpoint_epoch_0002" / "model.pt")
        assert info["task"] == task and info["extra"]["epoch"] == 2
        assert info["data_fingerprint"] == result.data_fingerprint[task]
        assert info["preset"] == f"vqmau_{task}.tiny" and info["code_version"]
        assert result.checkpoints[task] == str(run / f"{task}.pt")
    scorer = FrameScorer.from_checkpoints(list(result.checkpoints.values()))
    assert scorer.img_size == (32, 32) and scorer.streams == ("fp", "fr", "diff", "motion")
    frames = np.random.default_rng(0).uniform(-1, 1, (7, 32, 32, 3)).astype(np.float32)
    flows = np.zeros((6, 2, 32, 32), np.float32)
    out = scorer.score(frames, flows)
    assert out["fp"].psnr.shape == (3,) and np.isfinite(out["fr"].psnr).all()
    doc = json.loads((run / "train.json").read_text())
    assert doc["streams"]["fp"]["selected_epoch"] == result.selected["fp"]["epoch"]
    assert "never" in doc["selection_rule"] and len(doc["streams"]["fr"]["history"]) == 2
    # Each exported checkpoint carries its normal window errors: a calibrated scan reads them.
    from raystack.normal_error import NORMAL_KEY, references_for
    from raystack.scoring import window_geometry

    calibrated = FrameScorer.from_checkpoints(list(result.checkpoints.values()),
                                              region="calibrated")
    for task, other in (("fp", "fr"), ("fr", "fp")):
        record = calibrated.checkpoints[task]["extra"][NORMAL_KEY]
        assert record["frames"] > 0
        # one pass calibrated both, yet each carries only its own stream and the baselines
        assert set(record["references"]) == {task, "diff", "motion"} and other not in record[
            "references"]
    refs = references_for(calibrated.checkpoints, np.array([[0, 0, 32, 32]]), (32, 32))
    assert set(refs) == {"fp", "fr", "diff", "motion"}
    out = calibrated.score(frames, flows, normal=refs)
    assert all(np.isfinite(out[s].psnr).all() and out[s].box is not None for s in refs)
    assert refs["fp"].shape == (1, *window_geometry((32, 32))[2])
    # ... and the camera's scene prior, fitted on the training frames at the input size: a
    # scan adds the presence stream (raystack/scene_prior.py).
    from raystack.scene_prior import PRESENCE_STREAM, SCENE_KEY, WHOLE_FRAME_PERSIST

    scene = FrameScorer.from_checkpoints(list(result.checkpoints.values()),
                                         region="calibrated", presence=True)
    # whole frames: foreground must stay WHOLE_FRAME_PERSIST frames
    assert scene.streams[-1] == PRESENCE_STREAM and scene.context == WHOLE_FRAME_PERSIST - 1
    assert scene.score(frames, flows, normal=refs)[PRESENCE_STREAM].psnr.shape == (0,)
    frames = np.random.default_rng(1).uniform(-1, 1, (10, 32, 32, 3)).astype(np.float32)
    out = scene.score(frames, np.zeros((9, 2, 32, 32), np.float32), normal=refs)
    assert PRESENCE_STREAM not in FrameScorer.from_checkpoints(
        list(result.checkpoints.values()), presence=True, tiles=True).streams
    for task in ("fp", "fr"):
        record = scene.checkpoints[task]["extra"][SCENE_KEY]
        assert record["size"] == [32, 32] and record["frames"] > 0
    assert all(np.isfinite(out[s].psnr).all() for s in scene.streams)
    assert out[PRESENCE_STREAM].psnr.shape == (3,) and out[PRESENCE_STREAM].box.shape == (3, 4)


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_from_its_last_epoch(tiny_cfg):
    from raystack.train.progress import TrainProgress

    class StopAfterFirstEpoch(TrainProgress):
        def handle(self, event):
            super().handle(event)
            if event["kind"] == "epoch":
                raise _Interrupt

    cfg = tiny_cfg(epochs=2)
    with pytest.raises(_Interrupt):
        train(cfg, progress=StopAfterFirstEpoch(enabled=False))
    run = Path(cfg.storage) / cfg.name
    assert [p.name for p in (run / "fp").iterdir()] == ["checkpoint_epoch_0001"]
    result = train(cfg)
    assert result.resumed_from["fp"] == 1
    assert [h["epoch"] for h in result.history["fp"]] == [1, 2]
    again = train(cfg)  # finished: nothing left to train, the export is redone
    assert again.resumed_from["fp"] == 2 and len(again.history["fp"]) == 2
    with pytest.raises(ConfigError, match=r"other settings \(epochs: 2 -> 3\)"):
        train(tiny_cfg(epochs=3))  # another schedule under the same name
    both = train(tiny_cfg(epochs=2, model="fp+fr"))  # FP is done; FR starts
    assert both.resumed_from == {"fp": 2, "fr": None}


def test_resume_refuses_other_data(tiny_cfg, synth_archive, tmp_path):
    import shutil

    train(tiny_cfg(epochs=1))
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    shutil.copy(synth_archive / "train" / "train_001.mp4", fewer)
    with pytest.raises(ConfigError, match="data_fingerprint"):
        train(tiny_cfg(epochs=1, archive=str(fewer)))


def test_selection_rule_uses_validation_loss_then_the_later_epoch():
    hist = [{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.3},
            {"epoch": 3, "val_loss": 0.3}, {"epoch": 4, "val_loss": 0.4}]
    assert select_epoch(hist)["epoch"] == 3
    assert select_epoch(hist, {1, 2, 4})["epoch"] == 2
    assert select_epoch([{"epoch": 1}, {"epoch": 2}])["epoch"] == 2  # no validation: last
    assert select_epoch([{"epoch": 1, "val_loss": math.nan}, {"epoch": 2}])["epoch"] == 2
    assert select_epoch([], None) is None
    assert checkpoints_to_delete([1, 2, 3, 4], hist, keep=1) == [1, 2]
    assert checkpoints_to_delete([1, 2, 3, 4], hist, keep=2) == [1]
    assert checkpoints_to_delete([1, 2, 3, 4], hist, keep=None) == []


def test_keep_checkpoints_prunes_all_but_best_and_latest(tiny_cfg):
    result = train(tiny_cfg(epochs=3, keep_checkpoints=1))
    kept = sorted(p.name for p in (Path(result.run_dir) / "fp").iterdir())
    best = result.selected["fp"]["epoch"]
    assert f"checkpoint_epoch_{best:04d}" in kept and "checkpoint_epoch_0003" in kept
    assert len(kept) == (1 if best == 3 else 2)


def test_learning_rate_follows_the_model_recipe_unless_set():
    from raystack.train import TrainConfig

    small = TrainConfig(archive="a", model="fp+fr", preset="small")
    assert small.schedule("fp") == small.schedule("fr") == (3e-3, 100)
    paper = TrainConfig(archive="a", model="fp+fr", preset="ped2")
    assert paper.schedule("fp") == (2e-4, 0)
    mine = TrainConfig(archive="a", model="fp", preset="small", lr=5e-4, warmup_steps=7)
    assert mine.schedule("fp") == (5e-4, 7)


def test_a_model_without_a_training_loss_is_refused(tiny_cfg, monkeypatch):
    import raystack.models

    cfg = tiny_cfg()
    data = _data(cfg, "fp")
    monkeypatch.setattr(raystack.models, "create_model", lambda *a, **k: torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="no training loss"):
        StreamTrainer(cfg, "fp", data)


def _forward_dtypes(module: torch.nn.Module) -> set[torch.dtype]:
    seen: set[torch.dtype] = set()
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    return seen


def test_bf16_training_runs_convs_in_bf16_and_keeps_float32_weights(tiny_cfg):
    cfg = tiny_cfg(amp="bf16", epochs=1)
    trainer = StreamTrainer(cfg, "fp", _data(cfg, "fp"))
    seen = _forward_dtypes(trainer.module)
    metrics = trainer.run_epoch()
    assert torch.bfloat16 in seen and trainer.precision == "bf16 autocast"
    assert all(p.dtype == torch.float32 for p in trainer.module.parameters())
    assert all(p.grad is None or p.grad.dtype == torch.float32
               for p in trainer.module.parameters())
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["val_psnr"])
    assert not trainer.scaler.is_enabled()  # bf16 has float32's range: no loss scaling


def test_small_presets_train_in_float32_on_any_cpu_by_default(tiny_cfg, monkeypatch):
    import raystack.precision

    monkeypatch.setattr(raystack.precision, "cpu_has_amx_bf16", lambda: True)
    for model in ("fp", "m2s2l"):
        cfg = tiny_cfg(model=model)
        trainer = StreamTrainer(cfg, model, _data(cfg, model))
        assert trainer.amp_dtype is None and trainer.precision == "float32", model


def test_fp16_training_scales_the_loss_and_a_resume_keeps_the_scale(tiny_cfg):
    cfg = tiny_cfg(amp="fp16", epochs=2)
    data = _data(cfg, "fp")
    trainer = StreamTrainer(cfg, "fp", data)
    seen = _forward_dtypes(trainer.module)
    trainer.run_epoch()
    assert torch.float16 in seen and trainer.scaler.is_enabled()
    assert all(torch.isfinite(p).all() for p in trainer.module.parameters())
    trainer.scaler.update(1024.0)  # a scale no fresh scaler starts at
    state = trainer.state_dict()
    again = StreamTrainer(cfg, "fp", data)
    again.load_state(trainer.module.state_dict(), state)
    assert again.scaler.get_scale() == 1024.0
