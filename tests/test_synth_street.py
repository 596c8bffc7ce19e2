"""The realistic street scene: perspective, labels with boxes, the anomalies it promises."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from raystack.cli import app
from raystack.synth import LABELS_FILE, META_FILE, SCENE_ANOMALY_KINDS, synthesize
from raystack.synth.actors import person
from raystack.synth.camera import BED_Z, NEAR_Z, Camera, photo
from raystack.synth.street import (
    SUBTLE,
    WALK_MPS,
    Scene,
    _anomaly,
    render,
    settled_crowd,
    walk_crowd,
)

KINDS = SCENE_ANOMALY_KINDS["street"]
SIZE = (160, 120)


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    root = tmp_path_factory.mktemp("street")
    info = synthesize(root, seed=4, n_train=1, n_test=len(KINDS), frames=160, size=SIZE,
                      scene="street")
    return root, info, json.loads((root / META_FILE).read_text())


def test_textures_are_the_packaged_photographs():
    for name in ("gravel", "brick", "grass"):
        img = photo(name)
        assert img.shape == (512, 512) and img.dtype == np.float32
        # A photograph, not flat colour: plenty of grey levels and local contrast.
        assert len(np.unique((img * 255).astype(np.uint8))) > 100 and img.std() > 0.05


def test_people_shrink_with_distance():
    cam = Camera.for_size(320, 240)
    rng = np.random.default_rng(0)
    heights = []
    for z in (NEAR_Z + 0.5, BED_Z - 0.5):
        img = np.zeros((240, 320, 3), np.uint8)
        a = person(rng, 0.0, z, 0.05, 0.0)
        a.height = 1.75
        a.draw(img, cam)
        rows = np.flatnonzero(img.any(axis=(1, 2)))
        heights.append(rows[-1] - rows[0])
    near, far = heights
    assert near / far == pytest.approx((BED_Z - 0.5) / (NEAR_Z + 0.5), rel=0.15)
    assert 0.25 * 240 < near < 0.45 * 240


def test_every_kind_is_labelled_with_boxes_and_normal_frames_around(street):
    root, info, meta = street
    labels = np.load(root / LABELS_FILE)
    assert meta["scene"] == "street" and meta["version"] == 2
    assert sorted(meta["subtle_kinds"]) == sorted(SUBTLE)
    for i, t in enumerate(meta["test"]):
        assert t["kinds"] == [KINDS[i]]
        own = labels[t["offset"] : t["offset"] + t["frames"]]
        assert own.sum() >= 5, f"{t['kinds']}: only {own.sum()} anomalous frames"
        assert own[:10].sum() == 0, "each test video starts with normal frames"
        for r in t["anomalies"]:
            assert r["subtle"] == (r["kind"] in SUBTLE)
        boxed = np.zeros(t["frames"], np.int64)
        for f, x0, y0, x1, y1 in t["boxes"]:
            boxed[f] = 1
            assert 0 <= x0 < x1 <= SIZE[0] and 0 <= y0 < y1 <= SIZE[1]
        np.testing.assert_array_equal(boxed, own, err_msg=t["video"])


def test_boxes_hold_the_anomalous_actor():
    # Rendered without noise: inside each box the frame differs from the empty scene.
    scene = Scene(1, *SIZE)
    for kind in KINDS:
        labels, boxes = [], []
        frames = list(render(scene, np.random.default_rng(7), 160, kind, 25.0, labels, boxes))
        bg = scene.background
        diffs = []
        for frame, frame_boxes in zip(frames, boxes, strict=True):
            for x0, y0, x1, y1 in frame_boxes:
                cut = np.s_[int(y0) : math.ceil(y1), int(x0) : math.ceil(x1)]
                diffs.append(np.abs(frame[cut].astype(np.float32) - bg[cut]).mean())
        assert diffs and np.median(diffs) > 8, f"{kind}: boxes look empty ({np.median(diffs)})"


def test_runner_is_three_to_five_times_walking_speed():
    cam = Camera.for_size(*SIZE)
    for seed in range(5):
        a = _anomaly("runner", np.random.default_rng(seed), cam, 25.0, 100)
        speed = abs(a.vx) * 25.0
        assert 3.0 * WALK_MPS[0] <= speed <= 5.0 * WALK_MPS[1] and a.gait == "run"


def test_normal_footage_has_no_anomalous_labels_and_many_people():
    scene = Scene(2, *SIZE)
    labels, boxes = [], []
    frames = np.stack(list(render(scene, np.random.default_rng(3), 60, None, 25.0, labels,
                                  boxes)))
    assert sum(labels) == 0 and not any(boxes)
    moving = np.abs(frames[1:].astype(np.int16) - frames[:-1]).max(axis=-1) > 30
    assert moving.mean() > 0.005, "nobody walks in the normal footage"


def _start_over_rest(settle_s: float) -> float:
    """People in view over the first 20 frames against frames 40-200, 100 seeds."""
    cam = Camera.for_size(320, 240)
    counts = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        people, target = settled_crowd(rng, cam, 25.0, settle_s=settle_s)
        row = []
        for _ in range(200):
            row.append(sum(a.visible(cam) for a in people))
            people = walk_crowd(people, rng, cam, 25.0, target)
        counts.append(row)
    mean = np.mean(counts, axis=0)
    return float(mean[:20].mean() / mean[40:].mean())


def test_a_video_starts_with_the_steady_crowd():
    """A test video's normal frames come first, so a busier start would read as less normal.

    Unsettled, walkers all start in view and the first 20 frames hold ~12% more people.
    """
    assert _start_over_rest(0.0) > 1.08
    assert _start_over_rest(10.0) < 1.06


def test_same_seed_same_street(tmp_path, street):
    root, _, meta = street
    again = synthesize(tmp_path / "b", seed=4, n_train=1, n_test=len(KINDS), frames=160,
                       size=SIZE, scene="street")
    assert (again.out / LABELS_FILE).read_bytes() == (root / LABELS_FILE).read_bytes()
    assert json.loads((again.out / META_FILE).read_text()) == meta


def test_cli_scene(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["synth", str(tmp_path / "s"), "--scene", "street", "--train",
                              "0", "--test", "1", "--frames", "40", "--size", "96x64"])
    assert res.exit_code == 0, res.output
    assert "runner" in res.output
    res = runner.invoke(app, ["synth", str(tmp_path / "t"), "--scene", "streets"])
    assert res.exit_code == 2 and "unknown scene 'streets'" in res.output


def test_camera_seed_fixes_the_static_scene_alone(tmp_path):
    """Archives of one --camera and other seeds show the same background, other people."""
    from raystack.decode import DecordReader

    def still_scene(out, seed, camera):
        synthesize(out, seed=seed, n_train=1, n_test=0, frames=24, size=(96, 64),
                   scene="street", camera=camera)
        with DecordReader(str(out / "train" / "train_001.mp4"), size=None) as r:
            frames = r.read(0, r.num_frames).astype(np.float32)
        return frames, json.loads((out / META_FILE).read_text())

    def edges(frames):  # of the median frame: lighting and cloud shadows drift per video
        m = np.median(frames, 0)
        return (m - np.roll(m, 1, axis=1)).ravel()

    a, meta_a = still_scene(tmp_path / "a", 1, 7)
    b, meta_b = still_scene(tmp_path / "b", 2, 7)
    c, _ = still_scene(tmp_path / "c", 2, None)
    assert meta_a["camera"] == meta_b["camera"] == 7 and meta_b["seed"] == 2
    assert not np.array_equal(a, b)  # other people, other noise
    same = np.corrcoef(edges(a), edges(b))[0, 1]
    other = np.corrcoef(edges(a), edges(c))[0, 1]
    assert same > 0.6 > 0.2 > other, (same, other)
