"""The native scan's forward + backward at M2S2L's temporal shapes, two checkouts side by side.

M2S2L's Temporal Mamba Blocks scan every grid cell's short history: (b * cells, d_inner,
window) with window 2, 4 or 8, d_state 16, one B/C group, D and delta_bias, no z gate. Each
round runs one subprocess per tree (alternating order) that imports THAT tree's raystack and
times ``selective_scan_native`` forward + backward on 2 torch threads (median of reps).

    .venv/bin/python bench/temporal_scan_bench.py --tree rows=/work/wt-head --tree lanes=.
    # table + bench/results/temporal_scan.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

# (preset, rows, d_inner): m2s2l.small at 128x128 (8 clips, 16x16 cells of d_model 64,
# expand 2) and m2s2l.paper at 256x256 (8 clips, 16x16 cells of d_model 256, expand 2).
SHAPES = [("m2s2l.small", 2048, 128), ("m2s2l.paper", 2048, 512)]
WINDOWS = (2, 4, 8)
DSTATE = 16


def worker(reps: int) -> dict:
    import torch

    from raystack.ops.scan_native import selective_scan_native

    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    out: dict = {}
    for preset, rows, dim in SHAPES:
        for length in WINDOWS:
            u = torch.randn(rows, dim, length, generator=gen, requires_grad=True)
            delta = torch.randn(rows, dim, length, generator=gen, requires_grad=True)
            A = (-torch.exp(torch.randn(dim, DSTATE, generator=gen))).requires_grad_()
            B = torch.randn(rows, 1, DSTATE, length, generator=gen, requires_grad=True)
            C = torch.randn(rows, 1, DSTATE, length, generator=gen, requires_grad=True)
            D = torch.randn(dim, generator=gen, requires_grad=True)
            bias = torch.randn(dim, generator=gen, requires_grad=True)
            g = torch.randn(rows, dim, length, generator=gen)

            def step(u=u, delta=delta, A=A, B=B, C=C, D=D, bias=bias, g=g):
                y, _ = selective_scan_native(u, delta, A, B, C, D, None, bias, True)
                (y * g).sum().backward()

            step()
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            out[f"{preset} L={length}"] = statistics.median(times) * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", default=[], help="LABEL=DIR, twice; before first")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench/results/temporal_scan.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.reps)))
        return
    from machine_info import machine
    from train_ab import commit_of

    trees = dict(t.split("=", 1) for t in args.tree)
    labels = list(trees)
    runs: dict[str, list[dict]] = {lb: [] for lb in labels}
    for rnd in range(args.rounds):
        for label in labels if rnd % 2 == 0 else labels[::-1]:
            env = {**os.environ, "PYTHONPATH": str(Path(trees[label]).resolve())}
            res = subprocess.run([sys.executable, __file__, "--worker", "--reps", str(args.reps)],
                                 env=env, capture_output=True, text=True, check=True,
                                 cwd=trees[label])
            runs[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    before, after = labels[0], labels[-1]
    rows = []
    print(f"{'shape':20s} {before + ' ms':>12s} {after + ' ms':>12s}  speed-up (round medians)")
    for key in runs[before][0]:
        b = statistics.median(r[key] for r in runs[before])
        a = statistics.median(r[key] for r in runs[after])
        rows.append({"shape": key, before: b, after: a, "speedup": b / a})
        print(f"{key:20s} {b:12.2f} {a:12.2f}  {b / a:.2f}x")
    doc = {"machine": machine(), "command": ["bench/temporal_scan_bench.py", *sys.argv[1:]],
           "trees": {lb: {"path": str(Path(d).resolve()), **commit_of(Path(d))}
                     for lb, d in trees.items()},
           "rounds": args.rounds, "reps": args.reps, "threads": 2,
           "summary": rows, "runs": runs}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
