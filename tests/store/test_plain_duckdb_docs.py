"""The documentation's SQL runs where it says it does: docs/store-schema.md's plain-DuckDB
queries in a DuckDB without raystack (on a store mixing current and older videos files, and
v2 score files with a v1 one),
and the README's analyst queries through raystack.connect. Videos carry run_id and a
content_id that does not depend on the archive root."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raystack.store import Store
from raystack.store.schema import table_schema

ROOT = Path(__file__).resolve().parents[2]


def sql_blocks(path: Path, after: str) -> list[str]:
    """The statements of the first ```sql block after the heading ``after``."""
    text = path.read_text()
    block = re.search(r"```sql\n(.*?)```", text[text.index(after):], re.S).group(1)
    no_comments = "\n".join(line for line in block.splitlines() if not line.startswith("--"))
    return [s.strip() for s in no_comments.split(";") if s.strip()]


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    st = Store(tmp_path / "store").ensure()
    videos = []
    for cam in ("cam01", "cam02"):
        n = 200
        f = np.arange(16, n)
        for m in ("fp", "fr"):
            drop = 10 * ((f > 80) & (f < 120))
            psnr = (32 + rng.normal(0, 1, f.size) - drop).astype(np.float32)
            box = {c: pa.array([v] * f.size, pa.int32())
                   for c, v in zip(("box_x0", "box_y0", "box_x1", "box_y1"), (0, 0, 64, 64),
                                   strict=True)}
            st.write_table("scores", "night1", f"{cam}-{m}", pa.table({
                "run_id": ["night1"] * f.size, "video_id": [f"{cam}-id"] * f.size, "frame": f,
                "timestamp_s": f / 25.0, "model": [m] * f.size, "psnr": psnr,
                "aux": pa.nulls(f.size, pa.float32()), **box}))
        videos.append({"video_id": f"{cam}-id", "uri": f"/a/{cam}.mp4",
                       "relpath": f"{cam}.mp4",
                       "kind": "video", "frames": n, "fps": 25.0, "content_id": f"sha256:{cam}"})
    st.write_table("videos", "night1", "videos",
                   pa.Table.from_pylist(videos, schema=table_schema("videos")))
    # A run written before videos carried run_id and content_id.
    old = pa.Table.from_pylist(videos, schema=table_schema("videos")).drop_columns(
        ["run_id", "content_id"])
    (Path(st.uri) / "videos" / "run=old").mkdir(parents=True)
    pq.write_table(old, Path(st.uri) / "videos" / "run=old" / "videos.parquet")
    # ... and its scores as schema v1 wrote them: no region columns.
    (Path(st.uri) / "scores" / "run=old").mkdir(parents=True)
    pq.write_table(pa.table({"run_id": ["old"] * 3, "video_id": ["cam01-id"] * 3,
                             "frame": [16, 17, 18], "timestamp_s": [0.64, 0.68, 0.72],
                             "model": ["fp"] * 3, "psnr": pa.array([30, 20, 30], pa.float32()),
                             "aux": pa.nulls(3, pa.float32())},
                            schema=table_schema("scores", 1)),
                   Path(st.uri) / "scores" / "run=old" / "u.parquet")
    manifest = [{"run_id": "night1", "unit_id": f"{v['video_id']}-u",
                 "video_id": v["video_id"],
                 "uri": v["uri"], "start_frame": 16, "end_frame": 200, "status": "done",
                 "rows": 184, "attempt": 1} for v in videos]
    st.write_table("manifest", "night1", "units",
                   pa.Table.from_pylist(manifest, schema=table_schema("manifest")))
    st.write_run_json("night1", {"started_at": "2026-01-01T00:00:00Z", "finished_at": None})
    st.write_json("thresholds/t1.json", {"name": "t1", "run_id": "night1", "fusion": "fp",
                                         "sigma": 0.0, "value": 0.7, "achieved_rate": 0.01})
    return st


def test_store_schema_plain_duckdb_queries_run_without_raystack(store, monkeypatch):
    monkeypatch.chdir(Path(store.uri).parent)
    con = duckdb.connect()  # plain DuckDB: no raystack view, macro or function
    statements = sql_blocks(ROOT / "docs" / "store-schema.md", "### Plain DuckDB")
    assert len(statements) >= 8
    results = [con.sql(q).fetchall() for q in statements]
    assert all(results), [q for q, r in zip(statements, results, strict=True) if not r]
    videos = next(r for q, r in zip(statements, results, strict=True) if "content_id" in q)
    assert sorted({row[0] for row in videos}) == ["night1", "old"]
    cameras = next(r for q, r in zip(statements, results, strict=True) if "anomalous_s" in q)
    assert sorted(row[0] for row in cameras) == ["cam01.mp4", "cam02.mp4"]
    where = next(r for q, r in zip(statements, results, strict=True) if "tile_box" in q)
    assert [(row[0], row[1], row[4]) for row in where] == [
        ("night1", "cam01-id", [0, 0, 64, 64]), ("night1", "cam02-id", [0, 0, 64, 64]),
        ("old", "cam01-id", [None] * 4)]
    assert [row[2] for row in where][2] == 17


def test_readme_analyst_queries_run_through_raystack(store):
    from raystack.query import connect, run_sql

    con = connect(store)
    statements = sql_blocks(ROOT / "README.md", "### The SQL an analyst runs")
    assert len(statements) == 3
    results = [run_sql(con, q) for q in statements]
    assert results[0].num_rows > 0 and results[1].num_rows == 2
    assert run_sql(con, "SELECT DISTINCT run_id FROM videos ORDER BY 1")["run_id"].to_pylist() \
        == ["night1", "old"]
    assert run_sql(con, "SELECT count(content_id) AS n FROM videos WHERE run_id = 'old'")[
        "n"].to_pylist() == [0]


def test_content_id_does_not_depend_on_the_archive_root(tmp_path):
    from raystack.scan.probe import probe_archive
    from raystack.synth import synthesize

    synthesize(tmp_path / "a", seed=0, n_train=0, n_test=2, frames=12, size=(64, 64))
    whole = {r["relpath"]: r for r in probe_archive(tmp_path / "a").to_pylist()}
    sub = {r["relpath"]: r for r in probe_archive(tmp_path / "a" / "test").to_pylist()}
    assert whole["test/test_001.mp4"]["video_id"] != sub["test_001.mp4"]["video_id"]
    assert whole["test/test_001.mp4"]["content_id"] == sub["test_001.mp4"]["content_id"]
    assert whole["test/test_001.mp4"]["content_id"] != whole["test/test_002.mp4"]["content_id"]
    assert re.fullmatch(r"sha256:[0-9a-f]{32}", sub["test_001.mp4"]["content_id"])
