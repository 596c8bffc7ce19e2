"""`raystack eval` reads the labels.json that `raystack synth` writes, wherever the scan
was rooted, and it agrees with the flat frame_labels_synth.npy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raystack.eval.labels import LabelError, labels_for_videos


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from raystack.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "a"
    synthesize(out, seed=0, n_train=1, n_test=2, frames=30, size=(64, 64))
    return out


def rows(doc, prefix, split="test"):
    return [{"video_id": e["name"], "relpath": prefix + e["video"].split("/", 1)[1],
             "frames": e["frames"]} for e in doc[split]]


def test_labels_json_equals_the_flat_npy(archive):
    doc = json.loads((archive / "labels.json").read_text())
    videos = rows(doc, "")  # scanned ARCHIVE/test: relpaths test_001.mp4, ...
    from_json = labels_for_videos(archive / "labels.json", videos)
    from_npy = labels_for_videos(archive / "frame_labels_synth.npy", videos)
    assert from_json.keys() == from_npy.keys()
    for vid in from_json:
        np.testing.assert_array_equal(from_json[vid], from_npy[vid])
    assert sum(int(a.sum()) for a in from_json.values()) > 0


def test_labels_json_when_the_whole_archive_was_scanned(archive):
    doc = json.loads((archive / "labels.json").read_text())
    videos = rows(doc, "test/") + rows(doc, "train/", "train")
    got = labels_for_videos(archive / "labels.json", videos)
    assert not got["train_001"].any() and got["test_001"].any()


def test_other_json_and_unmatched_videos_are_refused(archive, tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"videos": []}')
    with pytest.raises(LabelError, match="not a raystack synth labels.json"):
        labels_for_videos(other, [])
    stray = [{"video_id": "x", "relpath": "cam9.mp4", "frames": 30}]
    with pytest.raises(LabelError, match="cam9.mp4"):
        labels_for_videos(archive / "labels.json", stray)
