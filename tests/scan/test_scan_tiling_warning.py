"""A scan warns (never refuses) when a checkpoint was trained with other tiling than its own."""

from __future__ import annotations

from raystack.models.checkpoint import load_checkpoint, save_checkpoint
from raystack.models.tiling import tiling_record
from raystack.scan.config import ScanConfig
from raystack.scan.run import _model_info


def test_model_info_warns_on_a_tiling_crossing(tiny_checkpoints, tmp_path):
    whole = [tiny_checkpoints["fp"]]  # written without a record: whole-frame
    cfg = ScanConfig(archive="x", store="y", checkpoints=tuple(whole))
    assert _model_info(cfg)["tiling_warnings"] == []
    tiled_cfg = ScanConfig(archive="x", store="y", checkpoints=tuple(whole), tiles=True)
    (line,) = _model_info(tiled_cfg)["tiling_warnings"]
    assert "trained on whole frames, used for a tiled scan" in line

    model, info = load_checkpoint(tiny_checkpoints["fp"])
    tiled = save_checkpoint(tmp_path / "fp.pt", model, preset=info["preset"],
                            data_fingerprint=None,
                            extra={"tiling": tiling_record(True, 0.0)})
    assert _model_info(ScanConfig(archive="x", store="y", checkpoints=(str(tiled),),
                                  tiles=True))["tiling_warnings"] == []
    (line,) = _model_info(ScanConfig(archive="x", store="y", checkpoints=(str(tiled),),
                                     tiles=True, tile_scale=3.0))["tiling_warnings"]
    assert "tile_scale 0.0, scanned at 3.0" in line
    (line,) = _model_info(ScanConfig(archive="x", store="y",
                                     checkpoints=(str(tiled),)))["tiling_warnings"]
    assert "trained on tiles, used for a whole-frame scan" in line
