"""What a stretch of gated frames costs, per frame, against decoding alone.

A night camera shows an empty scene with sensor noise for hours. This scans such a stretch
(the street scene's empty background plus the synth's idle sensor noise, encoded as the
synth encodes: ``raystack.synth.idle``) with one scan worker on one thread, decoding in
the worker's own thread (``prefetch_chunks = 0``, so the seconds add up rather than
overlap), five ways:

    decode only       the scan's own reading of the unit without flow: the floor no scan
                      can go below
    ungated           every frame through the small FP and FR models
    gated, flow       --gate --gate-diff-floor -1: the motion stage alone, which computes
                      every frame's flow to find it still
    gated             --gate: the change stage first, so the still frames skip their flow
    gated, busy       --gate on a busy street video of the same size (no still frame):
                      what the change stage costs where it saves nothing

The gate's floors are calibrated as ``raystack train`` calibrates them
(:func:`raystack.train.gate_calibration.calibrate_gate`) on busy normal street videos of
the same camera. The models have random weights: their speed does not depend on them, and
every still frame is gated before they run.

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/still_stretch_bench.py
    .venv/bin/python bench/still_stretch_bench.py --size 1280x720 --tiles --frames 200 \
        --name still_stretch_720p_tiled    # a camera-resolution scan in tiles

Printed and written to ``bench/results/<name>.json`` (median of ``--repeats`` passes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def still_video(path: Path, background, frames: int, seed: int) -> Path:
    """``frames`` frames of ``background`` with the synth's idle sensor noise, as mp4."""
    import numpy as np

    from raystack.synth.idle import IDLE_NOISE
    from raystack.synth.media import write_video

    rng = np.random.default_rng(seed)
    base = np.asarray(background, np.float32)
    write_video(path, (np.clip(base + rng.normal(0.0, IDLE_NOISE, base.shape), 0, 255)
                       .astype(np.uint8) for _ in range(frames)))
    return path


def main() -> None:
    from raystack.threads import short_omp_spin

    short_omp_spin()  # as raystack's CLI does, before anything here loads torch
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=400, help="frames of the still stretch")
    p.add_argument("--size", default="320x240", help="WxH of the camera")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tiles", action="store_true",
                   help="score tiles of the frame (auto tile scale), as a camera-resolution "
                        "scan that localises does; the floors are calibrated per tile")
    p.add_argument("--name", default="still_stretch")
    args = p.parse_args()

    import numpy as np
    import pyarrow.compute as pc
    import torch
    from machine_info import machine

    from raystack.archive import list_archive
    from raystack.decode import open_reader
    from raystack.models import create_model, save_checkpoint
    from raystack.scan.plan import plan_units
    from raystack.scan.probe import probe_archive
    from raystack.scan.reading import UnitReading
    from raystack.scan.worker import UnitScorer
    from raystack.synth import synthesize
    from raystack.train.gate_calibration import calibrate_gate

    torch.set_num_threads(1)
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(tmp / "a", seed=7, n_train=3, n_test=1, frames=200, size=(w, h),
                   scene="street", camera=1)
        train = list_archive(tmp / "a" / "train")
        cfg = SimpleNamespace(archive=str(tmp / "a" / "train"), flow="dis", flow_preset="fast",
                              tiles=args.tiles, tile_scale=0.0, val_fraction=0.2)
        gate = calibrate_gate(cfg, train, img_size=(128, 128))
        # size=None: the camera's own frames (the reader's default resizes to 256x256)
        with open_reader(str(next((tmp / "a" / "test").rglob("*.mp4"))), size=None,
                         sequential=True) as r:
            first = r.read(0, 1)[0]
        # The empty street: the synth's idle frames use the world's background; here the
        # median over a busy video's frames stands in for it (walkers move on).
        with open_reader(str(next((tmp / "a" / "train").rglob("*.mp4"))), size=None,
                         sequential=True) as r:
            background = np.median(r.read(0, 200), axis=0).astype(np.uint8)
        assert background.shape == first.shape == (h, w, 3), (background.shape, (h, w))
        (tmp / "still").mkdir()
        (tmp / "busy").mkdir()
        still_video(tmp / "still" / "night.mp4", background, args.frames, seed=1)
        synthesize(tmp / "b", seed=8, n_train=0, n_test=1, frames=args.frames, size=(w, h),
                   scene="street", camera=1)
        busy = next((tmp / "b" / "test").rglob("*.mp4"))
        busy.rename(tmp / "busy" / "day.mp4")

        ckpts = []
        for task in ("fp", "fr"):
            name = f"vqmau_{task}.small"
            torch.manual_seed(0)
            ckpts.append(str(save_checkpoint(tmp / f"{task}.pt", create_model(name),
                                             preset=name, data_fingerprint="random")))

        def unit_of(folder: Path, context: int):
            sources = list_archive(folder)
            return plan_units(probe_archive(sources), context=context,
                              segment_frames=10**6, sources=sources).units[0]

        def decode_only():
            """The scan's own reading of the unit (chunks, context, model range), no flow."""
            s = scorers["ungated"]
            opts = dataclasses.replace(s.read_options, flow=None, still=None)
            for _ in UnitReading(unit_of(tmp / "still", s.context), opts, depth=0):
                pass

        modes = {
            "ungated": ("still", {}),
            "gated, flow": ("still", {"gate_floor": gate["floor_px"]}),
            "gated": ("still", {"gate_floor": gate["floor_px"],
                                "gate_diff_floor": gate["diff_floor"]}),
            "gated, busy": ("busy", {"gate_floor": gate["floor_px"],
                                     "gate_diff_floor": gate["diff_floor"]}),
            "ungated, busy": ("busy", {}),
        }
        times: dict[str, list[float]] = {m: [] for m in ["decode only", *modes]}
        stages: dict[str, dict] = {}
        shares: dict[str, float] = {}
        frames_scored: dict[str, int] = {}
        scorers = {m: UnitScorer(ckpts, threads=1, prefetch_chunks=0, run_id="s",
                                 tiles=args.tiles, **kw)
                   for m, (_, kw) in modes.items()}
        for _ in range(args.repeats):  # alternate the modes, so drift hits all alike
            t0 = time.perf_counter()
            decode_only()
            times["decode only"].append(time.perf_counter() - t0)
            for m, (folder, _) in modes.items():
                s = scorers[m]
                unit = unit_of(tmp / folder, s.context)
                t0 = time.perf_counter()
                table, timing, _ = s.score(unit)
                times[m].append(time.perf_counter() - t0)
                stages[m] = {k: round(v, 3) for k, v in timing.items()}
                fp = table.filter(pc.equal(table["model"], "fp"))
                shares[m] = float(np.mean(fp["gated"].to_numpy(zero_copy_only=False)))
                frames_scored[m] = fp.num_rows

    per_frame = {m: 1e3 * statistics.median(v) / args.frames for m, v in times.items()}
    print(f"{'mode':16s} {'ms / frame':>10s} {'x decode':>9s} {'gated':>6s}  stage s "
          f"(last pass)")
    for m, v in per_frame.items():
        extra = "" if m == "decode only" else (
            f"{shares[m]:6.0%}  " + " ".join(f"{k[:-2]} {s:.2f}" for k, s in stages[m].items()))
        print(f"{m:16s} {v:10.3f} {v / per_frame['decode only']:9.2f} {extra}")
    ratio = per_frame["gated, flow"] / per_frame["gated"]
    print(f"a still stretch: gated {ratio:.2f}x faster with the change stage than without; "
          f"{per_frame['gated'] / per_frame['decode only']:.2f}x the cost of decoding it")
    doc = {"machine": machine(), "command": " ".join(["bench/still_stretch_bench.py",
                                                      *sys.argv[1:]]),
           "frames": args.frames, "size": [w, h], "model_size": [128, 128], "threads": 1,
           "tiles": args.tiles,
           "repeats": args.repeats, "gate_record": gate,
           "ms_per_frame": per_frame, "seconds_per_pass": times,
           "stage_s_last_pass": stages, "gated_share": shares, "frames_scored": frames_scored,
           "still_speedup_change_stage": ratio,
           "still_gated_over_decode": per_frame["gated"] / per_frame["decode only"]}
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
