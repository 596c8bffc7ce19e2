"""Split probed videos into work units (video, frame range): pure functions, no I/O.

A model with ``context`` frames of history (16 for FP, 1 for FR) scores frames
``[context, n)`` of an ``n``-frame video. Those frames are cut into segments of
``segment_frames`` aligned from ``context``; a unit decodes ``[start - context, stop)`` and
emits one row per frame of ``[start, stop)`` only, so the units of a video tile its
scorable frames exactly: no gap, no duplicate.

    segment_ranges(1000, context=16, segment_frames=512)   # [(16, 528), (528, 1000)]
    unit_id("cam01-1a2b3c4d", 16, 528)                      # "cam01-1a2b3c4d-00000016-00000528"

Videos that cannot be units are reported instead: a probe error becomes a failed
outcome naming the file and the reason; a video with ``n <= context`` frames has nothing
to score and becomes a ``skipped`` outcome that says so (a "short" video).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

PROBE_SUFFIX = "probe"  # unit id suffix of a video that failed probing
SHORT_SUFFIX = "short"  # unit id suffix of a video too short for the model's context


@dataclass(frozen=True)
class WorkUnit:
    """One unit of work, of retry and of idempotency: score ``[start, stop)`` of one video.

    Attributes:
        unit_id: ``<video_id>-<start:08d>-<stop:08d>``, also the name of its score file.
        video_id: ``videos.video_id``.
        uri: the video file or frame folder, so a failure names it.
        start: first frame scored (inclusive).
        stop: end of the frames scored (exclusive).
        context: frames decoded before ``start`` (the model's history); the unit decodes
            ``[start - context, stop)``.
        fps: frame rate from the probe, for ``timestamp_s = frame / fps``.
        num_frames: frames in the whole video (from the probe).
        source: the ``raystack.archive.VideoSource`` the decoder opens.
    """

    unit_id: str
    video_id: str
    uri: str
    start: int
    stop: int
    context: int
    fps: float
    num_frames: int
    source: Any = field(default=None, compare=False, repr=False)

    @property
    def read_start(self) -> int:
        return self.start - self.context

    @property
    def frames(self) -> int:
        """Frames this unit scores (rows per stream)."""
        return self.stop - self.start


@dataclass(frozen=True)
class Outcome:
    """A video that yields no work unit, recorded in the manifest as it is.

    ``status`` is ``"failed"`` for a probe error (``error`` names the file and the reason)
    and ``"skipped"`` for a video too short to score (``error`` gives its frame count and
    the frames the models need).
    """

    unit_id: str
    video_id: str
    uri: str
    status: str
    frames: int
    error: str | None


@dataclass(frozen=True)
class Plan:
    """The units of a scan plus the videos that produce none."""

    units: tuple[WorkUnit, ...]
    outcomes: tuple[Outcome, ...]
    context: int
    segment_frames: int
    videos: int

    @property
    def frames(self) -> int:
        """Scorable frames over all units (score rows per stream)."""
        return sum(u.frames for u in self.units)

    @property
    def probe_failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    @property
    def short_videos(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "skipped")


def unit_id(video_id: str, start: int, stop: int) -> str:
    """Deterministic id of a unit: a retried or resumed unit keeps its name (and score file)."""
    return f"{video_id}-{start:08d}-{stop:08d}"


def segment_ranges(n: int, *, context: int, segment_frames: int) -> list[tuple[int, int]]:
    """Frame ranges ``[start, stop)`` tiling the scorable frames ``[context, n)`` of a video.

    Args:
        n: frames in the video.
        context: frames of history the model needs before the first frame it scores.
        segment_frames: frames scored per unit (the last segment may be shorter).

    Returns:
        Consecutive, non-empty ranges whose union is exactly ``range(context, n)``; empty
        when ``n <= context``.
    """
    if segment_frames < 1:
        msg = f"segment_frames must be >= 1, got {segment_frames}"
        raise ValueError(msg)
    if context < 0:
        msg = f"context must be >= 0, got {context}"
        raise ValueError(msg)
    return [(s, min(s + segment_frames, n)) for s in range(context, n, segment_frames)]


def too_short_reason(frames: int, context: int, note: str | None = None) -> str:
    """Why a video has nothing to score: ``"12 frames; the models need at least 17 ..."``,
    with ``note`` (what sets the context, and how to need less) after it."""
    return (f"too short to score: {frames} frames; the models need at least {context + 1} "
            f"(context {context} + 1 frame to score)" + (f"; {note}" if note else ""))


def _rows(videos: pa.Table | Sequence[dict]) -> list[dict]:
    return videos.to_pylist() if isinstance(videos, pa.Table) else [dict(r) for r in videos]


def plan_units(
    videos: pa.Table | Sequence[dict],
    *,
    context: int,
    segment_frames: int,
    sources: Iterable[Any] = (),
    short_note: str | None = None,
) -> Plan:
    """Plan the work units of probed videos.

    Args:
        videos: rows of the ``videos`` table (``video_id``, ``uri``, ``frames``, ``fps``,
            ``probe_error``), e.g. from ``raystack.scan.probe.probe_archive``.
        context: the scorer's context (``FrameScorer.context``).
        segment_frames: frames scored per unit.
        sources: the listed ``VideoSource`` objects, attached to units by ``video_id`` so
            workers can open them.
        short_note: added to a too-short video's reason (what sets ``context``).

    Returns:
        A :class:`Plan`, units in the order of ``videos``.
    """
    by_id = {s.video_id: s for s in sources}
    units: list[WorkUnit] = []
    outcomes: list[Outcome] = []
    rows = _rows(videos)
    for row in rows:
        vid, uri = row["video_id"], row["uri"]
        n = row.get("frames")
        if row.get("probe_error") or n is None:
            reason = row.get("probe_error") or "probe found no frame count"
            outcomes.append(Outcome(f"{vid}-{PROBE_SUFFIX}", vid, uri, "failed", 0,
                                    f"probe failed for {uri}: {reason}"))
            continue
        ranges = segment_ranges(int(n), context=context, segment_frames=segment_frames)
        if not ranges:
            outcomes.append(Outcome(f"{vid}-{SHORT_SUFFIX}", vid, uri, "skipped", int(n),
                                    too_short_reason(int(n), context, short_note)))
            continue
        fps = row.get("fps")
        fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else 0.0
        for start, stop in ranges:
            units.append(WorkUnit(unit_id(vid, start, stop), vid, uri, start, stop, context,
                                  fps, int(n), by_id.get(vid)))
    return Plan(tuple(units), tuple(outcomes), context, segment_frames, len(rows))
