"""Synthetic fixed-camera archives with labelled anomalies, for tests, benchmarks and demos.

Two scenes: ``park`` (a cartoon path with gross anomalies; cheap, the default for tests
and the demo) and ``street`` (a photo-textured plaza in perspective with 5-15 articulated
people and subtle anomalies; the one quality is measured on). Everything follows from
the seed, so the same seed gives the same labels and the same decoded frames.

    info = synthesize("/tmp/a", seed=0)       # 6 train + 4 test videos, 150 frames, 256x256
    # /tmp/a/train/train_001.mp4 ... /tmp/a/test/test_004.mp4
    # /tmp/a/frame_labels_synth.npy  int64 (600,) 0/1 over sorted test videos
    # /tmp/a/labels.json             per test video: frames, offset, anomalous ranges, kinds,
    #                                and a pixel box per anomalous actor and frame
"""

from raystack.synth.archive import (
    ANOMALY_KINDS as SCENE_ANOMALY_KINDS,
)
from raystack.synth.archive import (
    LABELS_FILE,
    META_FILE,
    SCENES,
    SUBTLE_KINDS,
    SynthInfo,
    synthesize,
)
from raystack.synth.media import FRAME_FORMATS, VIDEO_FORMATS, write_frames, write_video
from raystack.synth.park import ANOMALY_KINDS, background

__all__ = [
    "ANOMALY_KINDS",
    "FRAME_FORMATS",
    "LABELS_FILE",
    "META_FILE",
    "SCENES",
    "SCENE_ANOMALY_KINDS",
    "SUBTLE_KINDS",
    "VIDEO_FORMATS",
    "SynthInfo",
    "background",
    "synthesize",
    "write_frames",
    "write_video",
]
