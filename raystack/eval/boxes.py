"""A run's predicted boxes from the store, and the localisation report of ``raystack eval``.

Box columns (scores schema v2, issue 14): ``tiles``, ``box_x0..box_y1`` (worst tile,
source pixels) and ``patch_x0..patch_y1`` (worst patch); a v1 run reads them NULL. A
fused frame's region is the one SQL ``fused()`` gives it (the stream most unusual there for
its run), so ``raystack eval``, the report and an analyst's query box the same frame alike; which of
its columns is the predicted box, and why a whole-frame row has none, is
:func:`predicted_boxes`'s rule.

    sel.table = with_regions(sel.table, scores)         # the evaluated rows, with regions
    fused, rows = sql_fused(con, sel, fusion, sigma=10)  # raystack.eval.frames
    loc = localise_run("labels.json", sel, peak_inputs(rows, sel), fused_boxes(rows, sel))
    loc["share"], loc["by_kind"]["loiterer"]["share"]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from raystack.eval.frames import REGION_COLUMNS
from raystack.eval.localisation import (
    labelled_events,
    localisation_summary,
    localise_event,
)
from raystack.store.schema import BOX_COLUMNS, PATCH_COLUMNS

COLUMNS = ("video_id", "frame", "model", *REGION_COLUMNS)


def _floats(table: pa.Table, names: Sequence[str]) -> np.ndarray:
    """(n, len(names)) float64, NULL -> NaN."""
    return np.stack([table[c].to_numpy(zero_copy_only=False).astype(np.float64)
                     for c in names], axis=1)


def predicted_boxes(table: pa.Table) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """``{(video_id, model): (frames ascending, (n, 4) boxes)}``: the patch box when present,
    else the tile box of a tiled row, else NaN (a whole-frame row localises nothing)."""
    if table.num_rows == 0:
        return {}
    patch = _floats(table, PATCH_COLUMNS)
    tile = _floats(table, BOX_COLUMNS)
    tiled = ~np.isnan(table["tiles"].to_numpy(zero_copy_only=False).astype(np.float64))
    has_patch = np.all(np.isfinite(patch), axis=1)
    boxes = np.where(has_patch[:, None], patch, np.where(tiled[:, None], tile, np.nan))
    vid = table["video_id"].to_numpy(zero_copy_only=False)
    mod = table["model"].to_numpy(zero_copy_only=False)
    frames = table["frame"].to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.lexsort((frames, mod.astype(str), vid.astype(str)))
    vid, mod, frames, boxes = vid[order], mod[order], frames[order], boxes[order]
    cut = np.flatnonzero((vid[1:] != vid[:-1]) | (mod[1:] != mod[:-1])) + 1
    bounds = np.concatenate([[0], cut, [len(vid)]])
    return {(str(vid[s]), str(mod[s])): (frames[s:e], boxes[s:e])
            for s, e in zip(bounds[:-1], bounds[1:], strict=True)}


def aligned(found: tuple[np.ndarray, np.ndarray] | None, frames: np.ndarray,
            fill: Any = np.nan, width: int | None = 4) -> np.ndarray:
    """``found``'s values (frames ascending, values) at ``frames``: (len(frames), width),
    or (len(frames),) with ``width`` None; ``fill`` where it has no row."""
    shape = (len(frames),) if width is None else (len(frames), width)
    out = np.full(shape, fill, dtype=object if fill is None else np.float64)
    if found is None or len(found[0]) == 0:
        return out
    have, boxes = found
    pos = np.clip(np.searchsorted(have, frames), 0, len(have) - 1)
    ok = have[pos] == frames
    out[ok] = boxes[pos[ok]]
    return out


def with_regions(rows: pa.Table, scores: pa.Table) -> pa.Table:
    """The evaluated ``rows`` (``Selection.table``) with the region columns of the same
    (video_id, model, frame) in ``scores`` (a read of the run's scores with them; a v1 run's
    are NULL)."""
    return rows.join(scores.select(list(COLUMNS)), keys=["video_id", "model", "frame"],
                     join_type="left outer")


def fused_boxes(rows: pa.Table, sel: Any) -> list[np.ndarray]:
    """Per video of ``sel.videos``, (len(frames), 4) the predicted box at ``sel.frames`` of
    the fused ``rows`` (:func:`raystack.eval.frames.sql_fused`); NaN where none."""
    found = predicted_boxes(rows.append_column("model", pa.array(["fused"] * rows.num_rows,
                                                                 pa.string())))
    return [aligned(found.get((v["video_id"], "fused")), f)
            for v, f in zip(sel.videos, sel.frames, strict=True)]


def peak_inputs(rows: pa.Table, sel: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per video of ``sel.videos``, at ``sel.frames``, what picks an event's peak frame in
    SQL ``events()`` as here (:func:`raystack.eval.localisation.event_peak`): the fused
    score before smoothing (``raw_score`` of the fused ``rows``, NaN where none) and the
    stream whose box each frame carries (``box_model``, None where none)."""
    vid = rows["video_id"].to_numpy(zero_copy_only=False).astype(str)
    frames = rows["frame"].to_numpy().astype(np.int64)
    raw = rows["raw_score"].to_numpy(zero_copy_only=False).astype(np.float64)
    model = np.asarray(rows["box_model"].to_pylist(), dtype=object)
    order = np.lexsort((frames, vid))  # one sort, then a slice per video
    vid, frames, raw, model = vid[order], frames[order], raw[order], model[order]
    cut = np.flatnonzero(vid[1:] != vid[:-1]) + 1
    bounds = zip(np.r_[0, cut], np.r_[cut, len(vid)], strict=True)
    by_video = {vid[a]: slice(a, b) for a, b in bounds if b > a}
    out = []
    for v, want in zip(sel.videos, sel.frames, strict=True):
        part = by_video.get(v["video_id"])
        if part is None:
            out.append((aligned(None, want, width=None), aligned(None, want, None, None)))
            continue
        out.append((aligned((frames[part], raw[part]), want, width=None),
                    aligned((frames[part], model[part]), want, None, None)))
    return out


def localise_run(labels: str | Path, sel: Any, peaks: Sequence[tuple[np.ndarray, np.ndarray]],
                 boxes: Sequence[np.ndarray]) -> dict[str, Any] | None:
    """The localisation report of an evaluation, or None when the labels carry no boxes.

    Args:
        sel: the evaluation's :class:`~raystack.eval.frames.Selection`.
        peaks: per video of ``sel.videos``, (scores, streams) at ``sel.frames`` that pick an
            event's peak frame (:func:`peak_inputs`).
        boxes: per video, (len(frames), 4) the predicted box there (:func:`fused_boxes`).

    Returns:
        ``{"available": False, "reason": ...}`` when no event's peak frame has a box (a v1
        run, NULL boxes, whole-frame rows without patches: never an error), else
        ``{"available": True, **localisation_summary}``.
    """
    from raystack.eval.labels import load_synth_json, same_video

    path = Path(labels)
    if path.suffix != ".json" or not path.is_file():
        return None
    events = labelled_events(load_synth_json(path))
    if not events:
        return None
    results = []
    for i, v in enumerate(sel.videos):
        mine = [e for e in events if same_video(e.video, v["relpath"])]
        results += [localise_event(e, sel.frames[i], peaks[i][0], boxes[i], peaks[i][1])
                    for e in mine]
    summary = localisation_summary(results)
    if summary["judged"] == 0:
        return {"available": False, "events": summary["events"],
                "reason": "no predicted box at any event's peak frame (a v1 run, NULL boxes, "
                          "or whole-frame scoring without patch boxes)"}
    return {"available": True, **summary}
