"""One definition per concept: fusion specs (raystack.query.fusion) and the SQL normalisation
and fusion that `raystack eval` runs too (connect_scores over an Arrow table)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raystack.query import QueryError, run_sql
from raystack.query.connection import connect_scores
from raystack.query.fusion import (
    Fusion,
    FusionError,
    order_streams,
    parse_fusion,
    resolve_fusion,
)


def rows(data: dict) -> pa.Table:
    """{(run, video, model): psnr values at frames 0..n-1} as score rows."""
    cols: dict[str, list] = {k: [] for k in ("run_id", "video_id", "frame", "model", "psnr")}
    for (run, vid, model), psnr in data.items():
        for f, p in enumerate(psnr):
            for k, v in zip(cols, (run, vid, f, model, float(p)), strict=True):
                cols[k].append(v)
    return pa.table({**cols, "timestamp_s": [None] * len(cols["frame"])})


def column(con, sql: str, name: str, params=None) -> list:
    return run_sql(con, sql, params)[name].to_pylist()


def test_normalise_and_anomaly_are_the_sql_macro():
    # Ported from the numpy minmax_normalise/anomaly_from_psnr, now defined once in SQL.
    con = connect_scores(rows({("r", "v", "fp"): [30.0, 20.0, 25.0],
                               ("r", "flat", "fp"): [5.0, 5.0]}))
    q = "SELECT norm_psnr, anomaly FROM normalised() WHERE video_id = ? ORDER BY frame"
    np.testing.assert_allclose(column(con, q, "norm_psnr", ["v"]), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(column(con, q, "anomaly", ["v"]), [0.0, 1.0, 0.5])
    # A constant series has no spread: "as normal as this video gets", never NaN.
    np.testing.assert_allclose(column(con, q, "norm_psnr", ["flat"]), [1.0, 1.0])


def test_weighted_fusion_bounds_are_the_sql_macro():
    # Ported from the numpy weighted_fusion. Anomalies: fp [0, 1, 1], fr [1, 0, 1].
    con = connect_scores(rows({("r", "v", "fp"): [30.0, 20.0, 20.0],
                               ("r", "v", "fr"): [20.0, 30.0, 20.0]}))
    q = ("SELECT score FROM fused(fusion := 'weighted', alpha := ?, sigma := 0) "
         "ORDER BY frame")
    np.testing.assert_allclose(column(con, q, "score", [0.25]), [0.75, 0.25, 1.0])
    with pytest.raises(QueryError, match="alpha must be in"):
        column(con, q, "score", [1.5])


def test_weighted_over_three_streams_weighs_the_mean_of_the_first_against_the_last():
    # Anomalies: fp [0, 1, 1, 0.5], fr [1, 0, 1, 0.5], presence [0, 0, 1, 1]; frame 3 lacks
    # presence, so (as for a pair) it is not fused.
    con = connect_scores(rows({("r", "v", "fp"): [30.0, 20.0, 20.0, 25.0],
                               ("r", "v", "fr"): [20.0, 30.0, 20.0, 25.0],
                               ("r", "v", "presence"): [0.0, 0.0, -30.0]}))
    q = ("SELECT fusion, score FROM fused(fusion := 'weighted', alpha := 0.75, "
         "streams := ['fp', 'fr', 'presence'], sigma := 0) ORDER BY frame")
    assert set(column(con, q, "fusion")) == {"weighted:0.75:fp,fr,presence"}
    np.testing.assert_allclose(column(con, q, "score"),
                               [0.75 * 0.5, 0.75 * 0.5, 0.75 + 0.25])
    # The parser names it so, and its macro arguments give the same rows.
    fz = parse_fusion("weighted:0.75:fp,fr,presence")
    assert fz == Fusion("weighted", ("fp", "fr", "presence"), 0.75)
    assert fz.macro_args() == {"fusion": "weighted", "alpha": 0.75,
                               "streams": ["fp", "fr", "presence"]}
    assert parse_fusion(fz.name) == fz
    with pytest.raises(FusionError, match="two or more streams"):
        parse_fusion("weighted:0.5:fp")
    # Two streams keep their meaning: alpha weighs the first.
    two = ("SELECT score FROM fused(fusion := 'weighted', alpha := 0.75, "
           "streams := ['fp', 'presence'], sigma := 0) ORDER BY frame")
    np.testing.assert_allclose(column(con, two, "score"), [0.0, 0.75, 1.0])


def test_global_normalisation_spans_the_videos_of_a_run_per_stream():
    a, b, c = [30.0, 28.0, 29.0], [20.0, 24.0], [10.0, 50.0]
    con = connect_scores(rows({("r", "va", "fp"): a, ("r", "vb", "fp"): b,
                               ("r", "va", "fr"): [1.0, 2.0, 3.0], ("q", "va", "fp"): c}))
    q = ("SELECT anomaly FROM normalised(normalise := ?) WHERE run_id = 'r' AND model = 'fp' "
         "ORDER BY video_id, frame")
    lo, hi = min(a + b), max(a + b)
    np.testing.assert_allclose(column(con, q, "anomaly", ["global"]),
                               [1 - (x - lo) / (hi - lo) for x in a + b])
    per_video = [1 - (x - min(v)) / (max(v) - min(v)) for v in (a, b) for x in v]
    np.testing.assert_allclose(column(con, q, "anomaly", ["video"]), per_video)
    # Through smoothed() and fused(), too.
    fq = ("SELECT score FROM fused(fusion := 'fp', sigma := 0, normalise := 'global', "
          "run := 'r') ORDER BY video_id, frame")
    np.testing.assert_allclose(column(con, fq, "score"), [1 - (x - lo) / (hi - lo) for x in a + b])
    with pytest.raises(QueryError, match="normalise must be 'video' or 'global', got 'clip'"):
        column(con, "SELECT * FROM fused(fusion := 'fp', normalise := 'clip')", "score")


def test_oracle_parses_only_where_labels_are_allowed():
    with pytest.raises(FusionError, match="exists only in `raystack eval`"):
        parse_fusion("oracle")
    assert parse_fusion("oracle:fr,fp", allow_oracle=True) == Fusion("oracle", ("fr", "fp"))
    assert resolve_fusion("oracle", ["motion", "fr", "diff", "fp"],
                          allow_oracle=True).name == "oracle:fp,fr"
    with pytest.raises(FusionError, match="exactly two streams"):
        resolve_fusion("oracle", ["fp"], allow_oracle=True)
    with pytest.raises(FusionError, match="but the run has only"):
        resolve_fusion("oracle:fp,m2s2l_app", ["fp", "fr"], allow_oracle=True)
    with pytest.raises(FusionError, match="test labels"):
        Fusion("oracle", ("fp", "fr")).macro_args()


def test_stream_order_puts_the_frame_stream_first():
    assert order_streams(["motion", "fr", "diff", "fp"]) == ["fp", "fr", "diff", "motion"]
    assert order_streams(["m2s2l_mot", "m2s2l_app"]) == ["m2s2l_app", "m2s2l_mot"]


def test_alpha_reweights_auto_and_a_bare_weighted_on_the_runs_pair():
    pair = ["m2s2l_mot", "m2s2l_app", "diff"]
    assert resolve_fusion("auto", pair, alpha=0.7).name == "weighted:0.7:m2s2l_app,m2s2l_mot"
    assert resolve_fusion("weighted", pair, alpha=0.7).name == "weighted:0.7:m2s2l_app,m2s2l_mot"
    assert resolve_fusion("weighted", ["fp", "fr"]).name == "weighted:0.5:fp,fr"  # no alpha
    assert resolve_fusion("auto", ["fp", "diff"], alpha=0.7).name == "fp"
    with pytest.raises(FusionError, match="weighted fusion needs two streams"):
        resolve_fusion("weighted", ["fp", "diff"], alpha=0.7)
    assert resolve_fusion("max:fp,fr", ["fp", "fr"], alpha=0.7).name == "max:fp,fr"
