"""M²S²L benchmark: budget of the paper preset, its CPU speed, and AUC beside VQ-MaU FP/FR.

Sections (``--sections``, default all; each merges into the same JSON file, so they can
run in separate ``flock`` sessions):

- ``budget``: parameters and FLOPs per frame of ``m2s2l.paper`` at 256x256 against the
  paper (14.9M, 20.1 GFLOPs), and of the paper's ablation ladder M1..M4. FLOPs are
  ``FlopCounterMode`` (convolutions, matrix products) with every selective scan replaced by
  a zero-FLOP stand-in that records its analytic count (``ss2d.scan_flops``, (8N+2) per
  channel and step); both numbers are reported.
- ``speed``: frames/s of a ``m2s2l.paper`` forward on this CPU (eval, fp32, inference
  mode), the time spent inside the scans, and the achieved FLOP/s as a share of an fp32
  2048x2048 matmul measured in the same run with the same threads.
- ``auc``: a synthetic archive (``raystack.synth``: 6 normal training videos, 4 test
  videos with one anomaly each) decoded at the models' size; ``vqmau_fp.SIZE``,
  ``vqmau_fr.SIZE`` and ``m2s2l.SIZE`` (``--size small``, 128x128, the default; or
  ``tiny``, 64x64) each trained with the SAME loop (AdamW, cosine schedule, grad clip, batch,
  steps; clips from ``raystack.train.data``), then every test frame scored, written as a
  run of a store (``--workdir``/auc-store) and the micro (and macro) frame AUC taken from
  ``raystack eval`` (docs/evaluation.md: per-video min-max, 1 - norm, Gaussian smoothing,
  the SQL fusion) on the frames every model scores (from the largest context on). The
  paper-order row fuses the PSNRs first and is evaluated as a stream of its own.
  ``--models`` trains some models only; trained checkpoints are kept in ``--workdir`` and
  reused unless ``--retrain``.

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/m2s2l_bench.py
    flock /tmp/raystack-cpu.lock .venv/bin/python bench/m2s2l_bench.py --sections budget speed
    flock /tmp/raystack-cpu.lock .venv/bin/python bench/m2s2l_bench.py --sections auc \
        --size tiny --models m2s2l --steps 200
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cpu_speed import matmul_flops, scan_implementation, time_forward  # noqa: E402

import raystack.models.m2s2l.temporal as temporal_mod  # noqa: E402
import raystack.models.ss2d as ss2d_mod  # noqa: E402
from raystack.models import create_model, load_checkpoint, save_checkpoint  # noqa: E402
from raystack.models.m2s2l.flops import count_flops  # noqa: E402
from raystack.models.m2s2l.presets import PAPER_GFLOPS, PAPER_PARAMS  # noqa: E402

AUC_FAMILIES = ("vqmau_fp", "vqmau_fr", "m2s2l")
# The paper's ablation ladder (Table III), as config switches of the paper preset.
ABLATIONS = {
    "M1 baseline": {"multi_scale_spatial": False, "multi_scale_temporal": False,
                    "decomposition": False},
    "M2 +MSpatial": {"multi_scale_temporal": False, "decomposition": False},
    "M3 +MTemporal": {"decomposition": False},
    "M4 +Decompose (full)": {},
}


def machine() -> dict:
    from machine_info import machine as base

    return base()


# --- budget ---------------------------------------------------------------------------


def budget() -> dict:
    rows = []
    print(f"{'variant':24s} {'params':>8s} {'vs 14.9M':>8s} {'GFLOP/fr':>9s} {'scan':>6s}"
          f" {'vs 20.1G':>8s}")
    for label, overrides in ABLATIONS.items():
        model = create_model("m2s2l.paper", **overrides).eval()
        n = sum(p.numel() for p in model.parameters())
        fl = count_flops(model)
        row = {"variant": label, "overrides": overrides, "params": n, **fl,
               "params_vs_paper": n / PAPER_PARAMS - 1,
               "flops_vs_paper": fl["total_per_frame"] / 1e9 / PAPER_GFLOPS - 1}
        rows.append(row)
        print(f"{label:24s} {n / 1e6:7.2f}M {row['params_vs_paper'] * 100:+7.1f}%"
              f" {fl['total_per_frame'] / 1e9:9.2f} {fl['scan_per_frame'] / 1e9:6.2f}"
              f" {row['flops_vs_paper'] * 100:+7.1f}%")
    full = rows[-1]
    print("FLOPs by module (full model, per frame, scans excluded):")
    for k, v in full["by_module_per_frame"].items():
        print(f"  {k:20s} {v / 1e9:7.3f} G")
    return {"paper": {"params": PAPER_PARAMS, "gflops": PAPER_GFLOPS}, "variants": rows}


# --- speed ----------------------------------------------------------------------------


def speed(args) -> dict:
    mm = matmul_flops(args.threads)
    peak = mm["flops_per_s_median"]
    print(f"scan: {scan_implementation()}")
    print(f"fp32 matmul 2048^3, {args.threads} threads: {peak / 1e9:.1f} GFLOP/s (median)")
    model = create_model("m2s2l.paper").eval()
    c = model.config
    fl = count_flops(model)
    rows = []
    print(f"{'preset':12s} {'b':>2s} {'s/batch':>8s} {'frames/s':>8s} {'scan%t':>6s}"
          f" {'GFLOP/s':>8s} {'%matmul':>7s}")
    for b in args.batch:
        x = torch.rand(b, c.context, 3, *c.img_size) * 2 - 1
        timing = time_forward(model, x, scan_sites=[ss2d_mod, temporal_mod],
                              min_time=args.min_time, min_reps=args.min_reps,
                              max_reps=args.max_reps)
        fps = b / timing["median_s"]
        achieved = fl["total_per_frame"] * fps
        row = {"preset": "m2s2l.paper", "batch": b, **timing, "frames_per_s": fps,
               "gflops_per_frame": fl["total_per_frame"] / 1e9,
               "achieved_flops_per_s": achieved, "share_of_matmul": achieved / peak,
               "scan_time_share": timing["scan_median_s"] / timing["median_s"]}
        rows.append(row)
        print(f"{'m2s2l.paper':12s} {b:2d} {timing['median_s']:8.2f} {fps:8.3f}"
              f" {row['scan_time_share'] * 100:5.1f}% {achieved / 1e9:8.2f}"
              f" {row['share_of_matmul'] * 100:6.1f}%", flush=True)
    return {"scan": scan_implementation(), "threads": args.threads, "matmul": mm, "rows": rows}


# --- AUC on the synthetic archive -------------------------------------------------------


def _archive(workdir: Path, seed: int) -> Path:
    from raystack.synth import synthesize

    root = workdir / f"synth-{seed}"
    if not (root / "labels.json").is_file():
        synthesize(root, seed=seed, overwrite=True)
    return root


def _train_config(archive: Path, args):
    from raystack.train.config import TrainConfig

    return TrainConfig(archive=str(archive / "train"), val_fraction=0.0, stride=1,
                       batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       cache_dir=str(args.workdir / "cache"), flow="dis", flow_preset="fast")


def _data(name: str, cfg, model_config):
    """Training clips: FP and M2S2L take FP-form clips (t = their context), FR flows."""
    from raystack.train.data import prepare_data

    return prepare_data(cfg, "fp" if name.startswith("m2s2l") else model_config.task,
                        model_config)


def _loss(model, batch):
    return model.loss(model(batch["x"]), batch)


def train_one(name: str, archive: Path, args) -> dict:
    """Train ``name`` for ``args.steps`` steps with the shared recipe; save a checkpoint."""
    from raystack.train.loop import epoch_batches, lr_factor

    torch.manual_seed(args.seed)
    # The recorded VQ-MaU figures trained the paper's absolute loss: keep it for every preset.
    model = create_model(name, **({"relative_loss": False} if name.startswith("vqmau") else {}))
    cfg = _train_config(archive, args)
    data = _data(name, cfg, model.config)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps=args.steps, min_ratio=cfg.min_lr_ratio))
    n = len(data.train)
    per_epoch = n // cfg.batch_size
    order = np.concatenate([epoch_batches(n, batch_size=cfg.batch_size, clips_per_epoch=0,
                                          seed=cfg.seed, epoch=e + 1)
                            for e in range(math.ceil(args.steps / per_epoch))])[: args.steps]
    model.train()
    losses, t0 = [], time.perf_counter()
    for step, idx in enumerate(order):
        loss, parts = _loss(model, data.train.batch(idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        losses.append(parts["total"])
        if (step + 1) % 25 == 0 or step + 1 == len(order):
            print(f"  {name} step {step + 1}/{len(order)} loss {np.mean(losses[-25:]):.4f}"
                  f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    train_s = time.perf_counter() - t0
    path = args.workdir / "checkpoints" / f"{name}.pt"
    save_checkpoint(path, model, preset=name, data_fingerprint=data.fingerprint,
                    extra={"steps": args.steps, "train_s": train_s})
    return {"model": name, "clips": n, "steps": len(order), "train_s": train_s,
            "s_per_step": train_s / len(order), "first_loss": float(np.mean(losses[:10])),
            "last_loss": float(np.mean(losses[-10:])),
            "params": sum(p.numel() for p in model.parameters())}


def _test_videos(archive: Path, size: tuple[int, int], flow_cfg) -> list[dict]:
    from raystack.archive import list_archive
    from raystack.train.data import compute_flows, decode_frames, make_flow

    meta = json.loads((archive / "labels.json").read_text())
    labels = np.load(archive / "frame_labels_synth.npy")
    offsets = {Path(v["video"]).name: v["offset"] for v in meta["test"]}
    estimator = make_flow(flow_cfg.flow, flow_cfg.flow_preset)
    videos = []
    for src in sorted(list_archive(str(archive / "test")), key=lambda s: s.relpath):
        frames_u8 = decode_frames(src, size)
        offset = offsets[Path(src.relpath).name]
        videos.append({
            "name": src.relpath, "frames_u8": frames_u8,
            "flows": compute_flows(frames_u8, estimator).astype(np.float32),
            "labels": labels[offset : offset + len(frames_u8)],
        })
    return videos


def auc(args) -> dict:
    from scores_store import write_scored_run

    from raystack.eval import evaluate
    from raystack.inference import FrameScorer

    archive = _archive(args.workdir, args.seed)
    trained = {}
    fp_name, fr_name, m2_name = (f"{f}.{args.size}" for f in AUC_FAMILIES)
    for name in (f"{f}.{args.size}" for f in args.models):
        path = args.workdir / "checkpoints" / f"{name}.pt"
        if path.is_file() and not args.retrain:
            continue
        print(f"training {name} for {args.steps} steps", flush=True)
        trained[name] = train_one(name, archive, args)

    ckpts = {n: args.workdir / "checkpoints" / f"{n}.pt" for n in (fp_name, fr_name, m2_name)}
    missing = [n for n, p in ckpts.items() if not p.is_file()]
    if missing:
        print(f"no checkpoint yet for {missing}: AUC table deferred")
        return {"trained": trained, "deferred": missing}
    models = {n: load_checkpoint(p)[0].eval() for n, p in ckpts.items()}
    infos = {n: load_checkpoint(p)[1] for n, p in ckpts.items()}
    size = tuple(models[m2_name].config.img_size)
    videos = _test_videos(archive, size, _train_config(archive, args))

    fpfr = FrameScorer({"fp": models[fp_name], "fr": models[fr_name]}, batch_size=16)
    m2 = FrameScorer({"m2s2l": models[m2_name]}, batch_size=16, baselines=False)
    start = max(fpfr.context, m2.context)  # frames every model scores
    raw: dict[str, list[np.ndarray]] = {"fp": [], "fr": [], "m2s2l_app": [], "m2s2l_mot": []}
    labels = []
    t0 = time.perf_counter()
    for v in videos:
        frames = v["frames_u8"].astype(np.float32) / 127.5 - 1.0
        out = fpfr.score(frames, v["flows"])
        for s in ("fp", "fr"):
            raw[s].append(out[s].psnr[start - fpfr.context:])
        for s, scored in m2.score(frames).items():
            raw[s].append(scored.psnr[start - m2.context:])
        labels.append(v["labels"][start:])
    score_s = time.perf_counter() - t0

    alpha = models[m2_name].config.score_alpha
    # The paper's own fusion order: weighted PSNR first, then the protocol; as a stream of
    # its own, so raystack eval scores it like the others.
    raw["m2s2l_paper"] = [alpha * a + (1 - alpha) * b
                          for a, b in zip(raw["m2s2l_app"], raw["m2s2l_mot"], strict=True)]
    run = write_scored_run(args.workdir / "auc-store", f"auc-{args.size}",
                           [{"name": v["name"], "labels": v["labels"]} for v in videos], raw,
                           first_frame=start)
    rows = []
    for label, fusion in (
        ("VQ-MaU FP", "fp"),
        ("VQ-MaU FR", "fr"),
        ("VQ-MaU FP+FR weighted 0.5", "weighted:0.5:fp,fr"),
        ("M2S2L appearance", "m2s2l_app"),
        ("M2S2L motion", "m2s2l_mot"),
        (f"M2S2L weighted {alpha:g}", f"weighted:{alpha}:m2s2l_app,m2s2l_mot"),
        (f"M2S2L weighted PSNR {alpha:g} (paper order)", "m2s2l_paper"),
    ):
        r = evaluate(run.store, run.labels, run.run_id, fusion=fusion, sigma=args.sigma)
        rows.append({"scores": label, "fusion": r.fusion, "micro_auc": r.micro_auc,
                     "macro_auc": r.macro_auc, "macro_videos": r.videos - r.single_class_skipped,
                     "macro_skipped": r.single_class_skipped})

    print(f"\nmicro frame AUC on {len(videos)} synthetic test videos, frames >= {start} "
          f"({sum(len(y) for y in labels)} frames, sigma {args.sigma}):")
    print(f"{'scores':42s} {'micro':>6s} {'macro':>6s}")
    for r in rows:
        macro = f"{r['macro_auc']:.3f}" if r["macro_auc"] is not None else "  -  "
        print(f"{r['scores']:42s} {r['micro_auc']:6.3f} {macro:>6s}")
    return {
        "archive": {"seed": args.seed, "train_videos": 6, "test_videos": len(videos),
                    "frames_per_video": int(len(videos[0]["labels"]) + start),
                    "decoded_at": list(size)},
        "recipe": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                   "optimizer": "AdamW (wd 0.01 on matrices), cosine to 5%, grad clip 1.0",
                   "seed": args.seed, "scan": scan_implementation()},
        "trained_now": trained,
        "training": {n: infos[n].get("extra", {}) for n in infos},
        "params": {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()},
        "first_scored_frame": start, "sigma": args.sigma, "score_s": score_s,
        "fusion": "query-layer order: alpha * normalised+smoothed stream 1 + (1 - alpha) * "
                  "stream 2; the paper-order row fuses PSNRs first",
        "auc": f"raystack eval on run {run.run_id} of {run.store}",
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+", default=["budget", "speed", "auc"],
                    choices=["budget", "speed", "auc"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", nargs="+", type=int, default=[1], help="speed: batch sizes")
    ap.add_argument("--min-time", type=float, default=20.0, help="speed: seconds of timed reps")
    ap.add_argument("--min-reps", type=int, default=3)
    ap.add_argument("--max-reps", type=int, default=20)
    ap.add_argument("--size", default="small", choices=["small", "tiny"],
                    help="auc: preset size of all three models")
    ap.add_argument("--models", nargs="+", default=list(AUC_FAMILIES), choices=AUC_FAMILIES,
                    help="auc: models to train now (others reuse their checkpoints)")
    ap.add_argument("--steps", type=int, default=600, help="auc: optimiser steps per model")
    ap.add_argument("--batch-size", type=int, default=8, help="auc: clips per step")
    ap.add_argument("--lr", type=float, default=2e-4, help="auc: AdamW learning rate")
    ap.add_argument("--sigma", type=float, default=10.0, help="auc: temporal smoothing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true", help="auc: ignore saved checkpoints")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/m2s2l_bench"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/m2s2l.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for section in args.sections:
        print(f"\n== {section} ==", flush=True)
        t0 = time.perf_counter()
        result = {"budget": budget, "speed": lambda: speed(args), "auc": lambda: auc(args)}[
            section]()
        result["machine"] = machine()
        result["wall_s"] = time.perf_counter() - t0
        # AUC results are kept per preset size: auc (small) and auc_tiny
        key = section if section != "auc" or args.size == "small" else f"auc_{args.size}"
        doc[key] = result
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
