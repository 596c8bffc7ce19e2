"""Frame folders: one unreadable image costs one frame, recorded, not the whole folder."""

from __future__ import annotations

import numpy as np
import pytest

from raystack.decode import open_reader
from raystack.errors import UndecodableVideoError
from raystack.synth import write_frames

N, SIZE = 12, (32, 24)


@pytest.fixture
def folder(tmp_path):
    frames = np.stack([np.full((SIZE[1], SIZE[0], 3), 20 * i, np.uint8) for i in range(N)])
    write_frames(tmp_path / "f", frames, ext=".png")
    return tmp_path / "f"


def _corrupt(folder, *idx):
    for i in idx:
        (folder / f"{i:04d}.png").write_bytes(b"not a png at all")


def test_a_corrupt_frame_is_filled_with_its_neighbour_and_recorded(folder):
    _corrupt(folder, 5)
    with open_reader(folder, size=None) as r:
        clip = r.read(0, N)
        assert clip.shape == (N, SIZE[1], SIZE[0], 3)
        assert r.bad_frames.keys() == {5} and "0005.png" in r.bad_frames[5]
        np.testing.assert_array_equal(clip[5], clip[4])  # the previous readable frame
        assert clip[6, 0, 0, 0] == 120  # the rest untouched


def test_a_strided_read_opens_only_its_frames_and_fills_as_a_full_read(folder):
    with open_reader(folder, size=None) as r:
        loads = []
        load = r._load
        r._load = lambda i: loads.append(i) or load(i)
        clip = r.read(1, 11, 3)
        assert loads == [1, 4, 7, 10]  # the images between are never opened
        assert clip[:, 0, 0, 0].tolist() == [20, 80, 140, 200]
    _corrupt(folder, 4)
    with open_reader(folder, size=None) as r, open_reader(folder, size=None) as full:
        np.testing.assert_array_equal(r.read(1, 11, 3), full.read(1, 11)[::3])
        assert r.bad_frames.keys() == {4}  # filled with frame 3, as a full read fills it


def test_leading_bad_frames_take_the_next_readable_one(folder):
    _corrupt(folder, 0, 1)
    with open_reader(folder, size=None) as r:  # the first image is not needed to open
        assert (r.width, r.height) == SIZE
        clip = r.read(0, 4)
        assert r.bad_frames.keys() == {0, 1}
        assert clip[0, 0, 0, 0] == clip[1, 0, 0, 0] == 40  # frame 2
        # A chunked read whose frames are all bad takes the frame before it.
        _corrupt(folder, 6, 7)
        r.read(4, 6)
        np.testing.assert_array_equal(r.read(6, 8)[0], r.read(5, 6)[0])


def test_a_folder_with_no_readable_image_still_fails_naming_it(folder):
    _corrupt(folder, *range(N))
    with pytest.raises(UndecodableVideoError, match="none of its first 12 images"):
        open_reader(folder, size=None)


def test_probe_accepts_a_folder_whose_first_and_last_images_are_corrupt(folder):
    from raystack.scan.probe import probe_archive

    _corrupt(folder, 0, N - 1)
    row = probe_archive(folder).to_pylist()[0]
    assert row["probe_error"] is None and row["frames"] == N
