"""Which of the CPU presets' switches make VQ-MaU learn? One row per variant, same data and steps.

Each row trains the small preset with ``raystack.train.train`` (the real training path) for
the same number of clips on the same normal footage of the street scene, then reads the
validation PSNR of the selected epoch beside the trivial answer on the same held-out clips
(copy-last for FP, zero flow for FR). With ``--eval-archive`` (a labelled synth archive of
another seed) each row's checkpoint also scans it and reports the stream's micro AUC
(``raystack eval``'s protocol, worst-patch region, sigma 10) beside the ``diff`` and
``motion`` baseline streams of the same scan. The switches are ``VQMaUConfig`` fields
(docs/models.md); ``lr``/``warmup`` are the training recipe.

    .venv/bin/python bench/ablation_bench.py --archive /tmp/qrun/archive-train/train \
        --eval-archive /tmp/qrun/archive-val
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PAPER = {"residual": False, "temporal_blend": False, "vq_ema": False, "relative_loss": False}
ROWS: list[tuple[str, str, dict, dict]] = [
    # (name, task, model overrides, recipe overrides)
    ("paper formulation, paper recipe (2e-4)", "fp", PAPER, {"lr": 2e-4, "warmup_steps": 0}),
    ("paper formulation, 3e-3 + warm-up", "fp", PAPER, {}),
    ("residual only", "fp", {**PAPER, "residual": True}, {}),
    ("small defaults without temporal_blend", "fp", {"temporal_blend": False}, {}),
    ("small defaults without vq_ema", "fp", {"vq_ema": False}, {}),
    ("small defaults without relative_loss", "fp", {"relative_loss": False}, {}),
    ("small defaults at the paper's 2e-4", "fp", {}, {"lr": 2e-4, "warmup_steps": 0}),
    ("small defaults", "fp", {}, {}),
    ("FR paper formulation, flow_scale 10, 2e-4", "fr", {**PAPER, "flow_scale": 10.0},
     {"lr": 2e-4, "warmup_steps": 0}),
    ("FR small defaults with flow_scale 10", "fr", {"flow_scale": 10.0}, {}),
    ("FR small defaults", "fr", {}, {}),
]


def main() -> None:
    from raystack.threads import short_omp_spin

    short_omp_spin()  # as raystack's CLI does, before anything here loads torch
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archive", required=True, help="folder of normal training videos")
    p.add_argument("--work", default="/tmp/raystack-ablation")
    p.add_argument("--clips", type=int, default=1200, help="training clips per row")
    p.add_argument("--only", default="", help="comma-separated row numbers (1-based)")
    p.add_argument("--name", default="ablation")
    p.add_argument("--eval-archive", default=None,
                   help="labelled synth archive (labels.json, test/) to report micro AUC on")
    args = p.parse_args()

    from machine_info import machine

    from raystack.eval import evaluate
    from raystack.scan import ScanConfig, scan
    from raystack.train import TrainConfig, train

    def auc(checkpoint: str, run_id: str, streams: tuple[str, ...]) -> dict[str, float]:
        """Micro AUC of each of ``streams`` on the evaluation archive, scanned now."""
        ev = Path(args.eval_archive)
        store = Path(args.work) / "store"
        res = scan(ScanConfig(archive=str(ev / "test"), checkpoints=(checkpoint,),
                              store=str(store), run_id=run_id, score_region="patch",
                              progress=False))
        if not res.ok:
            msg = f"scan {run_id} failed: {res.summary}"
            raise SystemExit(msg)
        labels = ev / "frame_labels_synth.npy"
        return {s: evaluate(store, labels, run_id, fusion=s, sigma=10.0).micro_auc
                for s in streams}

    picked = {int(i) for i in args.only.split(",") if i} or set(range(1, len(ROWS) + 1))
    rows = []
    for i, (label, task, overrides, recipe) in enumerate(ROWS, start=1):
        if i not in picked:
            continue
        cfg = TrainConfig(archive=args.archive, model=task, preset="small", epochs=1,
                          clips_per_epoch=args.clips, storage=f"{args.work}/runs",
                          name=f"row{i}", cache_dir=f"{args.work}/cache", progress=False,
                          model_overrides=overrides, **recipe)
        t0 = time.perf_counter()
        trained = train(cfg)
        sel = trained.selected[task]
        aucs = auc(trained.checkpoints[task], f"row{i}", (task, "diff", "motion")) \
            if args.eval_archive else {}
        row = {"row": i, "variant": label, "task": task, "overrides": overrides,
               "lr": cfg.schedule(task)[0], "warmup_steps": cfg.schedule(task)[1],
               "val_psnr": sel["val_psnr"], "trivial_psnr": sel["val_baseline_psnr"],
               "gain_db": sel["val_gain_db"], "codebook_usage": sel.get("codebook_usage"),
               "seconds": round(time.perf_counter() - t0, 1),
               "micro_auc": aucs.get(task), "diff_auc": aucs.get("diff"),
               "motion_auc": aucs.get("motion")}
        rows.append(row)
        print(f"{i:2} {label:44} {row['val_psnr']:7.2f} {row['trivial_psnr']:7.2f} "
              f"{row['gain_db']:+7.2f} dB  AUC {row['micro_auc'] or float('nan'):.3f} "
              f"(diff {row['diff_auc'] or float('nan'):.3f}, motion "
              f"{row['motion_auc'] or float('nan'):.3f})  {row['seconds']:6.0f} s", flush=True)
    doc = {"machine": machine(), "command": " ".join(shlex.quote(a) for a in sys.argv),
           "clips_per_row": args.clips, "eval_archive": args.eval_archive,
           "batch_size": TrainConfig(archive="a").batch_size,
           "rows": rows}
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
