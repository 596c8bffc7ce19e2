"""Schema v2: the region columns of scores, v1 files read with them NULL, newer versions
refused with a message that names the file, its version and the versions read."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raystack.errors import SchemaVersionError
from raystack.store import Store, table_schema
from raystack.store.schema import READ_VERSIONS, REGION_COLUMNS, SCHEMA_VERSION, check_version
from tests.store.store_data import scores


def v1_file(path: Path, table: pa.Table) -> None:
    """Write ``table`` as raystack v1 wrote scores: the v1 schema and its metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.cast(table_schema("scores", 1)), path)


def test_v2_scores_schema_adds_nullable_region_columns_after_aux():
    v1, v2 = table_schema("scores", 1), table_schema("scores", 2)
    assert SCHEMA_VERSION == 3 and READ_VERSIONS == (1, 2, 3)
    assert v2.names == [*v1.names, *REGION_COLUMNS]
    assert v2.names[v2.names.index("aux") + 1] == "psnr_mean"
    assert str(v2.field("tiles").type) == "int16" and str(v2.field("box_x0").type) == "int32"
    assert all(v2.field(c).nullable for c in REGION_COLUMNS)
    for t in ("videos", "manifest"):
        assert table_schema(t, 2).names == table_schema(t, 1).names


def test_check_version_reads_v1_v2_and_names_newer():
    assert check_version(1, "x") == 1 and check_version(b"2", "x") == 2
    with pytest.raises(SchemaVersionError,
                       match=r"f.parquet was written with schema version 4, but this raystack "
                             r"reads versions 1, 2, 3 \(writes 3\); upgrade raystack"):
        check_version("4", "f.parquet")


def test_v1_files_read_with_region_columns_null(tmp_path):
    st = Store(tmp_path / "store").ensure()
    v1_file(tmp_path / "store" / "scores" / "run=old" / "u.parquet", scores("old"))
    st.write_table("scores", "new", "u", scores("new"))
    t = st.read_table("scores").sort_by("run_id")
    assert t.schema.equals(table_schema("scores"))
    assert t.num_rows == 6 and all(t[c].null_count == 6 for c in REGION_COLUMNS)

    from raystack.query import connect

    con = connect(st)
    got = con.sql("SELECT run_id, count(*), count(box_x0), count(psnr_mean) FROM scores "
                  "GROUP BY ALL ORDER BY 1").fetchall()
    assert got == [("new", 3, 0, 0), ("old", 3, 0, 0)]
    types = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE scores)").fetchall())
    assert types["tiles"] == "SMALLINT" and types["box_y1"] == "INTEGER"


def test_writer_stores_region_columns(tmp_path):
    st = Store(tmp_path / "store")
    t = scores("r1").append_column("box_x0", pa.array([0, 64, 128], pa.int32()))
    path = st.write_table("scores", "r1", "u", t)
    meta = pq.read_schema(path).metadata
    assert meta[b"raystack.schema_version"] == b"3"
    assert st.read_table("scores")["box_x0"].to_pylist() == [0, 64, 128]


def test_file_of_a_newer_version_is_refused_naming_it(tmp_path):
    st = Store(tmp_path / "store").ensure()
    path = tmp_path / "store" / "scores" / "run=r9" / "u.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(scores("r9").replace_schema_metadata(
        {"raystack.table": "scores", "raystack.schema_version": "4"}), path)
    said = r"run=r9/u.parquet was written with schema version 4, .* reads versions 1, 2, 3"
    with pytest.raises(SchemaVersionError, match=said):
        st.read_table("scores")
    from raystack.query import connect

    with pytest.raises(SchemaVersionError, match=said):
        connect(st)


def test_run_json_of_a_newer_version_is_refused(tmp_path):
    st = Store(tmp_path / "store")
    st.write_run_json("r1", {"schema_version": 4})
    with pytest.raises(SchemaVersionError, match=r"runs/r1/run.json was written with schema "
                                                 r"version 4"):
        st.read_run_json("r1")


def test_writing_into_a_v1_store_upgrades_its_marker(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    (root / "_raystack.json").write_text(json.dumps({"schema_version": 1, "created_at": "t0"}))
    assert Store(root).check().read_table("scores").num_rows == 0  # reading changes nothing
    assert json.loads((root / "_raystack.json").read_text())["schema_version"] == 1
    Store(root).write_table("scores", "r1", "u", scores("r1"))
    doc = json.loads((root / "_raystack.json").read_text())
    assert doc == {"schema_version": 3, "created_at": "t0", "upgraded_from": 1}
