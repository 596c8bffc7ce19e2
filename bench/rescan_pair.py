"""Rescan a quality benchmark's archives with FP and FR checkpoints from two different runs.

Measures a pair no single training run produced, e.g. the default recipe's FP of one run with
the FR of another, on the validation and test archives ``bench/quality_bench.py`` wrote under
``--work``; the fusion is chosen on validation as that benchmark does. Writes
``bench/results/NAME.json``.

    .venv/bin/python bench/rescan_pair.py --work /tmp/scene2 \
        --fp /tmp/scene2/runs/quality_settled_24_e6-fp-fr-small-fp+fr/fp.pt \
        --fr /tmp/scene2/runs/quality_settled_24-fp-fr-small-fp+fr/fr.pt \
        --name quality_settled_24_fp6_fr2 --region calibrated

``--tiles`` rescans tiled; ``--scene-prior`` first fits the scene prior (the ``presence``
stream) on ``--work``'s normal training archive into both checkpoints, as ``raystack
train`` does at export, for runs a resume can no longer re-export (their recipe changed).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="a quality_bench.py work folder")
    p.add_argument("--fp", required=True, help="FP checkpoint")
    p.add_argument("--fr", required=True, help="FR checkpoint")
    p.add_argument("--name", required=True, help="results file bench/results/NAME.json")
    p.add_argument("--region", default="patch", choices=("frame", "patch", "calibrated"))
    p.add_argument("--sigma", type=float, default=10.0)
    p.add_argument("--tiles", action="store_true", help="scan tiles of the frame")
    p.add_argument("--tile-scale", type=float, default=1.0, help="with --tiles")
    p.add_argument("--scene-prior", action="store_true",
                   help="fit the scene prior on the work folder's training archive into both "
                        "checkpoints first (in place, as a re-export would)")
    args = p.parse_args()

    from machine_info import machine
    from quality_bench import candidate_fusions, cheap_fusions, has_stream

    from raystack.eval import evaluate
    from raystack.scan import ScanConfig, scan

    work = Path(args.work)
    missing = [str(f) for f in (args.fp, args.fr, work / "archive-val", work / "archive-test")
               if not Path(f).exists()]
    if missing:
        msg = f"rescan_pair: not found: {', '.join(missing)} (run bench/quality_bench.py first)"
        raise SystemExit(msg)
    if args.scene_prior:
        from types import SimpleNamespace

        from raystack.models import get_config, load_checkpoint
        from raystack.models.checkpoint import write_checkpoint_extra
        from raystack.scene_prior import SCENE_KEY
        from raystack.train.data import list_training_videos
        from raystack.train.scene_calibration import fit_scene_record

        _, info = load_checkpoint(args.fp)
        cfg = SimpleNamespace(archive=str(work / "archive-train" / "train"), tiles=args.tiles,
                              tile_scale=args.tile_scale, val_fraction=0.1)
        record = fit_scene_record(cfg, list_training_videos(cfg.archive),
                                  img_size=tuple(get_config(info["preset"]).img_size))
        for ckpt in (args.fp, args.fr):
            write_checkpoint_extra(ckpt, SCENE_KEY, record)
    store = work / "store"
    for split in ("val", "test"):
        res = scan(ScanConfig(archive=str(work / f"archive-{split}" / "test"),
                              checkpoints=(args.fp, args.fr), store=str(store),
                              run_id=f"{args.name}-{split}", score_region=args.region,
                              progress=False, tiles=args.tiles,
                              tile_scale=args.tile_scale if args.tiles else 0.0))
        if not res.ok:
            msg = f"scan {args.name}-{split} failed: {res.summary}"
            raise SystemExit(msg)
    labels = {s: work / f"archive-{s}" / "frame_labels_synth.npy" for s in ("val", "test")}

    def auc(split: str, fusion: str) -> float:
        return evaluate(store, labels[split], f"{args.name}-{split}", fusion=fusion,
                        sigma=args.sigma).micro_auc

    presence = all(has_stream(store, f"{args.name}-{s}", "presence") for s in ("val", "test"))
    references = ("diff", "motion", *(("presence",) if presence else ()))
    val = {f: auc("val", f) for f in candidate_fusions(("fp", "fr"), presence)}
    chosen = max(val, key=val.get)
    val_cheap = {f: auc("val", f) for f in cheap_fusions(presence)}
    chosen_cheap = max(val_cheap, key=val_cheap.get)
    test = {s: auc("test", s) for s in dict.fromkeys(("fp", "fr", *references, chosen,
                                                      chosen_cheap))}
    best_base = max(test[s] for s in references)
    print(f"{'test micro AUC':24} (fusion chosen on validation: {chosen}, val {val[chosen]:.4f};"
          f" label-free: {chosen_cheap}, val {val_cheap[chosen_cheap]:.4f})")
    for s, v in test.items():
        print(f"{s:24} {v:.4f}")
    print(f"fused - best baseline: {test[chosen] - best_base:+.4f}; fused - label-free "
          f"fusion: {test[chosen] - test[chosen_cheap]:+.4f}")
    doc = {"machine": machine(), "command": " ".join(shlex.quote(a) for a in sys.argv),
           "checkpoints": {"fp": args.fp, "fr": args.fr}, "region": args.region,
           "tiles": {"on": args.tiles, "tile_scale": args.tile_scale} if args.tiles else None,
           "sigma": args.sigma, "validation_fusions": val, "chosen_fusion": chosen,
           "test_micro_auc": test, "fused_minus_best_baseline": test[chosen] - best_base,
           "reference_streams": list(references), "validation_cheap_fusions": val_cheap,
           "chosen_cheap_fusion": chosen_cheap,
           "fused_minus_cheap_fused": test[chosen] - test[chosen_cheap]}
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
