"""Label loaders, AUC protocol and fusion modes on small stores and label files the tests write."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import roc_auc_score

from raystack.eval import ORACLE_WARNING, LabelError, evaluate, labels_for_videos
from raystack.eval.metrics import macro_auc, oracle_choice
from raystack.store import Store, table_schema

VIDEOS = [{"video_id": "b-2", "relpath": "b.mp4", "frames": 30},
          {"video_id": "a-1", "relpath": "a.mp4", "frames": 20}]


def test_flat_npy_splits_in_sorted_name_order(tmp_path):
    flat = np.zeros(50, dtype=np.int64)
    flat[5:8] = 1      # a.mp4 frames 5..7
    flat[20 + 10] = 1  # b.mp4 frame 10
    np.save(tmp_path / "frame_labels_x.npy", flat)
    labs = labels_for_videos(tmp_path / "frame_labels_x.npy", VIDEOS)
    assert labs["a-1"].nonzero()[0].tolist() == [5, 6, 7]
    assert labs["b-2"].nonzero()[0].tolist() == [10]
    np.save(tmp_path / "short.npy", flat[:49])
    with pytest.raises(LabelError, match="49 frame labels.*50 frames"):
        labels_for_videos(tmp_path / "short.npy", VIDEOS)


def test_mat_intervals_are_one_based_inclusive(tmp_path):
    from scipy.io import savemat

    gt = np.empty((1, 2), dtype=object)
    gt[0, 0] = np.array([[2], [4]])            # a.mp4: frames 1..3 (0-based)
    gt[0, 1] = np.array([[1, 30], [1, 30]])    # b.mp4: first and last frame
    savemat(tmp_path / "ped2.mat", {"gt": gt})
    labs = labels_for_videos(tmp_path / "ped2.mat", VIDEOS)
    assert labs["a-1"].nonzero()[0].tolist() == [1, 2, 3]
    assert labs["b-2"].nonzero()[0].tolist() == [0, 29]
    savemat(tmp_path / "bad.mat", {"other": 1})
    with pytest.raises(LabelError, match="no 'gt' variable"):
        labels_for_videos(tmp_path / "bad.mat", VIDEOS)


def test_shanghaitech_mask_folder(tmp_path):
    masks = tmp_path / "test_frame_mask"
    masks.mkdir()
    np.save(masks / "a.npy", np.r_[np.zeros(19), 1])
    np.save(masks / "b.npy", np.ones(30))
    labs = labels_for_videos(masks, VIDEOS)
    assert labs["a-1"].sum() == 1 and labs["b-2"].sum() == 30
    (masks / "b.npy").unlink()
    with pytest.raises(LabelError, match="no mask b.npy"):
        labels_for_videos(masks, VIDEOS)


def test_macro_skips_single_class_and_oracle_rule():
    s = [np.array([0.1, 0.9, 0.2]), np.array([0.5, 0.5, 0.5])]
    lab = [np.array([0, 1, 0]), np.array([0, 0, 0])]
    assert macro_auc(s, lab) == (1.0, 1)
    a = [np.array([0.9, 0.1, 0.2]), np.array([0.1, 0.9, 0.2]), np.array([0.3, 0.2])]
    b = [np.array([0.1, 0.9, 0.2]), np.array([0.9, 0.1, 0.2]), np.array([0.1, 0.9])]
    lab = [np.array([0, 1, 0]), np.array([0, 1, 0]), np.array([0, 0])]
    # b wins where it ranks the anomaly higher; ties and single-class videos keep a.
    assert oracle_choice(a, b, lab) == [1, 0, 0]


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    st = Store(tmp_path / "store")
    rows = [dict(video_id=v["video_id"], uri=f"/x/{v['relpath']}", relpath=v["relpath"],
                 kind="video",
                 size_bytes=1, etag=None, mtime=None, frames=v["frames"], fps=25.0, width=64,
                 height=64, duration_s=v["frames"] / 25, codec="mpeg4", probe_error=None)
            for v in VIDEOS]
    st.write_table("videos", "r", "videos",
                   pa.Table.from_pylist(rows, schema=table_schema("videos")))
    for v in VIDEOS:
        f = np.arange(4, v["frames"])
        for m in ("fp", "fr"):
            psnr = rng.normal(30, 1, len(f)).astype(np.float32)
            st.write_table("scores", "r", f"{v['video_id']}-{m}", pa.table({
                "run_id": ["r"] * len(f), "video_id": [v["video_id"]] * len(f), "frame": f,
                "timestamp_s": f / 25.0, "model": [m] * len(f), "psnr": psnr,
                "aux": [None] * len(f)},
                schema=table_schema("scores", 1)))
    flat = (rng.random(50) < 0.3).astype(np.int64)
    np.save(tmp_path / "labels.npy", flat)
    return st, tmp_path / "labels.npy", flat


def _expected(st, flat, stream, sigma):
    sc = st.read_table("scores", "r").to_pandas()
    offsets = {"a-1": 0, "b-2": 20}
    ys, ss = [], []
    for vid in ("a-1", "b-2"):
        part = sc[(sc.video_id == vid) & (sc.model == stream)].sort_values("frame")
        p = part.psnr.to_numpy(np.float64)
        a = 1 - (p - p.min()) / (p.max() - p.min())
        ss.append(gaussian_filter1d(a, sigma, mode="mirror", truncate=4) if sigma else a)
        ys.append(flat[offsets[vid] + part.frame.to_numpy()])
    return ss, ys


@pytest.mark.parametrize("sigma", [0, 3])
def test_evaluate_matches_an_independent_computation(store, sigma, tmp_path):
    st, labels, flat = store
    (fp, y), (fr, _) = _expected(st, flat, "fp", sigma), _expected(st, flat, "fr", sigma)
    r = evaluate(st, labels, "r", fusion="fp", sigma=sigma)
    assert r.micro_auc == pytest.approx(roc_auc_score(np.concatenate(y), np.concatenate(fp)))
    r = evaluate(st, labels, "r", fusion="weighted:0.25", sigma=sigma, out_dir=tmp_path / "ev")
    fused = [0.25 * a + 0.75 * b for a, b in zip(fp, fr, strict=True)]
    assert r.micro_auc == pytest.approx(roc_auc_score(np.concatenate(y), np.concatenate(fused)))
    assert not r.uses_test_labels and (tmp_path / "ev" / "roc.png").stat().st_size > 1000
    written = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert written["fusion"] == "weighted:0.25:fp,fr"


def test_oracle_is_labelled_everywhere(store, tmp_path):
    st, labels, flat = store
    r = evaluate(st, labels, "r", fusion="oracle", sigma=0, out_dir=tmp_path / "o")
    assert r.uses_test_labels and r.warning == ORACLE_WARNING
    assert "WARNING" in r.summary()
    doc = json.loads((tmp_path / "o" / "eval.json").read_text())
    assert doc["uses_test_labels"] is True and all("oracle_stream" in v for v in doc["per_video"])
    with pytest.raises(ValueError, match="but the run has only"):
        evaluate(st, labels, "r", fusion="m2s2l_app")


@pytest.mark.parametrize("sigma", [0, 2])
def test_oracle_reproduces_the_per_video_rule_exactly(store, sigma):
    st, labels, flat = store
    (fp, y), (fr, _) = _expected(st, flat, "fp", sigma), _expected(st, flat, "fr", sigma)
    picks, fused = [], []
    for a, b, lab in zip(fp, fr, y, strict=True):
        auc_a, auc_b = roc_auc_score(lab, a), roc_auc_score(lab, b)
        picks.append("fr" if auc_b > auc_a else "fp")
        fused.append(b if auc_b > auc_a else a)
    r = evaluate(st, labels, "r", fusion="oracle:fp,fr", sigma=sigma)
    assert r.fusion == "oracle:fp,fr"
    assert [v["oracle_stream"] for v in r.per_video] == picks  # videos in sorted relpath order
    assert r.micro_auc == pytest.approx(roc_auc_score(np.concatenate(y), np.concatenate(fused)))
    # Swapping the pair changes only ties and single-class videos, which keep the first stream.
    r2 = evaluate(st, labels, "r", fusion="oracle:fr,fp", sigma=sigma)
    assert r2.micro_auc == pytest.approx(r.micro_auc)


def test_skip_first_global_normalisation_and_max(store):
    st, labels, flat = store
    sc = st.read_table("scores", "r").to_pandas()
    offsets = {"a-1": 0, "b-2": 20}
    parts = {}
    for m in ("fp", "fr"):
        for vid in ("a-1", "b-2"):
            part = sc[(sc.video_id == vid) & (sc.model == m) & (sc.frame >= 10)]
            part = part.sort_values("frame")
            parts[(m, vid)] = (part.frame.to_numpy(), part.psnr.to_numpy(np.float64))
    exp = {}
    for m in ("fp", "fr"):
        allp = np.concatenate([parts[(m, v)][1] for v in ("a-1", "b-2")])
        lo, hi = allp.min(), allp.max()
        exp[m] = [gaussian_filter1d(1 - (parts[(m, v)][1] - lo) / (hi - lo), 1.5, mode="mirror",
                                    truncate=4) for v in ("a-1", "b-2")]
    y = np.concatenate([flat[offsets[v] + parts[("fp", v)][0]] for v in ("a-1", "b-2")])
    s = np.concatenate([np.maximum(a, b) for a, b in zip(exp["fp"], exp["fr"], strict=True)])
    r = evaluate(st, labels, "r", fusion="max", sigma=1.5, normalise="global", skip_first=10)
    assert r.frames == len(y) and r.fusion == "max:fp,fr"
    assert r.micro_auc == pytest.approx(roc_auc_score(y, s))


def test_unscored_videos_are_reported_and_bad_labels_refused(store, tmp_path):
    st, labels, flat = store
    rows = st.read_table("videos", "r").to_pylist()
    rows.append({**rows[0], "video_id": "c-3", "relpath": "c.mp4", "frames": 5})
    st.write_table("videos", "r", "videos",
                   pa.Table.from_pylist(rows, schema=table_schema("videos")))
    np.save(tmp_path / "more.npy", np.concatenate([flat, [0, 1, 0, 0, 0]]))
    r = evaluate(st, tmp_path / "more.npy", "r", fusion="fp", sigma=0)
    assert r.unscored_videos == ["c.mp4"] and r.videos == 2 and "no scores" in r.summary()
    rows[0]["frames"] = 3  # fewer frames than the video's scores reach
    st.write_table("videos", "r", "videos",
                   pa.Table.from_pylist(rows, schema=table_schema("videos")))
    np.save(tmp_path / "short.npy", np.zeros(sum(r["frames"] for r in rows), np.int64))
    with pytest.raises(LabelError, match="has scores up to frame"):
        evaluate(st, tmp_path / "short.npy", "r", fusion="fp", sigma=0)


def test_curves_are_paged(tmp_path):
    from raystack.eval.plots import VIDEOS_PER_PAGE, plot_curves

    curves = [(f"v{i}", np.arange(10), np.linspace(0, 1, 10), (np.arange(10) > 6).astype(int))
              for i in range(VIDEOS_PER_PAGE + 1)]
    paths = plot_curves(curves, tmp_path / "curves.png", threshold=0.5, title="t")
    assert [p.name for p in paths] == ["curves.png", "curves_2.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_a_misspelt_run_names_the_stores_runs(store):
    st, labels, _ = store
    with pytest.raises(LabelError, match=r"run 'rr' has no videos table .*\(did you mean 'r'\?\)"
                                         r"\. Its runs: r$"):
        evaluate(st, labels, "rr", fusion="fp", sigma=0)
    with pytest.raises(LabelError,
                       match=r"run 'zzz' has no videos table in store \S+\. Its runs: r$"):
        evaluate(st, labels, "zzz", fusion="fp", sigma=0)
