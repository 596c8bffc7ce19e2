"""Motion gating and stride, side by side: archive frames/s and micro AUC on an idle archive.

One synthetic archive (``raystack synth --idle``): busy normal training videos and test
videos whose action fills only ``1 - idle`` of each (70% empty scene by default, a night
camera). The FP + FR models are trained with ``raystack train`` (which records the gate
floor in the checkpoints) or given with ``--checkpoint``; the test archive is then scanned
four ways in one run of this script, with the same workers and checkpoints:

    ungated        every frame through the models (the papers' protocol)
    gated          --gate: frames below the checkpoints' floors skip the models; the
                   change stage gates frames that did not change without their flow
    gated_flow     --gate --gate-diff-floor -1: the motion stage alone, every frame's
                   flow computed (gating before the change stage)
    stride2        --stride 2: every second frame scored
    gated+stride2  both

and each run is evaluated by ``raystack eval`` (micro AUC of the fused fp+fr, beside the
``diff`` and ``motion`` baselines on the same frames). Archive frames/s counts source
frames covered per second of the run's manifest (first start to last finish), so a strided
run is credited with the frames it skipped. Goal (issue 15): >= 3x ungated frames/s for
<= 0.01 micro AUC lost.

Each run also reports the seconds its units spent in each stage (decode, flow, model,
write: the manifest's sums over units), so ``gated`` against ``gated_flow`` shows the
flow the change stage saved.

    python bench/gating_bench.py --quick                      # tiny preset, park scene
    python bench/gating_bench.py --preset small --epochs 2    # street scene, 128 px
    python bench/gating_bench.py --preset small --checkpoint fp.pt --checkpoint fr.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MODES = {"ungated": {}, "gated": {"gate": True},
         "gated_flow": {"gate": True, "gate_diff_floor": -1}, "stride2": {"stride": 2},
         "gated+stride2": {"gate": True, "stride": 2}}


def train_models(archive: Path, work: Path, args: argparse.Namespace) -> dict[str, str]:
    """``{task: checkpoint}`` of an fp+fr run of ``raystack train`` on ``archive``."""
    from raystack.train import TrainConfig, train

    cfg = TrainConfig(archive=str(archive), model="fp+fr", preset=args.preset,
                      epochs=args.epochs, clips_per_epoch=args.clips_per_epoch,
                      storage=str(work / "runs"), name=f"gating-{args.preset}",
                      cache_dir=str(work / "cache"), progress=False)
    result = train(cfg)
    print(result.summary(), flush=True)
    return dict(result.checkpoints)


def scan_and_eval(mode: str, extra: dict, checkpoints: list[str], archive: Path,
                  labels: Path, store: Path, args: argparse.Namespace) -> dict:
    """One scan of ``archive`` in ``mode`` and its evaluation."""
    from raystack.eval import evaluate
    from raystack.scan import ScanConfig, scan

    run_id = f"{args.preset}-{mode.replace('+', '-')}"
    t0 = time.perf_counter()
    res = scan(ScanConfig(archive=str(archive), checkpoints=tuple(checkpoints),
                          store=str(store), run_id=run_id, workers=args.workers,
                          progress=False, **extra))
    wall = time.perf_counter() - t0
    if not res.ok:
        msg = f"scan {run_id} failed: {res.summary.failed[:3]}"
        raise SystemExit(msg)
    s = res.summary
    # Sigma counts scored frames: a strided run smooths over the same time with sigma / N.
    sigma = args.sigma / extra.get("stride", 1)
    ev = evaluate(store, labels, run_id, fusion=args.fusion, sigma=sigma)
    streams = {st: evaluate(store, labels, run_id, fusion=st, sigma=sigma).micro_auc
               for st in ("fp", "fr")}
    return {"run_id": run_id, "archive_frames": s.frames, "scored_frames": s.scored_frames,
            "gated_frames": s.gated_frames,
            "gated_share": None if s.gated_share is None else round(s.gated_share, 4),
            "manifest_wall_s": round(s.wall_s, 2), "command_wall_s": round(wall, 2),
            "archive_frames_per_s": round(s.frames_per_s, 2),
            "stage_s": {k: round(v, 2) for k, v in s.stage_s.items()},
            "micro_auc": round(ev.micro_auc, 4), "fusion": ev.fusion,
            "stream_micro_auc": {k: round(v, 4) for k, v in streams.items()},
            "baselines_micro_auc": {k: round(v, 4) for k, v in ev.baselines.items()},
            "eval_frames": ev.frames, "sigma": sigma}


def main() -> None:
    from raystack.threads import short_omp_spin

    short_omp_spin()  # as raystack's CLI does, before anything here loads torch
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny preset, park scene, short videos: minutes, for checking")
    p.add_argument("--preset", default="small", help="small or paper (ped2)")
    p.add_argument("--checkpoint", action="append", default=[],
                   help="use these checkpoints (fp.pt, fr.pt) instead of training")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--clips-per-epoch", type=int, default=600)
    p.add_argument("--idle", type=float, default=0.7)
    p.add_argument("--n-train", type=int, default=4)
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--size", default="320x240")
    p.add_argument("--workers", type=int, default=0, help="scan actors (0: one per CPU)")
    p.add_argument("--fusion", default="weighted:0.5")
    p.add_argument("--sigma", type=float, default=10.0)
    p.add_argument("--work", default="/tmp/raystack-gating")
    p.add_argument("--name", default=None, help="results file (default gating[_quick].json)")
    args = p.parse_args()
    scene = "street"
    if args.quick:
        args.preset, scene, args.frames, args.size = "tiny", "park", 200, "96x96"
        args.epochs, args.clips_per_epoch, args.n_train, args.n_test = 1, 200, 2, 3

    from machine_info import machine

    from raystack.synth import synthesize

    work = Path(args.work)
    archive = work / f"archive-{scene}-{args.size}-{args.frames}-{args.idle}"
    w, h = (int(v) for v in args.size.split("x"))
    t0 = time.perf_counter()
    if not (archive / "labels.json").is_file():
        synthesize(archive, seed=15, n_train=args.n_train, n_test=args.n_test,
                   frames=args.frames, size=(w, h), scene=scene, idle=args.idle,
                   overwrite=True)
    synth_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ckpts = args.checkpoint or list(train_models(archive / "train", work, args).values())
    train_s = time.perf_counter() - t0 if not args.checkpoint else None

    store = work / f"store-{args.preset}-{int(time.time())}"
    out = {}
    for mode, extra in MODES.items():
        out[mode] = scan_and_eval(mode, extra, ckpts, archive / "test",
                                  archive / "frame_labels_synth.npy", store, args)
        print(mode, json.dumps(out[mode]), flush=True)
    base = out["ungated"]
    for r in out.values():
        r["speedup"] = round(r["archive_frames_per_s"] / base["archive_frames_per_s"], 2)
        r["auc_cost"] = round(base["micro_auc"] - r["micro_auc"], 4)
        r["meets_goal"] = r["speedup"] >= 3.0 and r["auc_cost"] <= 0.01
    from raystack.models.checkpoint import read_checkpoint

    floors = {Path(c).name: (read_checkpoint(c).get("extra") or {}).get("gate") for c in ckpts}
    doc = {"bench": "gating", "preset": args.preset, "scene": scene, "quick": args.quick,
           "archive": {"idle": args.idle, "n_train": args.n_train, "n_test": args.n_test,
                       "frames": args.frames, "size": args.size},
           "train": {"epochs": args.epochs, "clips_per_epoch": args.clips_per_epoch,
                     "seconds": None if train_s is None else round(train_s, 1),
                     "checkpoints_given": bool(args.checkpoint)},
           "gate_records": floors, "synth_s": round(synth_s, 1), "fusion": args.fusion,
           "sigma": args.sigma, "runs": out,
           "protocol": "archive frames/s = source frames of done units / manifest wall time; "
                       "micro AUC by raystack eval (gated rows score as the video's most "
                       "normal frame; strided runs evaluated on the frames scored)",
           "command": "python " + " ".join(sys.argv),
           "machine": machine(scan_workers=args.workers)}
    name = args.name or ("gating_quick" if args.quick else f"gating_{args.preset}")
    path = ROOT / "bench" / "results" / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")
    for mode, r in out.items():
        print(f"{mode:14s} {r['archive_frames_per_s']:8.1f} archive frames/s  x{r['speedup']:.2f}"
              f"  micro AUC {r['micro_auc']:.4f} (cost {r['auc_cost']:+.4f})  gated "
              f"{r['gated_share']}  flow {r['stage_s']['flow_s']:.1f} s  decode "
              f"{r['stage_s']['decode_s']:.1f} s")


if __name__ == "__main__":
    main()
