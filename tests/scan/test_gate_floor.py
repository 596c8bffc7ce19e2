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
