"""Every derived view of the SQL layer against an independent numpy/scipy computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from raystack.query import connect, run_sql


def anomaly(psnr: np.ndarray) -> np.ndarray:
    p = np.asarray(psnr, np.float32).astype(np.float64)
    span = p.max() - p.min()
    return np.zeros_like(p) if span == 0 else 1.0 - (p - p.min()) / span


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter1d(x, sigma, mode="mirror", truncate=4.0) if sigma > 0 else x


def by_key(table, keys, value):
    """{key tuple: (frames sorted, values in frame order)} from an Arrow result."""
    d = table.to_pydict()
    out: dict = {}
    for i in range(table.num_rows):
        out.setdefault(tuple(d[k][i] for k in keys), []).append((d["frame"][i], d[value][i]))
    return {k: (np.array([f for f, _ in sorted(v)]), np.array([x for _, x in sorted(v)]))
            for k, v in out.items()}


@pytest.fixture
def con(random_store):
    st, data = random_store
    c = connect(st)
    yield c, data
    c.close()


def test_raw_views_have_schema_columns_and_runs(con):
    c, data = con
    t = run_sql(c, "SELECT run_id, count(*) AS n FROM scores GROUP BY run_id ORDER BY run_id")
    expected = {r: sum(len(f) for f, _ in d.values()) for r, d in data.items()}
    assert dict(zip(t["run_id"].to_pylist(), t["n"].to_pylist(), strict=True)) == expected
    cols = run_sql(c, "SELECT * FROM scores LIMIT 0").column_names
    assert cols == ["run_id", "video_id", "frame", "timestamp_s", "model", "psnr", "aux",
                    "psnr_mean", "tiles", "box_x0", "box_y0", "box_x1", "box_y1",
                    "patch_x0", "patch_y0", "patch_x1", "patch_y1", "gated"]
    # No manifest or videos files yet: the views exist, empty, with their columns.
    assert run_sql(c, "SELECT * FROM manifest").num_rows == 0
    assert "status" in run_sql(c, "SELECT * FROM manifest").column_names
    assert run_sql(c, "SELECT * FROM videos").column_names[0] == "run_id"


def test_normalised_is_per_video_minmax_anomaly(con):
    c, data = con
    got = by_key(run_sql(c, "SELECT * FROM normalised()"), ["run_id", "video_id", "model"],
                 "anomaly")
    assert len(got) == sum(len(d) for d in data.values())
    for run, d in data.items():
        for (vid, m), (frames, psnr) in d.items():
            f, a = got[(run, vid, m)]
            np.testing.assert_array_equal(f, frames)
            np.testing.assert_allclose(a, anomaly(psnr), rtol=0, atol=1e-12)
    one = run_sql(c, "SELECT DISTINCT run_id FROM normalised(run := 'r2')")
    assert one["run_id"].to_pylist() == ["r2"]


@pytest.mark.parametrize("sigma", [10.0, 2.5, 0.0])
def test_smoothed_equals_scipy_mirror_including_short_videos(con, sigma):
    c, data = con
    got = by_key(run_sql(c, "SELECT * FROM smoothed(sigma := ?)", [sigma]),
                 ["run_id", "video_id", "model"], "score")
    for run, d in data.items():
        for (vid, m), (frames, psnr) in d.items():
            f, s = got[(run, vid, m)]
            np.testing.assert_array_equal(f, frames)
            np.testing.assert_allclose(s, smooth(anomaly(psnr), sigma), rtol=0, atol=1e-6)


def fused_expected(d: dict, kind: str, alpha: float, sigma: float) -> dict:
    out = {}
    vids = sorted({v for v, _ in d})
    for vid in vids:
        if (vid, "fp") not in d or (vid, "fr") not in d:
            continue
        (fa, pa_), (fb, pb) = d[(vid, "fp")], d[(vid, "fr")]
        sa, sb = smooth(anomaly(pa_), sigma), smooth(anomaly(pb), sigma)
        common, ia, ib = np.intersect1d(fa, fb, return_indices=True)
        if not common.size:
            continue
        v = (alpha * sa[ia] + (1 - alpha) * sb[ib] if kind == "weighted"
             else np.maximum(sa[ia], sb[ib]))
        out[vid] = (common, v)
    return out


@pytest.mark.parametrize(("kind", "alpha"), [("weighted", 0.3), ("weighted", 1.0), ("max", 0.5)])
def test_fused_inner_joins_streams_then_combines(con, kind, alpha):
    c, data = con
    t = run_sql(c, "SELECT * FROM fused(fusion := ?, alpha := ?, sigma := 4, run := 'r1')",
                [kind, alpha])
    name = f"weighted:{alpha:g}:fp,fr" if kind == "weighted" else "max:fp,fr"
    assert set(t["fusion"].to_pylist()) == {name}
    got = by_key(t, ["video_id"], "score")
    exp = fused_expected(data["r1"], kind, alpha, 4.0)
    assert set(got) == {(v,) for v in exp}  # short videos: fp and fr share no frame
    for vid, (frames, v) in exp.items():
        np.testing.assert_array_equal(got[(vid,)][0], frames)
        np.testing.assert_allclose(got[(vid,)][1], v, rtol=0, atol=1e-9)


def test_single_stream_fusion_is_the_smoothed_stream(con):
    c, data = con
    got = by_key(run_sql(c, "SELECT * FROM fused(fusion := 'fr', sigma := 3)"),
                 ["run_id", "video_id"], "score")
    assert {k[0] for k in got} == {"r1"}  # r2 has no fr stream
    for (vid, m), (_frames, psnr) in data["r1"].items():
        if m == "fr":
            np.testing.assert_allclose(got[("r1", vid)][1], smooth(anomaly(psnr), 3), atol=1e-9)


def test_bad_fusion_arguments_raise_clear_errors(con):
    c, _ = con
    from raystack.query import QueryError

    with pytest.raises(QueryError, match=r"alpha must be in \[0, 1\]"):
        run_sql(c, "SELECT * FROM fused(fusion := 'weighted', alpha := 1.5)")
    with pytest.raises(QueryError, match="two or more different streams"):
        run_sql(c, "SELECT * FROM fused(fusion := 'weighted', streams := ['fp'])")
    with pytest.raises(QueryError, match="two or more different streams"):
        run_sql(c, "SELECT * FROM fused(fusion := 'weighted', streams := ['fp', 'fr', 'fp'])")


def test_flags_fixed_and_adaptive_thresholds(con):
    c, data = con
    t = run_sql(c, "SELECT * FROM flags(threshold := 0.6, fusion := 'fp', sigma := 0)")
    for run, d in data.items():
        for (vid, m), (_frames, psnr) in d.items():
            if m != "fp":
                continue
            sel = np.array([r == run and v == vid for r, v in
                            zip(t["run_id"].to_pylist(), t["video_id"].to_pylist(),
                                strict=True)])
            order = np.argsort(t["frame"].to_numpy()[sel])
            flagged = t["flagged"].to_numpy(zero_copy_only=False)[sel][order]
            np.testing.assert_array_equal(flagged, anomaly(psnr) > 0.6)
    k = 1.5
    t = run_sql(c, "SELECT * FROM flags(adaptive_k := ?, fusion := 'weighted', alpha := 0.5, "
                   "sigma := 2, run := 'r1')", [k])
    got = by_key(t, ["video_id"], "threshold")
    flags = by_key(t, ["video_id"], "flagged")
    for vid, (_frames, v) in fused_expected(data["r1"], "weighted", 0.5, 2.0).items():
        thr = v.mean() + k * v.std()
        np.testing.assert_allclose(got[(vid,)][1], thr, atol=1e-9)
        np.testing.assert_array_equal(flags[(vid,)][1].astype(bool), v > thr)


def test_auto_fusion_picks_the_only_stream_or_the_one_known_pair():
    from raystack.query.fusion import FusionError, resolve_fusion

    assert resolve_fusion("auto", ["fr"]).name == "fr"
    assert resolve_fusion(None, ["fr", "fp"]).name == "weighted:0.5:fp,fr"
    assert resolve_fusion("auto", ["m2s2l_mot", "m2s2l_app"]).name == \
        "weighted:0.5:m2s2l_app,m2s2l_mot"
    with pytest.raises(FusionError, match="choose with --fusion"):
        resolve_fusion("auto", ["fp", "fr", "m2s2l_app", "m2s2l_mot"])  # two pairs: ambiguous
    with pytest.raises(FusionError, match="choose with --fusion"):
        resolve_fusion("auto", ["fp", "m2s2l_app"])
