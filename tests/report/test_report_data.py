"""What the report reads besides curves and events: the work units by the latest attempt of
each unit (the scan's own rule) and the fusion its options name (raystack.query.fusion)."""

from __future__ import annotations

import datetime as dt

import pytest

from raystack.query.fusion import FusionError
from raystack.report import ReportOptions
from raystack.report.collect import collect
from raystack.scan.manifest import Manifest, latest_attempts, summarize_table
from raystack.scan.manifest_files import read_manifest
from raystack.store import Store

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def attempt(uid: str, status: str, n: int, rows: int, minutes: int, err: str | None = None):
    return {"unit_id": uid, "video_id": uid, "uri": f"/a/{uid}.mp4", "status": status,
            "attempt": n, "rows": rows, "start_frame": 0, "end_frame": 40, "error": err,
            "started_at": T0 + dt.timedelta(minutes=minutes),
            "finished_at": T0 + dt.timedelta(minutes=minutes, seconds=30)}


@pytest.fixture
def run_with_retries(tmp_path, scanned_store, write_run):
    _, videos, _ = scanned_store
    st = Store(tmp_path / "store")
    write_run(st, videos)
    m = Manifest(st, "r1")
    for row in (attempt("u1", "failed", 1, 0, 0, "worker died"),  # retried, then done
                attempt("u1", "done", 2, 24, 5),
                attempt("u2", "done", 1, 24, 1),
                attempt("u3", "done", 1, 24, 2),  # done, then failed on a forced rerun
                attempt("u3", "failed", 2, 0, 9, "UndecodableVideoError: truncated")):
        m.record(row)
    return st


def test_units_and_failures_follow_the_latest_attempt_of_each_unit(run_with_retries):
    data = collect(run_with_retries, "r1", ReportOptions(sigma=0, threshold=0.5))
    assert data["units"] == [{"status": "done", "units": 2, "rows": 48},
                             {"status": "failed", "units": 1, "rows": 0}]
    assert data["failures"] == [{"unit_id": "u3", "uri": "/a/u3.mp4",
                                 "error": "UndecodableVideoError: truncated"}]
    # The same rule as `raystack status` and the scan's resume.
    table = read_manifest(run_with_retries, "r1")[0]
    s = summarize_table(table, run_id="r1")
    assert (s.done, [f[0] for f in s.failed]) == (2, ["u3"])
    latest = latest_attempts(table.to_pylist())
    assert {u: r["status"] for u, r in latest.items()} == {"u1": "done", "u2": "done",
                                                            "u3": "failed"}


def test_copies_of_an_attempt_count_once_the_later_finish_winning():
    rows = [attempt("u1", "failed", 1, 0, 0), attempt("u1", "done", 1, 5, 3),
            {**attempt("u1", "failed", 1, 0, 9), "finished_at": None}]
    assert latest_attempts(rows)["u1"]["status"] == "done"


def test_report_fusion_takes_the_runs_pair_at_its_alpha(scanned_store):
    store, _, _ = scanned_store
    data = collect(store, "r1", ReportOptions(sigma=0, alpha=0.8, fusion="weighted"))
    assert (data["fusion"], data["fusion_alpha"], data["fusion_streams"]) == \
        ("weighted", 0.8, ["fp", "fr"])
    assert {e["fusion"] for e in data["events"]} == {"weighted:0.8:fp,fr"}
    with pytest.raises(FusionError, match="needs streams"):
        collect(store, "r1", ReportOptions(fusion="max:fp,m2s2l_app"))


def test_an_empty_manifest_gives_no_units(scanned_store):
    store, _, _ = scanned_store
    data = collect(store, "r1", ReportOptions(sigma=0))
    assert data["units"] == [] and data["failures"] == []
