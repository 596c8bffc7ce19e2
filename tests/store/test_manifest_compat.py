"""Manifests written before the ``failure_kind`` column still read, with the column null."""

from __future__ import annotations

import pyarrow.parquet as pq
from store_data import manifest_rows

from raystack.scan.manifest import Manifest, manifest_row
from raystack.scan.plan import WorkUnit
from raystack.store import Store


def test_an_old_manifest_file_without_failure_kind_reads_with_nulls(tmp_path):
    st = Store(tmp_path / "store").ensure()
    old = manifest_rows("r1").drop_columns(["failure_kind"])  # as written before the column
    part = tmp_path / "store" / "manifest" / "run=r1"
    part.mkdir(parents=True)
    pq.write_table(old, part / "cam01-16-19-a1.parquet")
    unit = WorkUnit(unit_id="cam01-19-22", video_id="cam01-0badf00d", uri="s3://cams/cam01.mp4",
                    start=19, stop=22, context=4, num_frames=250, fps=25.0)
    Manifest(st, "r1").record(manifest_row(unit, "failed", error="worker died",
                                           failure_kind="infrastructure"))

    rows = {r["unit_id"]: r for r in Manifest(st, "r1").table().to_pylist()}
    assert rows["cam01-16-19"]["failure_kind"] is None
    assert rows["cam01-19-22"]["failure_kind"] == "infrastructure"

    from raystack.query import connect

    con = connect(st)
    got = con.sql("SELECT unit_id, failure_kind FROM manifest ORDER BY unit_id").fetchall()
    assert got == [("cam01-16-19", None), ("cam01-19-22", "infrastructure")]


def test_a_store_with_only_old_manifests_has_the_column_null_in_sql(tmp_path):
    st = Store(tmp_path / "store").ensure()
    part = tmp_path / "store" / "manifest" / "run=r1"
    part.mkdir(parents=True)
    pq.write_table(manifest_rows("r1").drop_columns(["failure_kind"]),
                   part / "cam01-16-19-a1.parquet")
    from raystack.query import connect

    got = connect(st).sql("SELECT unit_id, failure_kind FROM manifest").fetchall()
    assert got == [("cam01-16-19", None)]
