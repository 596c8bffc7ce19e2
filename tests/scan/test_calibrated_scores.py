"""Calibrated scores: window errors relative to what held-out normal footage shows there.

The math (references, ratios, boxes), the scorer's use of them per tile, the record
``raystack train`` writes, and the refusals of a scan that cannot be calibrated.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from raystack.errors import ConfigError
from raystack.inference import FrameScorer
from raystack.models.checkpoint import read_checkpoint, write_checkpoint_extra
from raystack.normal_error import NORMAL_KEY, references_for, window_references
from raystack.scan.config import ScanConfig, check_config
from raystack.scoring import calibrated_scores, region_windows, window_geometry
from raystack.train.error_calibration import calibrate_normal_error


def test_references_are_a_high_quantile_plus_the_median_floor():
    rng = np.random.default_rng(0)
    errors = rng.uniform(0, 1, (200, 2, 3, 3))
    errors[:, 0, 0, 0] *= 10  # a busy place
    ref = window_references(errors, 0.99)
    q = np.quantile(errors, 0.99, axis=0)
    np.testing.assert_allclose(ref, q + np.median(q), rtol=1e-6)
    assert ref[0, 0, 0] > 5 * ref[1, 1, 1]
    with pytest.raises(ValueError, match="frames, N, oh, ow"):
        window_references(np.zeros((0, 1, 3, 3)))


def test_an_error_where_normal_footage_is_quiet_beats_a_larger_one_where_it_is_busy():
    k, stride, (oh, ow) = window_geometry((64, 64))
    assert (k, stride, oh, ow) == (8, 4, 15, 15)
    windows = torch.full((1, oh, ow), 1e-4)
    windows[0, 0, 0] = 0.05  # the busy corner: large, but as large as it usually is
    windows[0, 7, 9] = 0.01  # smaller, where normal footage hardly errs
    normal = torch.full((oh, ow), 2e-3)
    normal[0, 0] = 0.1
    psnr, box = calibrated_scores(windows, normal, (64, 64))
    assert psnr[0].item() == pytest.approx(10 * np.log10(2e-3 / 0.01), rel=1e-5)
    x0, y0, x1, y1 = box[0].tolist()
    assert (x0, y0) == (9 * stride, 7 * stride) and (x1 - x0, y1 - y0) == (k, k)
    # Without calibration the busy corner would have been the worst window.
    assert windows.flatten(1).argmax().item() == 0


def test_scorer_calibrates_every_stream_per_tile(tiny_checkpoints):
    rng = np.random.default_rng(1)
    frames = rng.uniform(-1, 1, (7, 64, 96, 3)).astype(np.float32)
    flows = rng.uniform(-1, 1, (6, 2, 64, 96)).astype(np.float32)
    boxes = np.array([[0, 0, 64, 64], [32, 0, 96, 64]])
    scorer = FrameScorer.from_checkpoints([tiny_checkpoints["fp"]], region="calibrated")
    raw = scorer.score_tiles(frames, flows, boxes)  # no references: the raw windows
    _, _, grid = window_geometry(scorer.img_size)
    normal = {s: rng.uniform(1e-3, 1e-2, (2, *grid)).astype(np.float32)
              for s in scorer.streams}
    out = scorer.score_tiles(frames, flows, boxes, normal=normal)
    for s in scorer.streams:
        w = raw[s].windows
        assert w.shape == (len(frames) - scorer.context, 2, *grid)
        want = 10 * np.log10(1 / (w / normal[s][None]).reshape(*w.shape[:2], -1).max(-1))
        np.testing.assert_allclose(out[s].psnr, want, rtol=1e-4, atol=1e-4)
        assert out[s].windows is None and out[s].box.shape == (*w.shape[:2], 4)
    # The baselines' windows are their own error maps: copy-last for diff.
    t = torch.from_numpy(frames).permute(0, 3, 1, 2)
    c = scorer.context
    want_diff = region_windows(t[c - 1:-1, :, :, :64], t[c:, :, :, :64]).numpy()
    np.testing.assert_allclose(raw["diff"].windows[:, 0], want_diff, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="fp's normal window errors"):
        scorer.score_tiles(frames, flows, boxes, normal={"diff": normal["diff"]})


def test_training_records_normal_errors_a_scan_reads_back(half_static, tiny_checkpoints,
                                                           tmp_path):
    from raystack.archive import list_archive

    sources = list_archive(half_static)
    cfg = SimpleNamespace(archive=str(half_static), flow="dis", flow_preset="fast",
                          tiles=False, tile_scale=0.0, val_fraction=0.5)
    path = tmp_path / "fp.pt"
    shutil.copy(tiny_checkpoints["fp"], path)
    record = calibrate_normal_error(cfg, sources, str(path))
    assert record["frames"] > 0 and record["work_size"] == [64, 64]
    assert set(record["references"]) == {"fp", "diff", "motion"}
    write_checkpoint_extra(path, NORMAL_KEY, record)
    info = {"fp": {"path": str(path), "extra": read_checkpoint(path)["extra"]}}
    refs = references_for(info, np.array([[0, 0, 64, 64]]), (64, 64))
    assert refs["fp"].shape == (1, *window_geometry((64, 64))[2]) and (refs["fp"] > 0).all()
    with pytest.raises(ConfigError, match=r"fp.pt was calibrated on 64x64 frames in 1 tiles, "
                                          r"this video is scored at 96x64 in 2"):
        references_for(info, np.array([[0, 0, 64, 64], [32, 0, 96, 64]]), (64, 96))
    with pytest.raises(ConfigError, match=r"/ck/x.pt records no normal errors.*--score-region "
                                          r"patch"):
        references_for({"fp": {"path": "/ck/x.pt", "extra": {}}}, np.zeros((1, 4)), (64, 64))
    cfg.val_fraction = 0.0
    with pytest.raises(ValueError, match="no held-out frames"):
        calibrate_normal_error(cfg, sources, str(path))


def test_trivial_answer_needs_the_references_to_be_calibrated():
    from raystack.gate import trivial_psnr

    prev = np.zeros((1, 64, 64, 3), np.float32)
    cur = prev + 0.1
    _, _, grid = window_geometry((64, 64))
    ref = np.full((1, *grid), 0.05**2, np.float32)  # a 0.1 step, halved to [0, 1] units
    got = trivial_psnr("fp", prev, cur, None, "calibrated", ref)
    assert got[0] == pytest.approx(0.0, abs=1e-4)  # error == reference: 0 dB
    with pytest.raises(ValueError, match="needs the normal references"):
        trivial_psnr("fp", prev, cur, None, "calibrated")


def test_scan_config_knows_the_region():
    check_config(ScanConfig(archive="a", store="s", checkpoints=["x.pt"],
                            score_region="calibrated", gate=True))
    with pytest.raises(ConfigError, match="'calibrated'"):
        check_config(ScanConfig(archive="a", store="s", checkpoints=["x.pt"],
                                score_region="worst"))


def test_worker_scores_calibrated_rows_and_refuses_another_camera(half_static,
                                                                   tiny_checkpoints, tmp_path):
    """A calibrated unit scan reads the references of its grid; the same checkpoint on frames
    of another working size fails the unit, naming both sizes."""
    import pyarrow.compute as pc

    from raystack.archive import list_archive
    from raystack.scan.plan import plan_units
    from raystack.scan.probe import probe_archive
    from raystack.scan.worker import UnitScorer

    sources = list_archive(half_static)
    cfg = SimpleNamespace(archive=str(half_static), flow="dis", flow_preset="fast",
                          tiles=False, tile_scale=0.0, val_fraction=0.5)
    path = tmp_path / "fp.pt"
    shutil.copy(tiny_checkpoints["fp"], path)
    write_checkpoint_extra(path, NORMAL_KEY, calibrate_normal_error(cfg, sources, str(path)))

    def scorer(**kw):
        return UnitScorer([str(path)], threads=1, chunk_frames=8, prefetch_chunks=0,
                          run_id="c", **kw)

    patch, calibrated = scorer(region="patch"), scorer(region="calibrated")
    unit = plan_units(probe_archive(sources), context=patch.context, segment_frames=512,
                      sources=sources).units[0]
    a, b = patch(unit), calibrated(unit)
    for stream in ("fp", "diff", "motion"):
        pa_ = a.filter(pc.equal(a["model"], stream))["psnr"].to_numpy()
        pb = b.filter(pc.equal(b["model"], stream))["psnr"].to_numpy()
        assert len(pa_) == len(pb) > 0 and np.isfinite(pb).all()
        assert not np.allclose(pa_, pb)  # another quantity: error relative to normal
    # Gated: the still half skips the model; its rows carry the trivial answer (copy-last
    # for FP) calibrated against FP's own references, as an ungated still frame would.
    from raystack.gate import trivial_psnr
    from raystack.normal_error import references_for

    gated = scorer(region="calibrated", gate_floor=0.05)
    g = gated(unit)
    fp = g.filter(pc.equal(g["model"], "fp"))
    flags = fp["gated"].to_numpy(zero_copy_only=False)
    psnr, frames = fp["psnr"].to_numpy(), fp["frame"].to_numpy()
    assert flags.any() and not flags.all() and np.isfinite(psnr).all()
    from raystack.train.data import decode_frames

    clip = decode_frames(sources[0], (64, 64)).astype(np.float32) / 127.5 - 1.0
    i = int(frames[flags][0])
    ref = references_for(gated.scorer.checkpoints, np.array([[0, 0, 64, 64]]), (64, 64))["fp"]
    want = trivial_psnr("fp", clip[i - 1:i], clip[i:i + 1], None, "calibrated", ref)
    assert psnr[flags][0] == pytest.approx(float(want[0]), abs=1e-3)
    tiled = scorer(region="calibrated", tiles=True, tile_scale=0.5)  # 128x128 working frames
    with pytest.raises(ConfigError, match=r"calibrated on 64x64 frames in 1 tiles, this video "
                                          r"is scored at 128x128"):
        tiled(unit)
