"""Tile geometry of tiled scans (raystack.tiles): coverage, overlap, edges, small frames."""

from __future__ import annotations

import numpy as np
import pytest

from raystack.tiles import TileGrid, auto_scale, tile_starts


def _covered(grid: TileGrid, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    hits = np.zeros(shape, np.int32)
    for x0, y0, x1, y1 in boxes:
        hits[y0:y1, x0:x1] += 1
    return hits


@pytest.mark.parametrize(("source", "scale", "overlap"), [
    ((1080, 1920), 0.0, 0.25), ((720, 1280), 2.0, 0.25), ((1080, 1920), 2.0, 0.5),
    ((480, 640), 1.0, 0.0), ((2160, 3840), 0.0, 0.1), ((241, 333), 1.3, 0.3),
])
def test_tiles_cover_the_frame_flush_with_overlap(source, scale, overlap):
    grid = TileGrid.for_frame(source, (128, 128), scale=scale, overlap=overlap)
    h, w = grid.work_size
    b = grid.boxes
    assert (b[:, 2] - b[:, 0] == 128).all() and (b[:, 3] - b[:, 1] == 128).all()
    assert _covered(grid, b, (h, w)).min() >= 1  # every working pixel is in a tile
    assert b[:, 0].min() == 0 and b[:, 1].min() == 0
    assert b[:, 2].max() == w and b[:, 3].max() == h  # last column/row flush
    # Neighbours overlap by at least the requested fraction of a tile.
    for starts in (np.unique(b[:, 0]), np.unique(b[:, 1])):
        if len(starts) > 1:
            assert (128 - np.diff(starts)).min() >= int(overlap * 128)
    # Source boxes cover the source frame too, flush with its edges.
    sb = grid.source_boxes
    assert _covered(grid, sb, source).min() >= 1
    assert sb[:, 2].max() == source[1] and sb[:, 3].max() == source[0]
    assert (sb >= 0).all()


def test_1080p_defaults_give_the_documented_grid():
    grid = TileGrid.for_frame((1080, 1920), (128, 128))
    assert auto_scale(1080) == 3.0 and auto_scale(720) == 2.0 and auto_scale(240) == 1.0
    assert grid.work_size == (360, 640) and grid.count == 28 and grid.scale == (3.0, 3.0)
    assert grid.source_boxes[-1].tolist() == [1536, 696, 1920, 1080]
    # A 60 px person at 1080p stays 20 px tall in the working frame.
    assert 60 / grid.scale[0] == 20


def test_small_frames_are_upscaled_not_padded():
    one = TileGrid.for_frame((100, 100), (128, 128), scale=2.0)
    assert one.work_size == (128, 128) and one.count == 1
    assert one.source_boxes.tolist() == [[0, 0, 100, 100]]
    wide = TileGrid.for_frame((100, 160), (128, 128))
    assert wide.work_size == (128, 205) and wide.count == 2
    # Exactly a tile at scale 1: one tile, no resize.
    exact = TileGrid.for_frame((64, 64), (64, 64), scale=1.0)
    assert exact.work_size == (64, 64) and exact.count == 1 and exact.scale == (1.0, 1.0)


def test_to_source_maps_and_clips():
    grid = TileGrid.for_frame((720, 1280), (128, 128), scale=2.0)
    assert grid.to_source(np.array([[10, 20, 30, 40]])).tolist() == [[20, 40, 60, 80]]
    assert grid.to_source(np.array([600, 300, 700, 400])).tolist() == [1200, 600, 1280, 720]


def test_tile_starts_and_bad_arguments():
    assert tile_starts(100, 128, 0.25).tolist() == [0]
    assert tile_starts(128, 128, 0.25).tolist() == [0]
    assert tile_starts(224, 128, 0.25).tolist() == [0, 96]
    assert tile_starts(225, 128, 0.25).tolist() == [0, 48, 97]
    with pytest.raises(ValueError, match="overlap"):
        TileGrid.for_frame((100, 100), (64, 64), overlap=1.0)
    with pytest.raises(ValueError, match="scale"):
        TileGrid.for_frame((100, 100), (64, 64), scale=-1)
    with pytest.raises(ValueError, match="positive"):
        TileGrid.for_frame((0, 100), (64, 64))
