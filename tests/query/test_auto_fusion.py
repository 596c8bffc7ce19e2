"""fusion := 'auto' has one definition, the SQL macro auto_choice (schemas/sql/v3_fusion.sql):
Python's resolve_fusion asks DuckDB for it, and the SQL fused() applies it per run."""

from __future__ import annotations

import pyarrow as pa
import pytest

from raystack.query import QueryError, run_sql
from raystack.query import fusion as fusion_mod
from raystack.query.connection import connect_scores
from raystack.query.fusion import FusionError, auto_choice, resolve_fusion
from raystack.scene_prior import REFERENCE_STREAMS
from raystack.store.schema import FUSION_SQL, sql_text

# A run's streams -> the fusion 'auto' takes (None: it cannot choose).
CASES = {
    ("fr",): "fr",
    ("fp", "fr"): "weighted:0.5:fp,fr",
    ("m2s2l_app", "m2s2l_mot"): "weighted:0.5:m2s2l_app,m2s2l_mot",
    ("diff", "fp", "motion"): "fp",
    ("diff", "fp", "fr", "motion"): "weighted:0.5:fp,fr",
    ("diff", "fp", "motion", "presence"): "fp",  # the scene prior's stream is a reference
    ("diff", "fp", "fr", "motion", "presence"): "weighted:0.5:fp,fr",
    ("diff", "motion", "presence"): None,
    ("diff",): "diff",
    ("diff", "motion"): None,
    ("fp", "m2s2l_app"): None,
    ("fp", "fr", "m2s2l_app", "m2s2l_mot"): None,
}


def one_run(streams: tuple[str, ...]) -> pa.Table:
    n = 3 * len(streams)
    return pa.table({"run_id": ["r"] * n, "video_id": ["v"] * n,
                     "frame": [f for _ in streams for f in range(3)],
                     "model": [m for m in streams for _ in range(3)],
                     "psnr": [30.0, 20.0, 25.0] * len(streams), "timestamp_s": [None] * n})


@pytest.mark.parametrize(("streams", "expected"), CASES.items())
def test_python_and_sql_auto_agree(streams, expected):
    con = connect_scores(one_run(streams))
    if expected is None:
        with pytest.raises(FusionError, match="choose with --fusion"):
            resolve_fusion("auto", list(streams))
        with pytest.raises(QueryError, match="fusion auto cannot choose"):
            run_sql(con, "SELECT * FROM fused(sigma := 0)")
        return
    assert resolve_fusion("auto", list(streams)).name == expected
    got = run_sql(con, "SELECT DISTINCT fusion FROM fused(sigma := 0)")["fusion"].to_pylist()
    assert got == [expected]


def test_sql_baselines_are_the_scorers():
    con = connect_scores(one_run(("fp",)))
    (sql,) = con.execute("SELECT auto_baselines()").fetchone()
    assert tuple(sql) == REFERENCE_STREAMS


def test_python_auto_is_the_sql_macro(monkeypatch):
    # Change the rule in SQL only (a third baseline, 'fp'): Python must follow it.
    text = sql_text(FUSION_SQL).replace("['diff', 'motion', 'presence']",
                                       "['diff', 'motion', 'presence', 'fp']")
    assert text != sql_text(FUSION_SQL)
    monkeypatch.setattr(fusion_mod, "sql_text", lambda name: text)
    auto_choice.cache_clear()
    try:
        assert resolve_fusion("auto", ["fp", "fr"]).name == "fr"
    finally:
        auto_choice.cache_clear()
