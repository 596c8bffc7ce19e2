"""The scene of the analyst-connection attack tests (test_sandbox_attacks*.py): a store, a
secret outside it, and the checks that nothing changed and nothing leaked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from raystack.query import QueryError, run_sql
from raystack.store import Store

SECRET = "TOPSECRET-0123456789"
SCANS = ["parquet", "arrow"]


def digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):  # links are not followed: they are data
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                out[str(p.relative_to(root))] = "link:" + os.readlink(p)
            elif p.is_file():
                out[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def make_scene(tmp_path, write_scores, monkeypatch):
    """A store of one run (two videos, a threshold), a secret outside it and a working folder
    to chdir into; ``before`` holds their digests for :func:`unchanged`."""
    rng = np.random.default_rng(3)
    st = Store(tmp_path / "store").ensure()
    frames = np.arange(16, 136)
    write_scores(
        st,
        "r1",
        {
            ("cam-a", "fp"): (frames, 30 + rng.normal(0, 1, frames.size)),
            ("cam-b", "fp"): (frames, 30 + rng.normal(0, 1, frames.size)),
        },
    )
    from raystack.store import table_schema

    videos = pa.Table.from_pylist(
        [
            dict(
                video_id=v,
                uri=f"/archive/{v}.mp4",
                relpath=f"{v}.mp4",
                kind="video",
                size_bytes=1,
                etag=None,
                mtime=None,
                frames=136,
                fps=25.0,
                width=64,
                height=64,
                duration_s=5.44,
                codec="mpeg4",
                probe_error=None,
            )
            for v in ("cam-a", "cam-b")
        ],
        schema=table_schema("videos"),
    )
    st.write_table("videos", "r1", "videos", videos)
    st.write_json(
        "thresholds/good.json",
        {"name": "good", "run_id": "r1", "fusion": "fp", "sigma": 0.0, "value": 0.5},
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    shutil.copy(st.list_files("scores")[0], outside / "o.parquet")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a relative path that slipped through would land here
    s = type("Scene", (), {})()
    s.st, s.root, s.outside, s.work, s.tmp = st, Path(st.uri), outside, work, tmp_path
    s.F = st.list_files("scores")[0]  # a store file, by its real path
    s.rel = os.path.relpath(s.F, st.uri)
    s.U = f"raystack://store/{s.rel}"  # the same file as the sealed connection names it
    s.V = st.list_files("videos")[0]
    s.rows = 2 * frames.size
    s.before = {"store": digest(s.root), "outside": digest(outside), "work": digest(work)}
    return s


def unchanged(s) -> None:
    after = {"store": digest(s.root), "outside": digest(s.outside), "work": digest(s.work)}
    assert after == s.before
    assert sorted(p.name for p in s.tmp.iterdir()) == ["outside", "store", "work"]


def refused_everywhere(con, query: str) -> None:
    """``query`` fails through run_sql and through the raw connection, and shows no secret."""
    with pytest.raises(QueryError) as err:
        run_sql(con, query)
    assert SECRET not in str(err.value)
    with pytest.raises(duckdb.Error) as err:
        con.sql(query).fetchall()
    assert SECRET not in str(err.value)


def count_scores(con) -> int:
    return run_sql(con, "SELECT count(*) AS n FROM scores")["n"][0].as_py()


def copy_onto(path: str, extra: str = "") -> str:
    return f"COPY (SELECT 1 AS x) TO '{path}' (FORMAT parquet, USE_TMP_FILE false{extra})"
