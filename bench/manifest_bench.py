"""`raystack status` on a 100,000-unit run, with the manifest compacted and without.

    python bench/manifest_bench.py                 # writes bench/results/manifest_status.json
    python bench/manifest_bench.py --units 20000 --old-layout-units 0 --out /tmp/m.json

The run is synthetic (no video is scored): 100,000 units, 5% of them retried once, 0.1%
failed, in the most files a driver ever leaves (the worst case for a reader): one compacted
file of the whole run, ``--batches`` (9) batch files of 100 rows and ``--loose`` (99)
attempt files written through ``Manifest.record``. Measured:

- ``raystack status STORE --run-id R`` as a user runs it: a fresh Python process each time
  (interpreter start and imports included), ``--repeat`` times; the target is <= 2 s;
- ``raystack.scan.status()`` in-process, the same number of times;
- the same ``status()`` on the layout before compaction existed: one file per attempt
  (``--old-layout-units`` units; 0 skips it), written straight with pyarrow;
- what compaction costs the driver: ``--record-units`` rows recorded through
  ``Manifest.record`` with compaction every 1,000 rows and at the end, against the same
  rows recorded without compaction (seconds per row, compactions, time in compaction).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from machine_info import machine  # noqa: E402

from raystack.scan.manifest import Manifest, manifest_row  # noqa: E402
from raystack.scan.manifest_files import (  # noqa: E402
    BATCH_EVERY,
    COMPACT_EVERY,
    compacted_name,
)
from raystack.scan.plan import WorkUnit, unit_id  # noqa: E402
from raystack.store import Store  # noqa: E402
from raystack.store.schema import table_schema  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _units(n: int, per_video: int = 100, segment: int = 512) -> list[WorkUnit]:
    out = []
    for i in range(n):
        vid = f"cam{i // per_video:05d}-{i // per_video:08x}"
        k = i % per_video
        start, stop = 16 + k * segment, 16 + (k + 1) * segment
        out.append(WorkUnit(unit_id(vid, start, stop), vid, f"/data/cams/{vid}.mp4", start, stop,
                            16, 25.0, 16 + per_video * segment))
    return out


def _rows(units: list[WorkUnit], run_id: str) -> list[dict]:
    """Attempt rows of a finished run: 5% of the units retried, 0.1% failed for good."""
    rows = []
    timings = {"decode_s": 1.2, "flow_s": 0.6, "model_s": 9.5, "write_s": 0.1}
    for i, u in enumerate(units):
        t = T0 + timedelta(seconds=i)
        if i % 20 == 0:
            rows.append(manifest_row(u, "failed", attempt=1, error="worker died: RayActorError",
                                     worker="host:1", started_at=t, finished_at=t, run_id=run_id))
        failed = i % 1000 == 0
        rows.append(manifest_row(
            u, "failed" if failed else "done", rows=0 if failed else 2 * u.frames,
            attempt=2 if i % 20 == 0 else 1, worker="host:2", started_at=t,
            finished_at=t + timedelta(seconds=11), timings=timings, run_id=run_id,
            error="UndecodableVideoError: truncated" if failed else None))
    return rows


def _make_run(store: Store, run_id: str, units: int, batches: int, loose: int) -> int:
    """A run of ``units`` units: one compacted file, ``batches`` batch files and ``loose``
    recorded attempt files; returns the number of attempt rows."""
    all_units = _units(units)
    rows = _rows(all_units, run_id)
    cut = len(rows) - loose - batches * BATCH_EVERY
    head, tail = rows[:cut], rows[len(rows) - loose:]
    schema = table_schema("manifest")
    store.write_table("manifest", run_id, compacted_name(1),
                      pa.Table.from_pylist(head, schema=schema))
    for b in range(batches):
        part = rows[cut + b * BATCH_EVERY: cut + (b + 1) * BATCH_EVERY]
        store.write_table("manifest", run_id, compacted_name(2 + b),
                          pa.Table.from_pylist(part, schema=schema))
    m = Manifest(store, run_id)
    for r in tail:
        m.record(r)
    store.write_run_json(run_id, {"plan": {"entries": units, "units": units}})
    return len(rows)


def _old_layout(store: Store, run_id: str, units: int) -> int:
    """One Parquet file per attempt, as raystack wrote manifests before compaction."""
    rows = _rows(_units(units), run_id)
    schema = table_schema("manifest")
    folder = Path(store.uri) / "manifest" / f"run={run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        pq.write_table(pa.Table.from_pylist([r], schema=schema),
                       folder / f"{r['unit_id']}-a{r['attempt']}.parquet", compression="zstd")
    store.write_run_json(run_id, {"plan": {"entries": units, "units": units}})
    return len(rows)


def _cli_status(store: Store, run_id: str) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "raystack.cli", "status", store.uri,
                           "--run-id", run_id], env=env, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise RuntimeError(proc.stderr[-2000:])
    return wall, proc.returncode


def _inproc_status(store_uri: str, run_id: str) -> tuple[float, object]:
    from raystack.scan import status

    t = time.perf_counter()
    s = status(store_uri, run_id)
    return time.perf_counter() - t, s


def _stats(xs: list[float]) -> dict:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4),
            "max": round(max(xs), 4), "runs": [round(x, 4) for x in xs]}


def _record_cost(store: Store, n: int, rounds: int = 2) -> dict:
    """Seconds per recorded row with and without compaction, rounds interleaved so both
    see the same load of the shared machine (each row is an fsynced file: noisy)."""
    rows = _rows(_units(n), "rec")
    runs: dict[str, list[dict]] = {"without_compaction": [], "with_compaction": []}
    for k in range(rounds):
        for label, track in (("without_compaction", False), ("with_compaction", True)):
            run_id = f"rec-{label}-{k}"
            m = Manifest(store, run_id)
            spent: list[float] = []
            if track:
                m.track(compact_every=COMPACT_EVERY)
                real = m._compactor.compact

                def timed(real=real, spent=spent):
                    t = time.perf_counter()
                    uri = real()
                    spent.append(time.perf_counter() - t)
                    return uri

                m._compactor.compact = timed
            t = time.perf_counter()
            for r in rows:
                m.record({**r, "run_id": run_id})
            if track:
                m.compact()
            wall = time.perf_counter() - t
            runs[label].append({"wall_s": round(wall, 3),
                                "ms_per_row": round(1000 * wall / len(rows), 3),
                                "compactions": len(spent), "compaction_s": round(sum(spent), 3),
                                "files_left": len(store.list_files("manifest", run_id))})
    out: dict = {"rows": len(rows), "rounds": rounds}
    for label, rs in runs.items():
        out[label] = {"ms_per_row_median": statistics.median(r["ms_per_row"] for r in rs),
                      "runs": rs}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--batches", type=int, default=COMPACT_EVERY // BATCH_EVERY - 1)
    ap.add_argument("--loose", type=int, default=BATCH_EVERY - 1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--old-layout-units", type=int, default=100_000)
    ap.add_argument("--record-units", type=int, default=3_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "manifest_status.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="manifest-bench-"))
    try:
        store = Store(tmp / "store").ensure()
        t = time.perf_counter()
        rows = _make_run(store, "big", args.units, args.batches, args.loose)
        build_s = time.perf_counter() - t
        cli, inproc, codes = [], [], set()
        for _ in range(args.repeat):  # interleaved, so both see the same machine load
            wall, code = _cli_status(store, "big")
            cli.append(wall)
            codes.add(code)
            wall, summary = _inproc_status(store.uri, "big")
            inproc.append(wall)
        doc = {
            "bench": "manifest_status",
            "machine": machine(),
            "command": " ".join(["python", "bench/manifest_bench.py", *sys.argv[1:]]),
            "params": {"units": args.units, "attempt_rows": rows, "batch_files": args.batches,
                       "loose_files": args.loose, "batch_every": BATCH_EVERY,
                       "manifest_files": len(store.list_files("manifest", "big")),
                       "repeat": args.repeat, "compact_every": COMPACT_EVERY},
            "build_s": round(build_s, 2),
            "cli_status_s": _stats(cli),
            "cli_exit_codes": sorted(codes),
            "inprocess_status_s": _stats(inproc),
            "summary": {"units": summary.units, "done": summary.done,
                        "failed": len(summary.failed), "attempts": summary.attempts,
                        "retried_units": summary.retried_units, "pending": summary.pending},
            "target_s": 2.0,
        }
        doc["target_met"] = doc["cli_status_s"]["median"] <= doc["target_s"]
        if args.old_layout_units:
            t = time.perf_counter()
            old_rows = _old_layout(store, "old", args.old_layout_units)
            write_s = time.perf_counter() - t
            wall, _ = _inproc_status(store.uri, "old")
            doc["old_layout"] = {"units": args.old_layout_units, "files": old_rows,
                                 "write_s": round(write_s, 2),
                                 "inprocess_status_s": round(wall, 3)}
        if args.record_units:
            doc["record_cost"] = _record_cost(store, args.record_units)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
