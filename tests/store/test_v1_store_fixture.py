"""A store written by schema-v1 raystack (commit 22f67fd) opens and queries with this code.

tests/data/v1_store was made by that commit's own CLI (see tests/data/README.md): `raystack
synth` (2 test videos, 40 frames, 64x64), `raystack scan` with tiny random-weight FP/FR
checkpoints (streams fp, fr, diff, motion; run v1run) and `raystack calibrate` (threshold
v1cal). Its files carry no region columns: every one reads as NULL.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from raystack.cli import app
from raystack.query import connect, find_events
from raystack.store import Store
from raystack.store.schema import REGION_COLUMNS

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def v1_store(tmp_path):
    """A copy, so no test can change the committed fixture."""
    root = tmp_path / "v1_store"
    shutil.copytree(DATA / "v1_store", root)
    return Store(root)


def test_fixture_is_v1():
    assert json.loads((DATA / "v1_store" / "_raystack.json").read_text())["schema_version"] == 1
    for path in (DATA / "v1_store" / "scores").rglob("*.parquet"):
        schema = pq.read_schema(path)
        assert schema.metadata[b"raystack.schema_version"] == b"1"
        assert "box_x0" not in schema.names


def test_connect_scores_view_and_fused_on_a_v1_store(v1_store):
    con = connect(v1_store)
    n, boxes = con.sql("SELECT count(*), count(box_x0) + count(patch_x0) + count(tiles) "
                       "+ count(psnr_mean) + count(gated) FROM scores").fetchall()[0]
    assert n == 288 and boxes == 0
    cols = con.sql("SELECT * FROM scores LIMIT 0").columns
    assert cols[-len(REGION_COLUMNS) - 1:] == [*REGION_COLUMNS, "gated"]
    fused = con.sql("SELECT count(*), min(score), max(score) FROM fused(fusion := 'weighted', "
                    "sigma := 0)").fetchall()[0]
    assert fused == (72, 0.0, 1.0)
    runs = con.sql("SELECT run_id, videos, streams FROM runs").fetchall()
    assert runs == [("v1run", 2, "diff,fp,fr,motion")]


def test_events_on_a_v1_store_have_null_boxes(v1_store):
    ev = find_events(v1_store, fusion="fp", sigma=0, threshold=0.5, min_frames=1)
    assert ev.num_rows == 4 and ev["peak_frame"].null_count == 0
    for c in ("box_x0", "box_y0", "box_x1", "box_y1", "patch_x0", "patch_y1"):
        assert ev[c].null_count == ev.num_rows
    calibrated = find_events(v1_store, calibrated="v1cal")
    assert set(calibrated["fusion"].to_pylist()) <= {"fp"}


def test_cli_eval_status_and_events_on_a_v1_store(v1_store, tmp_path):
    runner = CliRunner()

    def invoke(*args):
        r = runner.invoke(app, [str(a) for a in args])
        return r.exit_code, r.output

    code, out = invoke("status", v1_store.uri, "--run-id", "v1run")
    assert code == 0, out
    assert "2/2" in out
    code, out = invoke("eval", v1_store.uri, "--labels", DATA / "v1_labels" / "labels.json",
                       "--run-id", "v1run", "--sigma", "0", "--out", tmp_path / "eval")
    assert code == 0, out
    doc = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert doc["run_id"] == "v1run" and 0.0 <= doc["micro_auc"] <= 1.0
    code, out = invoke("events", v1_store.uri, "--fusion", "fp", "--sigma", "0",
                       "--threshold", "0.5", "--min-frames", "1", "--format", "csv")
    assert code == 0, out
    assert out.splitlines()[0].count("box_x0") == 1 and len(out.splitlines()) == 5
    # Reading never upgrades: the store still says v1, so v1 raystack still opens it.
    assert json.loads(Path(v1_store.uri, "_raystack.json").read_text())["schema_version"] == 1


def test_arrow_scan_of_a_v1_store_and_a_v2_run_beside_it(v1_store):
    """A v2 run written into the v1 store: both read, the v1 rows with NULL regions."""
    import pyarrow as pa

    t = pa.table({"run_id": ["v2run"] * 2, "video_id": ["cam"] * 2, "frame": [0, 1],
                  "timestamp_s": [0.0, 0.04], "model": ["fp"] * 2,
                  "psnr": pa.array([30.0, 20.0], pa.float32()),
                  "aux": pa.nulls(2, pa.float32()), "box_x0": pa.array([8, 16], pa.int32())})
    v1_store.write_table("scores", "v2run", "u", t)
    for scan in ("parquet", "arrow"):
        con = connect(v1_store, scan=scan)
        got = con.sql("SELECT run_id, count(*), count(box_x0), max(box_x0) FROM scores "
                      "GROUP BY ALL ORDER BY 1").fetchall()
        assert got == [("v1run", 288, 0, None), ("v2run", 2, 2, 16)], scan
    marker = json.loads(Path(v1_store.uri, "_raystack.json").read_text())
    assert marker["schema_version"] == 3 and marker["upgraded_from"] == 1
