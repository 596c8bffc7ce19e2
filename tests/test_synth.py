from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from raystack.archive import list_archive, materialise
from raystack.cli import app
from raystack.decode import open_reader
from raystack.errors import ArchiveError
from raystack.scan.probe import probe_archive
from raystack.synth import ANOMALY_KINDS, LABELS_FILE, META_FILE, background, synthesize

TINY = {"n_train": 2, "n_test": 4, "frames": 32, "size": (64, 48)}


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("synth")
    a, b, c = root / "a", root / "b", root / "c"
    synthesize(a, seed=5, **TINY)
    synthesize(b, seed=5, **TINY)
    synthesize(c, seed=6, **TINY)
    return a, b, c


def _decoded(root: Path) -> dict[str, np.ndarray]:
    out = {}
    for src in list_archive(root):
        with open_reader(materialise(src), size=None) as r:
            out[src.relpath] = r.read(0, r.num_frames)
    return out


def test_same_seed_same_archive(twins):
    a, b, c = twins
    assert (a / LABELS_FILE).read_bytes() == (b / LABELS_FILE).read_bytes()
    assert (a / META_FILE).read_text() == (b / META_FILE).read_text()
    da, db, dc = _decoded(a), _decoded(b), _decoded(c)
    assert list(da) == list(db) == list(dc)
    for rel in da:
        np.testing.assert_array_equal(da[rel], db[rel], err_msg=rel)
        assert not np.array_equal(da[rel], dc[rel]), f"seed 6 gave the same {rel} as seed 5"


def test_labels_match_the_sidecar(twins):
    root = twins[0]
    labels = np.load(root / LABELS_FILE)
    meta = json.loads((root / META_FILE).read_text())
    assert labels.dtype == np.int64 and labels.ndim == 1 and set(np.unique(labels)) <= {0, 1}
    assert meta["seed"] == 5 and meta["params"]["frames"] == 32
    assert [t["video"] for t in meta["train"]] == ["train/train_001.mp4", "train/train_002.mp4"]
    tests = meta["test"]
    assert [t["video"] for t in tests] == sorted(t["video"] for t in tests)
    assert len(labels) == sum(t["frames"] for t in tests) == 4 * 32
    offset = 0
    for i, t in enumerate(tests):
        assert t["offset"] == offset and t["kinds"] == [ANOMALY_KINDS[i]]
        own = labels[offset : offset + t["frames"]]
        mask = np.zeros(t["frames"], np.int64)
        for r in t["anomalies"]:
            assert r["kind"] == ANOMALY_KINDS[i] and 0 <= r["start"] < r["stop"] <= t["frames"]
            mask[r["start"] : r["stop"]] = 1
        np.testing.assert_array_equal(own, mask, err_msg=t["video"])
        assert t["anomalies"], f"{t['video']} has no anomalous frames"
        assert t["anomalies"][0]["start"] >= 5, "each test video starts with normal frames"
        offset += t["frames"]


def test_default_archive_has_long_anomalies_with_normal_frames_around(tmp_path):
    # The default sizes (150 frames) are what the demo and the model benchmark use.
    info = synthesize(tmp_path / "d", seed=0, n_train=0, n_test=4, size=(96, 96))
    for a in info.anomalies:
        assert a["stop"] - a["start"] >= 20, a
        assert a["start"] >= 25 and a["stop"] <= 150 - 10, a
    assert {a["kind"] for a in info.anomalies} == set(ANOMALY_KINDS)


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("medium") / "m"
    synthesize(root, seed=2, n_train=1, n_test=4, frames=60, size=(128, 96))
    return root, json.loads((root / META_FILE).read_text())


def _foreground(root: Path, rel: str, bg: np.ndarray) -> np.ndarray:
    """Per frame, the pixels that differ clearly from the empty scene: bool (T, H, W)."""
    with open_reader(root / rel, size=None) as r:
        x = r.read(0, r.num_frames).astype(np.int16)
    return np.abs(x - bg.astype(np.int16)).max(axis=-1) > 40


def test_forbidden_region_is_empty_except_during_that_anomaly(medium):
    root, meta = medium
    bg = background(2, (128, 96))
    top = meta["geometry"]["path_top"]
    yy, xx = np.mgrid[0:96, 0:128]
    grass = yy < top[0] + top[1] * xx - 0.06 * 96  # well above the path: nobody walks there
    for t in [*meta["train"], *meta["test"]]:
        in_grass = (_foreground(root, t["video"], bg) & grass).sum(axis=(1, 2))
        labelled = np.zeros(t["frames"], bool)
        for r in t.get("anomalies", []):
            labelled[r["start"] : r["stop"]] = True
        # A few pixels of codec ringing around the lamp post are not an object; the
        # walker on the grass covers 25+ pixels at this size.
        if t.get("kinds") == ["forbidden_region"]:
            assert in_grass[labelled].max() >= 25, "the walker on the grass is not visible"
        assert in_grass[~labelled].max() <= 8, (
            f"{t['video']}: something on the grass in a normal frame"
        )


def test_sudden_appearance_appears_at_the_labelled_frame(medium):
    root, meta = medium
    [t] = [t for t in meta["test"] if t["kinds"] == ["sudden_appearance"]]
    start, stop = t["anomalies"][0]["start"], t["anomalies"][0]["stop"]
    fg = _foreground(root, t["video"], background(2, (128, 96))).sum(axis=(1, 2))
    box_area = (0.7 * 0.5) * (1.2 * 0.11 * 96) ** 2 * 0.75  # smallest perspective scale
    assert fg[start] - fg[start - 1] > 0.5 * box_area
    assert fg[stop - 1] - fg[stop] > 0.5 * box_area


def test_test_videos_do_not_depend_on_the_number_of_training_videos(twins, tmp_path):
    synthesize(tmp_path / "x", seed=5, **{**TINY, "n_train": 0})
    assert (tmp_path / "x" / LABELS_FILE).read_bytes() == (twins[0] / LABELS_FILE).read_bytes()


@pytest.mark.parametrize("fmt", ["frames", "avi", "tif"])
def test_other_formats(tmp_path, fmt):
    info = synthesize(
        tmp_path / fmt, seed=1, n_train=1, n_test=1, frames=12, size=(48, 32), fmt=fmt
    )
    table = probe_archive(info.out)
    assert table.column("probe_error").null_count == table.num_rows == 2
    assert table.column("frames").to_pylist() == [12, 12]
    kinds = set(table.column("kind").to_pylist())
    assert kinds == ({"video"} if fmt == "avi" else {"frames"})


def test_refuses_to_overwrite_unless_asked(tmp_path):
    synthesize(tmp_path, seed=0, n_train=1, n_test=1, frames=8, size=(32, 32))
    with pytest.raises(ArchiveError, match="overwrite"):
        synthesize(tmp_path, seed=0, n_train=1, n_test=1, frames=8, size=(32, 32))
    info = synthesize(
        tmp_path, seed=0, n_train=0, n_test=1, frames=8, size=(32, 32), overwrite=True
    )
    assert info.train == () and not (tmp_path / "train" / "train_001.mp4").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="format"):
        synthesize(tmp_path / "a", fmt="gif")
    with pytest.raises(ValueError, match="32x32"):
        synthesize(tmp_path / "b", size=(16, 16))
    with pytest.raises(ValueError, match="even"):
        synthesize(tmp_path / "c", size=(65, 48), codec="h264")


def test_cli_synth(tmp_path):
    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        [
            "synth",
            str(out),
            "--train",
            "1",
            "--test",
            "2",
            "--frames",
            "16",
            "--size",
            "48x32",
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "wrote 1 training and 2 test videos" in res.output and "fast frames [" in res.output
    assert len(np.load(out / LABELS_FILE)) == 32
    res = CliRunner().invoke(app, ["synth", str(out)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = CliRunner().invoke(app, ["synth", str(tmp_path / "z"), "--size", "big"])
    assert res.exit_code == 2 and "256x256" in res.output


def test_idle_share_of_test_videos_shows_the_empty_scene(tmp_path):
    """--idle 0.7: the action fills 30% of each test video at a seeded offset; the rest is
    the background with sensor noise, normal and without boxes."""
    import json

    from raystack.synth.idle import active_frames

    info = synthesize(tmp_path / "a", seed=3, n_train=1, n_test=2, frames=60, size=(64, 64),
                      fmt="png", idle=0.7)
    meta = json.loads(info.meta_path.read_text())
    assert meta["params"]["idle"] == 0.7 and active_frames(60, 0.7) == 18
    for video in meta["test"]:
        import cv2

        files = sorted((tmp_path / "a" / video["video"]).iterdir())
        u8 = np.stack([cv2.imread(str(f))[..., ::-1] for f in files]).astype(np.float32)
        assert len(u8) == 60
        bg = background(3, (64, 64)).astype(np.float32)
        # An idle frame is the background plus noise (sd 2): no pixel 20 levels off.
        still = (np.abs(u8 - bg) > 20).mean(axis=(1, 2, 3)) == 0
        assert 42 <= still.sum() <= 50  # the 42 idle frames, and action frames without people
        anomalous = np.zeros(60, bool)
        for a in video["anomalies"]:
            anomalous[a["start"] : a["stop"]] = True
        assert anomalous.any() and not (still & anomalous).any()
        assert {b[0] for b in video["boxes"]} <= set(np.flatnonzero(anomalous))
    with pytest.raises(ValueError, match="idle = 1.0"):
        synthesize(tmp_path / "b", n_train=0, n_test=1, frames=20, idle=1.0)
