"""Training data: clip alignment, the held-out split, decoding, caching and the fingerprint."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime

import numpy as np
import pytest

from raystack.errors import ArchiveError, ConfigError
from raystack.train.data import (
    ClipSet,
    DecodedVideo,
    build_clip_sets,
    data_fingerprint,
    list_training_videos,
    prepare_data,
    split_targets,
)


def _numbered_video(n: int, h: int = 8, w: int = 8) -> DecodedVideo:
    """Frame k is filled with the value 10 * k (mod 250); flow k with k / 100."""
    frames = np.stack([np.full((h, w, 3), (10 * k) % 250, np.uint8) for k in range(n)])
    flows = np.stack([np.full((2, h, w), k / 100, np.float16) for k in range(n - 1)])
    return DecodedVideo("v.mp4", frames, flows)


def _frame_value(x) -> np.ndarray:
    """Model-range pixels back to the 0-255 value they encode."""
    return np.round((x.numpy() + 1.0) * 255.0 / 2.0)


def test_fp_clip_targets_frame_i_plus_t():
    t, video = 4, _numbered_video(12)
    train, _ = build_clip_sets([video], task="fp", t=t, stride=1, val_fraction=0.0, val_clips=8)
    assert train.targets[0] == t  # the clip starting at frame 0 predicts frame t
    assert list(train.targets) == list(range(t, 12))
    batch = train.batch([0, 3])
    assert batch["x"].shape == (2, 3 * t, 8, 8) and batch["y"].shape == (2, 3, 8, 8)
    for row, start in enumerate([0, 3]):
        for j in range(t):  # channels 3j..3j+2 hold frame start + j, oldest first
            assert np.all(_frame_value(batch["x"][row, 3 * j : 3 * j + 3]) == 10 * (start + j))
        assert np.all(_frame_value(batch["y"][row]) == 10 * (start + t))
    assert batch["x"].min() >= -1.0 and batch["x"].max() <= 1.0


def test_fr_sample_is_the_flow_into_the_target_frame():
    video = _numbered_video(10)
    train, _ = build_clip_sets([video], task="fr", t=1, stride=1, val_fraction=0.0, val_clips=8)
    assert train.targets[0] == 2  # needs flows[i-1] and the previous flow flows[i-2]
    batch = train.batch([0, 5])
    for row, i in enumerate([2, 7]):
        assert np.allclose(batch["x"][row].numpy(), (i - 1) / 100, atol=1e-3)
        assert np.allclose(batch["prev"][row].numpy(), (i - 2) / 100, atol=1e-3)
    assert batch["y"] is batch["x"]


def test_split_holds_out_the_tail_of_each_video():
    train, val = split_targets(20, context=4, val_fraction=0.2)
    assert list(train) == list(range(4, 16)) and list(val) == list(range(16, 20))
    train, val = split_targets(20, context=4, val_fraction=0.2, stride=3)
    assert list(train) == [4, 7, 10, 13] and list(val) == list(range(16, 20))
    train, val = split_targets(20, context=4, val_fraction=0.0)
    assert list(train) == list(range(4, 20)) and len(val) == 0


def test_validation_clips_are_capped_evenly():
    videos = [_numbered_video(30), _numbered_video(30)]
    train, val = build_clip_sets(videos, task="fp", t=2, stride=1, val_fraction=0.3, val_clips=5)
    assert len(val) == 5
    assert set(np.unique(val.video_idx)) == {0, 1}  # spread over both videos
    assert set(train.targets).isdisjoint(set(range(21, 30)))


def test_fingerprint_is_stable_and_sensitive(synth_archive):
    sources = list_training_videos(str(synth_archive / "train"))
    base = data_fingerprint(sources, size=(32, 32), t=4, flow=None)
    older = datetime.fromisoformat("2001-01-01T00:00:00+00:00")
    assert base == data_fingerprint(list(reversed(sources)), size=(32, 32), t=4, flow=None)
    assert len(base) == 64
    changed = [
        data_fingerprint(sources, size=(64, 64), t=4, flow=None),
        data_fingerprint(sources, size=(32, 32), t=8, flow=None),
        data_fingerprint(sources, size=(32, 32), t=4, flow="dis-fast"),
        data_fingerprint(sources[:1], size=(32, 32), t=4, flow=None),
        data_fingerprint([dataclasses.replace(sources[0], size_bytes=1), *sources[1:]],
                         size=(32, 32), t=4, flow=None),
        data_fingerprint([dataclasses.replace(sources[0], mtime=older), *sources[1:]],
                         size=(32, 32), t=4, flow=None),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_training_refuses_an_archive_with_test_videos(synth_archive):
    with pytest.raises(ArchiveError, match="test videos.*train"):
        list_training_videos(str(synth_archive))


def test_prepare_data_decodes_at_model_size_and_caches(tiny_cfg, tmp_path):
    from raystack.flow import create_flow, flow_to_model_input
    from raystack.models import get_config

    cfg = tiny_cfg(cache_dir=str(tmp_path / "cache"))
    mcfg = get_config("vqmau_fr.tiny", img_size=(32, 32))
    data = prepare_data(cfg, "fr", mcfg)
    video = data.train.videos[0]
    assert video.frames.shape == (20, 32, 32, 3) and video.frames.dtype == np.uint8
    assert video.flows.shape == (19, 2, 32, 32) and video.flows.dtype == np.float16
    expected = flow_to_model_input(create_flow("dis", preset="fast")(np.asarray(video.frames)))
    assert np.allclose(video.flows, expected, atol=2e-3)
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir())
    assert cached == ["flow", "flow", "frames", "frames"]
    again = prepare_data(cfg, "fr", mcfg)  # served from the npy cache
    assert np.array_equal(again.train.videos[0].frames, video.frames)
    assert again.fingerprint == data.fingerprint and data.flow == "dis-fast"
    # 20 frames, 4 held out: FR targets 2..15 train, 16..19 validate
    assert len(data.train) == 2 * 14 and len(data.val) == 8


def test_undecodable_video_is_skipped(tiny_cfg, synth_archive, tmp_path):
    from raystack.models import get_config

    folder = tmp_path / "train"
    shutil.copytree(synth_archive / "train", folder)
    (folder / "zz_broken.mp4").write_bytes(b"not a video at all")
    data = prepare_data(tiny_cfg(archive=str(folder)), "fp",
                        get_config("vqmau_fp.tiny", img_size=(32, 32)))
    assert [r for r, _ in data.skipped] == ["zz_broken.mp4"]
    assert len(data.videos) == 2 and len(data.train) > 0
    assert "zz_broken.mp4" in data.summary()


def test_no_held_out_clip_is_an_error(tiny_cfg):
    from raystack.models import get_config

    with pytest.raises(ConfigError, match="val_fraction"):
        prepare_data(tiny_cfg(val_fraction=0.01), "fp",
                     get_config("vqmau_fp.tiny", img_size=(32, 32)))


def test_clipset_subset_keeps_pairs():
    clips = ClipSet([_numbered_video(10)], "fp", 2, np.zeros(5, np.int64), np.arange(2, 7))
    sub = clips.subset(np.array([1, 3]))
    assert list(sub.targets) == [3, 5] and len(sub) == 2


def test_decode_frames_tail_reads_only_the_held_out_end_and_its_context(synth_archive):
    """Calibrations read the last val_fraction of a video (and the models' context before
    it): decoding only that tail gives exactly those frames of a full decode."""
    from raystack.archive import list_archive
    from raystack.train.data import decode_frames

    src = list_archive(synth_archive / "train")[0]
    full = decode_frames(src, (64, 64))
    n = len(full)
    tail = decode_frames(src, (64, 64), tail=(0.25, 3))
    np.testing.assert_array_equal(tail, full[n - round(0.25 * n) - 3:])
    assert len(decode_frames(src, (64, 64), tail=(0.0, 2))) == 2  # context only: skipped
    np.testing.assert_array_equal(decode_frames(src, (64, 64), tail=(1.0, 5)), full)
