"""Manifest compaction: attempt files merged into one file, nothing lost on a crash."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from raystack.scan import manifest_files
from raystack.scan.manifest import (
    Manifest,
    latest_attempts,
    manifest_row,
    summarize,
    summarize_table,
)
from raystack.scan.manifest_files import Compactor, generation_of, read_manifest
from raystack.scan.plan import Outcome
from raystack.store import Store


def _row(uid, attempt, status="done", minutes=0, **kw):
    unit = Outcome(uid, uid.split("-")[0], f"/a/{uid}.mp4", status, 0, None)
    t0 = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    row = manifest_row(unit, status, attempt=attempt, rows=kw.pop("rows", 10), started_at=t0,
                       finished_at=t0 + timedelta(seconds=30), **kw)
    return {**row, "run_id": "r1", "start_frame": 4, "end_frame": 14}


def _files(store):
    return [f.rsplit("/", 1)[-1] for f in store.list_files("manifest", "r1")]


def _key(rows):
    return sorted((r["unit_id"], r["attempt"], r["status"]) for r in rows)


def test_compaction_merges_attempt_files_into_one_and_keeps_every_attempt(tmp_path):
    store = Store(tmp_path / "st").ensure()
    m = Manifest(store, "r1").track(compact_every=5)
    rows = [_row(f"u{i}", 1, "failed" if i % 4 == 0 else "done", error="x") for i in range(10)]
    rows += [_row(f"u{i}", 2, minutes=5) for i in range(0, 10, 4)]  # the retries
    for i, r in enumerate(rows):
        m.record(r)
        if i == 4:  # the fifth record triggered the first compaction
            assert _files(store) == ["compacted-0000000001.parquet"]
    assert len(_files(store)) == 1 + (len(rows) - 5) % 5  # loose files since the last one
    m.compact()
    assert _files(store) == [f"compacted-{m._compactor._generation:010d}.parquet"]
    # A fresh reader sees every attempt once, and the latest attempt of each unit.
    table, files = read_manifest(store, "r1")
    assert _key(table.to_pylist()) == _key(rows)
    latest = latest_attempts(table.to_pylist())
    assert all(latest[f"u{i}"]["status"] == "done" for i in range(10))
    # A resumed run continues the generations, and compacting nothing writes nothing.
    again = Compactor(store, "r1", every=5)
    assert again.compact() is None and len(_files(store)) == 1
    again.added(_row("u99", 1), store.write_table(
        "manifest", "r1", "u99-a1", Manifest(store, "r1").table().slice(0, 0)))
    assert generation_of(again.compact()) == m._compactor._generation + 1


def test_a_crash_in_the_middle_of_a_compaction_loses_nothing(tmp_path, monkeypatch):
    store = Store(tmp_path / "st").ensure()
    rows = [_row(f"u{i}", 1) for i in range(6)]
    m = Manifest(store, "r1").track(compact_every=1000)
    for r in rows:
        m.record(r)

    # Crash while writing the compacted file: the attempt files are all still there.
    def no_write(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(store, "write_table", no_write)
        with pytest.raises(KeyboardInterrupt):
            m.compact()
    assert len(_files(store)) == 6 and _key(read_manifest(store, "r1")[0].to_pylist()) == _key(rows)

    # Crash after publishing it, before deleting the files it replaces: every row is there
    # twice on disk, once for every reader.
    m = Manifest(store, "r1").track(compact_every=1000)
    deleted = []

    def crash_on_second_delete(path):
        if deleted:
            raise KeyboardInterrupt
        deleted.append(path)
        import os

        os.remove(path)

    class CrashingFs:  # the store's filesystem, dying in the middle of the deletes
        delete_file = staticmethod(crash_on_second_delete)

    with monkeypatch.context() as mp:
        mp.setattr(store.files, "_fs", CrashingFs())
        with pytest.raises(KeyboardInterrupt):
            m.compact()
    assert len(_files(store)) == 6  # 1 compacted + 5 attempt files not yet deleted
    table, _ = read_manifest(store, "r1")
    assert _key(table.to_pylist()) == _key(rows)
    assert status_counts(store) == (6, 6)

    from raystack.query import connect

    con = connect(store.uri)
    n, distinct = con.execute("SELECT count(*), count(DISTINCT unit_id) FROM manifest").fetchone()
    assert n == distinct == 6  # the SQL view drops the copies too
    # The next compaction (the rerun's) cleans up.
    Manifest(store, "r1").track().compact()
    assert len(_files(store)) == 1


def status_counts(store):
    s = summarize_table(read_manifest(store, "r1")[0])
    raw = summarize_table(read_manifest(store, "r1", dedupe=False)[0])  # what status reads
    assert (raw.attempts, raw.done) == (s.attempts, s.done)
    return s.attempts, s.done


def test_a_reader_racing_a_compaction_lists_again(tmp_path, monkeypatch):
    store = Store(tmp_path / "st").ensure()
    m = Manifest(store, "r1").track(compact_every=1000)
    for i in range(4):
        m.record(_row(f"u{i}", 1))
    stale = manifest_files.list_manifest(store, "r1")
    m.compact()  # removes the files of the stale listing
    calls = []
    real = manifest_files.list_manifest

    def listing(st, run_id):
        calls.append(1)
        return stale if len(calls) == 1 else real(st, run_id)

    monkeypatch.setattr(manifest_files, "list_manifest", listing)
    table, files = read_manifest(store, "r1")
    assert table.num_rows == 4 and len(files) == 1 and len(calls) >= 2


def test_vectorised_summary_equals_the_row_by_row_summary():
    rng = random.Random(0)
    rows = []
    for i in range(300):
        uid = f"v{i % 50}-{i:04d}"
        kind = rng.random()
        if kind < 0.05:
            uid = f"v{i}-short"
            rows.append(_row(uid, 1, "skipped", error=f"too short: {i}", rows=0))
            continue
        if kind < 0.08:
            uid = f"v{i}-short"  # an older store's short video: done, no reason
            rows.append(_row(uid, 1, "done", rows=0))
            continue
        if kind < 0.12:
            uid = f"v{i}-probe"
            rows.append(_row(uid, 1, "failed", error="probe failed"))
            rows.append(_row(uid, 2, "done", minutes=3))  # fixed by a rerun: not a unit
            continue
        for a in range(1, rng.randint(1, 3) + 1):
            status = "done" if rng.random() < 0.8 else "failed"
            warn = "1 undecodable frame skipped: 5" if rng.random() < 0.1 else None
            rows.append(_row(uid, a, status, minutes=rng.randint(0, 9), warning=warn,
                             error=None if status == "done" else f"bad {i}",
                             timings={"model_s": rng.random()}))
    rows[3]["finished_at"] = None  # a killed attempt with no finish time
    import pyarrow as pa

    from raystack.store.schema import table_schema

    table = pa.Table.from_pylist(rng.sample(rows, len(rows)), schema=table_schema("manifest"))
    copies = pa.concat_tables([table, table.slice(0, 40)])  # as a crash mid-compaction leaves
    got = summarize_table(copies, run_id="r", expected_units=400)
    want = summarize(latest_attempts(table.to_pylist()).values(), run_id="r",
                     all_rows=table.to_pylist(), expected_units=400)
    got.stage_s = {k: round(v, 6) for k, v in got.stage_s.items()}
    want.stage_s = {k: round(v, 6) for k, v in want.stage_s.items()}
    assert got == want
    assert got.skipped and got.failed and got.warnings and got.retried_units


def test_batches_keep_the_files_a_reader_opens_bounded(tmp_path):
    store = Store(tmp_path / "st").ensure()
    m = Manifest(store, "r1").track(compact_every=10)
    m._compactor.batch = 3
    rows = [_row(f"u{i:02d}", 1) for i in range(12)]
    seen = []
    for r in rows:
        m.record(r)
        seen.append(len(_files(store)))
    # 3 attempt files become one batch file; at 10 rows (checked every 3) all become one.
    assert seen == [1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5, 1]
    assert max(seen) <= 1 + 10 // 3 + 3 - 1
    assert _key(read_manifest(store, "r1")[0].to_pylist()) == _key(rows)
    assert (m._compactor.batches, m._compactor.compactions) == (3, 1)


def test_old_manifest_files_without_the_newer_columns_are_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = Store(tmp_path / "st").ensure()
    Manifest(store, "r1").record(_row("u1", 1))
    old = pa.Table.from_pylist([_row("u0", 1)]).drop_columns(["warning"])
    folder = tmp_path / "st" / "manifest" / "run=r1"
    pq.write_table(old, folder / "u0-a1.parquet")
    table, _ = read_manifest(store, "r1")
    assert sorted(table["unit_id"].to_pylist()) == ["u0", "u1"]
    assert table["warning"].null_count == 2
