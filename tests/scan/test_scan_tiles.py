"""Tiled scoring in the scan worker: a 320x240 camera scored in 64-px tiles (tiny preset)."""

from __future__ import annotations

import numpy as np
import pytest

from raystack.archive import list_archive
from raystack.scan.plan import plan_units
from raystack.scan.probe import probe_archive
from raystack.scan.worker import UnitScorer

FRAMES, W, H = 24, 320, 240  # the wide_archive fixture (conftest.py)
BOX = ("box_x0", "box_y0", "box_x1", "box_y1")
PATCH = ("patch_x0", "patch_y0", "patch_x1", "patch_y1")


def _unit(archive, context):
    sources = list_archive(archive)
    plan = plan_units(probe_archive(sources), context=context, segment_frames=512,
                      sources=sources)
    return plan.units[0]


def _scorer(ckpts, **kw):
    return UnitScorer([ckpts["fp"], ckpts["fr"]], threads=2, chunk_frames=8, run_id="t", **kw)


def _cols(table, names):
    return np.stack([np.asarray(table[c].to_pylist(), dtype=float) for c in names], axis=1)


@pytest.fixture(scope="module")
def tiled(tiny_checkpoints, wide_archive):
    scorer = _scorer(tiny_checkpoints, tiles=True, tile_scale=2.0, region="patch")
    unit = _unit(wide_archive, scorer.context)
    return scorer, unit, scorer(unit)


def test_tiled_rows_report_the_worst_tile_and_patch(tiled):
    scorer, unit, t = tiled
    grid = scorer.grid((H, W))
    assert grid.work_size == (120, 160) and grid.count == 9  # 3 x 3 tiles of 64 px
    # One row per (frame, stream), as scored whole.
    assert t.num_rows == len(scorer.streams) * (FRAMES - scorer.context)
    assert t["tiles"].to_pylist() == [9] * t.num_rows
    psnr, mean = t["psnr"].to_numpy(), t["psnr_mean"].to_numpy()
    assert np.isfinite(psnr).all() and (psnr <= mean + 1e-4).all()
    box, patch = _cols(t, BOX), _cols(t, PATCH)
    assert not np.isnan(box).any() and not np.isnan(patch).any()
    # Boxes are tiles of the grid, in source pixels, inside the frame; patches inside them.
    assert {tuple(b) for b in box.astype(int)} <= {tuple(b) for b in grid.source_boxes}
    assert ((box[:, 2] - box[:, 0]) == 128).all() and ((box[:, 3] - box[:, 1]) == 128).all()
    assert (patch[:, 0] >= box[:, 0]).all() and (patch[:, 2] <= box[:, 2]).all()
    assert (patch[:, 1] >= box[:, 1]).all() and (patch[:, 3] <= box[:, 3]).all()
    assert (patch[:, 2] > patch[:, 0]).all() and (patch[:, 3] > patch[:, 1]).all()


def test_tiled_scores_are_the_tiles_scored_as_frames(tiled):
    """The worst tile's psnr is what the scorer gives that tile's crop (frames and flow)."""
    from raystack.archive import materialise
    from raystack.decode import open_reader, to_model_range
    from raystack.flow import create_flow, flow_to_model_input

    scorer, unit, t = tiled
    grid = scorer.grid((H, W))
    with open_reader(materialise(unit.source), size=grid.work_size[::-1]) as r:
        u8 = r.read(0, r.num_frames)
    flows = flow_to_model_input(create_flow("dis", preset="fast")(u8))
    frames = to_model_range(u8)
    per_tile = []
    for x0, y0, x1, y1 in grid.boxes:
        out = scorer.scorer.score(frames[:, y0:y1, x0:x1], flows[:, :, y0:y1, x0:x1])
        per_tile.append(out["fr"].psnr)
    per_tile = np.stack(per_tile, axis=1)  # (n, 9)
    fr = t.filter(np.asarray(t["model"].to_pylist()) == "fr")
    np.testing.assert_allclose(fr["psnr"].to_numpy(), per_tile.min(axis=1), atol=1e-3)
    np.testing.assert_allclose(fr["psnr_mean"].to_numpy(), per_tile.mean(axis=1), atol=1e-3)
    worst = grid.source_boxes[per_tile.argmin(axis=1)]
    assert (_cols(fr, BOX).astype(int) == worst).all()


def test_tiled_rows_reach_the_store_as_scored(tiled, tmp_path):
    from raystack.store import Store

    scorer, unit, t = tiled
    store = Store(tmp_path / "store")
    scorer.store, scorer.run_id = store, "t"
    try:
        assert scorer.run(unit)["status"] == "done"
    finally:
        scorer.store = None
    back = store.read_table("scores", "t")
    assert back.schema.names == t.schema.names
    for c in ("frame", "model", "psnr", "psnr_mean", "tiles", *BOX, *PATCH):
        assert back[c].to_pylist() == t[c].to_pylist(), c


def test_skipped_tiles_leave_the_worst_and_the_mean(tiny_checkpoints, wide_archive, tiled):
    _, unit, full = tiled
    seen = []

    def gate(chunk, grid):
        skip = np.zeros((chunk.stop - chunk.start, grid.count), bool)
        skip[:, :4] = True  # the top row and the first tile of the middle one
        if chunk.start == unit.start:
            skip[0] = True  # every tile of the first frame: it gets no row
        seen.append(chunk.start)
        return skip

    scorer = _scorer(tiny_checkpoints, tiles=True, tile_scale=2.0, region="patch",
                     tile_gate=gate)
    t = scorer(unit)
    n = FRAMES - scorer.context
    assert seen and t.num_rows == len(scorer.streams) * (n - 1)
    assert unit.start not in t["frame"].to_pylist()
    assert set(t["tiles"].to_pylist()) == {5}
    allowed = {tuple(b) for b in scorer.grid((H, W)).source_boxes[4:]}
    assert {tuple(b) for b in _cols(t, BOX).astype(int)} <= allowed
    # Fewer tiles can only raise the worst tile's PSNR.
    key = lambda tab: {(f, m): p for f, m, p in zip(  # noqa: E731
        tab["frame"].to_pylist(), tab["model"].to_pylist(), tab["psnr"].to_pylist(), strict=True)}
    a, b = key(full), key(t)
    assert all(b[k] >= a[k] - 1e-4 for k in b)


def test_whole_frame_rows_box_the_source_frame(tiny_checkpoints, wide_archive):
    scorer = _scorer(tiny_checkpoints, region="patch")
    t = scorer(_unit(wide_archive, scorer.context))
    assert t.num_rows == len(scorer.streams) * (FRAMES - scorer.context)
    assert t["tiles"].null_count == t["psnr_mean"].null_count == t.num_rows
    assert (_cols(t, BOX) == [0, 0, W, H]).all()
    patch = _cols(t, PATCH)
    # An 8-px patch of a 64x64 model frame is 40x30 source px (320/64 by 240/64), and the
    # box grows from the worst one by whole windows at half a patch's stride (20x15 px).
    pw, ph = patch[:, 2] - patch[:, 0], patch[:, 3] - patch[:, 1]
    assert ((pw >= 40) & ((pw - 40) % 20 == 0)).all() and ((ph >= 30) & ((ph - 30) % 15 == 0)).all()
    assert (patch[:, :2] >= 0).all() and (patch[:, 2] <= W).all() and (patch[:, 3] <= H).all()


def test_region_frame_rows_have_no_patch_motion_included(tiny_checkpoints, wide_archive):
    """Region "frame": every stream, the motion baseline too, boxes the frame (scored
    whole) or its worst tile (tiled) and has no patch; "patch" gives every stream one."""
    for kw in ({}, {"tiles": True, "tile_scale": 2.0}):
        scorer = _scorer(tiny_checkpoints, region="frame", **kw)
        t = scorer(_unit(wide_archive, scorer.context))
        assert "motion" in t["model"].to_pylist()
        assert all(t[c].null_count == t.num_rows for c in PATCH), kw
        box = _cols(t, BOX)
        if kw:
            assert {tuple(b) for b in box.astype(int)} <= \
                {tuple(b) for b in scorer.grid((H, W)).source_boxes}
        else:
            assert (box == [0, 0, W, H]).all()


def test_tiled_scans_read_shorter_chunks_by_default(tiny_checkpoints):
    """A tiled chunk holds frames and flow at the working size: its default is shorter
    (bench/results/tiles_memory.json); a chunk_frames given wins either way."""
    from raystack.errors import ConfigError
    from raystack.scan.config import ScanConfig, check_config
    from raystack.scan.worker import CHUNK_FRAMES, TILED_CHUNK_FRAMES

    ck = [tiny_checkpoints["fp"], tiny_checkpoints["fr"]]
    assert UnitScorer(ck).chunk_frames == CHUNK_FRAMES == 64
    tiled = UnitScorer(ck, tiles=True)
    assert tiled.chunk_frames == tiled.read_options.chunk_frames == TILED_CHUNK_FRAMES < 64
    assert UnitScorer(ck, tiles=True, chunk_frames=48).read_options.chunk_frames == 48
    cfg = ScanConfig(archive="a", store="s", checkpoints=["fp.pt"])
    assert cfg.chunk_frames is None
    check_config(cfg)
    with pytest.raises(ConfigError, match="chunk_frames"):
        check_config(ScanConfig(archive="a", store="s", checkpoints=["fp.pt"], chunk_frames=0))


def test_tile_settings_load_check_and_pin_a_run(tmp_path):
    from raystack.errors import ConfigError
    from raystack.scan.config import ScanConfig, check_config, load_scan_config
    from raystack.scan.run import _check_resume, _identity

    toml = tmp_path / "scan.toml"
    toml.write_text('[scan]\narchive = "a"\nstore = "s"\ncheckpoints = ["fp.pt"]\n'
                    "tiles = true\ntile_scale = 2.5\ntile_overlap = 0.5\n")
    cfg = load_scan_config(toml)
    assert (cfg.tiles, cfg.tile_scale, cfg.tile_overlap) == (True, 2.5, 0.5)
    check_config(cfg)
    assert ScanConfig().tiles is False  # whole frame stays the default (the protocol)
    for key, value in (("tile_overlap", 1.0), ("tile_scale", -1.0)):
        with pytest.raises(ConfigError, match=key):
            check_config(load_scan_config(toml, **{key: value}))
    info = {"context": 4, "streams": ["fp"], "checkpoints": {"fp": {"sha256": "ab"}},
            "needs_flow": False}
    tiled = {"identity": _identity(cfg, info)}
    _check_resume(tiled, _identity(cfg, info), "r1")
    whole = load_scan_config(toml, tiles=False)
    with pytest.raises(ConfigError, match="tiles"):
        _check_resume(tiled, _identity(whole, info), "r1")


def test_scan_cli_offers_the_tile_flags():
    from typer.testing import CliRunner

    from raystack.cli import app

    out = CliRunner().invoke(app, ["scan", "--help"], env={"COLUMNS": "200"}).output
    assert "--tiles" in out and "--tile-scale" in out and "--tile-overlap" in out
