"""`raystack eval` scores through the query layer's SQL: on a scan-like store its fused scores
are exactly what ``fused()`` returns to an analyst, and the baselines are scored on exactly
the evaluated frames."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import roc_auc_score

from raystack.eval import evaluate
from raystack.eval.frames import group_psnr, select_frames, sql_scores
from raystack.query import connect, run_sql
from raystack.query.connection import connect_scores
from raystack.query.fusion import Fusion, resolve_fusion
from raystack.store import Store, table_schema

VIDEOS = {"a-1": ("a.mp4", 40), "b-2": ("b.mp4", 60)}


def make_store(tmp_path, starts: dict[str, int]) -> tuple[Store, np.ndarray]:
    """Videos a (40 frames) and b (60), each stream scored from its start frame on."""
    rng = np.random.default_rng(5)
    st = Store(tmp_path / "store")
    rows = [dict(video_id=v, uri=f"/x/{rel}", relpath=rel, kind="video", size_bytes=1,
                 etag=None, mtime=None, frames=n, fps=25.0, width=64, height=64,
                 duration_s=n / 25, codec="mpeg4", probe_error=None)
            for v, (rel, n) in VIDEOS.items()]
    st.write_table("videos", "r", "videos",
                   pa.Table.from_pylist(rows, schema=table_schema("videos")))
    for v, (_, n) in VIDEOS.items():
        for m, s in starts.items():
            f = np.arange(s, n)
            st.write_table("scores", "r", f"{v}-{m}", pa.table({
                "run_id": ["r"] * len(f), "video_id": [v] * len(f), "frame": f,
                "timestamp_s": f / 25.0, "model": [m] * len(f),
                "psnr": rng.normal(30, 2, len(f)).astype(np.float32), "aux": [None] * len(f)},
                schema=table_schema("scores", 1)))
    flat = (rng.random(100) < 0.3).astype(np.int64)  # a.mp4 then b.mp4
    np.save(tmp_path / "labels.npy", flat)
    return st, flat


@pytest.mark.parametrize(("fusion", "sigma"), [("weighted:0.3", 3.0), ("max", 0.0), ("fr", 10.0)])
def test_eval_scores_are_the_analysts_fused_scores(tmp_path, fusion, sigma):
    st, flat = make_store(tmp_path, {"fp": 4, "fr": 4, "diff": 4})
    fz = resolve_fusion(fusion, ["fp", "fr"])
    con = connect(st)
    got = run_sql(con, "SELECT video_id, frame, score FROM fused(fusion := ?, alpha := ?, "
                  "streams := ?, sigma := ?) ORDER BY video_id, frame",
                  [*fz.macro_args().values(), sigma])
    con.close()
    offset = {"a-1": 0, "b-2": 40}
    y = [flat[offset[v] + f] for v, f in zip(got["video_id"].to_pylist(),
                                               got["frame"].to_pylist(), strict=True)]
    r = evaluate(st, tmp_path / "labels.npy", "r", fusion=fusion, sigma=sigma)
    assert r.micro_auc == roc_auc_score(y, got["score"].to_numpy())  # bit for bit
    assert r.frames == got.num_rows and r.fusion == fz.name


def test_frames_every_stream_scored_are_normalised_alone(tmp_path):
    # fr scores from frame 1 and fp from frame 16: eval's protocol min-maxes fr over the
    # frames fp scored too, the analyst's fused(fusion := 'fr') over all of fr's frames.
    st, flat = make_store(tmp_path, {"fp": 16, "fr": 1, "diff": 1, "motion": 20})
    table = st.read_table("scores", "r", columns=["video_id", "frame", "model", "psnr"])
    groups = group_psnr(table)
    videos = st.read_table("videos", "r").to_pylist()
    labels = {"a-1": flat[:40], "b-2": flat[40:]}
    sel = select_frames(groups, videos, labels, ["fp", "fr"], "r")
    assert [f[0] for f in sel.frames] == [16, 16]
    assert sel.baselines == ["diff"]  # motion misses frames 16-19: no baseline on them
    con = connect_scores(sel.table)
    fr = sql_scores(con, sel, Fusion("stream", ("fr",)), sigma=2.0)
    for (_, p, _), f, s in zip((groups[(v["video_id"], "fr")] for v in sel.videos), sel.frames, fr,
                            strict=True):
        q = p[-len(f):]
        np.testing.assert_array_equal(s, gaussian_filter1d(1 - (q - q.min()) / (q.max() - q.min()),
                                                           2.0, mode="mirror", truncate=4))
    r = evaluate(st, tmp_path / "labels.npy", "r", fusion="weighted:0.5", sigma=2.0)
    diff = sql_scores(con, sel, Fusion("stream", ("diff",)), sigma=2.0)
    y = np.concatenate(sel.labels)
    assert r.baselines == {"diff": roc_auc_score(y, np.concatenate(diff))}
    with pytest.raises(ValueError, match="normalise must be 'video' or 'global'"):
        sql_scores(con, sel, Fusion("stream", ("fr",)), sigma=2.0, normalise="clip")
