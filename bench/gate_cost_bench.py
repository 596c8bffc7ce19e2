"""What a motion-gated frame still costs: the per-frame seconds of each scan stage.

A gated frame skips the learned models but not what the gate reads: it is decoded, the flow
into it is computed (the gate statistic is the worst patch of that flow, ``raystack.gate``)
and its ``diff`` and ``motion`` baselines are written (the gate's change statistic,
which lets a still stretch skip the flow, is timed beside them; what a still stretch costs
through the worker is ``bench/still_stretch_bench.py``'s). This times each of those stages and
the small FP and FR forwards (batch 8, random weights: the speed does not depend on them)
on one thread, as a scan actor runs, over the frames of a synthetic street video at the
models' 128x128, and prints them per frame next to each other.

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/gate_cost_bench.py

Printed and written to ``bench/results/<name>.json`` (median of ``--repeats`` passes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def timed(fn, repeats: int):
    """(median seconds, last result) of ``repeats`` calls."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    from raystack.threads import short_omp_spin

    short_omp_spin()  # as raystack's CLI does, before anything here loads torch
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=200, help="frames of the street video")
    p.add_argument("--size", type=int, default=128, help="the models' input side")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--name", default="gate_cost")
    args = p.parse_args()

    import numpy as np
    import torch
    from machine_info import machine

    from raystack.decode import open_reader
    from raystack.decode_base import to_model_range
    from raystack.flow import create_flow, flow_to_model_input
    from raystack.gate import change_levels, motion_px
    from raystack.models import create_model
    from raystack.scoring import copy_last_psnr, motion_scores, patch_size_for
    from raystack.synth.archive import synthesize

    torch.set_num_threads(1)  # one scan actor's thread
    side = args.size
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp) / "a", seed=3, n_train=0, n_test=1, frames=args.frames,
                   size=(320, 240), scene="street")
        video = next((Path(tmp) / "a").rglob("*.mp4"))

        def decode():
            with open_reader(str(video), size=(side, side), sequential=True) as r:
                return r.read(0, args.frames)

        s_decode, frames = timed(decode, args.repeats)
        n = len(frames)
        flow_fn = create_flow("dis")
        s_flow, flow_px = timed(lambda: flow_fn(frames), args.repeats)
        flows = flow_to_model_input(flow_px)  # (n - 1, 2, H, W) model range
        box = np.array([[0, 0, side, side]])
        s_gate, _ = timed(lambda: motion_px(flows, box), args.repeats)
        s_change, _ = timed(lambda: change_levels(frames, patch_size_for((side, side))),
                            args.repeats)
        x = torch.from_numpy(to_model_range(frames)).permute(0, 3, 1, 2).contiguous()
        f = torch.from_numpy(np.ascontiguousarray(flows))

        def baselines():
            with torch.inference_mode():
                copy_last_psnr(x[:-1], x[1:], "patch")
                motion_scores(f)

        s_base, _ = timed(baselines, args.repeats)

        models = {}
        for name in ("vqmau_fp.small", "vqmau_fr.small"):
            m = create_model(name).eval()
            c = m.config
            inp = torch.zeros(8, c.input_channels, *c.img_size)
            with torch.inference_mode():
                m(inp)  # warm-up: kernel build, allocator
                s, _ = timed(lambda m=m, inp=inp: m(inp), args.repeats)
            models[name] = s / 8

    per = {"decode": s_decode / n, "flow_dis": s_flow / (n - 1), "gate_statistic": s_gate / (n - 1),
           "baselines_diff_motion": s_base / (n - 1)}
    gated = sum(per.values())
    change = s_change / (n - 1)  # the change stage's statistic: paid by every frame
    learned = models["vqmau_fp.small"] + models["vqmau_fr.small"]
    print(f"{'stage':28s} {'ms / frame':>10s}")
    for k, v in {**per, **{f"model {k}": v for k, v in models.items()}}.items():
        print(f"{k:28s} {1e3 * v:10.2f}")
    print(f"{'change statistic':28s} {1e3 * change:10.2f}")
    print(f"{'a gated frame (no models)':28s} {1e3 * gated:10.2f}")
    print(f"{'an ungated frame':28s} {1e3 * (gated + learned):10.2f}")
    print(f"decode is {per['decode'] / gated:.0%} of a gated frame; a gated frame is "
          f"{gated / (gated + learned):.1%} of an ungated one")
    doc = {"machine": machine(), "command": " ".join(["bench/gate_cost_bench.py", *sys.argv[1:]]),
           "frames": n, "size": side, "threads": 1, "repeats": args.repeats,
           "ms_per_frame": {k: 1e3 * v for k, v in per.items()},
           "model_ms_per_frame_batch8": {k: 1e3 * v for k, v in models.items()},
           "change_statistic_ms": 1e3 * change,
           "gated_frame_ms": 1e3 * gated, "ungated_frame_ms": 1e3 * (gated + learned),
           "decode_share_of_gated": per["decode"] / gated}
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
