"""Training on tiles: working-size decoding, crops shared by a clip, the checkpoint's tiling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from raystack.errors import ConfigError
from raystack.models.tiling import checkpoint_tiling, tiling_mismatch, tiling_record
from raystack.train.config import TrainConfig, check_config
from raystack.train.crops import crop_origin, working_size
from raystack.train.data import DecodedVideo, build_clip_sets, prepare_data


@pytest.fixture(scope="module")
def archive_320(tmp_path_factory):
    """2 normal videos of 24 frames at 320x240: at tile_scale 2 the working size is 160x120."""
    from raystack.synth import synthesize

    out = tmp_path_factory.mktemp("tiles-synth")
    synthesize(out, seed=1, n_train=2, n_test=1, frames=24, size=(320, 240))
    return out


@pytest.fixture
def tiles_cfg(archive_320, tmp_path):
    def make(**overrides) -> TrainConfig:
        base = TrainConfig(
            archive=str(archive_320 / "train"), model="fp", preset="tiny", epochs=1,
            batch_size=2, clips_per_epoch=4, val_fraction=0.2, val_clips=4, tiles=True,
            tile_scale=2.0, storage=str(tmp_path / "runs"), name="tiles", progress=False,
        )
        return dataclasses.replace(base, **overrides)

    return make


def _gradient_video(n: int, h: int, w: int) -> DecodedVideo:
    """Pixel (y, x) of every frame holds (y + 2x) mod 256 plus 7k; flow = (x, y) / 100."""
    ys, xs = np.mgrid[0:h, 0:w]
    frames = np.stack([((ys + 2 * xs + 7 * k) % 256).astype(np.uint8) for k in range(n)])
    frames = np.repeat(frames[..., None], 3, axis=-1)
    flows = np.stack([np.stack([xs / 100, ys / 100]).astype(np.float16) for _ in range(n - 1)])
    return DecodedVideo("g.mp4", frames, flows)


def test_working_size_and_crop_origin():
    assert working_size(1920, 1080, 2.0, tile=(128, 128)) == (960, 540)
    assert working_size(1920, 1080, 0.0, tile=(128, 128)) == (640, 360)  # automatic
    assert working_size(320, 240, 8.0, tile=(64, 64)) == (85, 64)  # upscaled to fill a tile
    a = crop_origin(0, 1, 5, space=(120, 160), crop=(64, 64))
    assert a == crop_origin(0, 1, 5, space=(120, 160), crop=(64, 64))  # pure
    assert 0 <= a[0] <= 56 and 0 <= a[1] <= 96
    draws = {crop_origin(0, e, 5, space=(120, 160), crop=(64, 64)) for e in range(20)}
    assert len(draws) > 5  # a fresh position every epoch
    assert crop_origin(0, 0, 0, space=(64, 64), crop=(64, 64)) == (0, 0)
    with pytest.raises(ValueError, match="does not fit"):
        crop_origin(0, 0, 0, space=(32, 64), crop=(64, 64))


def test_fp_crop_is_the_same_window_over_the_clip():
    video, t = _gradient_video(10, 40, 50), 3
    train, _ = build_clip_sets([video], task="fp", t=t, stride=1, val_fraction=0.0,
                               val_clips=4, crop=(16, 16), seed=3)
    train.epoch = 2
    batch = train.batch([0, 4])
    assert batch["x"].shape == (2, 3 * t, 16, 16) and batch["y"].shape == (2, 3, 16, 16)
    for row, k in enumerate([0, 4]):
        ys, xs = train.window(k)
        i = int(train.targets[k])
        want = video.frames[i - t : i + 1, ys, xs]  # (t+1, 16, 16, 3), all from one window
        got = np.round((batch["x"][row].numpy() + 1) * 127.5).reshape(t, 3, 16, 16)
        assert np.array_equal(got[:, 0], want[:t, ..., 0])
        assert np.array_equal(np.round((batch["y"][row, 0].numpy() + 1) * 127.5), want[t, ..., 0])
    before = [train.window(k) for k in range(7)]
    train.epoch = 3  # another epoch, other windows (positions are seeded per epoch)
    assert [train.window(k) for k in range(7)] != before


def test_fr_crop_takes_flow_and_previous_flow_from_the_same_window():
    video = _gradient_video(8, 30, 40)
    train, _ = build_clip_sets([video], task="fr", t=1, stride=1, val_fraction=0.0,
                               val_clips=4, crop=(8, 12), flow_scale=10.0)
    batch = train.batch([1])
    ys, xs = train.window(1)
    assert batch["x"].shape == (1, 2, 8, 12)
    assert np.allclose(batch["x"][0, 0].numpy(), np.arange(40)[xs] / 100, atol=2e-3)
    assert np.allclose(batch["prev"][0, 1].numpy(), (np.arange(30)[ys] / 100)[:, None], atol=2e-3)


def test_prepare_data_decodes_at_the_working_size(tiles_cfg):
    from raystack.models import create_model

    fp = create_model("vqmau_fp.tiny").config
    tiled = prepare_data(tiles_cfg(), "fp", fp)
    whole = prepare_data(tiles_cfg(tiles=False), "fp", fp)
    assert tiled.train.videos[0].frames.shape[1:3] == (120, 160)  # 320x240 / 2
    assert whole.train.videos[0].frames.shape[1:3] == tuple(fp.img_size)
    assert tiled.train.batch([0, 1])["x"].shape[-2:] == tuple(fp.img_size)
    assert tiled.fingerprint != whole.fingerprint
    assert tiled.fingerprint != prepare_data(tiles_cfg(tile_scale=3.0), "fp", fp).fingerprint
    assert "1/2 scale" in tiled.summary()
    assert "automatic scale" in prepare_data(tiles_cfg(tile_scale=0.0), "fp", fp).summary()

    fr = create_model("vqmau_fr.tiny").config
    flows = prepare_data(tiles_cfg(model="fr"), "fr", fr)
    assert flows.train.videos[0].flows.shape[1:] == (2, 120, 160)  # flow at working size
    assert flows.train.batch([0])["x"].shape[-2:] == tuple(fr.img_size)


def test_working_size_is_the_tiled_scans(tiles_cfg):
    """Automatic scale keeps 240p (never upscales); 320x240 / 8 is smaller than a 64-px
    tile and is upscaled to fill it, as the scan's TileGrid does."""
    from raystack.models import create_model
    from raystack.tiles import TileGrid

    fp = create_model("vqmau_fp.tiny").config
    for scale in (0.0, 8.0):
        data = prepare_data(tiles_cfg(tile_scale=scale), "fp", fp)
        grid = TileGrid.for_frame((240, 320), tile=tuple(fp.img_size), scale=scale)
        assert data.train.videos[0].frames.shape[1:3] == grid.work_size


def test_tiled_training_records_its_tiling_in_the_checkpoint(tiles_cfg):
    from raystack.models.checkpoint import load_checkpoint
    from raystack.train import train

    result = train(tiles_cfg())
    _, info = load_checkpoint(result.checkpoints["fp"])
    assert checkpoint_tiling(info) == {"tiles": True, "tile_scale": 2.0}
    whole = train(tiles_cfg(tiles=False, name="whole"))
    _, info_whole = load_checkpoint(whole.checkpoints["fp"])
    assert checkpoint_tiling(info_whole) == {"tiles": False}


def test_tiling_mismatch_warns_on_either_crossing():
    tiled = {"extra": {"tiling": tiling_record(True, 2.0)}, "path": "fp.pt"}
    whole = {"extra": {"tiling": tiling_record(False, 2.0)}}
    legacy = {"extra": {}}  # written before the record: whole frames
    assert tiling_mismatch(tiled, tiles=True, tile_scale=2.0) is None
    assert tiling_mismatch(whole, tiles=False, tile_scale=4.0) is None
    assert tiling_mismatch(legacy, tiles=False, tile_scale=2.0) is None
    assert "trained on tiles" in tiling_mismatch(tiled, tiles=False, tile_scale=2.0)
    assert "whole frames" in tiling_mismatch(legacy, tiles=True, tile_scale=2.0)
    assert "tile_scale 2.0" in tiling_mismatch(tiled, tiles=True, tile_scale=3.0)


def test_tile_scale_must_not_be_negative():
    with pytest.raises(ConfigError, match="tile_scale"):
        check_config(TrainConfig(archive="x", tiles=True, tile_scale=-1.0))
    check_config(TrainConfig(archive="x", tiles=True, tile_scale=0.0))  # automatic


def test_cli_passes_the_tiling_options(monkeypatch, archive_320, tmp_path):
    from typer.testing import CliRunner

    import raystack.train as train_pkg
    from raystack.cli.app import app

    seen = {}

    def fake_train(cfg):
        seen["cfg"] = cfg
        raise KeyboardInterrupt

    monkeypatch.setattr(train_pkg, "train", fake_train)
    res = CliRunner().invoke(app, ["train", str(archive_320 / "train"), "--tiles",
                                   "--tile-scale", "1.5", "--storage", str(tmp_path)])
    assert res.exit_code == 130, res.output
    assert seen["cfg"].tiles is True and seen["cfg"].tile_scale == 1.5
    assert "--tiles" in CliRunner().invoke(app, ["train", "--help"]).output
