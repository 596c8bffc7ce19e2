"""A run's predicted boxes from the store, and the localisation report of ``raystack eval``.

Box columns (scores schema v2, issue 14): ``tiles``, ``box_x0..box_y1`` (worst tile,
source pixels) and ``patch_x0..patch_y1`` (worst patch); a v1 run reads them NULL. Which
one is a frame's predicted box, and why a whole-frame row has none, is
:mod:`raystack.eval.localisation`'s rule.

    loc = localise_run(store, "r1", "labels.json", sel, fused, stream_scores)
    loc["share"], loc["by_kind"]["loiterer"]["share"]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from raystack.eval.localisation import (
    frame_boxes,
    labelled_events,
    localisation_summary,
    localise_event,
)

BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")
PATCH_COLUMNS = ("patch_x0", "patch_y0", "patch_x1", "patch_y1")
COLUMNS = ("video_id", "frame", "model", "tiles", *BOX_COLUMNS, *PATCH_COLUMNS)


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


def aligned(found: tuple[np.ndarray, np.ndarray] | None, frames: np.ndarray) -> np.ndarray:
    """(len(frames), 4) boxes of ``found`` at ``frames``; NaN where it has no row."""
    out = np.full((len(frames), 4), np.nan)
    if found is None or len(found[0]) == 0:
        return out
    have, boxes = found
    pos = np.clip(np.searchsorted(have, frames), 0, len(have) - 1)
    ok = have[pos] == frames
    out[ok] = boxes[pos[ok]]
    return out


def localise_run(
    store: Any, run_id: str, labels: str | Path, sel: Any, fused: Sequence[np.ndarray],
    stream_scores: Callable[[str], list[np.ndarray]], streams: Sequence[str],
) -> dict[str, Any] | None:
    """The localisation report of an evaluation, or None when the labels carry no boxes.

    Args:
        store: the run's :class:`~raystack.store.Store`.
        sel: the evaluation's :class:`~raystack.eval.frames.Selection`.
        fused: per video of ``sel.videos``, the evaluated score at ``sel.frames``.
        stream_scores: a stream's normalised anomaly per video (picks the box of a fusion).
        streams: the fused streams.

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
    found = predicted_boxes(store.read_table("scores", run_id, columns=list(COLUMNS)))
    per_stream = ({s: stream_scores(s) for s in streams} if len(streams) > 1 else {})
    results = []
    for i, v in enumerate(sel.videos):
        mine = [e for e in events if same_video(e.video, v["relpath"])]
        if not mine:
            continue
        frames = sel.frames[i]
        boxes = [aligned(found.get((v["video_id"], s)), frames) for s in streams]
        box = boxes[0] if len(streams) == 1 else frame_boxes(
            [per_stream[s][i] for s in streams], boxes)
        results += [localise_event(e, frames, fused[i], box) for e in mine]
    summary = localisation_summary(results)
    if summary["judged"] == 0:
        return {"available": False, "events": summary["events"],
                "reason": "no predicted box at any event's peak frame (a v1 run, NULL boxes, "
                          "or whole-frame scoring without patch boxes)"}
    return {"available": True, **summary}
