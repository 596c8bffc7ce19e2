"""Confirm a quality benchmark's choice on a test archive nobody has looked at.

The fusions are fixed beforehand (by the benchmark's validation archive); this synthesises a
new test archive of the same camera under another seed, scans it with the benchmark's
checkpoints and prints the test micro AUC of each stream and of the fixed fusions. Writes
bench/results/NAME.json.

    .venv/bin/python bench/heldout_test.py --work /tmp/scene2 --seed 4 \
        --run /tmp/scene2/runs/quality_settled_24_defaults-fp-fr-small-fp+fr \
        --fusion weighted:0.75:fp,fr,presence --cheap weighted:0.75:diff,motion,presence \
        --name heldout_settled_seed4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    from raystack.threads import short_omp_spin

    short_omp_spin()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True, help="the benchmark's --work (store, archives)")
    p.add_argument("--run", required=True, help="training run folder holding fp.pt and fr.pt")
    p.add_argument("--seed", type=int, default=4, help="the new test archive's seed")
    p.add_argument("--n-test", type=int, default=24)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--size", default="320x240")
    p.add_argument("--fusion", required=True, help="the learned fusion validation chose")
    p.add_argument("--cheap", required=True, help="the label-free fusion validation chose")
    p.add_argument("--name", required=True, help="results file bench/results/NAME.json")
    args = p.parse_args()

    from machine_info import machine
    from quality_bench import synth_archives

    from raystack.eval import evaluate
    from raystack.scan import ScanConfig, scan

    work, run = Path(args.work), Path(args.run)
    w, h = (int(v) for v in args.size.split("x"))
    split = f"test{args.seed}"
    arch, _ = synth_archives(work, [(split, args.seed, 0, args.n_test)], frames=args.frames,
                             size=(w, h), reuse=True, camera=1)
    ck = tuple(str(run / f) for f in ("fp.pt", "fr.pt"))
    rid = f"{args.name}-test"
    t0 = time.perf_counter()
    res = scan(ScanConfig(archive=str(arch[split] / "test"), checkpoints=ck,
                          store=str(work / "store"), run_id=rid, score_region="calibrated",
                          progress=False, presence=True))
    if not res.ok:
        msg = f"scan {rid} failed: {res.summary}"
        raise SystemExit(msg)
    scan_s = round(time.perf_counter() - t0, 1)
    labels = arch[split] / "frame_labels_synth.npy"
    aucs = {}
    for f in ("fp", "fr", "diff", "motion", "presence", args.fusion, args.cheap):
        aucs[f] = evaluate(work / "store", labels, rid, fusion=f, sigma=10.0).micro_auc
        print(f"{f:36} {aucs[f]:.4f}", flush=True)
    best = max(aucs[s] for s in ("diff", "motion", "presence"))
    print(f"fused - best baseline: {aucs[args.fusion] - best:+.4f}; "
          f"fused - label-free fusion: {aucs[args.fusion] - aucs[args.cheap]:+.4f}")
    out = Path(__file__).parent / "results" / f"{args.name}.json"
    out.write_text(json.dumps({
        "machine": machine(), "command": vars(args), "seed": args.seed, "checkpoints": ck,
        "scan_seconds": scan_s, "test_micro_auc": aucs,
        "fused_minus_best_baseline": aucs[args.fusion] - best,
        "fused_minus_cheap_fused": aucs[args.fusion] - aucs[args.cheap]}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
