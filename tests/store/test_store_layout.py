"""Store naming rules and schema conformance: pure functions, no I/O."""

from __future__ import annotations

import pyarrow as pa
import pytest
from store_data import scores

from raystack.store import StoreError, conform_table, layout, manifest_name, table_schema


@pytest.mark.parametrize("bad", ["", "a/b", "..", "a..b", "x=y", ".hidden", "_tmp1", "a b",
                                 "a*", "x" * 201, "a\\b"])
def test_invalid_names_are_refused(bad):
    with pytest.raises(StoreError, match="invalid run id"):
        layout.table_relpath("scores", bad, "u1")
    with pytest.raises(StoreError, match="invalid file name"):
        layout.table_relpath("scores", "r1", bad)


def test_paths_and_names():
    rel = layout.table_relpath("scores", "r1", "cam01-0-512")
    assert rel == "scores/run=r1/cam01-0-512.parquet"
    assert layout.run_json_relpath("2024-11-22T10:00:00") == "runs/2024-11-22T10:00:00/run.json"
    assert manifest_name("cam01-0-512", 2) == "cam01-0-512-a2"
    with pytest.raises(StoreError, match="attempt"):
        manifest_name("u", 0)
    with pytest.raises(StoreError, match="unknown store table 'events'"):
        layout.table_relpath("events", "r1", "u")
    assert layout.doc_relpath("calibration/r1.json") == "calibration/r1.json"
    for bad in ("../x.json", "/abs.json", "_raystack.json", "scores/x.json", "a//b.json"):
        with pytest.raises(StoreError):
            layout.doc_relpath(bad)


def test_temp_names_are_invisible_to_readers_and_globs():
    tmp = layout.temp_name("cam01-0-512.parquet")
    assert tmp.startswith(".") and not tmp.endswith(".parquet")
    assert not layout.is_data_file(tmp)
    assert layout.is_data_file("cam01-0-512.parquet")
    assert layout.temp_name("a.parquet") != layout.temp_name("a.parquet")


def test_conform_reorders_and_casts():
    t = scores().select(["psnr", "model", "frame", "aux", "run_id", "timestamp_s", "video_id"])
    t = t.set_column(2, "frame", pa.array([16, 17, 18], pa.int32()))
    out = conform_table("scores", t, "r1")
    assert out.schema.equals(table_schema("scores"))
    assert out.schema.metadata[b"raystack.schema_version"] == b"3"
    assert out["frame"].to_pylist() == [16, 17, 18]


def test_conform_errors_name_the_columns():
    with pytest.raises(StoreError, match=r"missing columns \['psnr'\], unexpected columns \['x'\]"):
        bad = scores().drop_columns(["psnr"]).append_column("x", pa.array([1] * 3))
        conform_table("scores", bad)
    with pytest.raises(StoreError, match="column 'frame': cannot cast"):
        conform_table("scores", scores().set_column(2, "frame", pa.array(["a", "b", "c"])))
    with pytest.raises(StoreError, match="column 'psnr' has 1 nulls"):
        conform_table("scores", scores().set_column(5, "psnr", pa.array([1.0, None, 2.0])))
    with pytest.raises(StoreError, match=r"carry run_id \['r2'\], but are written to run 'r1'"):
        conform_table("scores", scores(run_id="r2"), "r1")
    with pytest.raises(StoreError, match="must be a pyarrow.Table"):
        conform_table("scores", {"run_id": ["r1"]})
    with pytest.raises(StoreError, match="unknown store table"):
        conform_table("events", scores())
