"""Planning, manifest bookkeeping, pool sizing, config and summary rendering: no Ray, no I/O."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta

import pytest

from raystack.errors import ConfigError
from raystack.scan.config import ScanConfig, check_config, load_scan_config, resolve_run_id
from raystack.scan.manifest import LEGACY_SHORT_REASON, latest_attempts, manifest_row, summarize
from raystack.scan.pipeline import pool_shape
from raystack.scan.plan import plan_units, segment_ranges, unit_id
from raystack.scan.shape import actor_device


@pytest.mark.parametrize("context", [0, 1, 4, 16, 17])
@pytest.mark.parametrize("segment", [1, 7, 16, 64, 512])
@pytest.mark.parametrize("n", [0, 1, 16, 17, 18, 33, 64, 80, 81, 100, 1000, 1041])
def test_segments_tile_the_scorable_frames_exactly(n, context, segment):
    ranges = segment_ranges(n, context=context, segment_frames=segment)
    covered = [f for a, b in ranges for f in range(a, b)]
    # Exactly the scorable frames, each once, in order: no gap, no duplicate.
    assert covered == list(range(context, n))
    assert all(b > a for a, b in ranges)
    assert all(b - a == segment for a, b in ranges[:-1])
    # Segments are aligned from the context, and every unit's read window stays in the video.
    assert all((a - context) % segment == 0 for a, _ in ranges)
    assert all(a - context >= 0 and b <= n for a, b in ranges)


def test_segments_multiple_and_not_multiple_of_the_segment_size():
    assert segment_ranges(16 + 4 * 8, context=16, segment_frames=8) == [
        (16, 24), (24, 32), (32, 40), (40, 48)]
    assert segment_ranges(16 + 4 * 8 + 5, context=16, segment_frames=8)[-1] == (48, 53)
    assert segment_ranges(16, context=16, segment_frames=8) == []
    with pytest.raises(ValueError, match="segment_frames"):
        segment_ranges(10, context=1, segment_frames=0)


def _video(vid, n, fps=25.0, err=None):
    return {"video_id": vid, "uri": f"/a/{vid}.mp4", "frames": n, "fps": fps, "probe_error": err}


def test_plan_units_ids_short_videos_and_probe_errors():
    videos = [
        _video("cam-a", 100),
        _video("cam-b", 4),  # too short for context 4: nothing to score
        _video("cam-c", None, None, "/a/cam-c.mp4: not a readable video container: bad"),
        _video("cam-d", 5),
    ]
    plan = plan_units(videos, context=4, segment_frames=40)
    assert [(u.unit_id, u.read_start, u.start, u.stop) for u in plan.units] == [
        ("cam-a-00000004-00000044", 0, 4, 44),
        ("cam-a-00000044-00000084", 40, 44, 84),
        ("cam-a-00000084-00000100", 80, 84, 100),
        ("cam-d-00000004-00000005", 0, 4, 5),
    ]
    assert plan.frames == 96 + 1 and plan.videos == 4
    assert [o.unit_id for o in plan.short_videos] == ["cam-b-short"]
    # A video too short to score is named, with a reason, not counted as done.
    (short,) = plan.short_videos
    assert short.status == "skipped" and short.uri == "/a/cam-b.mp4"
    assert short.error == ("too short to score: 4 frames; the models need at least 5 "
                           "(context 4 + 1 frame to score)")
    (bad,) = plan.probe_failures
    assert bad.status == "failed" and "/a/cam-c.mp4" in bad.error and "not a readable" in bad.error
    assert unit_id("v", 3, 12) == "v-00000003-00000012"
    # Deterministic: planning twice gives the same units.
    assert plan_units(videos, context=4, segment_frames=40).units == plan.units


def _row(uid, status, attempt, rows=10, start=0, end=10, minutes=0, err=None):
    t0 = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return {"unit_id": uid, "uri": f"/a/{uid}", "status": status, "attempt": attempt,
            "rows": rows, "start_frame": start, "end_frame": end, "error": err,
            "started_at": t0, "finished_at": t0 + timedelta(seconds=30), "decode_s": 1.0,
            "flow_s": 0.5, "model_s": 8.0, "write_s": 0.1}


def test_latest_attempt_wins_and_summary_counts():
    rows = [
        _row("u1", "failed", 1, rows=0, err="worker died"),
        _row("u1", "done", 2, rows=20, minutes=1),
        _row("u2", "done", 1, rows=20, minutes=1),
        _row("u3", "failed", 1, rows=0, err="UndecodableVideoError: /a/u3: truncated"),
        _row("v-short", "done", 1, rows=0, start=0, end=0),
    ]
    latest = latest_attempts(rows)
    assert latest["u1"]["attempt"] == 2 and latest["u1"]["status"] == "done"
    s = summarize(latest.values(), run_id="r", all_rows=rows, expected_units=6)
    # The legacy "done, 0 rows" short row of an older store is a named skip, not a unit done.
    assert (s.units, s.done, s.rows, s.frames, s.short_videos) == (4, 2, 40, 20, 1)
    assert s.skipped == [("v-short", "/a/v-short", LEGACY_SHORT_REASON)]
    assert s.failed == [("u3", "/a/u3", "UndecodableVideoError: /a/u3: truncated")]
    assert (s.attempts, s.retried_units, s.pending) == (5, 1, 2)
    assert not s.ok and s.stage_s["model_s"] == 32.0
    assert s.wall_s == pytest.approx(90.0)


def test_manifest_row_validates_status():
    plan = plan_units([_video("cam-a", 30)], context=4, segment_frames=40)
    row = manifest_row(plan.units[0], "done", rows=26, attempt=2, timings={"model_s": 1.5})
    assert (row["start_frame"], row["end_frame"], row["attempt"], row["model_s"]) == (4, 30, 2, 1.5)
    assert row["flow_s"] is None
    with pytest.raises(ValueError, match="'done', 'failed', 'skipped'"):
        manifest_row(plan.units[0], "finished")


@pytest.mark.parametrize(
    ("overrides", "cpus", "gpus", "expected"),
    [
        ({}, [2], [0], (2, 1, 0.0)),  # default: one single-threaded actor per CPU
        ({"workers": 2}, [2], [0], (2, 1, 0.0)),
        ({"workers": 1}, [2], [0], (1, 2, 0.0)),
        ({"cpus_per_worker": 1}, [2], [0], (2, 1, 0.0)),
        ({}, [8, 8], [0, 0], (16, 1, 0.0)),
        ({"cpus_per_worker": 8}, [8, 8], [0, 0], (2, 8, 0.0)),
        ({"gpus_per_worker": 1.0}, [16], [2], (2, 8, 1.0)),
        ({"gpus_per_worker": 0.5}, [16, 16], [1, 1], (4, 8, 0.5)),
        # unset on a GPU cluster: one actor per GPU, the node's CPUs shared out among them
        ({}, [16], [1], (1, 16, 1.0)),
        ({}, [16, 16], [2, 2], (4, 8, 1.0)),
        ({"device": "cpu"}, [16], [1], (16, 1, 0.0)),  # device cpu keeps actors off the GPU
        ({"gpus_per_worker": 0.0}, [4], [1], (4, 1, 0.0)),  # an explicit 0 too
        ({"device": "cuda"}, [8], [1], (1, 8, 1.0)),
    ],
)
def test_pool_shape_fits_the_cluster(overrides, cpus, gpus, expected):
    shape = pool_shape(ScanConfig(**overrides), cpus, gpus)
    assert (shape.workers, shape.cpus_per_worker, shape.gpus_per_worker) == expected
    assert shape.workers * shape.cpus_per_worker <= sum(cpus)


def test_pool_shape_refuses_what_cannot_be_placed():
    with pytest.raises(ConfigError, match="do not fit"):
        pool_shape(ScanConfig(workers=3, cpus_per_worker=1), [2], [0])
    with pytest.raises(ConfigError, match="do not fit"):
        pool_shape(ScanConfig(cpus_per_worker=4), [2], [0])
    with pytest.raises(ConfigError, match="GPUs"):
        pool_shape(ScanConfig(gpus_per_worker=1.0), [2], [0])
    with pytest.raises(ConfigError, match="device = 'cuda' but the Ray cluster has no GPUs"):
        pool_shape(ScanConfig(device="cuda"), [2], [0])


@pytest.mark.parametrize(
    ("device", "gpu_ids", "expected"),
    [("auto", [], "cpu"), ("auto", [0], "cuda"), ("auto", ["1"], "cuda"),
     ("cpu", [0], "cpu"), ("cuda", [], "cuda")],
)
def test_actor_device_is_cuda_only_with_a_gpu_of_its_own(device, gpu_ids, expected):
    # Ray does not hide the GPUs from an actor that asked for none; "auto" must not take one.
    assert actor_device(device, gpu_ids) == expected


def test_default_batch_follows_the_device(monkeypatch):
    import torch

    from raystack.inference import CPU_BATCH_SIZE, GPU_BATCH_SIZE, FrameScorer, default_batch_size
    from raystack.models import create_model

    assert (default_batch_size("cpu"), default_batch_size("cuda:1")) == (8, 64)
    assert (CPU_BATCH_SIZE, GPU_BATCH_SIZE) == (8, 64)
    model = create_model("vqmau_fp.tiny")
    assert FrameScorer({"fp": model}, device="cpu").batch_size == CPU_BATCH_SIZE
    assert FrameScorer({"fp": model}, device="cpu", batch_size=3).batch_size == 3
    # "auto" on a machine where CUDA is present: the device and the batch both follow it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    fs = FrameScorer({"fp": model}, device="auto", baselines=False)
    assert (fs.device.type, fs.batch_size, fs.amp_dtype) == ("cuda", GPU_BATCH_SIZE,
                                                             torch.bfloat16)


def test_config_file_overrides_and_checks(tmp_path):
    p = tmp_path / "scan.toml"
    p.write_text('[scan]\narchive = "/a"\ncheckpoints = ["fp.pt"]\nstore = "/s"\n'
                 "segment_frames = 128\n")
    cfg = load_scan_config(p, workers=2, segment_frames=None)
    # Relative paths are made absolute against the current folder (Ray workers run elsewhere).
    assert cfg.checkpoints == (os.path.abspath("fp.pt"),)
    assert cfg.segment_frames == 128 and cfg.workers == 2
    check_config(cfg)
    assert resolve_run_id(cfg).run_id.startswith("scan-")
    assert resolve_run_id(dataclasses.replace(cfg, run_id="x")).run_id == "x"
    with pytest.raises(ConfigError, match="segment_frames"):
        check_config(dataclasses.replace(cfg, segment_frames=0))
    with pytest.raises(ConfigError, match="checkpoint"):
        check_config(dataclasses.replace(cfg, checkpoints=()))
    with pytest.raises(ConfigError, match="unknown key"):
        load_scan_config(p, segment=3)


def test_summary_renders_failures_with_file_and_reason():
    from rich.console import Console

    from raystack.scan.progress import render_summary

    rows = [_row("u1", "done", 1), _row("u3", "failed", 1, rows=0, err="bad header")]
    s = summarize(latest_attempts(rows).values(), run_id="night", all_rows=rows)
    console = Console(width=200, record=True)
    console.print(render_summary(s))
    text = console.export_text()
    assert "scan night" in text and "1/2" in text
    assert "u3" in text and "/a/u3" in text and "bad header" in text


def test_skipped_videos_and_warnings_are_named_in_the_summary():
    from rich.console import Console

    from raystack.scan.progress import render_plan, render_summary

    plan = plan_units([_video("cam-a", 30), _video("cam-s", 12)], context=16, segment_frames=40)
    (short,) = plan.outcomes
    skipped = manifest_row(short, short.status, error=short.error)
    assert skipped["status"] == "skipped" and skipped["rows"] == 0
    done = manifest_row(plan.units[0], "done", rows=14,
                        warning="1 undecodable frame skipped: 17 (/a/17.jpg: corrupt)")
    s = summarize([skipped, done], run_id="night", expected_units=2)
    assert s.ok and s.done == 1 and s.planned == 1 and s.pending == 0
    assert s.skipped == [("cam-s-short", "/a/cam-s.mp4", short.error)]
    assert s.warnings == [(done["unit_id"], "/a/cam-a.mp4", done["warning"])]
    console = Console(width=250, record=True)
    console.print(render_summary(s))
    console.print(render_plan(plan))
    text = console.export_text()
    assert "skipped videos (1)" in text and "/a/cam-s.mp4" in text
    assert "12 frames; the models need at least 17 (context 16" in text
    assert "units with warnings (1)" in text and "/a/17.jpg: corrupt" in text
    assert "1/1" in text  # units done: the skipped video is not a unit left to do


def test_ptlflow_scan_needs_a_model_and_a_local_checkpoint_and_runs_on_the_actor_device():
    from raystack.scan.config import flow_options

    base = {"archive": "/a", "checkpoints": ("fp.pt",), "store": "/s"}
    with pytest.raises(ConfigError, match="ptlflow needs flow_model"):
        check_config(ScanConfig(**base, flow="ptlflow", flow_model="rapidflow"))
    with pytest.raises(ConfigError, match="choose 'dis'"):
        check_config(ScanConfig(**base, flow="raft"))
    cfg = ScanConfig(**base, flow="ptlflow", flow_model="rapidflow", flow_checkpoint="/w/r.ckpt")
    check_config(cfg)
    assert flow_options(cfg, "cuda") == {"model": "rapidflow", "ckpt_path": "/w/r.ckpt",
                                         "device": "cuda"}
    assert flow_options(ScanConfig(**base, flow_preset="medium"), "cuda") == {"preset": "medium"}
    assert flow_options(ScanConfig(**base, flow="farneback"), "cpu") == {}


def test_unit_scorer_builds_its_flow_from_the_options(tiny_checkpoints, monkeypatch):
    import raystack.flow as flow_mod
    from raystack.scan.worker import UnitScorer

    made = []
    monkeypatch.setattr(flow_mod, "create_flow", lambda name, **kw: made.append((name, kw)))
    opts = {"model": "rapidflow", "ckpt_path": "/w/r.ckpt", "device": "cpu"}
    UnitScorer([tiny_checkpoints["fr"]], flow="ptlflow", flow_options=opts)
    UnitScorer([tiny_checkpoints["fr"]], flow_preset="medium")
    assert made == [("ptlflow", opts), ("dis", {"preset": "medium"})]
