"""Writing a synthetic archive: normal training videos, labelled test videos, the labels.

The layout and the label files are the same for every scene; the scene (``park`` or
``street``) decides what the frames show and which anomalies the test videos hold.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raystack.errors import ArchiveError
from raystack.synth import park, street
from raystack.synth.idle import active_frames, pad_idle
from raystack.synth.media import FRAME_FORMATS, VIDEO_FORMATS, write_frames, write_video

LABELS_FILE = "frame_labels_synth.npy"
META_FILE = "labels.json"
SCENES = ("park", "street")
ANOMALY_KINDS = {"park": park.ANOMALY_KINDS, "street": street.ANOMALY_KINDS}
SUBTLE_KINDS = {"park": frozenset(), "street": street.SUBTLE}



@dataclass(frozen=True)
class SynthInfo:
    """What :func:`synthesize` wrote. Paths in ``train``/``test`` are relative to ``out``."""

    out: Path
    train: tuple[str, ...]
    test: tuple[str, ...]
    labels_path: Path
    meta_path: Path
    test_frames: int
    anomalous_frames: int
    anomalies: tuple[dict, ...]

    def summary(self) -> str:
        lines = [
            f"wrote {len(self.train)} training and {len(self.test)} test videos to {self.out}",
            f"  labels: {self.labels_path.name} ({self.test_frames} test frames, "
            f"{self.anomalous_frames} anomalous), sidecar: {self.meta_path.name}",
        ]
        lines += [
            f"  {a['video']}: {a['kind']} frames [{a['start']}, {a['stop']})"
            for a in self.anomalies
        ]
        return "\n".join(lines)


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, stop) ranges where ``labels`` is 1."""
    padded = np.concatenate([[0], labels.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _prepare_out(out: Path, overwrite: bool) -> None:
    ours = [out / "train", out / "test", out / LABELS_FILE, out / META_FILE]
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        msg = (
            f"{out} already holds {', '.join(p.name for p in existing)}; "
            "pass overwrite=True (CLI: --overwrite) or choose an empty folder"
        )
        raise ArchiveError(msg)
    for p in existing:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (out / "train").mkdir(parents=True)
    (out / "test").mkdir(parents=True)


def synthesize(
    out: str | Path,
    *,
    seed: int = 0,
    n_train: int = 6,
    n_test: int = 4,
    frames: int = 150,
    size: tuple[int, int] = (256, 256),
    fps: float = 25.0,
    fmt: str = "mp4",
    codec: str = "mpeg4",
    scene: str = "park",
    bit_rate: int | None = None,
    overwrite: bool = False,
    idle: float = 0.0,
    camera: int | None = None,
) -> SynthInfo:
    """Write a synthetic archive of normal training videos and labelled test videos.

    Args:
        out: folder to write (created); must not already hold a synthetic archive
            unless ``overwrite``.
        seed: everything (scene, walkers, anomalies, noise) follows from it. Video ``i``
            of a split depends only on ``seed`` and ``i``, not on the other counts.
        n_train, n_test: number of videos; test video ``i`` holds anomaly kind
            ``ANOMALY_KINDS[scene][i % len(ANOMALY_KINDS[scene])]``.
        frames: frames per video (at least 8).
        size: (width, height) in pixels (at least 32x32).
        fps: frame rate written into the container.
        fmt: ``mp4``, ``avi``, ``mkv`` (video files), or ``frames``/``jpg``, ``png``,
            ``tif`` (one folder of images per video).
        codec: video codec, ``mpeg4`` (mp4v, default) or ``h264``.
        scene: ``park`` (a cartoon path with gross anomalies; cheap, for tests and the
            demo) or ``street`` (photo-textured plaza in perspective, 5-15 articulated
            people, subtle and gross anomalies, written at a surveillance-like low bit rate
            so the codec leaves its artefacts).
        bit_rate: video bit rate in bit/s; default ~1 bit a pixel (park) or 0.25 (street).
        overwrite: replace a synthetic archive already in ``out``.
        idle: share of each test video that shows the empty scene (no people, no motion
            but sensor noise), the action placed at a seeded offset (:mod:`.idle`);
            training videos stay busy, so a gate floor calibrated on them sees motion.
        camera: seed of the static scene alone (background, benches, lamps) in place of
            ``seed``: archives of one ``camera`` and different seeds are the same fixed
            camera on other days, as a camera's training and test footage are.

    Returns:
        A :class:`SynthInfo` naming the files written.
    """
    if scene not in SCENES:
        msg = f"unknown scene {scene!r}; choose one of {SCENES}"
        raise ValueError(msg)
    if fmt not in VIDEO_FORMATS and fmt not in FRAME_FORMATS:
        msg = f"unknown format {fmt!r}; choose one of {sorted({**VIDEO_FORMATS, **FRAME_FORMATS})}"
        raise ValueError(msg)
    width, height = (int(v) for v in size)
    if width < 32 or height < 32 or frames < 8 or n_train < 0 or n_test < 0:
        msg = "need size >= 32x32, frames >= 8 and non-negative counts; "
        msg += f"got size={size}, frames={frames}, n_train={n_train}, n_test={n_test}"
        raise ValueError(msg)
    active_frames(frames, idle)  # refuses an idle share outside [0, 1)
    if codec in ("h264", "libx264") and (width % 2 or height % 2):
        msg = f"h264 needs an even width and height; got {width}x{height}"
        raise ValueError(msg)
    out = Path(out).expanduser()
    _prepare_out(out, overwrite)
    scene_seed = seed if camera is None else camera
    world = park.scene_for(scene_seed, width, height) if scene == "park" else street.Scene(
        scene_seed, width, height)
    kinds = ANOMALY_KINDS[scene]
    if bit_rate is None and scene == "street":
        bit_rate = max(100_000, int(0.25 * width * height * fps))
    digits = max(3, len(str(max(n_train, n_test))))

    def write(split: str, i: int, kind: str | None) -> tuple[str, np.ndarray, list]:
        rng = np.random.default_rng(
            np.random.SeedSequence(seed, spawn_key=(1 if split == "train" else 2, i))
        )
        labels: list[int] = []
        boxes: list[list[list[float]]] = []
        name = f"{split}_{i + 1:0{digits}d}"
        n = active_frames(frames, idle) if split == "test" else frames
        if scene == "park":
            video_frames = park.render(world, rng, n, kind, labels, boxes)
        else:
            video_frames = street.render(world, rng, n, kind, fps, labels, boxes)
        if n < frames:
            video_frames = pad_idle(video_frames, world.background, frames, n, rng, labels,
                                    boxes)
        if fmt in VIDEO_FORMATS:
            rel = f"{split}/{name}{VIDEO_FORMATS[fmt]}"
            write_video(out / rel, video_frames, fps=fps, codec=codec, bit_rate=bit_rate)
        else:
            rel = f"{split}/{name}"
            write_frames(out / rel, video_frames, ext=FRAME_FORMATS[fmt])
        return rel, np.asarray(labels, np.int64), boxes

    train = [write("train", i, None)[0] for i in range(n_train)]
    test_meta, all_labels, anomalies, offset = [], [], [], 0
    for i in range(n_test):
        kind = kinds[i % len(kinds)]
        rel, labels, boxes = write("test", i, kind)
        subtle = kind in SUBTLE_KINDS[scene]
        ranges = [{"kind": kind, "subtle": subtle, "start": a, "stop": b}
                  for a, b in _runs(labels)]
        anomalies += [{"video": rel, **r} for r in ranges]
        test_meta.append(
            {
                "name": Path(rel).stem if fmt in VIDEO_FORMATS else Path(rel).name,
                "video": rel,
                "frames": frames,
                "offset": offset,
                "kinds": [kind],
                "anomalies": ranges,
                # [frame, x0, y0, x1, y1] in pixels, one row per anomalous actor and frame
                "boxes": [[f, *b] for f, frame_boxes in enumerate(boxes) for b in frame_boxes],
            }
        )
        all_labels.append(labels)
        offset += frames
    # Names are zero-padded, so this order is both the sorted and the natural order.
    flat = np.concatenate(all_labels) if all_labels else np.zeros(0, np.int64)
    np.save(out / LABELS_FILE, flat)
    meta = {
        "generator": "raystack.synth",
        "version": 2,
        "seed": seed,
        "camera": scene_seed,
        "scene": scene,
        "params": {
            "n_train": n_train,
            "n_test": n_test,
            "frames": frames,
            "width": width,
            "height": height,
            "fps": fps,
            "format": fmt,
            "codec": codec,
            "bit_rate": bit_rate,
            "idle": idle,
        },
        "geometry": _geometry(world, scene),
        "subtle_kinds": sorted(SUBTLE_KINDS[scene]),
        "labels_file": LABELS_FILE,
        "label_values": {"0": "normal", "1": "anomalous"},
        "ranges": "half-open [start, stop) frame indices within each video; "
        "offset = where the video starts in labels_file",
        "boxes": "[frame, x0, y0, x1, y1]: pixel box of each anomalous actor in each "
        "anomalous frame of the video (frame indices within the video)",
        "train": [
            {"name": Path(r).name.split(".")[0], "video": r, "frames": frames} for r in train
        ],
        "test": test_meta,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return SynthInfo(
        out,
        tuple(train),
        tuple(m["video"] for m in test_meta),
        out / LABELS_FILE,
        out / META_FILE,
        int(flat.size),
        int(flat.sum()),
        tuple(anomalies),
    )


def _geometry(world, scene: str) -> dict:
    if scene == "street":
        return world.meta()
    return {
        "kind": "park",
        "path_top": list(world.top),
        "path_bottom": list(world.bottom),
        "walker_height_px": world.walker_h,
        "walking_speed_px_per_frame": world.speed,
    }
