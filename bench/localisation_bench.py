"""Whole-frame vs tiled scoring at camera resolution: frame AUC and where the anomaly is.

The realistic street scene (``raystack synth --scene street``) at a camera-like size
(1280x720 by default): normal training footage (seed 1) and a labelled TEST archive
(seed 3, every anomaly kind), both of one fixed camera by default (``--camera shared``,
as a deployment trains on its own camera; the scene prior and calibrated references are
only meaningful there). The same model is trained twice with ``raystack train``, on
whole frames resized to its input and on tiles (``--tiles``: img_size crops of the frame
downscaled by ``--tile-scale``), at EQUAL training budget: the same epochs and clips per
epoch at the same input size, so the same optimisation steps of the same cost (the
decoding, flow and cache of each differ and are reported in the train seconds; the
whole-frame run goes first and carries the process's one-off warm-up). The test
archive is scanned whole-frame with the whole-frame models and tiled with the tiled ones,
both with ``--region`` (patch by default, so both runs have a box per frame). Every figure
comes from ``raystack eval`` with the synth's ``labels.json`` (docs/evaluation.md): frame
micro/macro AUC of a label-free fusion (``--fusion``, default ``auto``) beside the
``diff``, ``motion`` (and ``presence``) baselines on the same frames, and the localisation
share (peak-frame box on the labelled box, IoU > 0.1 or centre inside; target >= 70%
tiled), overall, per kind and for the subtle kinds (loiterer, thrown_object, runner,
erratic).

Cost: at 1280x720 the automatic scale gives a 640x360 working frame, 28 tiles of 128 px
(small preset) per frame, so the tiled scan makes ~28x the model calls of the whole-frame
one (12 test videos x 300 frames x 28 tiles ~ 100k per stream): hours on a shared CPU,
minutes on a GPU. ``--n-test 6 --frames 150`` (one video per kind) quarters it.

Printed and written to ``bench/results/<name>.json``.

    .venv/bin/python bench/localisation_bench.py                    # the full benchmark
    .venv/bin/python bench/localisation_bench.py --quick            # tiny, a few minutes
    .venv/bin/python bench/localisation_bench.py --test-seed 5      # a validation archive
    .venv/bin/python bench/localisation_bench.py --keep-runs --gate  # what gating costs
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quality_bench import per_kind_auc, subtle_kinds, synth_archives, train_runs  # noqa: E402

MODES = ("whole", "tiled")
TARGET = 0.70
QUICK = {"preset": "tiny", "model": "fp+fr", "n_train": 2, "n_test": 6, "frames": 40,
         "size": "320x180", "epochs": 1, "clips_per_epoch": "16", "sigma": 3.0,
         "name": "localisation_quick", "work": "/tmp/raystack-localisation-quick"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/raystack-localisation",
                   help="archives, runs and store")
    p.add_argument("--name", default="localisation", help="results file bench/results/NAME.json")
    p.add_argument("--model", default="fp+fr", choices=("fp", "fr", "fp+fr"))
    p.add_argument("--preset", default="small")
    p.add_argument("--epochs", type=int, default=3, help="epochs of BOTH trainings")
    p.add_argument("--clips-per-epoch", default="fp=2400,fr=1000",
                   help="clips per epoch of BOTH trainings: N, or per task fp=2400,fr=1000")
    p.add_argument("--tile-scale", type=float, default=0.0,
                   help="training and scan tile scale (0: automatic, a 360-px working height)")
    p.add_argument("--n-train", type=int, default=6)
    p.add_argument("--n-test", type=int, default=12)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--size", default="1280x720", help="WxH of the synthetic camera")
    p.add_argument("--region", default="patch", choices=("frame", "patch", "calibrated"))
    p.add_argument("--sigma", type=float, default=10.0)
    p.add_argument("--fusion", default="auto",
                   help="the label-free fusion evaluated and localised (default auto: the "
                        "learned pair); e.g. the one bench/quality_bench.py chose on its "
                        "validation archive, such as weighted:0.75:fp,presence")
    p.add_argument("--reuse", action="store_true", help="keep archives already synthesized")
    p.add_argument("--train-name", default=None,
                   help="with --keep-runs: the training runs' NAME (default --name), to "
                        "rescan another benchmark's models under another --region")
    p.add_argument("--keep-runs", action="store_true",
                   help="keep finished training runs of the same name and settings (train "
                        "resumes them, finding nothing left to do): rescan and re-evaluate "
                        "after a scoring change; the seconds of training are then not measured")
    p.add_argument("--camera", default="shared", choices=("shared", "per-split"),
                   help="shared: the training and test archives are one fixed camera on "
                        "other days; per-split: each archive its own camera (the protocol of "
                        "localisation_720p.json, _grown.json and _calibrated.json)")
    p.add_argument("--test-seed", type=int, default=3,
                   help="seed of the labelled archive scanned (3: the test archive; another "
                        "seed gives a validation archive of the same camera, in "
                        "WORK/archive-test-s<SEED>, to choose a scoring rule on before "
                        "reading the test archive)")
    p.add_argument("--gate", action="store_true",
                   help="scan both modes with motion gating (raystack scan --gate, the floors "
                        "the training runs calibrated): what gating costs in AUC and "
                        "localisation beside the same benchmark without it")
    p.add_argument("--modes", default="whole,tiled",
                   help="the modes trained, scanned and evaluated: whole,tiled (default), or "
                        "one of them (e.g. tiled at another --tile-scale, whole-frame results "
                        "being independent of the tile scale)")
    p.add_argument("--train-seed", type=int, default=0,
                   help="training's seed (model init, clip order): another seed is another "
                        "training of the same recipe, to see how much the figures move")
    p.add_argument("--quick", action="store_true",
                   help=f"end-to-end check at a tiny size: {QUICK}")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        p.error(f"--modes {args.modes!r}: choose from {','.join(MODES)}")
    args.modes = [m for m in MODES if m in modes]
    return args


def scan_run(args: argparse.Namespace, mode: str, archive: Path, checkpoints: dict,
             store: Path, run_id: str) -> tuple[float, int]:
    """Scan ``archive`` whole-frame or tiled; returns the seconds it took and the frames
    the gate kept from the models (0 without ``--gate``)."""
    import dataclasses

    from raystack.scan import ScanConfig, scan

    tiling = {"tiles": True, "tile_scale": args.tile_scale} if mode == "tiled" else {}
    if tiling and "tiles" not in {f.name for f in dataclasses.fields(ScanConfig)}:
        msg = "this raystack's scan cannot tile (ScanConfig has no 'tiles'): merge issue14-tiles"
        raise SystemExit(msg)
    t0 = time.perf_counter()
    res = scan(ScanConfig(archive=str(archive), checkpoints=tuple(checkpoints.values()),
                          store=str(store), run_id=run_id, score_region=args.region,
                          progress=False, gate=args.gate, **tiling))
    if not res.ok:
        msg = f"scan {run_id} failed: {res.summary}"
        raise SystemExit(msg)
    return time.perf_counter() - t0, res.summary.gated_frames


def kind_rows(evals: dict, meta: dict) -> dict[str, dict]:
    """Per anomaly kind: subtle flag, mean video AUC and localisation share of each mode."""
    subtle = set(subtle_kinds(meta))
    aucs = {m: per_kind_auc(r, meta) for m, r in evals.items()}
    kinds = sorted({k for a in aucs.values() for k in a} | {
        k for r in evals.values() for k in ((r.localisation or {}).get("by_kind") or {})})
    rows = {}
    for k in kinds:
        row = {"subtle": k in subtle}
        for m, r in evals.items():
            per = aucs[m].get(k) or []
            row[f"auc_{m}"] = float(np.mean(per)) if per else None
            loc = ((r.localisation or {}).get("by_kind") or {}).get(k) or {}
            row[f"loc_{m}"] = loc.get("share")
            row[f"loc_judged_{m}"] = loc.get("judged", 0)
        rows[k] = row
    return rows


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.0f}%" if pct else f"{v:.4f}"


def report(args, evals, kinds, train_s, scan_s) -> None:
    """Print the table."""
    print(f"\n{args.model} {args.preset} at {args.size}, region {args.region}, sigma "
          f"{args.sigma}, tile_scale {args.tile_scale:g} (0 = automatic)")
    print(f"{'mode':7} {'train s':>8} {'scan s':>7} {'micro':>7} {'macro':>7} {'diff':>7} "
          f"{'motion':>7} {'presence':>8} {'loc':>6} {'judged':>7} {'subtle loc':>10}")
    for m, r in evals.items():
        loc = r.localisation or {}
        ok = loc.get("available")
        # kept runs resume with nothing to do: their seconds are not a training's
        trained = "kept" if args.keep_runs else f"{train_s[m]:.0f}"
        print(f"{m:7} {trained:>8} {scan_s[m]:7.0f} {_fmt(r.micro_auc):>7} "
              f"{_fmt(r.macro_auc):>7} {_fmt(r.baselines.get('diff')):>7} "
              f"{_fmt(r.baselines.get('motion')):>7} {_fmt(r.baselines.get('presence')):>8} "
              f"{_fmt(loc.get('share') if ok else None, True):>6} "
              f"{loc.get('judged', 0) if ok else 0:>4}/{loc.get('events', 0):<2} "
              f"{_fmt((loc.get('subtle') or {}).get('share') if ok else None, True):>10}")
    print(f"\n{'kind':14} {'subtle':6} " + " ".join(f"{'AUC ' + m:>10}" for m in evals)
          + " " + " ".join(f"{'loc ' + m:>10}" for m in evals))
    for k, row in kinds.items():
        print(f"{k:14} {'yes' if row['subtle'] else '':6} "
              + " ".join(f"{_fmt(row[f'auc_{m}']):>10}" for m in evals) + " "
              + " ".join(f"{_fmt(row[f'loc_{m}'], True):>10}" for m in evals))
    if "tiled" not in evals:
        return
    tiled = (evals["tiled"].localisation or {}).get("share")
    verdict = "n/a" if tiled is None else ("met" if tiled >= TARGET else "NOT met")
    print(f"localisation target (tiled >= {100 * TARGET:.0f}%): {verdict}")


def main(argv: list[str] | None = None) -> None:
    from raystack.threads import short_omp_spin

    short_omp_spin()  # as raystack's CLI does, before anything here loads torch
    args = parse_args(argv)
    from machine_info import machine

    from raystack.eval import evaluate

    work = Path(args.work)
    # Fresh runs, store and evaluations every time (only --reuse'd archives and the decode
    # cache carry over): a resumed run of other footage or checkpoints would be refused.
    for old in ("store", "eval") if args.keep_runs else ("runs", "store", "eval"):
        shutil.rmtree(work / old, ignore_errors=True)
    w, h = (int(v) for v in args.size.split("x"))
    test_split = "test" if args.test_seed == 3 else f"test-s{args.test_seed}"
    archives, synth_s = synth_archives(
        work, [("train", 1, args.n_train, 0), (test_split, args.test_seed, 0, args.n_test)],
        frames=args.frames, size=(w, h), reuse=args.reuse,
        camera=1 if args.camera == "shared" else None)
    labels = archives[test_split] / "labels.json"
    meta = json.loads(labels.read_text())
    store = work / "store"
    trained, train_s, scan_s, gated, evals = {}, {}, {}, {}, {}
    for mode in args.modes:
        name = f"{args.name}-{mode}-{args.preset}"
        train_name = f"{args.train_name or args.name}-{mode}-{args.preset}"
        trained[mode] = train_runs(
            args.model, archive=archives["train"] / "train", work=work, name=train_name,
            clips_per_epoch=args.clips_per_epoch, preset=args.preset, epochs=args.epochs,
            tiles=mode == "tiled", tile_scale=args.tile_scale, seed=args.train_seed)
        train_s[mode] = trained[mode]["seconds"]
        scan_s[mode], gated[mode] = scan_run(args, mode, archives[test_split] / "test",
                                trained[mode]["checkpoints"], store, name)
        evals[mode] = evaluate(store, labels, name, fusion=args.fusion, sigma=args.sigma,
                               out_dir=work / "eval" / mode)
        print(evals[mode].summary(), flush=True)
    kinds = kind_rows(evals, meta)
    report(args, evals, kinds, train_s, scan_s)

    doc = {
        "machine": machine(),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "protocol": "docs/evaluation.md via raystack eval with labels.json; fusion "
                    f"{args.fusion!r} (label-free) for both modes; "
                    "equal training budget (epochs x clips at "
                    "the same input size); localisation: peak-frame box vs labelled box, "
                    "IoU > 0.1 or centre inside",
        "synth": {"scene": "street", "camera": args.camera, "size": [w, h], "frames": args.frames,
                  "test_seed": args.test_seed,
                  "n_train": args.n_train, "n_test": args.n_test, "seconds": round(synth_s, 1),
                  "subtle_kinds": subtle_kinds(meta)},
        "config": {k: v for k, v in vars(args).items() if k != "work"},
        "runs_kept": args.keep_runs,
        "train": {m: {"seconds": round(t["seconds"], 1), "selected": t["selected"],
                      "warnings": t["warnings"]} for m, t in trained.items()},
        "scan_seconds": {m: round(s, 1) for m, s in scan_s.items()},
        "scan_gated_frames": gated,
        "results": {m: {"fusion": r.fusion, "micro_auc": r.micro_auc, "macro_auc": r.macro_auc,
                        "baselines": r.baselines, "frames": r.frames, "videos": r.videos,
                        "localisation": r.localisation} for m, r in evals.items()},
        "per_kind": kinds,
        "target_localisation": TARGET,
    }
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
