"""Store I/O on a local folder and on a real S3 server (moto on loopback): round trips,
atomic and idempotent writes, version refusal, run.json, DuckDB over the hive layout."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_data import manifest_rows, scores, videos

from raystack.errors import SchemaVersionError
from raystack.store import Store, StoreError, layout, manifest_name, table_schema


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return Store(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return Store(f"s3://{bucket}/store")


def _put_raw(store: Store, rel: str, data: bytes) -> None:
    """Write bytes straight to the backing storage, bypassing the store's own writer."""
    fs, root = store.filesystem
    fs.create_dir(f"{root}/{rel}".rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(f"{root}/{rel}") as f:
        f.write(data)


def test_round_trip_two_runs(store):
    assert store.write_table("scores", "r1", "cam01-16-19", scores("r1")).endswith(
        "/store/scores/run=r1/cam01-16-19.parquet"
    )
    store.write_table("scores", "r1", "cam01-19-22", scores("r1", start=19))
    store.write_table("scores", "r2", "cam01-16-19", scores("r2", psnr=20.0))
    store.write_table("videos", "r1", "videos", videos())
    store.write_table("manifest", "r1", manifest_name("cam01-16-19", 1), manifest_rows("r1"))

    assert store.runs() == ["r1", "r2"]
    files = store.list_files("scores")
    assert [f.rsplit("/store/", 1)[1] for f in files] == [
        "scores/run=r1/cam01-16-19.parquet",
        "scores/run=r1/cam01-19-22.parquet",
        "scores/run=r2/cam01-16-19.parquet",
    ]
    assert store.uri.startswith("s3://") == store.is_s3 == files[0].startswith("s3://")
    assert store.exists("scores", "r2", "cam01-16-19")
    assert not store.exists("scores", "r2", "cam01-19-22")

    r1 = store.read_table("scores", run_id="r1")
    assert r1.schema.equals(table_schema("scores"))
    assert r1["frame"].to_pylist() == [16, 17, 18, 19, 20, 21]
    everything = store.read_table("scores")
    assert everything.num_rows == 9
    assert sorted(set(everything["run_id"].to_pylist())) == ["r1", "r2"]
    assert store.read_table("scores", "r2", columns=["psnr"]).column_names == ["psnr"]
    assert store.read_table("manifest", "r1")["status"].to_pylist() == ["done"]
    assert store.read_table("videos")["video_id"].to_pylist() == ["cam01-0badf00d"]
    with pytest.raises(StoreError, match=r"has no columns \['nope'\]"):
        store.read_table("scores", columns=["nope"])

    # every file records its table and schema version in the Parquet key-value metadata
    fs, root = store.filesystem
    with fs.open_input_file(f"{root}/scores/run=r1/cam01-16-19.parquet") as f:
        meta = pq.read_metadata(f).metadata
    assert meta[b"raystack.schema_version"] == b"3" and meta[b"raystack.table"] == b"scores"

    ds = store.dataset("scores")
    t = ds.to_table()
    assert t.num_rows == 9
    assert sorted(set(t["run"].to_pylist())) == ["r1", "r2"]


def test_empty_store_reads_empty_tables(store):
    store.ensure()
    t = store.read_table("scores")
    assert t.num_rows == 0 and t.schema.equals(table_schema("scores"))
    assert store.read_table("manifest", run_id="r9", columns=["status"]).column_names == ["status"]
    assert store.list_files("videos") == []
    assert store.runs() == []
    assert store.dataset("scores").to_table().num_rows == 0


def test_rewrite_is_idempotent(store):
    store.write_table("scores", "r1", "u1", scores("r1", psnr=10.0))
    store.write_table("scores", "r1", "u1", scores("r1", psnr=42.0))
    assert len(store.list_files("scores")) == 1
    assert store.read_table("scores")["psnr"].to_pylist() == [42.0, 43.0, 44.0]


def test_run_ids_that_look_numeric_stay_strings(store):
    store.write_table("scores", "20241122", "u1", scores("20241122"))
    t = store.dataset("scores").to_table()
    assert t.schema.field("run").type == pa.string()
    assert t["run"].to_pylist() == ["20241122"] * 3


def test_temp_files_are_never_read(store):
    """A writer killed between writing its temp file and the rename (or a partial upload)
    leaves a file that no reader may see."""
    store.write_table("scores", "r1", "u1", scores("r1"))
    tmp = layout.temp_name("u2.parquet")
    _put_raw(store, f"scores/run=r1/{tmp}", b"PAR1 partial garbage")
    _put_raw(store, "scores/run=r1/_tmp-u3.parquet", b"PAR1 partial garbage")
    assert [Path(f).name for f in store.list_files("scores")] == ["u1.parquet"]
    assert store.read_table("scores").num_rows == 3
    assert store.dataset("scores").to_table().num_rows == 3
    assert not store.exists("scores", "r1", "u2")


def test_failed_local_write_leaves_nothing(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    store.write_table("scores", "r1", "u1", scores("r1", psnr=10.0))

    def crash(src, dst):
        msg = "disk full"
        raise OSError(msg)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write_table("scores", "r1", "u1", scores("r1", psnr=99.0))
    with pytest.raises(OSError, match="disk full"):
        store.write_table("scores", "r1", "u2", scores("r1"))
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "store/scores/run=r1").iterdir()) == ["u1.parquet"]
    assert store.read_table("scores")["psnr"].to_pylist() == [10.0, 11.0, 12.0]


def test_schema_errors_write_nothing(store):
    with pytest.raises(StoreError, match=r"missing columns \['psnr'\]"):
        store.write_table("scores", "r1", "u1", scores("r1").drop_columns(["psnr"]))
    with pytest.raises(StoreError, match="written to run 'r2'"):
        store.write_table("scores", "r2", "u1", scores("r1"))
    with pytest.raises(StoreError, match="invalid file name '../u1'"):
        store.write_table("scores", "r1", "../u1", scores("r1"))
    store.ensure()
    assert store.list_files("scores") == []


def test_version_refusal(store):
    _put_raw(store, "_raystack.json", json.dumps({"schema_version": 4}).encode())
    said = (r"_raystack.json\) was written with schema version 4, "
            r"but this raystack reads versions 1, 2, 3")
    for op in (Store(store.uri).check, Store(store.uri).ensure, lambda: store.read_table("scores")):
        with pytest.raises(SchemaVersionError, match=said):
            op()
    with pytest.raises(SchemaVersionError, match="schema version 4"):
        Store(store.uri).write_table("scores", "r1", "u1", scores("r1"))


def test_not_a_store_is_refused(store):
    with pytest.raises(SchemaVersionError, match="does not exist"):
        Store(store.uri).check()
    _put_raw(store, "notes.txt", b"hello")
    with pytest.raises(SchemaVersionError, match="records no raystack schema version"):
        Store(store.uri).check()
    _put_raw(store, "_raystack.json", b"{broken")
    with pytest.raises(SchemaVersionError, match="not valid JSON"):
        Store(store.uri).check()


def test_marker_is_written_once_and_checked(store):
    store.write_table("videos", "r1", "videos", videos())
    fs, root = store.filesystem
    with fs.open_input_stream(f"{root}/_raystack.json") as f:
        doc = json.loads(f.read())
    assert doc["schema_version"] == 3 and "created_at" in doc and "raystack_version" in doc
    again = Store(store.uri).ensure()  # a second writer keeps the first marker
    with fs.open_input_stream(f"{root}/_raystack.json") as f:
        assert json.loads(f.read())["created_at"] == doc["created_at"]
    assert again.check() is again


def test_run_json_and_documents(store):
    start = dt.datetime(2024, 11, 22, 10, 0, tzinfo=dt.UTC)
    info = {"config": {"model": "vqmau_fp.ped2"}, "ckpt_sha256": "ab" * 32, "started_at": start}
    uri = store.write_run_json("r1", info)
    assert uri.endswith("/store/runs/r1/run.json")
    doc = store.read_run_json("r1")
    assert doc["config"] == {"model": "vqmau_fp.ped2"}
    assert doc["started_at"] == "2024-11-22T10:00:00+00:00"
    assert doc["schema_version"] == 3 and doc["run_id"] == "r1"
    assert store.runs() == ["r1"]
    with pytest.raises(StoreError, match="run 'r2' has no run.json"):
        store.read_run_json("r2")

    store.write_json("calibration/r1.json", {"threshold": 0.8})
    store.write_json("calibration/r1.json", {"threshold": 0.7})
    assert store.read_json("calibration/r1.json") == {"threshold": 0.7}
    assert store.read_json("calibration/none.json", default=None) is None
    with pytest.raises(StoreError, match="no JSON document"):
        store.read_json("calibration/none.json")
    with pytest.raises(StoreError, match="invalid path segment"):
        store.write_json("../escape.json", {})
    with pytest.raises(TypeError, match="cannot store a object"):
        store.write_json("x.json", {"o": object()})


def test_store_pickles_as_its_uri(store):
    store.write_table("scores", "r1", "u1", scores("r1"))
    again = pickle.loads(pickle.dumps(store))
    assert again.uri == store.uri and again.is_s3 == store.is_s3
    assert again.read_table("scores").num_rows == 3


def test_duckdb_reads_the_layout(store):
    import duckdb

    store.write_table("scores", "r1", "u1", scores("r1"))
    store.write_table("scores", "r2", "u1", scores("r2", psnr=20.0))
    _put_raw(store, f"scores/run=r1/{layout.temp_name('u2.parquet')}", b"partial")
    con = duckdb.connect()
    if store.is_s3:
        # DuckDB's httpfs cannot be installed here; Arrow reads S3 and DuckDB scans the dataset.
        con.register("scores", store.dataset("scores"))
        src = "scores"
    else:
        src = f"read_parquet('{store.uri}/scores/*/*.parquet', hive_partitioning=true)"
    q = f"SELECT run, count(*) AS n, max(psnr) AS top FROM {src} GROUP BY run ORDER BY run"
    t = con.sql(q).to_arrow_table()
    assert t["run"].to_pylist() == ["r1", "r2"]
    assert t["n"].to_pylist() == [3, 3]
    assert t["top"].to_pylist() == [32.0, 22.0]


def test_bad_uris():
    with pytest.raises(StoreError, match="only local paths and s3://"):
        Store("gs://bucket/x")
    assert Store("file:///tmp/x").uri == "/tmp/x"
    assert Store("s3://b/p/").uri == "s3://b/p"
    assert not Store("relative/dir").is_s3 and Path(Store("relative/dir").uri).is_absolute()


def test_missing_bucket_is_a_clear_error(s3_env):
    with pytest.raises((StoreError, SchemaVersionError), match="rs-no-such-bucket"):
        Store("s3://rs-no-such-bucket/store").check()


def test_s3_write_is_one_put_per_file(s3_bucket, monkeypatch):
    from raystack.io.s3 import s3_client

    client = s3_client()
    keys: list[str] = []
    real_put = client.put_object

    def spy(**kw):
        keys.append(kw["Key"])
        return real_put(**kw)

    monkeypatch.setattr(client, "put_object", spy)
    store = Store(f"s3://{s3_bucket}/store")
    store.write_table("scores", "r1", "u1", scores("r1"))
    store.write_table("scores", "r1", "u1", scores("r1"))
    assert keys == ["store/_raystack.json"] + ["store/scores/run=r1/u1.parquet"] * 2
    uploads = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert uploads == []
