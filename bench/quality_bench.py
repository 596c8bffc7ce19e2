"""Model quality on the synthetic archive: train on normal videos, score the test videos, AUC.

Synthesizes an archive (``raystack.synth``), trains the FP and FR models of a preset on its
normal training videos with ``raystack.train.train`` (the selection rule picks each
stream's checkpoint by validation loss on held-out normal clips; no test labels), scores
every test video with ``FrameScorer`` (decoded and flowed exactly as the scan does), and
reports frame-level AUC under the protocol of docs/evaluation.md:

- the first ``context`` frames of each video have no score and are skipped;
- per-video min-max normalisation of PSNR, anomaly = 1 - normalised PSNR;
- Gaussian smoothing, sigma 10, scipy ``gaussian_filter1d(mode='mirror', truncate=4)``;
- micro AUC over all scored frames of all test videos, and macro AUC (mean of per-video
  AUCs, single-class videos skipped and counted);
- fusion: a fixed-weight sum ``alpha * FP + (1 - alpha) * FR`` (alpha 0.5) of the smoothed
  per-stream anomaly scores: no labels.

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/quality_bench.py
    flock /tmp/raystack-cpu.lock .venv/bin/python bench/quality_bench.py --workers 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from raystack.scoring import video_anomaly_scores, weighted_fusion  # noqa: E402


def machine() -> dict:
    from machine_info import machine as base

    return base()


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def evaluate(scores: dict[str, list[np.ndarray]], labels: list[np.ndarray]) -> dict:
    """Micro and macro AUC per stream from per-video anomaly scores aligned with labels."""
    out = {}
    for stream, per_video in scores.items():
        micro = auc(np.concatenate(labels), np.concatenate(per_video))
        per = [auc(y, s) for y, s in zip(labels, per_video, strict=True)]
        valid = [a for a in per if a is not None]
        out[stream] = {"micro_auc": micro,
                       "macro_auc": float(np.mean(valid)) if valid else None,
                       "macro_skipped_videos": len(per) - len(valid), "per_video_auc": per}
    return out


def score_test_videos(archive: Path, checkpoints: list[str], flow_preset: str) -> dict:
    """PSNR per stream of every test video's scored frames, and their labels."""
    from raystack.archive import list_archive
    from raystack.decode import open_reader, to_model_range
    from raystack.flow import create_flow, flow_to_model_input
    from raystack.inference import FrameScorer

    scorer = FrameScorer.from_checkpoints(checkpoints)
    meta = json.loads((archive / "labels.json").read_text())
    flat = np.load(archive / meta["labels_file"])
    by_video = {m["video"]: m for m in meta["test"]}
    flow = create_flow("dis", preset=flow_preset) if scorer.needs_flow else None
    h, w = scorer.img_size
    videos, t_decode, t_flow, t_model, n_scored = [], 0.0, 0.0, 0.0, 0
    for src in list_archive(archive / "test"):
        m = by_video[f"test/{src.relpath}"]
        t0 = time.perf_counter()
        with open_reader(src, size=(w, h), sequential=True) as reader:
            frames = reader.read(0, reader.num_frames)
        t1 = time.perf_counter()
        flows = flow_to_model_input(flow(frames)) if flow is not None else None
        t2 = time.perf_counter()
        psnr = scorer.score(to_model_range(frames), flows)
        t3 = time.perf_counter()
        labels = flat[m["offset"] : m["offset"] + m["frames"]][scorer.context :]
        videos.append({"video": m["video"], "kind": m["kinds"][0], "labels": labels,
                       "psnr": psnr, "frames": len(frames)})
        t_decode, t_flow, t_model = t_decode + t1 - t0, t_flow + t2 - t1, t_model + t3 - t2
        n_scored += len(labels)
    return {"videos": videos, "context": scorer.context, "streams": list(scorer.streams),
            "timing": {"decode_s": t_decode, "flow_s": t_flow, "model_s": t_model,
                       "frames_scored": n_scored}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/raystack-quality", help="archive and runs go here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=6)
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--size", type=int, default=256, help="synthetic frames are SIZE x SIZE")
    p.add_argument("--model", default="fp+fr")
    p.add_argument("--preset", default="small")
    p.add_argument("--img-size", type=int, default=None, help="override the preset's img_size")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--clips-per-epoch", type=int, default=0)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--flow-preset", default="fast")
    p.add_argument("--sigma", type=float, default=10.0)
    p.add_argument("--alpha", type=float, default=0.5, help="fusion weight of FP")
    p.add_argument("--out", default=str(ROOT / "bench/results/quality.json"))
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args()

    from raystack.synth import synthesize
    from raystack.train import TrainConfig, train

    work = Path(args.work)
    archive = work / "archive"
    t0 = time.perf_counter()
    synthesize(archive, seed=args.seed, n_train=args.n_train, n_test=args.n_test,
               frames=args.frames, size=(args.size, args.size), overwrite=True)
    synth_s = time.perf_counter() - t0

    overrides = {"img_size": [args.img_size, args.img_size]} if args.img_size else {}
    name = f"quality-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}"
    cfg = TrainConfig(archive=str(archive / "train"), model=args.model, preset=args.preset,
                      model_overrides=overrides, epochs=args.epochs, batch_size=args.batch_size,
                      clips_per_epoch=args.clips_per_epoch, lr=args.lr, workers=args.workers,
                      flow_preset=args.flow_preset, storage=str(work / "runs"), name=name,
                      seed=args.seed)
    result = train(cfg)
    print(result.summary())
    train_s = {task: sum(h["train_s"] for h in hist) for task, hist in result.history.items()}

    t0 = time.perf_counter()
    scored = score_test_videos(archive, list(result.checkpoints.values()), args.flow_preset)
    score_s = time.perf_counter() - t0
    labels = [v["labels"] for v in scored["videos"]]
    anomaly = {s: [video_anomaly_scores(v["psnr"][s], args.sigma) for v in scored["videos"]]
               for s in scored["streams"]}
    raw = {s: [video_anomaly_scores(v["psnr"][s], 0.0) for v in scored["videos"]]
           for s in scored["streams"]}
    if {"fp", "fr"} <= set(anomaly):
        anomaly["fusion"] = [weighted_fusion(a, b, args.alpha)
                             for a, b in zip(anomaly["fp"], anomaly["fr"], strict=True)]
    metrics = evaluate(anomaly, labels)
    unsmoothed = evaluate(raw, labels)

    print(f"\nframe-level AUC, {len(labels)} test videos, {sum(map(len, labels))} scored frames "
          f"(first {scored['context']} of each skipped), sigma {args.sigma}, alpha {args.alpha}")
    print(f"{'stream':8} {'micro':>7} {'macro':>7} {'micro(sigma 0)':>15}  per video")
    for s, m in metrics.items():
        per = " ".join("  -  " if a is None else f"{a:.3f}" for a in m["per_video_auc"])
        raw_micro = unsmoothed.get(s, {}).get("micro_auc")
        print(f"{s:8} {m['micro_auc']:7.3f} {m['macro_auc']:7.3f} "
              f"{'' if raw_micro is None else f'{raw_micro:.3f}':>15}  {per}")
    print("kinds: " + ", ".join(f"{v['video']}={v['kind']}" for v in scored["videos"]))
    print(f"synth {synth_s:.1f} s, train {result.seconds:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s in epochs' for k, v in train_s.items())}), "
          f"score {score_s:.1f} s")

    doc = {
        "machine": machine(),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "protocol": "docs/evaluation.md: per-video min-max PSNR normalisation, anomaly = "
                    "1 - norm, gaussian_filter1d(sigma, mirror, truncate 4), micro AUC over "
                    "concatenated scored frames; fusion = alpha * FP + (1 - alpha) * FR of the "
                    "smoothed anomaly scores (no labels); checkpoints chosen by validation loss "
                    "on held-out normal clips",
        "synth": {"seed": args.seed, "n_train": args.n_train, "n_test": args.n_test,
                  "frames": args.frames, "size": args.size, "seconds": round(synth_s, 2)},
        "train": {"config": {k: v for k, v in vars(args).items()
                             if k not in ("out", "no_write", "work")},
                  "seconds_total": round(result.seconds, 2),
                  "seconds_in_epochs": {k: round(v, 2) for k, v in train_s.items()},
                  "selected": result.selected,
                  "history": result.history},
        "scoring": {**scored["timing"], "seconds": round(score_s, 2),
                    "context": scored["context"]},
        "sigma": args.sigma,
        "alpha": args.alpha,
        "auc": metrics,
        "auc_unsmoothed": unsmoothed,
        "videos": [{"video": v["video"], "kind": v["kind"], "frames": v["frames"],
                    "anomalous_scored_frames": int(v["labels"].sum())}
                   for v in scored["videos"]],
    }
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
