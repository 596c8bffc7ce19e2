from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raystack.decode import (
    SEQUENTIAL_BACKEND,
    STRIDED_SEQUENTIAL_BACKEND,
    load_image,
    open_reader,
    read_clip,
    to_model_range,
)
from raystack.errors import UndecodableVideoError
from raystack.synth import write_frames, write_video

BACKENDS = ("decord", "pyav")


def moving(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    """Frames that differ from each other: a bar moving right, a counter bar growing."""
    out = []
    for i in range(n):
        f = np.full((h, w, 3), (20, 80, 30), np.uint8)
        x = (3 * i) % (w - 6)
        f[4 : h // 2, x : x + 6] = (250, 250, 250)
        f[h - 6 :, : min(w, i)] = (200, 40, 40)
        out.append(f)
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    frames = moving(80)
    paths = {
        "mp4": root / "a.mp4",
        "h264": root / "b.mp4",
        "avi": root / "c.avi",
        "mkv": root / "d.mkv",
        "frames": root / "frames",
    }
    write_video(paths["mp4"], frames)
    write_video(paths["h264"], frames, codec="h264")  # B-frames: presentation != decode order
    write_video(paths["avi"], frames)
    write_video(paths["mkv"], frames)
    write_frames(paths["frames"], frames, ext=".png")
    red = [np.tile(np.array([255, 0, 0], np.uint8), (32, 32, 1))] * 4
    write_video(root / "red.mp4", red)
    write_frames(root / "red_frames", red, ext=".png")
    paths["red"], paths["red_frames"] = root / "red.mp4", root / "red_frames"
    write_video(root / "three.mp4", moving(3))
    write_video(
        root / "gray.mkv", [f[..., 0].copy() for f in moving(10)], codec="ffv1", pix_fmt="gray"
    )
    write_video(root / "gray_yuv.mp4", [f[..., 0].copy() for f in moving(10)])
    write_video(root / "odd.mp4", moving(7, w=317, h=211))
    (root / "zero.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("definitely not a video\n" * 40)
    data = paths["mp4"].read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_video(root / "fs.mp4", frames, container_options={"movflags": "faststart"})
    data = (root / "fs.mp4").read_bytes()
    (root / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])
    for name in (
        "three",
        "gray",
        "gray_yuv",
        "odd",
        "zero",
        "text",
        "truncated",
        "truncated_faststart",
    ):
        paths[name] = next(root.glob(f"{name}.*"))
    return paths


@pytest.mark.parametrize("backend", [*BACKENDS, "frames"])
def test_rgb_channel_order(media, backend):
    src = media["red_frames"] if backend == "frames" else media["red"]
    with open_reader(src, size=(16, 16), backend=None if backend == "frames" else backend) as r:
        x = r.read(0, 4)
    assert x.dtype == np.uint8 and x.shape == (4, 16, 16, 3)
    assert x[..., 0].min() > 230 and x[..., 1].max() < 30 and x[..., 2].max() < 30


def test_model_range_and_read_clip(media):
    assert to_model_range(np.array([0, 255], np.uint8)).tolist() == [-1.0, 1.0]
    clip = read_clip(media["mp4"], 10, 26)
    assert clip.dtype == np.float32 and clip.shape == (16, 256, 256, 3)
    assert clip.min() >= -1.0 and clip.max() <= 1.0 and clip.min() < -0.5 and clip.max() > 0.9
    small = read_clip(media["mp4"], 0, 2, size=(40, 30))
    assert small.shape == (2, 30, 40, 3)


@pytest.mark.parametrize("fmt", ["mp4", "h264", "avi", "mkv", "frames"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_frame_ranges_match_a_full_read(media, fmt, backend):
    with open_reader(media[fmt], size=None, backend=backend) as r:
        assert (r.num_frames, r.fps, r.width, r.height) == (80, 25.0, 64, 48)
        full = r.read(0, 80)
    # Frames are distinct, so an off-by-one anywhere shows up.
    assert all(not np.array_equal(full[i], full[i + 1]) for i in range(79))
    with open_reader(media[fmt], size=None, backend=backend) as r:
        for start, stop in [
            (5, 17),
            (40, 41),
            (79, 80),
            (30, 62),
            (12, 13),
            (0, 3),
            (61, 75),
            (7, 7),
        ]:
            got = r.read(start, stop)
            assert got.shape == (stop - start, 48, 64, 3)
            for i in range(stop - start):
                np.testing.assert_array_equal(
                    got[i], full[start + i], err_msg=f"{fmt} {backend} frame {start + i}"
                )


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential_chunks_concatenate_to_the_full_video(media, backend):
    with open_reader(media["h264"], size=(32, 32), backend=backend) as r:
        full = r.read(0, 80)
        parts = [r.read(a, min(a + 16, 80)) for a in range(0, 80, 16)]
        parts_from_40 = [r.read(a, a + 10) for a in range(40, 80, 10)]
    np.testing.assert_array_equal(np.concatenate(parts), full)
    np.testing.assert_array_equal(np.concatenate(parts_from_40), full[40:])


@pytest.mark.parametrize("fmt", ["mp4", "h264", "avi"])
def test_decord_and_pyav_decode_identical_pixels(media, fmt):
    # A scan may read a unit sequentially (PyAV) and a user re-read it at random
    # (decord): the two must see the same frames, or scores would depend on the reader.
    with (
        open_reader(media[fmt], size=(40, 40), backend="decord") as a,
        open_reader(media[fmt], size=(40, 40), backend="pyav") as b,
    ):
        np.testing.assert_array_equal(a.read(0, 80), b.read(0, 80))


def test_sequential_flag_picks_the_sequential_backend(media):
    with open_reader(media["mp4"], sequential=True) as r:
        assert r.backend == SEQUENTIAL_BACKEND
    with open_reader(media["mp4"]) as r:
        assert r.backend == "decord"
    # A strided scan's reads: PyAV converts only the frames kept, decord every one.
    with open_reader(media["mp4"], sequential=True, step=3) as r:
        assert r.backend == STRIDED_SEQUENTIAL_BACKEND == "pyav"
    with open_reader(media["mp4"], step=3) as r:  # random access ignores the step
        assert r.backend == "decord"
    with pytest.raises(ValueError, match="unknown decode backend"):
        open_reader(media["mp4"], backend="opencv")


def test_long_files_are_read_sequentially_with_pyav(media, monkeypatch):
    # decord re-indexes the whole file at every open; segments of long files use PyAV.
    monkeypatch.setattr("raystack.decode.LONG_VIDEO_BYTES", 100)
    with open_reader(media["mp4"], sequential=True) as r:
        assert r.backend == "pyav"
    with open_reader(media["mp4"]) as r:
        assert r.backend == "decord"


def test_pyav_reader_takes_a_known_frame_count(media):
    # mkv stores no frame count: PyAV would count packets unless the probe's count is given.
    with open_reader(media["gray"], backend="pyav", num_frames=10) as r:
        assert r.num_frames == 10 and r.read(8, 10).shape[0] == 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["zero", "text", "truncated", "truncated_faststart"])
def test_bad_files_raise_an_error_naming_the_file(media, backend, name):
    with pytest.raises(UndecodableVideoError) as info:
        with open_reader(media[name], backend=backend) as r:
            r.read(0, r.num_frames)
    assert info.value.uri == str(media[name])
    assert str(media[name]) in str(info.value) and info.value.reason


@pytest.mark.parametrize("backend", BACKENDS)
def test_awkward_but_valid_videos_decode(media, backend):
    with open_reader(media["three"], size=(64, 64), backend=backend) as r:
        assert r.num_frames == 3 and r.read(0, 3).shape == (3, 64, 64, 3)
    for gray in ("gray", "gray_yuv"):
        with open_reader(media[gray], size=(32, 32), backend=backend) as r:
            x = r.read(0, 10).astype(int)
            assert x.shape == (10, 32, 32, 3)
            assert (
                np.abs(x[..., 0] - x[..., 1]).max() <= 2
                and np.abs(x[..., 1] - x[..., 2]).max() <= 2
            )
    with open_reader(media["odd"], size=(256, 256), backend=backend) as r:
        assert (r.width, r.height, r.num_frames) == (317, 211, 7)
        assert r.read(2, 7).shape == (5, 256, 256, 3)
    with open_reader(media["odd"], size=None, backend=backend) as r:
        assert r.read(0, 1).shape == (1, 211, 317, 3)


@pytest.mark.parametrize("fmt", ["mp4", "h264", "avi", "frames"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_strided_reads_return_every_step_th_frame(media, fmt, backend):
    # A strided scan reads its chunks with a step: the frames kept are exactly those of
    # a full read, and a read from where the last one stopped goes on from there.
    with open_reader(media[fmt], size=(24, 16), backend=backend) as r:
        full = r.read(0, 80)
    with open_reader(media[fmt], size=(24, 16), backend=backend) as r:
        for start, stop, step in [(5, 17, 2), (40, 41, 3), (30, 62, 4), (0, 80, 5),
                                  (79, 80, 2), (12, 12, 2), (61, 75, 7)]:
            got = r.read(start, stop, step)
            np.testing.assert_array_equal(got, full[start:stop:step],
                                          err_msg=f"{fmt} {backend} [{start}, {stop}, {step})")
        parts = [r.read(a, min(a + 12, 80), 3) for a in range(0, 80, 12)]
        np.testing.assert_array_equal(np.concatenate(parts), full[::3])
        for bad in (0, -1, 1.5):
            with pytest.raises(ValueError, match="step must be a positive integer"):
                r.read(0, 10, bad)


def test_range_checks(media):
    with open_reader(media["mp4"], size=(8, 8)) as r:
        assert r.read(3, 3).shape == (0, 8, 8, 3)
        with pytest.raises(IndexError, match=r"\[70, 81\)"):
            r.read(70, 81)
        with pytest.raises(IndexError):
            r.read(5, 4)
    with pytest.raises(ValueError, match="positive"):
        open_reader(media["mp4"], size=(0, 10))


def test_frame_folder_natural_order_stray_files_gray_and_odd_sizes(tmp_path):
    import cv2

    folder = tmp_path / "Test001"
    folder.mkdir()
    for i in range(1, 13):  # 1.png ... 12.png: lexical order would put 10 before 2
        img = np.full((211, 317), i * 18, np.uint8)  # grayscale, odd size
        cv2.imwrite(str(folder / f"{i}.png"), img)
    cv2.imwrite(str(folder / "13.tif"), np.full((100, 50, 3), 13 * 18, np.uint8))
    (folder / "notes.txt").write_text("stray")
    (folder / "Thumbs.db").write_bytes(b"\x00")
    with open_reader(folder, size=(64, 64)) as r:
        assert (r.num_frames, r.width, r.height, r.fps) == (13, 317, 211, 25.0)
        x = r.read(0, 13)
    assert x.shape == (13, 64, 64, 3)
    assert [int(v) for v in x[:, 10, 10, 0]] == [i * 18 for i in range(1, 14)]


def test_frame_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(UndecodableVideoError, match="no image files"):
        open_reader(empty)
    bad = tmp_path / "bad"
    write_frames(bad, moving(3), ext=".jpg")
    (bad / "0001.jpg").write_text("not a jpeg")
    with open_reader(bad) as r:  # one bad image is one skipped frame (test_decode_frames.py)
        assert r.read(0, 3).shape[0] == 3
    assert r.bad_frames[1].startswith(str(bad / "0001.jpg")) and "cannot decode" in r.bad_frames[1]
    with pytest.raises(UndecodableVideoError, match="does not exist"):
        load_image(str(tmp_path / "missing.png"))


def test_readers_take_local_media_only(tmp_path, media):
    from raystack.media import LocalMedia

    for uri in ("s3://cams/a.mp4", "http://example.com/a.mp4"):
        with pytest.raises(ValueError, match="local media only.*materialise"):
            open_reader(uri)
        with pytest.raises(ValueError, match="local files only"):
            load_image(uri)
    with pytest.raises(UndecodableVideoError, match="does not exist"):
        open_reader(tmp_path / "missing.mp4")
    # A materialised object keeps its archive name: errors and reader.uri say the URI.
    local = LocalMedia(str(media["mp4"]), "video", uri="s3://cams/a.mp4")
    with open_reader(local, size=(8, 8)) as r:
        assert r.uri == "s3://cams/a.mp4"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UndecodableVideoError, match=r"s3://cams/e\.mp4: .*empty"):
        open_reader(LocalMedia(str(empty), "video", uri="s3://cams/e.mp4"))


def test_pyav_seeks_exactly_in_a_variable_frame_rate_file(tmp_path):
    # Frame gaps of 20-80 ms: reading timestamps at a constant rate put PyAV one frame
    # off after a seek (frame 31 for 30). Its timestamp index makes it decord's equal.
    import fractions

    import av

    path = tmp_path / "vfr.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        ms = fractions.Fraction(1, 1000)
        s.codec_context.time_base = ms
        s.time_base = ms
        s.options = {"bf": "0"}
        t = 0
        for i in range(120):
            img = np.zeros((64, 64, 3), np.uint8)
            img[:, : 8 + i % 48] = 255  # a bar that grows: every frame differs
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = t, ms
            t += int(rng.choice([40, 40, 40, 80, 20]))
            for packet in s.encode(f):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    with (
        open_reader(path, size=None, backend="decord") as d,
        open_reader(path, size=None, sequential=True, step=3) as p,
    ):
        assert p.backend == "pyav" and p.num_frames == d.num_frames == 120
        for a, b in ((30, 60), (90, 100), (61, 120), (0, 12)):
            np.testing.assert_array_equal(p.read(a, b), d.read(a, b))
        np.testing.assert_array_equal(p.read(10, 100, 3), d.read(10, 100, 3))
