"""Evaluate a scan run against frame labels with the standard protocol (DESIGN.md section 5).

    result = evaluate("store/", "frame_labels_ped2.npy", "night1", fusion="weighted:0.5")
    result.micro_auc, result.macro_auc, result.per_video

Fusion modes: a stream name ('fp', 'fr', 'm2s2l_app', ...); 'weighted:ALPHA[:a,b]' and
'max[:a,b,...]' over normalised, smoothed streams (no labels); and 'oracle[:a,b]', VADMamba's
clip-level fusion, which picks per video the stream with the higher AUC against that
video's TEST LABELS. Every output of an oracle evaluation says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raystack.eval.labels import labels_for_videos, run_videos
from raystack.eval.metrics import macro_auc, micro_auc, oracle_choice, protocol_scores, video_auc

ORACLE_WARNING = ("oracle fusion picks each video's stream by its AUC against the test labels: "
                  "it uses test labels and is not a valid detector score")
_ORDER = {"fp": 0, "m2s2l_app": 0, "fr": 1, "m2s2l_mot": 1}


@dataclass
class EvalResult:
    run_id: str
    fusion: str
    streams: list[str]
    micro_auc: float
    macro_auc: float | None
    single_class_skipped: int
    frames: int
    videos: int
    uses_test_labels: bool
    protocol: dict[str, Any]
    per_video: list[dict[str, Any]] = field(default_factory=list)
    warning: str | None = None
    files: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        if self.warning:
            lines.append(f"WARNING: {self.warning}")
        macro = "n/a" if self.macro_auc is None else f"{self.macro_auc:.4f}"
        lines.append(f"run {self.run_id}, fusion {self.fusion}: micro AUC {self.micro_auc:.4f}, "
                     f"macro AUC {macro} ({self.single_class_skipped} single-class videos skipped), "
                     f"{self.frames} frames of {self.videos} videos")
        return "\n".join(lines)


def parse_fusion(fusion: str, available: list[str]) -> tuple[str, float | None, list[str]]:
    """'weighted:0.6:fp,fr' -> ('weighted', 0.6, ['fp', 'fr']); a bare stream -> (it, None, [it])."""
    parts = fusion.split(":")
    mode = parts[0]
    default = sorted(available, key=lambda s: (_ORDER.get(s, 2), s))
    if mode == "weighted":
        alpha = float(parts[1]) if len(parts) > 1 and parts[1] else 0.5
        streams = parts[2].split(",") if len(parts) > 2 else default[:2]
        if len(streams) != 2 or not 0.0 <= alpha <= 1.0:
            msg = f"fusion {fusion!r}: weighted needs two streams and alpha in [0, 1]"
            raise ValueError(msg)
    elif mode in ("max", "oracle"):
        alpha = None
        streams = parts[1].split(",") if len(parts) > 1 else default[:2] if mode == "oracle" else default
        if mode == "oracle" and len(streams) != 2:
            msg = f"fusion {fusion!r}: oracle chooses between exactly two streams"
            raise ValueError(msg)
    else:
        mode, alpha, streams = fusion, None, [fusion]
    missing = [s for s in streams if s not in available]
    if missing:
        msg = f"fusion {fusion!r}: stream(s) {missing} not in the run (it has {available})"
        raise ValueError(msg)
    return mode, alpha, streams


def _stream_psnr(scores: Any, video_id: str, stream: str) -> tuple[np.ndarray, np.ndarray]:
    sel = (scores["video_id"] == video_id) & (scores["model"] == stream)
    part = scores[sel].sort_values("frame")
    return part["frame"].to_numpy(), part["psnr"].to_numpy(dtype=np.float64)


def evaluate(
    store: Any,
    labels: str | Path,
    run_id: str,
    *,
    fusion: str = "fp",
    sigma: float = 10.0,
    normalise: str = "video",
    skip_first: int | None = None,
    threshold: float | None = None,
    out_dir: str | Path | None = None,
) -> EvalResult:
    """Frame-level micro and macro AUC of ``run_id`` against ``labels``.

    Args:
        store: the scan's store (a :class:`~raystack.store.Store` or its URI).
        labels: a flat ``.npy``, an ano_pred ``.mat`` or a ``test_frame_mask`` folder.
        run_id: the scan run.
        fusion: see the module docstring.
        sigma: Gaussian smoothing of the normalised scores, in frames (0: none).
        normalise: min-max per 'video' (the protocol) or 'global'.
        skip_first: also skip frames below this index (frames without a score row, the
            first t of every video, are always skipped).
        threshold: drawn on the score plots (the AUC needs none).
        out_dir: if given, write ``eval.json``, ``roc.png`` and ``curves.png`` there.
    """
    from raystack.store import Store

    st = store if isinstance(store, Store) else Store(store)
    videos = run_videos(st, run_id)
    labs = labels_for_videos(labels, videos)
    scores = st.read_table("scores", run_id, columns=["video_id", "frame", "model", "psnr"]).to_pandas()
    available = sorted(scores["model"].unique().tolist())
    if not available:
        msg = f"run {run_id!r} has no scores in store {st.uri}"
        raise ValueError(msg)
    mode, alpha, streams = parse_fusion(fusion, available)

    # Frames every fused stream scored, per video, in the videos' sorted order.
    vids = [v for v in sorted(videos, key=lambda v: v["relpath"]) if v["video_id"] in set(scores["video_id"])]
    frames_by_video, psnr_by_stream = [], {s: [] for s in streams}
    for v in vids:
        per = {s: _stream_psnr(scores, v["video_id"], s) for s in streams}
        common = per[streams[0]][0]
        for s in streams[1:]:
            common = np.intersect1d(common, per[s][0])
        if skip_first:
            common = common[common >= skip_first]
        frames_by_video.append(common)
        for s in streams:
            f, p = per[s]
            psnr_by_stream[s].append(p[np.isin(f, common)])
    smoothed = {s: protocol_scores(psnr_by_stream[s], normalise=normalise, sigma=sigma) for s in streams}
    lab_list = [labs[v["video_id"]][f] for v, f in zip(vids, frames_by_video)]

    choice = None
    if mode == "weighted":
        fused = [alpha * a + (1 - alpha) * b for a, b in zip(smoothed[streams[0]], smoothed[streams[1]])]
    elif mode == "max":
        fused = [np.max(np.stack(x), axis=0) for x in zip(*(smoothed[s] for s in streams))]
    elif mode == "oracle":
        choice = oracle_choice(smoothed[streams[0]], smoothed[streams[1]], lab_list)
        fused = [smoothed[streams[c]][i] for i, c in enumerate(choice)]
    else:
        fused = smoothed[streams[0]]

    micro = micro_auc(fused, lab_list)
    macro, skipped = macro_auc(fused, lab_list)
    per_video = []
    for i, (v, f, s, lab) in enumerate(zip(vids, frames_by_video, fused, lab_list)):
        row = {"video_id": v["video_id"], "relpath": v["relpath"], "frames": int(len(f)),
               "anomalous_frames": int(lab.sum()), "auc": video_auc(s, lab)}
        if choice is not None:
            row["oracle_stream"] = streams[choice[i]]
        per_video.append(row)
    oracle = mode == "oracle"
    result = EvalResult(
        run_id=run_id, fusion=fusion, streams=streams, micro_auc=micro, macro_auc=macro,
        single_class_skipped=skipped, frames=int(sum(len(f) for f in frames_by_video)),
        videos=len(vids), uses_test_labels=oracle,
        protocol={"normalise": normalise, "sigma": sigma, "skip_first": skip_first,
                  "labels": str(labels), "score": "1 - minmax(psnr), gaussian_filter1d mirror truncate 4"},
        per_video=per_video, warning=ORACLE_WARNING if oracle else None)
    if out_dir is not None:
        from raystack.eval.plots import plot_curves, plot_roc

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tag = " [ORACLE: uses test labels]" if oracle else ""
        roc = plot_roc(np.concatenate(fused), np.concatenate(lab_list), out / "roc.png",
                       title=f"{run_id} {fusion}: micro AUC {micro:.3f}{tag}")
        curves = plot_curves([(v["relpath"], f, s, lab) for v, f, s, lab in
                              zip(vids, frames_by_video, fused, lab_list)], out / "curves.png",
                             threshold=threshold, title=f"{run_id} {fusion}{tag}")
        result.files = {"roc": str(roc), "curves": str(curves), "json": str(out / "eval.json")}
        (out / "eval.json").write_text(json.dumps(asdict(result), indent=2))
    return result
