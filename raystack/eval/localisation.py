"""Localisation: does a run's box at each labelled event's peak frame point at the anomaly?

Pure functions over arrays; :mod:`raystack.eval.boxes` gathers a run's boxes: the region SQL
``fused()`` gives each fused frame.

A labelled event is one anomalous ``[start, stop)`` range of a test video in ``raystack
synth``'s ``labels.json`` (a maximal run of anomalous frames; every synthetic test video
holds one anomaly kind), with the labelled pixel boxes of its frames. The event is
LOCALISED when, at its peak frame, the predicted box hits a labelled box of that frame: IoU >
0.1, or the labelled box's centre inside the predicted box (the issue's definition; the
centre rule credits a tile that holds a small object whose IoU with it is tiny). The peak
frame is the one SQL ``events()`` boxes (:func:`event_peak`; why: docs/evaluation.md, "Peak
frame"): of the stream whose box most of the event's frames carry, the frame with the
highest fused score before smoothing (:func:`raystack.eval.boxes.peak_inputs`).

The predicted box of a frame is its ``patch_*`` box when the stream has one, else its
worst-tile ``box_*`` when the frame was scored in tiles. A whole-frame row without a patch
box has NO predicted box: its box is the whole frame, whose centre test always passes, so
counting it would report perfect localisation for a scan that localises nothing.

    events = labelled_events(json.load(open("labels.json")))
    out = localise_event(events[0], frames, scores, boxes)   # boxes: (n, 4) float, NaN = none
    localisation_summary([out, ...])["share"]                 # 0.8
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

IOU_MIN = 0.1
RULE = ("peak-frame box hits a labelled box: IoU > 0.1 or labelled centre inside; peak frame: "
        "of the stream whose box most of the event's frames carry, the highest fused score "
        "before smoothing")
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in source pixels, x1/y1 exclusive


@dataclass(frozen=True)
class LabelledEvent:
    """One anomalous range of a test video and its labelled boxes per frame."""

    video: str  # the labels file's path of the video, e.g. "test/test_001.mp4"
    kind: str
    subtle: bool
    start: int
    stop: int  # exclusive
    boxes: dict[int, list[Box]] = field(default_factory=dict)  # frame -> labelled boxes


@dataclass
class EventLocalisation:
    """The outcome of one event: ``hit`` None when it could not be judged (``why``)."""

    video: str
    kind: str
    subtle: bool
    start: int
    stop: int
    peak_frame: int | None = None
    box: list[float] | None = None  # predicted, at the peak frame
    iou: float | None = None  # best IoU with a labelled box of that frame
    hit: bool | None = None
    why: str | None = None  # "unscored", "no predicted box", "no labelled box"


def labelled_events(doc: dict) -> list[LabelledEvent]:
    """Events of a synth ``labels.json`` document; [] when its test videos carry no boxes."""
    events = []
    for entry in doc.get("test", []):
        if "boxes" not in entry:
            continue
        per_frame: dict[int, list[Box]] = {}
        for f, *box in entry["boxes"]:
            per_frame.setdefault(int(f), []).append(tuple(float(v) for v in box))
        for r in entry.get("anomalies", []):
            start, stop = int(r["start"]), int(r["stop"])
            events.append(LabelledEvent(
                video=entry["video"], kind=str(r.get("kind", "anomaly")),
                subtle=bool(r.get("subtle", False)), start=start, stop=stop,
                boxes={f: b for f, b in per_frame.items() if start <= f < stop}))
    return events


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when either is empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    area = lambda r: max(r[2] - r[0], 0.0) * max(r[3] - r[1], 0.0)  # noqa: E731
    union = area(a) + area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def centre_inside(truth: Sequence[float], pred: Sequence[float]) -> bool:
    """The centre of ``truth`` lies in ``pred`` (x1/y1 exclusive)."""
    cx, cy = (truth[0] + truth[2]) / 2.0, (truth[1] + truth[3]) / 2.0
    return pred[0] <= cx < pred[2] and pred[1] <= cy < pred[3]


def box_hits(pred: Sequence[float], truth: Sequence[float], iou_min: float = IOU_MIN) -> bool:
    """The issue's rule: IoU > ``iou_min``, or the labelled centre inside the predicted box."""
    return iou(pred, truth) > iou_min or centre_inside(truth, pred)


def event_peak(scores: np.ndarray, streams: Sequence[str | None] | None = None) -> int:
    """The index of an event's peak frame among its frames (SQL ``events()``' rule).

    Args:
        scores: (n,) the frames' fused scores before smoothing, finite.
        streams: (n,) the stream whose box each frame carries (``box_model``), or None.

    Returns:
        Of the stream whose box the most frames carry (ties: the one with the higher best
        score, then the later name), the frame with the highest score (the first, on a
        tie); without ``streams``, the highest score's.
    """
    scores = np.asarray(scores, np.float64)
    if streams is None:
        return int(np.argmax(scores))
    names = ["" if m is None else str(m) for m in streams]  # SQL groups NULL alike
    best: dict[str, tuple[int, float, int]] = {}
    for i, m in enumerate(names):
        n, top, at = best.get(m, (0, -np.inf, -1))
        best[m] = (n + 1, *((scores[i], i) if scores[i] > top else (top, at)))
    chosen = max(best, key=lambda m: (best[m][0], best[m][1], m))
    return best[chosen][2]


def localise_event(
    event: LabelledEvent, frames: np.ndarray, scores: np.ndarray, boxes: np.ndarray,
    streams: Sequence[str | None] | None = None, *, iou_min: float = IOU_MIN,
) -> EventLocalisation:
    """Judge one event from its video's evaluated frames.

    Args:
        event: the labelled event.
        frames: (n,) int frame indices of the video that were evaluated.
        scores: (n,) the scores that pick the peak frame (higher = more anomalous; NaN =
            none there).
        boxes: (n, 4) float predicted boxes at those frames, NaN rows = no box.
        streams: (n,) the stream whose box each frame carries, or None: :func:`event_peak`.
    """
    out = EventLocalisation(event.video, event.kind, event.subtle, event.start, event.stop)
    scores = np.asarray(scores, np.float64)
    inside = np.flatnonzero((frames >= event.start) & (frames < event.stop)
                            & np.isfinite(scores))
    if len(inside) == 0:
        out.why = "unscored"
        return out
    k = int(inside[event_peak(scores[inside],
                              None if streams is None else [streams[i] for i in inside])])
    out.peak_frame = int(frames[k])
    box = np.asarray(boxes[k], np.float64)
    if not np.all(np.isfinite(box)):
        out.why = "no predicted box"
        return out
    out.box = [float(v) for v in box]
    truths = event.boxes.get(out.peak_frame, [])
    if not truths:
        out.why = "no labelled box"
        return out
    out.iou = max(iou(box, t) for t in truths)
    out.hit = any(box_hits(box, t, iou_min) for t in truths)
    return out


def _share(rows: list[EventLocalisation]) -> dict[str, Any]:
    judged = [r for r in rows if r.hit is not None]
    hits = sum(1 for r in judged if r.hit)
    return {"events": len(rows), "judged": len(judged), "hits": hits,
            "share": hits / len(judged) if judged else None}


def localisation_summary(results: Iterable[EventLocalisation]) -> dict[str, Any]:
    """Share of judged events that hit, overall, per kind, and for subtle vs gross kinds.

    ``share`` is None where no event could be judged ("not available"); events that could
    not be judged are counted in ``events`` but not in ``judged``.
    """
    rows = list(results)
    kinds = sorted({r.kind for r in rows})
    return {
        **_share(rows),
        "iou_min": IOU_MIN,
        "rule": RULE,
        "by_kind": {k: _share([r for r in rows if r.kind == k]) for k in kinds},
        "subtle": _share([r for r in rows if r.subtle]),
        "gross": _share([r for r in rows if not r.subtle]),
        "events_detail": [asdict(r) for r in rows],
    }


def summary_line(loc: dict[str, Any] | None) -> str | None:
    """One line for the eval summary, or None when the labels carry no boxes."""
    if loc is None:
        return None
    if not loc.get("available"):
        return f"localisation: not available ({loc.get('reason', 'no boxes')})"
    pct = lambda d: "n/a" if d["share"] is None else f"{100 * d['share']:.0f}%"  # noqa: E731
    kinds = ", ".join(f"{k} {pct(d)} ({d['hits']}/{d['judged']})"
                      for k, d in loc["by_kind"].items())
    return (f"localisation: {loc['hits']}/{loc['judged']} labelled events ({pct(loc)}) have "
            f"their peak box on the anomaly (IoU > {loc['iou_min']} or centre inside); "
            f"subtle {pct(loc['subtle'])}; {kinds}")
