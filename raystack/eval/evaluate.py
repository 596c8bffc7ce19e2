"""Evaluate a scan run against frame labels with the standard protocol (docs/evaluation.md).

    result = evaluate("store/", "frame_labels_ped2.npy", "night1", fusion="weighted:0.5")
    result.micro_auc, result.macro_auc, result.per_video     # 0.97, 0.93, [{video_id, auc, ...}]

Protocol: per video and stream, the frames with a score row (the first t frames of a video
have none and are skipped, as are frames below ``skip_first``), PSNR min-max normalised per
video (or over all videos), anomaly = 1 - normalised, Gaussian smoothing (scipy mirror,
truncate 4; sigma 0: none), then fusion over the frames every stream scored.

Fusion modes: a stream name ('fp', 'fr', 'm2s2l_app', ...); 'auto' (the only stream, or the
fixed weighted:0.5 of fp,fr or of m2s2l_app,m2s2l_mot); 'weighted:ALPHA[:a,b]' and
'max[:a,b,...]' (no labels); and
'oracle[:a,b]', VADMamba's clip-level fusion, which picks per video the stream with the
higher AUC against that video's TEST LABELS (ties and single-class videos keep stream a).
Every output of an oracle evaluation says so: ``uses_test_labels`` in the JSON, a warning
line in the summary and the CLI, and a tag in every plot title.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raystack.eval.labels import LabelError, labels_for_videos, run_videos
from raystack.eval.metrics import macro_auc, micro_auc, oracle_choice, protocol_scores, video_auc

ORACLE_WARNING = ("oracle fusion picks each video's stream by its AUC against the test labels: "
                  "it uses test labels and is not a valid detector score")
# Which stream of a pair comes first (alpha weighs it; oracle keeps it on ties).
_ORDER = {"fp": 0, "m2s2l_app": 0, "fr": 1, "m2s2l_mot": 1}


@dataclass
class EvalResult:
    """What :func:`evaluate` found; ``asdict`` of it is the ``eval.json`` document."""

    run_id: str
    fusion: str  # canonical: 'fp', 'weighted:0.5:fp,fr', 'max:fp,fr', 'oracle:fp,fr'
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
    unscored_videos: list[str] = field(default_factory=list)  # labelled, but no score rows
    files: dict[str, str] = field(default_factory=dict)
    # Micro AUC of each trivial stream (diff, motion) the run has, on the SAME frames and
    # under the same protocol: what the fusion must beat to be worth its cost.
    baselines: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"WARNING: {self.warning}"] if self.warning else []
        macro = "n/a" if self.macro_auc is None else f"{self.macro_auc:.4f}"
        lines.append(f"run {self.run_id}, fusion {self.fusion}: micro AUC {self.micro_auc:.4f}, "
                     f"macro AUC {macro} ({self.single_class_skipped} single-class videos "
                     f"skipped), {self.frames} frames of {self.videos} videos")
        if self.baselines:
            lines.append("  trivial baselines on the same frames: " + ", ".join(
                f"{k} {v:.4f}" for k, v in self.baselines.items()))
        if self.unscored_videos:
            lines.append(f"{len(self.unscored_videos)} labelled videos have no scores and are "
                         f"left out: {', '.join(self.unscored_videos[:5])}"
                         f"{' ...' if len(self.unscored_videos) > 5 else ''}")
        return "\n".join(lines)


def parse_fusion(fusion: str, available: list[str]) -> tuple[str, float | None, list[str]]:
    """``(mode, alpha, streams)`` of a fusion spec on a run with streams ``available``.

    ``'weighted:0.6:fp,fr'`` -> ``('weighted', 0.6, ['fp', 'fr'])``; a stream ``'fr'`` ->
    ``('fr', None, ['fr'])``; ``'oracle'`` -> ``('oracle', None, [a, b])`` with the pair
    ordered frame stream first. Label-free specs follow :mod:`raystack.query.fusion`.

    Raises:
        ValueError: an unknown stream, a bad alpha, an oracle over other than two streams.
    """
    from raystack.query.fusion import resolve_fusion

    head, _, rest = str(fusion).strip().partition(":")
    if head != "oracle":
        fz = resolve_fusion(fusion, available)
        if fz.kind == "stream":
            return fz.streams[0], None, list(fz.streams)
        return fz.kind, (fz.alpha if fz.kind == "weighted" else None), list(fz.streams)
    ordered = sorted(available, key=lambda s: (_ORDER.get(s, 2), s))
    streams = [s.strip() for s in rest.split(",") if s.strip()] if rest else ordered[:2]
    if len(streams) != 2 or len(set(streams)) != 2:
        msg = f"fusion {fusion!r}: oracle chooses between exactly two streams, got {streams}"
        raise ValueError(msg)
    missing = [s for s in streams if s not in available]
    if missing:
        msg = f"fusion {fusion!r}: stream(s) {missing} not in the run (it has {sorted(available)})"
        raise ValueError(msg)
    return "oracle", None, streams


def _fusion_name(mode: str, alpha: float | None, streams: list[str]) -> str:
    if mode == "weighted":
        return f"weighted:{alpha:g}:{','.join(streams)}"
    if mode in ("max", "oracle"):
        return f"{mode}:{','.join(streams)}"
    return mode


def _group_psnr(table: Any) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """``{(video_id, model): (frames ascending, psnr float64)}`` from one sort of the rows."""
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return {}
    idx = pc.sort_indices(table, [("video_id", "ascending"), ("model", "ascending"),
                                  ("frame", "ascending")])
    t = table.take(idx)
    vid = t["video_id"].to_numpy(zero_copy_only=False)
    mod = t["model"].to_numpy(zero_copy_only=False)
    frames = t["frame"].to_numpy()
    psnr = t["psnr"].to_numpy().astype(np.float64)
    cut = np.flatnonzero((vid[1:] != vid[:-1]) | (mod[1:] != mod[:-1])) + 1
    bounds = np.concatenate([[0], cut, [len(vid)]])
    return {(str(vid[s]), str(mod[s])): (frames[s:e], psnr[s:e])
            for s, e in zip(bounds[:-1], bounds[1:], strict=True)}


def evaluate(
    store: Any,
    labels: str | Path,
    run_id: str,
    *,
    fusion: str = "auto",
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
        normalise: min-max per 'video' (the protocol) or 'global' (over all videos).
        skip_first: also skip frames below this index (frames without a score row, the
            first t of every video, are always skipped).
        threshold: drawn on the score plots (the AUC needs none).
        out_dir: if given, write ``eval.json``, ``roc.png`` and ``curves*.png`` there.

    Raises:
        LabelError: labels that do not fit the run's videos or scored frames.
        ValueError: no scores, an unknown stream, or only one class among the frames.
    """
    from raystack.store import Store

    st = store if isinstance(store, Store) else Store(store)
    videos = run_videos(st, run_id)
    labs = labels_for_videos(labels, videos)
    table = st.read_table("scores", run_id, columns=["video_id", "frame", "model", "psnr"])
    groups = _group_psnr(table)
    available = sorted({m for _, m in groups})
    if not available:
        msg = f"run {run_id!r} has no scores in store {st.uri}"
        raise ValueError(msg)
    mode, alpha, streams = parse_fusion(fusion, available)
    name = _fusion_name(mode, alpha, streams)

    # Frames every fused stream scored, per video, in the videos' sorted order.
    vids, unscored, frames_by_video = [], [], []
    psnr_by_stream: dict[str, list[np.ndarray]] = {s: [] for s in streams}
    for v in sorted(videos, key=lambda v: v["relpath"]):
        per = [groups.get((v["video_id"], s)) for s in streams]
        if any(p is None for p in per):
            unscored.append(v["relpath"])
            continue
        common = per[0][0]
        for f, _ in per[1:]:
            common = np.intersect1d(common, f)
        if skip_first:
            common = common[common >= skip_first]
        if common.size and common[-1] >= len(labs[v["video_id"]]):
            msg = (f"{labels}: {v['relpath']} has scores up to frame {int(common[-1])} but "
                   f"labels for {len(labs[v['video_id']])} frames")
            raise LabelError(msg)
        vids.append(v)
        frames_by_video.append(common)
        for s, (f, p) in zip(streams, per, strict=True):
            psnr_by_stream[s].append(p[np.isin(f, common)])
    smoothed = {s: protocol_scores(psnr_by_stream[s], normalise=normalise, sigma=sigma)
                for s in streams}
    lab_list = [labs[v["video_id"]][f] for v, f in zip(vids, frames_by_video, strict=True)]

    choice = None
    if mode == "weighted":
        fused = [alpha * a + (1 - alpha) * b
                 for a, b in zip(smoothed[streams[0]], smoothed[streams[1]], strict=True)]
    elif mode == "max":
        fused = [np.max(np.stack(x), axis=0)
                 for x in zip(*(smoothed[s] for s in streams), strict=True)]
    elif mode == "oracle":
        choice = oracle_choice(smoothed[streams[0]], smoothed[streams[1]], lab_list)
        fused = [smoothed[streams[c]][i] for i, c in enumerate(choice)]
    else:
        fused = smoothed[streams[0]]

    micro = micro_auc(fused, lab_list)
    macro, skipped = macro_auc(fused, lab_list)
    baselines = _baseline_aucs(groups, vids, frames_by_video, lab_list, normalise, sigma)
    per_video = []
    for i, (v, f, s, lab) in enumerate(zip(vids, frames_by_video, fused, lab_list, strict=True)):
        row = {"video_id": v["video_id"], "relpath": v["relpath"], "frames": int(len(f)),
               "anomalous_frames": int(lab.sum()), "auc": video_auc(s, lab)}
        if choice is not None:
            row["oracle_stream"] = streams[choice[i]]
        per_video.append(row)
    oracle = mode == "oracle"
    result = EvalResult(
        run_id=run_id, fusion=name, streams=streams, micro_auc=micro, macro_auc=macro,
        single_class_skipped=skipped, frames=int(sum(len(f) for f in frames_by_video)),
        videos=len(vids), uses_test_labels=oracle,
        protocol={"normalise": normalise, "sigma": sigma, "skip_first": skip_first,
                  "labels": str(labels), "fusion_requested": fusion,
                  "score": "1 - minmax(psnr), gaussian_filter1d mirror truncate 4"},
        per_video=per_video, warning=ORACLE_WARNING if oracle else None,
        unscored_videos=unscored, baselines=baselines)
    if out_dir is not None:
        result.files = _write_outputs(result, Path(out_dir), fused, lab_list, vids,
                                      frames_by_video, threshold)
    return result


def _baseline_aucs(groups, vids, frames_by_video, lab_list, normalise, sigma) -> dict[str, float]:
    """Micro AUC of each baseline stream present, on exactly the evaluated frames."""
    from raystack.scoring import BASELINE_STREAMS

    out = {}
    for stream in BASELINE_STREAMS:
        per = [groups.get((v["video_id"], stream)) for v in vids]
        if not vids or any(p is None for p in per):
            continue
        psnr = []
        for (f, p), common in zip(per, frames_by_video, strict=True):
            keep = np.isin(f, common)
            if int(keep.sum()) != len(common):
                break
            psnr.append(p[keep])
        else:
            out[stream] = micro_auc(protocol_scores(psnr, normalise=normalise, sigma=sigma),
                                    lab_list)
    return out


def _write_outputs(result: EvalResult, out: Path, fused, lab_list, vids, frames_by_video,
                   threshold) -> dict[str, str]:
    from raystack.eval.plots import plot_curves, plot_roc

    out.mkdir(parents=True, exist_ok=True)
    tag = " [ORACLE: uses test labels]" if result.uses_test_labels else ""
    roc = plot_roc(np.concatenate(fused), np.concatenate(lab_list), out / "roc.png",
                   title=f"{result.run_id} {result.fusion}: micro AUC {result.micro_auc:.3f}{tag}")
    curves = plot_curves([(v["relpath"], f, s, lab) for v, f, s, lab in
                          zip(vids, frames_by_video, fused, lab_list, strict=True)],
                         out / "curves.png", threshold=threshold,
                         title=f"{result.run_id} {result.fusion}{tag}")
    files = {"roc": str(roc), "curves": ", ".join(str(c) for c in curves),
             "json": str(out / "eval.json")}
    result.files = files
    (out / "eval.json").write_text(json.dumps(asdict(result), indent=2))
    return files
