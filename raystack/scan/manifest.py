"""The manifest of a run: one row per work-unit attempt, the scan's source of truth on resume.

Each attempt is first its own Parquet file (``manifest/run=<id>/<unit_id>-a<attempt>.parquet``),
so no write ever overwrites history and a killed driver loses at most the rows of the
attempts in flight; the driver merges them into one compacted file as it goes
(:mod:`raystack.scan.manifest_files`). A unit is done when its latest attempt is ``done``;
a rerun skips those and retries the rest. A video with nothing to score is ``skipped``
(the reason in ``error``); a done unit that skipped undecodable frames says so in ``warning``.

    m = Manifest(Store("./store"), "night-01")
    m.record(manifest_row(unit, "done", rows=1024, attempt=1, worker="host:123"))
    m.latest()["cam01-1a2b3c4d-00000016-00000528"]["status"]    # "done"
    summarize(m.latest().values()).failed                          # [(unit, uri, error), ...]
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from raystack.scan.plan import PROBE_SUFFIX, SHORT_SUFFIX, Outcome, WorkUnit
from raystack.store.schema import table_schema

STAGES = ("decode_s", "flow_s", "model_s", "write_s")
# Why an attempt failed: the file itself (an undecodable video; retrying will not help), or
# the machinery around it (a dead worker, the store or the network away; retrying will).
INPUT, INFRASTRUCTURE = "input", "infrastructure"
FAILURE_KINDS = (INPUT, INFRASTRUCTURE)
STATUSES = ("done", "failed", "skipped")
# Stores written before short videos were named recorded them as done rows with no reason.
LEGACY_SHORT_REASON = "too short to score (recorded without the frame count)"


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_name() -> str:
    """``host:pid`` of this process, as the manifest records who ran an attempt."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


def manifest_row(
    unit: WorkUnit | Outcome,
    status: str,
    *,
    rows: int = 0,
    attempt: int = 1,
    error: str | None = None,
    worker: str | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    timings: dict[str, float] | None = None,
    run_id: str = "",
    failure_kind: str | None = None,
    warning: str | None = None,
    scored_frames: int | None = None,
    gated_frames: int | None = None,
) -> dict[str, Any]:
    """A manifest row (a dict in the ``manifest`` schema) for one attempt of ``unit``.

    ``scored_frames`` and ``gated_frames`` count the frames a ``done`` unit wrote rows for
    and those of them the motion gate kept from the learned models (schema v3).
    ``error`` says why a ``failed`` attempt failed or why a ``skipped`` video has nothing
    to score; ``warning`` what a ``done`` unit could not do (undecodable frames skipped).
    A failed row is of ``failure_kind`` ``"input"`` unless told otherwise.
    """
    if status not in STATUSES:
        msg = f"manifest status must be one of {STATUSES}, got {status!r}"
        raise ValueError(msg)
    if status == "failed":
        failure_kind = failure_kind or INPUT
        if failure_kind not in FAILURE_KINDS:
            msg = f"failure_kind must be one of {FAILURE_KINDS}, got {failure_kind!r}"
            raise ValueError(msg)
    else:
        failure_kind = None
    if isinstance(unit, WorkUnit):
        start, end = unit.start, unit.stop
    else:  # an outcome of the plan covers no frame range
        start, end = 0, 0
    timings = timings or {}
    return {
        "run_id": run_id,
        "unit_id": unit.unit_id,
        "video_id": unit.video_id,
        "uri": unit.uri,
        "start_frame": int(start),
        "end_frame": int(end),
        "status": status,
        "rows": int(rows),
        "error": error,
        "worker": worker,
        "attempt": int(attempt),
        "started_at": started_at,
        "finished_at": finished_at or utcnow(),
        **{k: (float(timings[k]) if k in timings else None) for k in STAGES},
        "failure_kind": failure_kind,
        "warning": warning,
        "scored_frames": None if scored_frames is None else int(scored_frames),
        "gated_frames": None if gated_frames is None else int(gated_frames),
    }


class Manifest:
    """Append-only manifest of one run in a store (see module docstring).

    The driver of a scan calls :meth:`track` once: from then on the rows stay in memory and
    the attempt files are merged into one compacted file every ``compact_every`` records
    (:mod:`raystack.scan.manifest_files`); :meth:`compact` merges the rest at the end.
    """

    def __init__(self, store: Any, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.schema = table_schema("manifest")
        self._compactor: Any = None

    def track(self, compact_every: int | None = None) -> Manifest:
        """Read the run's rows once and keep them (and compact) as rows are recorded."""
        from raystack.scan.manifest_files import COMPACT_EVERY, Compactor

        self._compactor = Compactor(self.store, self.run_id, compact_every or COMPACT_EVERY)
        return self

    def record(self, row: dict[str, Any]) -> dict[str, Any]:
        """Write one attempt row atomically (its own file); returns the row as written."""
        from raystack.store.layout import manifest_name

        row = {**row, "run_id": self.run_id}
        table = pa.Table.from_pylist([row], schema=self.schema)
        name = manifest_name(row["unit_id"], row["attempt"])
        uri = self.store.write_table("manifest", self.run_id, name, table)
        if self._compactor is not None:
            self._compactor.added(row, uri)
        return row

    def compact(self) -> str | None:
        """Merge the attempt files into the compacted file now (see :meth:`track`)."""
        if self._compactor is None:
            self.track()
        return self._compactor.compact()

    def table(self) -> pa.Table:
        """Every attempt row of the run (empty table when nothing was recorded)."""
        if self._compactor is not None:
            return self._compactor.table()
        from raystack.scan.manifest_files import read_manifest

        return read_manifest(self.store, self.run_id)[0]

    def latest(self) -> dict[str, dict[str, Any]]:
        """``unit_id -> row`` of each unit's latest attempt."""
        return latest_attempts(self.table().to_pylist())


def latest_attempts(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``unit_id -> row`` of each unit's latest attempt, by the rule of :func:`latest_rows`."""
    rows = list(rows)
    if not rows:
        return {}
    keys = pa.table({
        "unit_id": pa.array([r["unit_id"] for r in rows], pa.string()),
        "attempt": pa.array([r["attempt"] for r in rows], pa.int64()),
        "finished_at": pa.array([r.get("finished_at") for r in rows], pa.timestamp("us", "UTC")),
        "row": pa.array(range(len(rows)), pa.int64()),
    })
    return {rows[i]["unit_id"]: rows[i] for i in latest_rows(keys)["row"].to_pylist()}


def _attempts_by_unit(table: pa.Table) -> tuple[pa.Table, Any]:
    """Every attempt once, sorted by (unit, attempt, finish), and the mask of each unit's
    last row. A copy of an attempt (same unit and attempt; a crash in a compaction leaves
    one) counts once, the later finish; no finish time counts as the earliest."""
    import numpy as np
    import pyarrow.compute as pc

    epoch = pa.scalar(datetime(1970, 1, 1, tzinfo=UTC), table.schema.field("finished_at").type)
    keys = pa.table({"u": table["unit_id"], "a": table["attempt"],
                     "f": pc.fill_null(table["finished_at"], epoch)})
    order = pc.sort_indices(keys, sort_keys=[("u", "ascending"), ("a", "ascending"),
                                             ("f", "ascending")])
    t = table.take(order)
    uid = t["unit_id"].to_numpy(zero_copy_only=False)
    att = t["attempt"].to_numpy()
    copy = np.zeros(len(uid), bool)  # the copies a crash in a compaction left: adjacent now
    copy[:-1] = (uid[:-1] == uid[1:]) & (att[:-1] == att[1:])
    if copy.any():
        t, uid = t.filter(pa.array(~copy)), uid[~copy]
    last = np.ones(len(uid), bool)
    last[:-1] = uid[:-1] != uid[1:]
    return t, last


def latest_rows(table: pa.Table) -> pa.Table:
    """The latest attempt row of each unit of a manifest table (unit_id, attempt and
    finished_at at least): the highest attempt; of copies of it, the later finish.

    The one rule of "which attempt of a unit counts": ``raystack status``, the resume of a
    scan and the report all read it from here.
    """
    if table.num_rows == 0:
        return table
    t, last = _attempts_by_unit(table)
    return t.filter(pa.array(last))


@dataclass
class ScanSummary:
    """What a run did, from its manifest (latest attempt per unit)."""

    run_id: str
    units: int = 0
    done: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (unit_id, uri, error)
    # unit_id -> failure_kind of each failed unit's latest attempt (None: an old manifest)
    failure_kinds: dict[str, str | None] = field(default_factory=dict)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (unit_id, uri, reason)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)  # (unit_id, uri, text)
    rows: int = 0
    frames: int = 0  # source frames the done units cover (archive frames)
    # Frames scored (stride: every N-th of `frames`) and those of them the motion gate kept
    # from the learned models, over the done units that recorded them (schema v3).
    scored_frames: int = 0
    gated_frames: int = 0
    attempts: int = 0
    retried_units: int = 0
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall_s: float = 0.0
    pending: int = 0  # units planned but with no manifest row yet (a run in flight or killed)

    @property
    def ok(self) -> bool:
        return not self.failed and self.pending == 0

    def kinds_and_errors(self) -> list[tuple[str | None, str]]:
        """``(failure_kind, error)`` of each failed unit, as the exit code weighs them."""
        return [(self.failure_kinds.get(uid), err) for uid, _, err in self.failed]

    @property
    def short_videos(self) -> int:
        """Videos skipped as too short to score (named in :attr:`skipped`)."""
        return len(self.skipped)

    @property
    def planned(self) -> int:
        """Units of the plan that score frames (the skipped videos are not among them)."""
        return self.units + self.pending - len(self.skipped)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def gated_share(self) -> float | None:
        """Share of the scored frames the gate kept from the learned models; None when no
        unit recorded its scored frames (a run written before schema v3)."""
        return self.gated_frames / self.scored_frames if self.scored_frames else None


def summarize(
    latest: Iterable[dict[str, Any]],
    *,
    run_id: str = "",
    all_rows: Iterable[dict[str, Any]] | None = None,
    expected_units: int | None = None,
) -> ScanSummary:
    """Summarise a run from its latest attempt per unit.

    Args:
        latest: the latest attempt row of each unit (:meth:`Manifest.latest` values).
        run_id: the run, for the title.
        all_rows: every attempt row, to count attempts and retried units (optional).
        expected_units: units the plan holds, so missing rows show as pending (optional).
    """
    s = ScanSummary(run_id=run_id)
    starts, ends = [], []
    for r in latest:
        if r["status"] == "done" and r["unit_id"].endswith(f"-{PROBE_SUFFIX}"):
            continue  # a probe failure fixed by a rerun: bookkeeping, not a unit of the plan
        s.units += 1
        legacy_short = r["status"] == "done" and r["unit_id"].endswith(f"-{SHORT_SUFFIX}")
        if r["status"] == "skipped" or legacy_short:
            s.skipped.append((r["unit_id"], r["uri"], r.get("error") or LEGACY_SHORT_REASON))
        elif r["status"] == "done":
            s.done += 1
            s.rows += int(r["rows"] or 0)
            s.frames += int(r["end_frame"]) - int(r["start_frame"])
            s.scored_frames += int(r.get("scored_frames") or 0)
            s.gated_frames += int(r.get("gated_frames") or 0)
            if r.get("warning"):
                s.warnings.append((r["unit_id"], r["uri"], r["warning"]))
        else:
            s.failed.append((r["unit_id"], r["uri"], r.get("error") or "unknown error"))
            s.failure_kinds[r["unit_id"]] = r.get("failure_kind")
        for k in STAGES:
            s.stage_s[k] += float(r.get(k) or 0.0)
        if r.get("started_at"):
            starts.append(r["started_at"])
        if r.get("finished_at"):
            ends.append(r["finished_at"])
    if all_rows is not None:
        attempts: dict[str, int] = {}
        for r in all_rows:
            attempts[r["unit_id"]] = attempts.get(r["unit_id"], 0) + 1
        s.attempts = sum(attempts.values())
        s.retried_units = sum(1 for n in attempts.values() if n > 1)
    if starts and ends:
        s.wall_s = max(0.0, (max(ends) - min(starts)).total_seconds())
    if expected_units is not None:
        s.pending = max(0, expected_units - s.units)
    s.failed.sort()
    s.skipped.sort()
    s.warnings.sort()
    return s


def summarize_table(
    table: pa.Table, *, run_id: str = "", expected_units: int | None = None
) -> ScanSummary:
    """:func:`summarize` of a manifest table (every attempt row, copies of an attempt
    counted once), vectorised.

    The same summary as ``summarize(latest_attempts(rows).values(), all_rows=rows, ...)``,
    but only the failed, skipped and warned units become Python objects, so ``status`` of
    a 100,000-unit run stays well under a second (bench/manifest_bench.py).
    """
    import numpy as np
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return summarize([], run_id=run_id, all_rows=[], expected_units=expected_units)
    t, last = _attempts_by_unit(table)
    firsts = np.flatnonzero(np.concatenate(([True], last[:-1])))
    per_unit = np.diff(np.append(firsts, len(last)))
    latest = t.filter(pa.array(last))

    status, ids = latest["status"], latest["unit_id"]
    is_done = pc.equal(status, "done")
    closed_probe = pc.and_(is_done, pc.ends_with(ids, f"-{PROBE_SUFFIX}"))
    kept = latest.filter(pc.invert(closed_probe))
    is_done = pc.equal(kept["status"], "done")
    legacy_short = pc.and_(is_done, pc.ends_with(kept["unit_id"], f"-{SHORT_SUFFIX}"))
    done = pc.and_(is_done, pc.invert(legacy_short))
    skipped = pc.or_(pc.equal(kept["status"], "skipped"), legacy_short)
    failed = pc.invert(pc.or_(done, skipped))

    s = ScanSummary(run_id=run_id, units=kept.num_rows)
    finished = kept.filter(done)
    s.done = finished.num_rows
    s.rows = int(pc.sum(finished["rows"]).as_py() or 0)
    s.frames = int(pc.sum(pc.subtract(finished["end_frame"], finished["start_frame"])).as_py()
                   or 0)
    for k in ("scored_frames", "gated_frames"):
        if k in finished.column_names:
            setattr(s, k, int(pc.sum(pc.fill_null(finished[k], 0)).as_py() or 0))
    for k in STAGES:
        s.stage_s[k] = float(pc.sum(pc.fill_null(kept[k], 0.0)).as_py() or 0.0)
    failed_rows = kept.filter(failed).select(["unit_id", "uri", "error", "failure_kind"])
    s.failed = sorted((r["unit_id"], r["uri"], r["error"] or "unknown error")
                      for r in failed_rows.to_pylist())
    s.failure_kinds = dict(zip(failed_rows["unit_id"].to_pylist(),
                               failed_rows["failure_kind"].to_pylist(), strict=True))
    s.skipped = sorted((r["unit_id"], r["uri"], r["error"] or LEGACY_SHORT_REASON)
                       for r in kept.filter(skipped).select(["unit_id", "uri", "error"])
                       .to_pylist())
    warned = finished.filter(pc.is_valid(finished["warning"]))
    s.warnings = sorted((r["unit_id"], r["uri"], r["warning"])
                        for r in warned.select(["unit_id", "uri", "warning"]).to_pylist())
    s.attempts = int(t.num_rows)
    s.retried_units = int((per_unit > 1).sum())
    start, end = pc.min(kept["started_at"]).as_py(), pc.max(kept["finished_at"]).as_py()
    if start is not None and end is not None:
        s.wall_s = max(0.0, (end - start).total_seconds())
    if expected_units is not None:
        s.pending = max(0, expected_units - s.units)
    return s
