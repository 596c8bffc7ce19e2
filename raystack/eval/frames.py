"""The frames ``raystack eval`` evaluates, and their scores from the query layer's SQL.

    groups = group_psnr(store.read_table("scores", run_id, columns=[...]))
    sel = select_frames(groups, videos, labels, streams=["fp", "fr"], run_id="r")
    con = connect_scores(sel.table)
    fused = sql_scores(con, sel, resolve_fusion("weighted:0.5", ["fp", "fr"]), sigma=10)
    # [(frames of video i,) float64 scores, ...] in the order of sel.videos

Per video, the evaluated frames are those every fused stream scored (at or after
``skip_first``); normalisation and smoothing then see exactly those frames. A strided run
is evaluated on the frames it scored; a gated run on every frame, its gated rows scoring
as normal as the video's most normal scored frame (anomaly 0, ``normalised()``). The scores
come from the SQL ``fused()`` macro (:func:`raystack.query.connect_scores` over the
selected rows), the one definition of normalisation, smoothing and fusion; the numpy
mirror of it lives only in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from raystack.eval.labels import LabelError
from raystack.query.fusion import Fusion
from raystack.scene_prior import REFERENCE_STREAMS
from raystack.store.schema import BOX_COLUMNS, PATCH_COLUMNS

# A fused frame's region: the schema's columns less psnr_mean, which fused() does not carry.
REGION_COLUMNS = ("tiles", *BOX_COLUMNS, *PATCH_COLUMNS)
# fused() before its roi filter (none here): the same scores, and each fused frame's region
# with the tiles column that tells a tiled row's worst tile from a whole frame.
FUSED_SQL = ("SELECT video_id, frame, score, raw_score, box_model, "
             f"{', '.join(REGION_COLUMNS)} FROM fused_unfiltered(?, ?, ?, ?, NULL, ?) "
             "ORDER BY video_id, frame")


@dataclass
class Selection:
    """What is evaluated: videos (sorted by relpath), their frames and the rows to score."""

    videos: list[dict[str, Any]] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)  # per video, ascending
    labels: list[np.ndarray] = field(default_factory=list)  # per video, 0/1 at those frames
    unscored: list[str] = field(default_factory=list)  # relpaths some fused stream missed
    baselines: list[str] = field(default_factory=list)  # baseline streams covering every frame
    table: pa.Table | None = None  # run_id, video_id, frame, timestamp_s, model, psnr


def group_psnr(table: pa.Table
               ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{(video_id, model): (frames ascending, psnr float64, gated bool)}`` from one sort of
    the rows (``gated`` all False when the table has no such column: a store before v3)."""
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return {}
    idx = pc.sort_indices(table, [("video_id", "ascending"), ("model", "ascending"),
                                  ("frame", "ascending")])
    t = table.take(idx)
    vid = t["video_id"].to_numpy(zero_copy_only=False)
    mod = t["model"].to_numpy(zero_copy_only=False)
    frames = t["frame"].to_numpy()
    psnr = t["psnr"].to_numpy().astype(np.float64)
    gated = (t["gated"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
             if "gated" in t.column_names else np.zeros(len(psnr), bool))
    cut = np.flatnonzero((vid[1:] != vid[:-1]) | (mod[1:] != mod[:-1])) + 1
    bounds = np.concatenate([[0], cut, [len(vid)]])
    return {(str(vid[s]), str(mod[s])): (frames[s:e], psnr[s:e], gated[s:e])
            for s, e in zip(bounds[:-1], bounds[1:], strict=True)}


def select_frames(groups: dict, videos: list[dict[str, Any]], labels: dict[str, np.ndarray],
                  streams: list[str], run_id: str, *, skip_first: int | None = None,
                  labels_name: str = "labels") -> Selection:
    """The evaluated frames of each labelled video and the score rows of them.

    The rows hold the fused ``streams`` and every baseline stream (``diff``, ``motion``, and
    ``presence`` where the scan wrote it) that scored all the evaluated frames, restricted
    to those frames.

    Raises:
        LabelError: a video scored past the end of its labels.
    """
    sel = Selection()
    for v in sorted(videos, key=lambda v: v["relpath"]):
        per = [groups.get((v["video_id"], s)) for s in streams]
        if any(p is None for p in per):
            sel.unscored.append(v["relpath"])
            continue
        common = per[0][0]
        for f, *_ in per[1:]:
            common = np.intersect1d(common, f)
        if skip_first:
            common = common[common >= skip_first]
        lab = labels[v["video_id"]]
        if common.size and common[-1] >= len(lab):
            msg = (f"{labels_name}: {v['relpath']} has scores up to frame {int(common[-1])} but "
                   f"labels for {len(lab)} frames")
            raise LabelError(msg)
        sel.videos.append(v)
        sel.frames.append(common)
        sel.labels.append(lab[common])
    # The label-free streams every learned score stands beside: the trivial ones, and the
    # scene prior's presence when the scan wrote it (not deep, fitted on normal footage).
    sel.baselines = [b for b in REFERENCE_STREAMS if _covers(groups, sel, b)]
    rows: dict[str, list] = {k: [] for k in ("video_id", "frame", "model", "psnr", "gated")}
    for v, common in zip(sel.videos, sel.frames, strict=True):
        for s in dict.fromkeys([*streams, *sel.baselines]):
            f, p, g = groups[(v["video_id"], s)]
            keep = np.isin(f, common)
            rows["video_id"].append(np.full(int(keep.sum()), v["video_id"], dtype=object))
            rows["frame"].append(f[keep])
            rows["model"].append(np.full(int(keep.sum()), s, dtype=object))
            rows["psnr"].append(p[keep])
            rows["gated"].append(g[keep])
    cat = {k: np.concatenate(x) if x else np.zeros(0) for k, x in rows.items()}
    n = len(cat["frame"])
    sel.table = pa.table({
        "run_id": pa.array([run_id] * n, pa.string()),
        "video_id": pa.array(cat["video_id"], pa.string()),
        "frame": pa.array(cat["frame"], pa.int64()),
        "timestamp_s": pa.nulls(n, pa.float64()),
        "model": pa.array(cat["model"], pa.string()),
        "psnr": pa.array(cat["psnr"], pa.float64()),
        # Gated rows score as normal as the video's best (normalised() in the query layer).
        "gated": pa.array(cat["gated"].astype(bool), pa.bool_()),
    })
    return sel


def _covers(groups: dict, sel: Selection, stream: str) -> bool:
    """Whether ``stream`` scored every evaluated frame of every evaluated video."""
    for v, common in zip(sel.videos, sel.frames, strict=True):
        got = groups.get((v["video_id"], stream))
        if got is None or int(np.isin(got[0], common).sum()) != len(common):
            return False
    return bool(sel.videos)


def sql_scores(con: Any, sel: Selection, fusion: Fusion, *, sigma: float,
               normalise: str = "video") -> list[np.ndarray]:
    """Scores of ``fusion`` (a label-free one) at each video's evaluated frames, from the SQL
    ``fused()`` macro over ``sel.table`` (``con`` from :func:`raystack.query.connect_scores`).

    Raises:
        ValueError: a ``normalise`` other than 'video' or 'global' (or another query error).
    """
    return sql_fused(con, sel, fusion, sigma=sigma, normalise=normalise)[0]


def sql_fused(con: Any, sel: Selection, fusion: Fusion, *, sigma: float,
              normalise: str = "video") -> tuple[list[np.ndarray], pa.Table]:
    """:func:`sql_scores`, and the fused rows they come from: video_id, frame, score and
    the region SQL gives each frame (:data:`REGION_COLUMNS`; NULL where ``sel.table`` has
    none), which :func:`raystack.eval.boxes.fused_boxes` turns into boxes.

    Raises:
        ValueError: as :func:`sql_scores`.
    """
    from raystack.query.connection import QueryError, run_sql

    args = fusion.macro_args()
    try:
        t = run_sql(con, FUSED_SQL, [args["fusion"], args["alpha"], args["streams"],
                                     float(sigma), normalise])
    except QueryError as e:
        raise ValueError(str(e)) from e
    vid = t["video_id"].to_numpy(zero_copy_only=False)
    frames, scores = t["frame"].to_numpy(), t["score"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, vid[1:] != vid[:-1], True]) if len(vid) else []
    by_video = {str(vid[a]): (frames[a:b], scores[a:b])
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)}
    out = []
    empty = (np.zeros(0, np.int64), np.zeros(0))
    for v, common in zip(sel.videos, sel.frames, strict=True):
        f, s = by_video.get(v["video_id"], empty)
        if not np.array_equal(f, common):  # the rows hold exactly these frames of each stream
            msg = f"fused() returned other frames than selected for {v['relpath']}"
            raise RuntimeError(msg)
        out.append(np.asarray(s, dtype=np.float64))
    return out, t
