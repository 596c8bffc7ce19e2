"""Evaluate a scan run against frame labels with the standard protocol (docs/evaluation.md).

    result = evaluate("store/", "frame_labels_ped2.npy", "night1", fusion="weighted:0.5")
    result.micro_auc, result.macro_auc, result.per_video     # 0.97, 0.93, [{video_id, auc, ...}]

Protocol: per video, the frames every fused stream scored (the first t frames of a video
have none and are skipped, as are frames below ``skip_first``); over those frames, PSNR
min-max normalised per video (or over all videos), anomaly = 1 - normalised, Gaussian
smoothing (scipy mirror, truncate 4; sigma 0: none), then the fusion. Everything after the
choice of frames is the query layer's SQL ``fused()`` macro (:mod:`raystack.eval.frames`),
so `raystack eval` scores exactly what `raystack events` and SQL see; the fusion spec is
parsed by :mod:`raystack.query.fusion`.

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

from raystack.eval.boxes import COLUMNS as BOX_READ
from raystack.eval.boxes import fused_boxes, localise_run, peak_inputs, with_regions
from raystack.eval.frames import group_psnr, select_frames, sql_fused, sql_scores
from raystack.eval.labels import labels_for_videos, run_videos
from raystack.eval.localisation import summary_line
from raystack.eval.metrics import macro_auc, micro_auc, oracle_choice, video_auc
from raystack.query.fusion import Fusion, resolve_fusion

ORACLE_WARNING = ("oracle fusion picks each video's stream by its AUC against the test labels: "
                  "it uses test labels and is not a valid detector score")


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
    # Localisation of the labelled events (eval/localisation.py) when the labels carry
    # boxes: {"available": False, "reason"} when the run has none; None: labels without boxes.
    localisation: dict[str, Any] | None = None

    def summary(self) -> str:
        lines = [f"WARNING: {self.warning}"] if self.warning else []
        macro = "n/a" if self.macro_auc is None else f"{self.macro_auc:.4f}"
        lines.append(f"run {self.run_id}, fusion {self.fusion}: micro AUC {self.micro_auc:.4f}, "
                     f"macro AUC {macro} ({self.single_class_skipped} single-class videos "
                     f"skipped), {self.frames} frames of {self.videos} videos")
        if self.baselines:
            lines.append("  label-free baselines on the same frames: " + ", ".join(
                f"{k} {v:.4f}" for k, v in self.baselines.items()))
        loc = summary_line(self.localisation)
        if loc:
            lines.append(loc)
        if self.unscored_videos:
            lines.append(f"{len(self.unscored_videos)} labelled videos have no scores and are "
                         f"left out: {', '.join(self.unscored_videos[:5])}"
                         f"{' ...' if len(self.unscored_videos) > 5 else ''}")
        return "\n".join(lines)


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
    from raystack.query.connection import connect_scores
    from raystack.store import Store

    st = store if isinstance(store, Store) else Store(store)
    videos = run_videos(st, run_id)
    labs = labels_for_videos(labels, videos)
    table = st.read_table("scores", run_id, columns=["psnr", "gated", *BOX_READ])
    groups = group_psnr(table)
    available = sorted({m for _, m in groups})
    if not available:
        msg = f"run {run_id!r} has no scores in store {st.uri}"
        raise ValueError(msg)
    fz = resolve_fusion(fusion, available, allow_oracle=True)
    streams = list(fz.streams)
    sel = select_frames(groups, videos, labs, streams, run_id, skip_first=skip_first,
                        labels_name=str(labels))
    vids, frames_by_video, lab_list = sel.videos, sel.frames, sel.labels
    sel.table = with_regions(sel.table, table)
    con = connect_scores(sel.table)
    try:
        def scores(f: Fusion) -> list[np.ndarray]:
            return sql_scores(con, sel, f, sigma=sigma, normalise=normalise)

        choice = None
        if fz.kind == "oracle":
            per_stream = [sql_fused(con, sel, Fusion("stream", (s,)), sigma=sigma,
                                    normalise=normalise) for s in streams]
            choice = oracle_choice(per_stream[0][0], per_stream[1][0], lab_list)
            fused = [per_stream[c][0][i] for i, c in enumerate(choice)]
            per_boxes = [fused_boxes(rows, sel) for _, rows in per_stream]
            boxes = [per_boxes[c][i] for i, c in enumerate(choice)]  # the chosen stream's
            per_peaks = [peak_inputs(rows, sel) for _, rows in per_stream]
            peaks = [per_peaks[c][i] for i, c in enumerate(choice)]
        else:
            fused, rows = sql_fused(con, sel, fz, sigma=sigma, normalise=normalise)
            boxes, peaks = fused_boxes(rows, sel), peak_inputs(rows, sel)
        # Micro AUC of each trivial stream on the SAME frames: what the fusion must beat.
        baselines = {b: micro_auc(scores(Fusion("stream", (b,))), lab_list)
                     for b in sel.baselines}
        localisation = localise_run(labels, sel, peaks, boxes)
    finally:
        con.close()

    micro = micro_auc(fused, lab_list)
    macro, skipped = macro_auc(fused, lab_list)
    per_video = []
    for i, (v, f, s, lab) in enumerate(zip(vids, frames_by_video, fused, lab_list, strict=True)):
        row = {"video_id": v["video_id"], "relpath": v["relpath"], "frames": int(len(f)),
               "anomalous_frames": int(lab.sum()), "auc": video_auc(s, lab)}
        if choice is not None:
            row["oracle_stream"] = streams[choice[i]]
        per_video.append(row)
    oracle = fz.kind == "oracle"
    result = EvalResult(
        run_id=run_id, fusion=fz.name, streams=streams, micro_auc=micro, macro_auc=macro,
        single_class_skipped=skipped, frames=int(sum(len(f) for f in frames_by_video)),
        videos=len(vids), uses_test_labels=oracle,
        protocol={"normalise": normalise, "sigma": sigma, "skip_first": skip_first,
                  "labels": str(labels), "fusion_requested": fusion,
                  "score": "1 - minmax(psnr), gaussian_filter1d mirror truncate 4"},
        per_video=per_video, warning=ORACLE_WARNING if oracle else None,
        unscored_videos=sel.unscored, baselines=baselines, localisation=localisation)
    if out_dir is not None:
        result.files = _write_outputs(result, Path(out_dir), fused, lab_list, vids,
                                      frames_by_video, threshold)
    return result


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
