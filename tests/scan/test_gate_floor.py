"""Where a scan's gate floor comes from: the checkpoints' calibrated one (refused by name
when missing), or the configured one; and calibrating it on held-out normal frames."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from raystack.errors import ConfigError
from raystack.models.checkpoint import read_checkpoint
from raystack.scan.config import ScanConfig
from raystack.scan.gate_floor import resolve_gate_floor
from raystack.train.gate_calibration import calibrate_gate, tile_boxes, write_gate_record


def _infos(*floors):
    return {f"s{i}": {"path": f"/ck/{i}.pt", "extra": {} if f is None else {"gate": {
        "floor_px": f}}} for i, f in enumerate(floors)}


def test_floor_resolution():
    assert resolve_gate_floor(ScanConfig(), _infos(None)) is None  # gating off
    assert resolve_gate_floor(ScanConfig(gate=True), _infos(0.4, 0.3)) == 0.3  # the lowest
    assert resolve_gate_floor(ScanConfig(gate_floor=0.7), _infos(None)) == 0.7
    with pytest.raises(ConfigError, match=r"checkpoint /ck/1.pt records no gate floor.*"
                                          r"--gate-floor PX"):
        resolve_gate_floor(ScanConfig(gate=True), _infos(0.4, None))


def test_tile_boxes_cover_the_frame_flush_with_the_edges():
    b = tile_boxes((100, 150), (64, 64))
    assert b.tolist() == [[0, 0, 64, 64], [64, 0, 128, 64], [86, 0, 150, 64],
                          [0, 36, 64, 100], [64, 36, 128, 100], [86, 36, 150, 100]]
    assert tile_boxes((32, 32), (64, 64)).tolist() == [[0, 0, 32, 32]]


def test_calibration_on_held_out_frames_lands_below_motion_and_above_stillness(
        half_static, tiny_checkpoints, tmp_path):
    from raystack.archive import list_archive

    sources = list_archive(half_static)
    cfg = SimpleNamespace(archive=str(half_static), flow="dis", flow_preset="fast",
                          tiles=False, tile_scale=0.0, val_fraction=0.5)
    rec = calibrate_gate(cfg, sources, img_size=(64, 64), quantile=0.5)
    # The held-out half is the still one: its median motion is far below a moving frame's.
    assert rec["frames"] == 19 and rec["floor_px"] < 0.05
    cfg.val_fraction = 0.0
    with pytest.raises(ValueError, match="no held-out frames"):
        calibrate_gate(cfg, sources, img_size=(64, 64))
    import shutil

    path = tmp_path / "fp.pt"
    shutil.copy(tiny_checkpoints["fp"], path)
    write_gate_record(path, {"floor_px": 0.25, "quantile": 0.01})
    payload = read_checkpoint(path)
    assert payload["extra"]["gate"]["floor_px"] == 0.25
    assert np.isfinite(payload["n_params"])


def test_change_floor_resolution():
    from raystack.scan.gate_floor import resolve_diff_floor

    def infos(*pairs):
        return {f"s{i}": {"path": f"/ck/{i}.pt", "extra": {"gate": {
            "floor_px": 0.3, **({} if d is None else {"diff_floor": d})}}}
            for i, d in enumerate(pairs)}

    on = ScanConfig(gate=True)
    assert resolve_diff_floor(on, infos(4.0, 2.5), 0.3) == 2.5  # the lowest
    assert resolve_diff_floor(on, infos(4.0, 2.5), None) is None  # gating off
    # a checkpoint calibrated before the change stage: every frame goes to the motion stage
    assert resolve_diff_floor(on, infos(4.0, None), 0.3) is None
    assert resolve_diff_floor(ScanConfig(gate=True, gate_diff_floor=6.0), infos(None), 0.3) == 6.0
    assert resolve_diff_floor(ScanConfig(gate=True, gate_diff_floor=-1), infos(4.0), 0.3) is None


def test_change_floor_config_is_checked():
    from raystack.scan.config import check_config

    ok = {"archive": "a", "store": "s", "checkpoints": ("fp.pt",)}
    check_config(ScanConfig(**ok, gate_diff_floor=-1))
    with pytest.raises(ConfigError, match=r"gate_diff_floor = -2.0: must be >= 0 levels"):
        check_config(ScanConfig(**ok, gate_diff_floor=-2.0))


def test_change_floor_is_the_least_change_the_motion_stage_scores():
    from raystack.train.gate_calibration import change_floor

    levels = np.array([5.0, 1.0, 3.0, 8.0, np.nan])
    assert change_floor(levels, np.array([True, False, True, True, True])) == 3.0
    assert change_floor(levels, np.zeros(5, bool)) is None


def test_calibration_records_a_change_floor_between_stillness_and_motion(half_static):
    """The held-out half of the half_static clip is lossless and exactly still: its change
    is 0 levels, so the floor is 0 and the change stage gates nothing there (a frame the
    motion stage scores changed by 0); the moving half changes far more."""
    from raystack.archive import list_archive
    from raystack.gate import change_levels
    from raystack.train.data import decode_frames

    sources = list_archive(half_static)
    cfg = SimpleNamespace(archive=str(half_static), flow="dis", flow_preset="fast",
                          tiles=False, tile_scale=0.0, val_fraction=0.5)
    rec = calibrate_gate(cfg, sources, img_size=(64, 64), quantile=0.5)
    assert rec["diff_floor"] == 0.0 and "8-bit levels" in rec["diff_statistic"]
    moving = change_levels(decode_frames(sources[0], (64, 64))[:20], 8)
    assert moving.min() > 20


def test_tiled_calibration_counts_each_frame_by_its_worst_tile(tmp_path):
    """Most tiles of normal footage are empty. A quantile over every tile would land on an
    empty tile's stillness and gate nothing; each frame's worst tile is its moving one."""
    from raystack.archive import list_archive
    from raystack.synth.media import write_video

    frames = np.full((40, 128, 128, 3), 90, np.uint8)
    for t in range(40):  # a square walks across the top-left 64x64 tile, the rest is still
        x = 4 + (t % 20)
        frames[t, 20:36, x : x + 16] = 220
    (tmp_path / "a").mkdir()
    write_video(tmp_path / "a" / "walk.mp4", iter(frames))
    sources = list_archive(tmp_path / "a")
    cfg = SimpleNamespace(archive=str(tmp_path / "a"), flow="dis", flow_preset="fast",
                          tiles=True, tile_scale=1.0, val_fraction=0.5)
    tiled = calibrate_gate(cfg, sources, img_size=(64, 64), quantile=0.1)
    assert tiled["frames"] == 19 and "worst tile" in tiled["statistic"]
    assert tiled["floor_px"] > 0.1  # the walker's motion, not the still tiles' zero
    cfg.tiles = False  # the whole frame: its worst patch is the walker's too
    whole = calibrate_gate(cfg, sources, img_size=(64, 64), quantile=0.1)
    assert whole["floor_px"] > 0.1 and "tile" not in whole["statistic"]
