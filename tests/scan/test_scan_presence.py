"""The ``presence`` stream in a scan: fitted by training into the checkpoint, written by the
unit scorer beside the other streams, left out on request or for another kind of scan."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pyarrow.compute as pc
import pytest


@pytest.fixture(scope="module")
def prior_ckpt(half_static, tiny_checkpoints, tmp_path_factory):
    """Tiny FP with the scene prior of half_static's first (moving) half recorded."""
    from raystack.archive import list_archive
    from raystack.models.checkpoint import write_checkpoint_extra
    from raystack.scene_prior import SCENE_KEY
    from raystack.train.scene_calibration import fit_scene_record

    sources = list_archive(half_static)
    cfg = SimpleNamespace(archive=str(half_static), tiles=False, tile_scale=0.0,
                          val_fraction=0.5)
    record = fit_scene_record(cfg, sources, img_size=(64, 64))
    assert record["size"] == [64, 64] and record["frames"] == 20 and not record["tiles"]
    path = tmp_path_factory.mktemp("prior") / "fp.pt"
    shutil.copy(tiny_checkpoints["fp"], path)
    write_checkpoint_extra(path, SCENE_KEY, record)
    return sources, str(path)


def _unit_rows(sources, path, **kw):
    from raystack.scan.plan import plan_units
    from raystack.scan.probe import probe_archive
    from raystack.scan.worker import UnitScorer

    scorer = UnitScorer([path], threads=1, chunk_frames=8, prefetch_chunks=0, run_id="p", **kw)
    unit = plan_units(probe_archive(sources), context=scorer.context, segment_frames=512,
                      sources=sources).units[0]
    return scorer, scorer(unit)


def test_a_scan_writes_presence_as_training_fitted_it(prior_ckpt):
    from raystack.scene_prior import ScenePrior, presence_scores, presence_tail
    from raystack.train.data import decode_frames

    sources, path = prior_ckpt
    scorer, rows = _unit_rows(sources, path, region="patch")
    assert scorer.streams == ("fp", "diff", "motion", "presence")
    got = rows.filter(pc.equal(rows["model"], "presence"))
    fp = rows.filter(pc.equal(rows["model"], "fp"))
    assert got["frame"].to_pylist() == fp["frame"].to_pylist()
    prior = ScenePrior.from_record(scorer.scorer.checkpoints["fp"]["extra"]["scene_prior"])
    clip = decode_frames(sources[0], (64, 64))
    frames = np.asarray(got["frame"].to_numpy())
    k = prior.persist  # whole frames: WHOLE_FRAME_PERSIST
    history = np.stack([clip[f - k + 1:f + 1] for f in frames])  # (n, k, ...)
    want = np.concatenate([presence_scores(presence_tail(h, prior), prior,
                                           np.array([[0, 0, 64, 64]]))[0] for h in history])
    np.testing.assert_allclose(got["psnr"].to_numpy(), want[:, 0], rtol=1e-5)
    assert got["patch_x1"].to_numpy().max() > 0  # the worst cell is the row's box


def test_presence_is_left_out_on_request_and_by_a_tiled_scan(prior_ckpt):
    sources, path = prior_ckpt
    for kw in ({"presence": False}, {"tiles": True}):
        scorer, rows = _unit_rows(sources, path, region="patch", **kw)
        assert "presence" not in scorer.streams
        assert "presence" not in set(rows["model"].to_pylist())


def test_scan_config_and_cli_know_presence():
    from typer.testing import CliRunner

    from raystack.cli import app
    from raystack.scan import load_scan_config

    assert load_scan_config().presence is True
    assert load_scan_config(presence=False).presence is False
    out = CliRunner().invoke(app, ["scan", "--help"], env={"COLUMNS": "200"})
    assert "--no-presence" in out.output


def test_a_video_too_short_for_presence_says_what_would_score_it(prior_ckpt):
    import dataclasses

    from raystack.scan.config import ScanConfig
    from raystack.scan.plan import plan_units
    from raystack.scan.run import _model_info
    from raystack.scene_prior import WHOLE_FRAME_PERSIST as PERSIST

    _, path = prior_ckpt  # whole frames: PERSIST frames of history
    cfg = ScanConfig(archive="archive", store="store", checkpoints=(path,), progress=False)
    info = _model_info(cfg)
    off = _model_info(dataclasses.replace(cfg, presence=False))
    assert info["context"] == PERSIST - 1 and off["context"] < PERSIST - 1
    assert off["short_note"] is None
    video = {"video_id": "v", "uri": "clips/short.mp4", "frames": 6, "fps": 25.0}
    plan = plan_units([video], context=info["context"], segment_frames=8,
                      short_note=info["short_note"])
    assert plan.outcomes[0].error == (
        f"too short to score: 6 frames; the models need at least {PERSIST} (context "
        f"{PERSIST - 1} + 1 frame to score); presence reads {PERSIST} frames up to each one "
        f"it scores; with --no-presence the models need {off['context'] + 1}")


def test_a_tiled_prior_asks_foreground_to_stay_longer_than_a_whole_frame_one(half_static):
    from raystack.archive import list_archive
    from raystack.scene_prior import PERSIST, WHOLE_FRAME_PERSIST
    from raystack.train.scene_calibration import fit_scene_record

    sources = list_archive(half_static)
    records = {tiles: fit_scene_record(
        SimpleNamespace(archive=str(half_static), tiles=tiles, tile_scale=1.0, val_fraction=0.5),
        sources, img_size=(32, 32)) for tiles in (False, True)}
    assert records[True]["tiles"] and records[True]["persist"] == PERSIST == 24
    assert not records[False]["tiles"] and records[False]["persist"] == WHOLE_FRAME_PERSIST == 8
