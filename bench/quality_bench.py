"""Do the learned scores beat the trivial ones? Train, scan and evaluate on a realistic scene.

Three archives of the same synthetic street scene (``raystack synth --scene street``):
normal training footage, a labelled VALIDATION archive (another seed) and a labelled TEST
archive (a third seed). The models train with ``raystack train``'s defaults (only the
number of epochs and the clips drawn per epoch are set, to fit the time budget); both
labelled archives are scanned by ``raystack scan`` (which also writes the ``diff`` and
``motion`` baseline streams from the same decode and flow), and every figure comes from
``raystack eval`` (the protocol in docs/evaluation.md). The fusion is chosen on the
validation archive and applied unchanged to the test archive: no test labels decide it.

Printed and written to ``bench/results/<name>.json``:
- per stream: validation PSNR of the model beside its trivial baseline on the same clips
  (copy-last for FP and M2S2L, zero flow for FR), from the training history;
- micro/macro AUC on the test archive of every stream, learned and trivial, and of the
  fusion chosen on validation; AUC per anomaly kind, subtle kinds marked.

    .venv/bin/python bench/quality_bench.py --model fp+fr --epochs 4 --clips-per-epoch 1500
    .venv/bin/python bench/quality_bench.py --model m2s2l --name quality_m2s2l ...
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PAIRS = {"fp+fr": ("fp", "fr"), "m2s2l": ("m2s2l_app", "m2s2l_mot"), "fp": ("fp",),
         "fr": ("fr",)}
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
PAIRS_TRAIN = {"fp+fr": ("fp", "fr"), "m2s2l": ("m2s2l",), "fp": ("fp",), "fr": ("fr",)}


def _clips(spec: str | None, tasks: tuple[str, ...]) -> dict[str, int] | None:
    """``fp=2400,fr=1000`` -> {"fp": 2400, "fr": 1000}; a plain number or None -> None."""
    if spec is None or "=" not in spec:
        return None
    out = {k.strip(): int(v) for k, v in (part.split("=") for part in spec.split(","))}
    if set(out) != set(tasks):
        msg = f"--clips-per-epoch {spec!r} must name exactly {tasks}"
        raise SystemExit(msg)
    return out


def _overrides(pairs: list[str]) -> dict:
    """``["residual=false", "flow_scale=10"]`` -> {"residual": False, "flow_scale": 10.0}."""
    out = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        low = raw.strip().lower()
        out[key.strip()] = (low == "true") if low in ("true", "false") else float(raw)
    return out


def candidate_fusions(streams: tuple[str, ...], presence: bool = False) -> list[str]:
    """Label-free fusions of the learned streams the validation archive chooses among; with
    ``presence`` (the scene prior's stream), also each learned stream weighted with it, the
    pair's mean weighted with it, and the largest of them all."""
    if len(streams) == 1:
        out = [streams[0]]
    else:
        a, b = streams
        out = [f"weighted:{x:g}:{a},{b}" for x in ALPHAS] + [f"max:{a},{b}"]
    if presence:
        out += [f"weighted:{x:g}:{s},presence" for s in streams for x in ALPHAS[1:-1]]
        if len(streams) == 2:
            out += [f"weighted:{x:g}:{a},{b},presence" for x in ALPHAS[1:-1]]
        out.append(f"max:{','.join(streams)},presence")
    return out


def cheap_fusions(presence: bool = False) -> list[str]:
    """The same choice among the label-free reference streams alone (no learned model): what
    the learned fusion must beat when both are chosen on validation."""
    out = ["diff", "motion", *(f"weighted:{x:g}:diff,motion" for x in ALPHAS[1:-1]),
           "max:diff,motion"]
    if presence:
        out += ["presence", *(f"weighted:{x:g}:{s},presence" for s in ("diff", "motion")
                              for x in ALPHAS[1:-1]),
                *(f"weighted:{x:g}:diff,motion,presence" for x in ALPHAS[1:-1]),
                "max:diff,motion,presence"]
    return out


def has_stream(store, run_id: str, stream: str) -> bool:
    """Whether run ``run_id`` of ``store`` wrote rows of ``stream``."""
    from raystack.store import Store

    models = Store(str(store)).read_table("scores", run_id, columns=["model"])["model"]
    return stream in set(models.to_pylist())


def per_kind_auc(result, meta: dict) -> dict[str, list[float]]:
    """Per-video AUCs of ``result`` grouped by the anomaly kind each test video holds."""
    kind_of = {m["name"]: k for m in meta["test"] for k in m["kinds"]}
    out: dict[str, list[float]] = {}
    for v in result.per_video:
        kind = kind_of.get(Path(v["relpath"]).name.split(".")[0])
        if kind is not None and v["auc"] is not None:
            out.setdefault(kind, []).append(float(v["auc"]))
    return out


def synth_archives(work: Path, splits: list[tuple[str, int, int, int]], *, frames: int,
                   size: tuple[int, int], reuse: bool,
                   camera: int | None = None) -> tuple[dict[str, Path], float]:
    """Street-scene archives ``work/archive-<split>`` of ``(split, seed, n_train, n_test)``
    (kept when ``reuse`` and already there, of the same camera); returns them and the
    seconds it took. ``camera``: one static scene for every split (a fixed camera's
    training and test days); None gives each split its own (other cameras)."""
    from raystack.synth import synthesize

    t0 = time.perf_counter()
    archives = {}
    for split, seed, n_train, n_test in splits:
        out = work / f"archive-{split}"
        meta = out / "labels.json"
        want = seed if camera is None else camera
        if not (reuse and meta.is_file()
                and json.loads(meta.read_text()).get("camera", seed) == want):
            synthesize(out, seed=seed, n_train=n_train, n_test=n_test, frames=frames,
                       size=size, scene="street", overwrite=True, camera=camera)
        archives[split] = out
    return archives, time.perf_counter() - t0


def train_runs(model: str, *, archive: Path, work: Path, name: str, clips_per_epoch: str | None,
               **cfg: object) -> dict:
    """Train ``model`` with ``raystack train``: one run per task when ``clips_per_epoch``
    names a budget per task (``fp=2400,fr=1000``), else one run of the whole model.

    Args:
        archive: the normal footage folder; work: runs and cache go under it.
        name: run name prefix (``<name>-<model>`` per run).
        cfg: further TrainConfig fields (preset, epochs, lr, model_overrides, tiles, ...).

    Returns:
        ``{"checkpoints", "selected", "history", "warnings", "seconds"}`` over the runs.
    """
    from raystack.train import TrainConfig, train

    budget = _clips(clips_per_epoch, PAIRS_TRAIN[model])
    runs = [(model, None)] if budget is None else list(budget.items())
    out: dict = {"checkpoints": {}, "selected": {}, "history": {}, "warnings": [],
                 "seconds": 0.0}
    for part, clips in runs:
        tc = TrainConfig(archive=str(archive), model=part,
                         clips_per_epoch=(clips if clips is not None else
                                          None if clips_per_epoch is None
                                          else int(clips_per_epoch)),
                         storage=str(work / "runs"), name=f"{name}-{part}",
                         cache_dir=str(work / "cache"), progress=False, **cfg)
        t0 = time.perf_counter()
        trained = train(tc)
        out["seconds"] += time.perf_counter() - t0
        print(trained.summary(), flush=True)
        out["warnings"] += trained.warnings()
        for key in ("checkpoints", "selected", "history"):
            out[key].update(getattr(trained, key))
    return out


def subtle_kinds(meta: dict) -> list[str]:
    """The subtle anomaly kinds a synth ``labels.json`` document's test videos hold."""
    return sorted({a["kind"] for m in meta["test"] for a in m.get("anomalies", [])
                   if a.get("subtle")})


def main() -> None:
    from raystack.threads import short_omp_spin

    short_omp_spin()  # as raystack's CLI does, before anything here loads torch
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/raystack-quality", help="archives, runs and store")
    p.add_argument("--name", default="quality", help="results file bench/results/NAME.json")
    p.add_argument("--train-name", default=None,
                   help="the training runs' NAME (default --name): scan another benchmark's "
                        "trained models, e.g. under another --region, without retraining "
                        "(a finished run is only re-exported)")
    p.add_argument("--model", default="fp+fr", choices=sorted(PAIRS))
    p.add_argument("--preset", default="small")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs (default: raystack train's, the model's recipe)")
    p.add_argument("--clips-per-epoch", default=None,
                   help="clips drawn per epoch: N, or per task as fp=2400,fr=1000 "
                        "(default: raystack train's, the model's recipe)")
    p.add_argument("--workers", type=int, default=0, help="training workers (0: in process)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override (VQMaUConfig field), e.g. residual=false; "
                        "repeatable")
    p.add_argument("--lr", type=float, default=None, help="peak lr (default: the recipe's)")
    p.add_argument("--n-train", type=int, default=8)
    p.add_argument("--n-test", type=int, default=24,
                   help="test videos (4 per anomaly kind); validation gets half as many: "
                        "at 12 and 6 a single video moved the micro AUC by hundredths")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--size", default="320x240")
    p.add_argument("--region", default="patch", choices=("frame", "patch", "calibrated"),
                   help="scan score region; calibrated scores the baselines alike")
    p.add_argument("--sigma", type=float, default=10.0)
    p.add_argument("--tiles", action="store_true",
                   help="train on crops and scan tiles of the frame downscaled by --tile-scale "
                        "(issue 14's tiled scoring) instead of whole frames resized to the model")
    p.add_argument("--tile-scale", type=float, default=1.0,
                   help="downscale of the frame the tiles cover (1: full resolution)")
    p.add_argument("--reuse", action="store_true", help="keep archives already synthesized")
    p.add_argument("--no-presence", action="store_true",
                   help="scan without the scene prior's presence stream (the protocol before it)")
    p.add_argument("--camera", default="shared", choices=("shared", "per-split"),
                   help="shared: train, validation and test archives are one fixed camera "
                        "(the training seed's scene) on other days, as a deployment is; "
                        "per-split: each archive its own camera (round 2's protocol)")
    args = p.parse_args()

    from machine_info import machine

    from raystack.eval import evaluate
    from raystack.scan import ScanConfig, scan
    work = Path(args.work)
    w, h = (int(v) for v in args.size.split("x"))
    archives, synth_s = synth_archives(
        work, [("train", 1, args.n_train, 0), ("val", 2, 0, max(6, args.n_test // 2)),
               ("test", 3, 0, args.n_test)], frames=args.frames, size=(w, h), reuse=args.reuse,
        camera=1 if args.camera == "shared" else None)

    name = f"{args.name}-{args.model.replace('+', '-')}-{args.preset}"
    train_name = f"{args.train_name or args.name}-{args.model.replace('+', '-')}-{args.preset}"
    # One `raystack train` run per task when the budget differs per task (FR trains ~4x
    # slower per clip than FP on this CPU), else one run of the whole model.
    trained = train_runs(args.model, archive=archives["train"] / "train", work=work,
                         name=train_name,
                         clips_per_epoch=args.clips_per_epoch, preset=args.preset,
                         epochs=args.epochs, lr=args.lr, workers=args.workers,
                         model_overrides=_overrides(args.override),
                         **({"tiles": True, "tile_scale": args.tile_scale} if args.tiles else {}))
    checkpoints, selected, history = (trained[k] for k in ("checkpoints", "selected", "history"))
    warnings, train_s = trained["warnings"], trained["seconds"]
    for line in warnings:
        print(line)

    store = work / "store"
    evals, scan_s = {}, {}
    for split in ("val", "test"):
        run_id = f"{name}-{split}"
        t0 = time.perf_counter()
        res = scan(ScanConfig(archive=str(archives[split] / "test"),
                              checkpoints=tuple(checkpoints.values()),
                              store=str(store), run_id=run_id, score_region=args.region,
                              progress=False, tiles=args.tiles, presence=not args.no_presence,
                              tile_scale=args.tile_scale if args.tiles else 0.0))
        scan_s[split] = round(time.perf_counter() - t0, 1)
        if not res.ok:
            msg = f"scan {run_id} failed: {res.summary}"
            raise SystemExit(msg)
        evals[split] = run_id

    labels = {s: archives[s] / "frame_labels_synth.npy" for s in ("val", "test")}
    learned = PAIRS[args.model]
    presence = all(has_stream(store, evals[s], "presence") for s in ("val", "test"))
    references = ("diff", "motion", *(("presence",) if presence else ()))

    def on(split: str, fusion: str):
        return evaluate(store, labels[split], evals[split], fusion=fusion, sigma=args.sigma)

    val = {f: on("val", f) for f in candidate_fusions(learned, presence)}
    chosen = max(val, key=lambda f: val[f].micro_auc)
    # The cheap side of the comparison is chosen the same way, among label-free streams only.
    val_cheap = {f: on("val", f) for f in cheap_fusions(presence)}
    chosen_cheap = max(val_cheap, key=lambda f: val_cheap[f].micro_auc)
    test = {s: on("test", s) for s in (*learned, *references)}
    fused = on("test", chosen)
    cheap = test[chosen_cheap] if chosen_cheap in test else on("test", chosen_cheap)
    meta = json.loads((archives["test"] / "labels.json").read_text())
    subtle = subtle_kinds(meta)
    kinds = {s: per_kind_auc(r, meta) for s, r in {**test, "fused": fused}.items()}

    best_base = max(test[s].micro_auc for s in references)
    print(f"\n{args.model} {args.preset}: training {train_s:.0f} s, synth {synth_s:.0f} s, "
          f"scans {scan_s}")
    print(f"{'stream':10} {'val PSNR':>9} {'trivial':>8} {'gain dB':>8}")
    for task, sel in selected.items():
        print(f"{task:10} {sel['val_psnr']:9.2f} {sel['val_baseline_psnr']:8.2f} "
              f"{sel['val_gain_db']:+8.2f}")
    print(f"\ntest micro/macro AUC, sigma {args.sigma}, region {args.region} "
          f"({fused.frames} frames, {fused.videos} videos); fusion chosen on validation: "
          f"{chosen} (val micro {val[chosen].micro_auc:.4f})")
    for s, r in {**test, f"fused {chosen}": fused}.items():
        per = ", ".join(f"{k} {np.mean(v):.3f}" for k, v in kinds.get(s, kinds["fused"]).items()
                        if v)
        print(f"{s:32} {r.micro_auc:.4f} {r.macro_auc or float('nan'):.4f}   {per}")
    print(f"fused - best baseline: {fused.micro_auc - best_base:+.4f}")
    print(f"label-free fusion chosen on validation: {chosen_cheap} (val micro "
          f"{val_cheap[chosen_cheap].micro_auc:.4f}), test micro {cheap.micro_auc:.4f}; "
          f"fused - it: {fused.micro_auc - cheap.micro_auc:+.4f}")

    doc = {
        "machine": machine(),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "protocol": "docs/evaluation.md via raystack eval; fusion chosen on a labelled "
                    "validation archive (seed 2), applied to the test archive (seed 3)",
        "synth": {"scene": "street", "camera": args.camera, "size": [w, h], "frames": args.frames,
                  "n_train": args.n_train, "n_test": args.n_test, "seconds": round(synth_s, 1),
                  "subtle_kinds": subtle},
        "train": {"config": {k: v for k, v in vars(args).items() if k not in ("work",)},
                  "seconds": round(train_s, 1), "selected": selected,
                  "reused_from": args.train_name,  # then seconds = re-export + calibration
                  "history": history, "warnings": warnings},
        "scan_seconds": scan_s,
        "validation_fusions": {f: r.micro_auc for f, r in val.items()},
        "chosen_fusion": chosen,
        "test": {s: {"micro_auc": r.micro_auc, "macro_auc": r.macro_auc,
                     "per_kind": kinds.get(s)} for s, r in test.items()},
        "test_fused": {"fusion": chosen, "micro_auc": fused.micro_auc,
                       "macro_auc": fused.macro_auc, "per_kind": kinds["fused"],
                       "frames": fused.frames, "videos": fused.videos},
        "fused_minus_best_baseline": fused.micro_auc - best_base,
        "reference_streams": list(references),
        "validation_cheap_fusions": {f: r.micro_auc for f, r in val_cheap.items()},
        "test_cheap_fused": {"fusion": chosen_cheap, "micro_auc": cheap.micro_auc},
        "fused_minus_cheap_fused": fused.micro_auc - cheap.micro_auc,
        "sigma": args.sigma,
        "region": args.region,
        "tiles": {"on": args.tiles, "tile_scale": args.tile_scale} if args.tiles else None,
    }
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
