"""Per-frame region columns from tile and whole-frame scores (raystack.regions)."""

from __future__ import annotations

import numpy as np

from raystack.models.contract import StreamScores
from raystack.regions import concat_regions, reduce_tiles, whole_frame
from raystack.store.schema import REGION_COLUMNS
from raystack.tiles import TileGrid


def test_reduce_tiles_takes_the_worst_scored_tile_and_maps_its_patch():
    grid = TileGrid.for_frame((240, 320), (64, 64), scale=2.0)  # 3 x 3 tiles over 160x120
    psnr = np.array([[30, 20, 25, 30, 30, 30, 30, 30, 40],
                     [30, 30, 30, 30, 30, 30, 30, 30, 10]], np.float32)
    aux = np.arange(18, dtype=np.float32).reshape(2, 9)
    box = np.zeros((2, 9, 4), np.int32)
    box[:, :] = [8, 8, 16, 16]  # the worst patch of every tile, tile pixels
    skip = np.zeros((2, 9), bool)
    skip[1, 8] = True  # frame 1's worst tile was skipped: it does not count
    r = reduce_tiles(StreamScores(psnr, aux, box), grid, skip)
    assert r.psnr.tolist() == [20, 30] and r.aux.tolist() == [1, 9]
    np.testing.assert_allclose(r.psnr_mean, [(30 * 6 + 20 + 25 + 40) / 9, 30])
    assert r.tiles.tolist() == [9, 8]
    assert (r.box == grid.source_boxes[[1, 0]]).all()
    x0, y0 = grid.boxes[1, :2]
    assert r.patch[0].tolist() == [2 * (x0 + 8), 2 * (y0 + 8), 2 * (x0 + 16), 2 * (y0 + 16)]
    cols = r.columns()
    assert tuple(cols) == REGION_COLUMNS and cols["box_x1"].tolist() == r.box[:, 2].tolist()


def test_a_frame_with_every_tile_skipped_has_no_score():
    grid = TileGrid.for_frame((64, 128), (64, 64), scale=1.0)
    r = reduce_tiles(StreamScores(np.ones((2, grid.count), np.float32)), grid,
                     np.array([[True] * grid.count, [False] * grid.count]))
    assert r.tiles.tolist() == [0, grid.count] and np.isnan(r.psnr[0]) and r.psnr[1] == 1
    assert r.patch is None and r.keep(r.tiles > 0).psnr.tolist() == [1]


def test_whole_frame_boxes_the_frame_and_scales_the_patch():
    s = StreamScores(np.array([20, 30], np.float32), None,
                     np.array([[0, 0, 8, 8], [56, 32, 64, 40]], np.int32))
    r = whole_frame(s, (480, 640), (64, 64))  # 10 source px per model px across, 7.5 down
    assert r.psnr_mean is None and r.tiles is None and np.isnan(r.aux).all()
    assert r.box.tolist() == [[0, 0, 640, 480]] * 2
    assert r.patch.tolist() == [[0, 0, 80, 60], [560, 240, 640, 300]]
    none = whole_frame(StreamScores(np.zeros(3, np.float32)), (480, 640), (64, 64))
    assert none.patch is None and none.columns()["patch_x0"] is None
    both = concat_regions([r, whole_frame(s, (480, 640), (64, 64))])
    assert len(both.psnr) == 4 and both.patch.shape == (4, 4)
    assert concat_regions([r, none]).patch is None
