"""Frame labels of the standard benchmarks, mapped onto the videos of a scan run.

Three formats, all giving ``{video_id: int8 array over every frame of the video}``:

- a flat ``frame_labels_<set>.npy`` (0 normal, 1 anomalous), concatenated over the test
  videos in sorted name order (ped2, avenue, shanghaitech, and raystack's synthetic set);
- an ano_pred-style ``.mat`` whose ``gt`` cell holds, per video in sorted order, a 2 x K
  array of 1-based inclusive [start; end] intervals;
- ShanghaiTech's ``test_frame_mask/`` folder of per-video ``<name>.npy`` arrays;
- the ``labels.json`` that ``raystack synth`` writes (``docs/synthetic.md``): half-open
  ``[start, stop)`` ranges per test video, matched to the run's videos by path.

    labels = labels_for_videos("frame_labels_ped2.npy", videos)   # videos: rows with
    # video_id, relpath and frames, e.g. the run's `videos` table as pylist
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from raystack.errors import RaystackError


class LabelError(RaystackError):
    """Labels that do not fit the videos they are applied to."""


def _stem(relpath: str) -> str:
    p = PurePosixPath(relpath)
    return p.stem if p.suffix else p.name


def _ordered(videos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(videos, key=lambda v: v["relpath"])


def from_flat(
    flat: np.ndarray, videos: list[dict[str, Any]], *, source: str
) -> dict[str, np.ndarray]:
    """Split a flat label array over ``videos`` (sorted by relpath) by their frame counts."""
    flat = np.asarray(flat).reshape(-1)
    vids = _ordered(videos)
    counts = [int(v["frames"] or 0) for v in vids]
    if flat.size != sum(counts):
        msg = (f"{source}: {flat.size} frame labels, but the {len(vids)} videos of the run have "
               f"{sum(counts)} frames; the labels must cover every frame of exactly these videos "
               "in sorted name order")
        raise LabelError(msg)
    if not np.isin(flat, (0, 1)).all():
        msg = f"{source}: frame labels must be 0 (normal) or 1 (anomalous)"
        raise LabelError(msg)
    out, pos = {}, 0
    for v, n in zip(vids, counts, strict=True):
        out[v["video_id"]] = flat[pos: pos + n].astype(np.int8)
        pos += n
    return out


def from_intervals(
    gt: list[np.ndarray], videos: list[dict[str, Any]], *, source: str
) -> dict[str, np.ndarray]:
    """Per-video 1-based inclusive [start; end] intervals (2 x K) -> frame labels."""
    vids = _ordered(videos)
    if len(gt) != len(vids):
        msg = f"{source}: intervals for {len(gt)} videos, but the run has {len(vids)} videos"
        raise LabelError(msg)
    out = {}
    for v, iv in zip(vids, gt, strict=True):
        n = int(v["frames"] or 0)
        lab = np.zeros(n, dtype=np.int8)
        iv = (np.asarray(iv, dtype=np.int64).reshape(2, -1) if np.size(iv)
              else np.zeros((2, 0), np.int64))
        for s, e in iv.T:
            if s < 1 or e > n or s > e:
                msg = f"{source}: interval [{s}, {e}] is outside {v['relpath']} (1..{n})"
                raise LabelError(msg)
            lab[s - 1: e] = 1
        out[v["video_id"]] = lab
    return out


def _load_mat(path: Path) -> list[np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except (ValueError, OSError, TypeError) as e:
        msg = f"{path}: not a readable .mat file ({e})"
        raise LabelError(msg) from None
    if "gt" not in mat:
        names = sorted(k for k in mat if not k.startswith("__"))
        msg = f"{path}: no 'gt' variable (ano_pred interval format); variables: {names}"
        raise LabelError(msg)
    return [np.asarray(c) for c in np.asarray(mat["gt"]).reshape(-1)]


def from_mask_folder(folder: Path, videos: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """ShanghaiTech ``test_frame_mask/<name>.npy``, matched to videos by name."""
    masks = {p.stem: p for p in folder.glob("*.npy")}
    out = {}
    for v in _ordered(videos):
        name = _stem(v["relpath"])
        if name not in masks:
            msg = f"{folder}: no mask {name}.npy for video {v['relpath']}"
            raise LabelError(msg)
        lab = np.load(masks[name]).reshape(-1).astype(np.int8)
        if lab.size != int(v["frames"] or 0):
            msg = f"{masks[name]}: {lab.size} labels but {v['relpath']} has {v['frames']} frames"
            raise LabelError(msg)
        out[v["video_id"]] = lab
    return out


def same_video(entry: str, relpath: str) -> bool:
    """The synth path ``test/test_001.mp4`` is the run's ``test_001.mp4`` when the scan was
    pointed at ``ARCHIVE/test``, or ``x/test/test_001.mp4`` when pointed above the archive."""
    return entry == relpath or entry.endswith("/" + relpath) or relpath.endswith("/" + entry)


def from_synth_json(
    doc: dict, videos: list[dict[str, Any]], *, source: str
) -> dict[str, np.ndarray]:
    """Frame labels from ``raystack synth``'s ``labels.json``: its test videos' ranges; its
    training videos are all normal."""
    entries = [(e["video"], e.get("anomalies", [])) for e in doc.get("test", [])]
    entries += [(e["video"], []) for e in doc.get("train", [])]
    out = {}
    for v in _ordered(videos):
        hits = [ranges for name, ranges in entries if same_video(name, v["relpath"])]
        if len(hits) != 1:
            known = ", ".join(name for name, _ in entries)
            msg = (f"{source}: {'no' if not hits else 'several'} labelled video(s) match "
                   f"{v['relpath']} of the run; the file labels {known}")
            raise LabelError(msg)
        n = int(v["frames"] or 0)
        lab = np.zeros(n, dtype=np.int8)
        for r in hits[0]:
            if not 0 <= int(r["start"]) <= int(r["stop"]) <= n:
                msg = (f"{source}: range [{r['start']}, {r['stop']}) is outside "
                       f"{v['relpath']} (0..{n})")
                raise LabelError(msg)
            lab[int(r["start"]): int(r["stop"])] = 1
        out[v["video_id"]] = lab
    return out


def load_synth_json(path: Path) -> dict:
    import json

    try:
        doc = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        msg = f"{path}: not a readable JSON file ({e})"
        raise LabelError(msg) from None
    if not isinstance(doc, dict) or doc.get("generator") != "raystack.synth" or "test" not in doc:
        msg = (f"{path}: not a raystack synth labels.json (needs generator 'raystack.synth' and "
               "a 'test' list); other JSON label formats are not read")
        raise LabelError(msg)
    return doc


def labels_for_videos(path: str | Path, videos: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Frame labels for ``videos`` from a flat ``.npy``, an interval ``.mat`` or a mask folder."""
    path = Path(path)
    if path.is_dir():
        return from_mask_folder(path, videos)
    if not path.exists():
        msg = f"label file {path} does not exist"
        raise LabelError(msg)
    if path.suffix == ".mat":
        return from_intervals(_load_mat(path), videos, source=str(path))
    if path.suffix == ".npy":
        return from_flat(np.load(path, allow_pickle=False), videos, source=str(path))
    if path.suffix == ".json":
        return from_synth_json(load_synth_json(path), videos, source=str(path))
    msg = (f"{path}: unknown label format (expected a .npy, a .mat, a test_frame_mask folder "
           "or raystack synth's labels.json)")
    raise LabelError(msg)


def run_videos(store: Any, run_id: str) -> list[dict[str, Any]]:
    """All videos of a run (rows of the store's videos table), failed probes included: label
    files cover every test video, so dropping one would shift the rest."""
    from raystack.store import Store

    st = store if isinstance(store, Store) else Store(store)
    rows = st.read_table("videos", run_id).to_pylist()
    if not rows:
        import difflib

        runs = st.runs()
        close = difflib.get_close_matches(run_id, runs, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        have = ", ".join(runs) if runs else "none (scan an archive into it first)"
        msg = f"run {run_id!r} has no videos table in store {st.uri}{hint}. Its runs: {have}"
        raise LabelError(msg)
    return rows


def load_labels_for_run(store: Any, run_id: str, path: str | Path) -> dict[str, np.ndarray]:
    """Labels of ``path`` mapped onto the videos of ``run_id`` in ``store``."""
    return labels_for_videos(path, run_videos(store, run_id))
