from __future__ import annotations

import re

import pytest

from raystack.archive import list_archive, natural_sorted, source_from_uri, video_id
from raystack.errors import ArchiveError, UndecodableVideoError
from raystack.io.cache import unsafe_segments


def test_natural_sort_orders_digit_runs_by_value():
    names = ["img10.jpg", "img2.jpg", "img1.jpg", "IMG3.jpg", "img02b.jpg", "a.jpg"]
    assert natural_sorted(names) == [
        "a.jpg",
        "img1.jpg",
        "img2.jpg",
        "img02b.jpg",
        "IMG3.jpg",
        "img10.jpg",
    ]
    assert natural_sorted(["f_9_2.tif", "f_10_1.tif", "f_9_10.tif"]) == [
        "f_9_2.tif",
        "f_9_10.tif",
        "f_10_1.tif",
    ]


def test_video_id_is_a_readable_slug_plus_hash_of_the_relpath():
    vid = video_id("Test/Test001")
    assert re.fullmatch(r"test-test001-[0-9a-f]{8}", vid)
    assert video_id("Test/Test001") == vid  # stable
    assert video_id("cam/a.mp4") != video_id("cam/a.avi")  # the extension counts
    assert video_id("a/b.mp4") != video_id("a-b.mp4")  # same slug, different path
    assert video_id("/x/y.mp4/") == video_id("x/y.mp4")


def test_unsafe_segments():
    assert unsafe_segments("a/../b.mp4") == [".."]
    assert unsafe_segments("./b.mp4") == ["."]
    assert unsafe_segments("a/b..c/d.mp4") == []  # '..' inside a name is harmless


def test_list_local_archive_finds_videos_and_frame_folders(tmp_path):
    (tmp_path / "cam1").mkdir()
    (tmp_path / "cam1" / "day10.mp4").write_bytes(b"x")
    (tmp_path / "cam1" / "day2.avi").write_bytes(b"xy")
    (tmp_path / "cam1" / "notes.md").write_text("ignored")
    ped = tmp_path / "ped2" / "Test001"
    ped.mkdir(parents=True)
    for i in (1, 2, 10, 11):
        (ped / f"{i:03d}.tif").write_bytes(b"t")
    (ped / "Thumbs.db").write_bytes(b"stray")
    gt = tmp_path / "ped2" / "Test001_gt"  # UCSD ground-truth masks are not videos
    gt.mkdir()
    (gt / "001.bmp").write_bytes(b"m")
    avenue = tmp_path / "avenue" / "01"
    avenue.mkdir(parents=True)
    for i in (0, 9, 10, 100):
        (avenue / f"{i}.jpg").write_bytes(b"j")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.mp4").write_bytes(b"x")
    (tmp_path / "._x.mp4").write_bytes(b"apple double")

    srcs = list_archive(tmp_path)
    assert [s.relpath for s in srcs] == [
        "avenue/01",
        "cam1/day10.mp4",
        "cam1/day2.avi",
        "ped2/Test001",
    ]
    by = {s.relpath: s for s in srcs}
    assert by["cam1/day2.avi"].kind == "video"
    assert by["cam1/day2.avi"].size_bytes == 2
    assert by["cam1/day2.avi"].uri == str(tmp_path / "cam1" / "day2.avi")
    assert by["cam1/day2.avi"].mtime is not None and by["cam1/day2.avi"].mtime.tzinfo is not None
    assert by["ped2/Test001"].kind == "frames"
    assert [m.rsplit("/", 1)[1] for m in by["ped2/Test001"].members] == [
        "001.tif",
        "002.tif",
        "010.tif",
        "011.tif",
    ]
    assert [m.rsplit("/", 1)[1] for m in by["avenue/01"].members] == [
        "0.jpg",
        "9.jpg",
        "10.jpg",
        "100.jpg",
    ]
    assert by["avenue/01"].size_bytes == 4
    assert all(s.video_id == video_id(s.relpath) for s in srcs)
    # The exclusion list can be emptied to list the masks too.
    assert "ped2/Test001_gt" in [s.relpath for s in list_archive(tmp_path, exclude=())]


def test_list_single_file_and_root_frame_folder(tmp_path):
    f = tmp_path / "clip.mkv"
    f.write_bytes(b"x")
    [src] = list_archive(f)
    assert (src.relpath, src.kind, src.uri) == ("clip.mkv", "video", str(f))
    folder = tmp_path / "Test007"
    folder.mkdir()
    for i in (3, 1, 2):
        (folder / f"{i}.png").write_bytes(b"p")
    [src] = list_archive(folder)
    assert (src.relpath, src.kind, len(src.members)) == ("Test007", "frames", 3)
    assert source_from_uri(folder) == src


def test_list_missing_archive_is_a_clear_error(tmp_path):
    with pytest.raises(ArchiveError, match="does not exist"):
        list_archive(tmp_path / "nope")


def test_source_from_uri_rejects_a_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(UndecodableVideoError, match="no image files"):
        source_from_uri(tmp_path)


def test_synthetic_archive_lists_train_and_test(tiny_archive):
    srcs = list_archive(tiny_archive)
    assert [s.relpath for s in srcs] == [
        "test/test_001.mp4",
        "test/test_002.mp4",
        "train/train_001.mp4",
        "train/train_002.mp4",
    ]


def test_natural_sort_handles_names_that_extend_each_other():
    names = ["img2.jpg5x", "img2.jpg", "img2.jpg10", "img2"]
    assert natural_sorted(names) == ["img2", "img2.jpg", "img2.jpg5x", "img2.jpg10"]
