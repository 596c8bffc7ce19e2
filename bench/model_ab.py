"""Before/after of bench/model_bench.py: two checkouts measured alternately in one session.

The machine is shared, so only same-session figures compare: each round runs every
checkout's ``bench/model_bench.py`` once (A B, then B A in the next round, so a drift in
load hits both alike), each run measuring its own matmul. Per preset and batch the
summary keeps the median over rounds of frames/s, share of matmul and scan share of time,
and the after/before ratios; every run's full JSON (with its profile) is kept too.

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/model_ab.py \\
        --tree main=/tmp/wt-main --tree branch=. --rounds 2 \\
        --out bench/results/model_issue15.json -- \\
        --presets vqmau_fp.paper vqmau_fr.paper m2s2l.paper --batch 1 4

The first --tree is "before", the last "after". Arguments after ``--`` go to every
model_bench run (its --out is set here). A checkout's own bench/model_bench.py is run with
its own raystack on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from machine_info import machine  # noqa: E402

KEEP = ("frames_per_s", "share_of_matmul", "scan_time_share", "median_s")


def run_bench(tree: Path, bench_args: list[str], out: Path) -> dict:
    # as the scan's workers run (docs/platform.md, Allocator) and as model.json was recorded
    env = {**os.environ, "PYTHONPATH": str(tree), "MALLOC_MMAP_THRESHOLD_": "4294967296"}
    cmd = [sys.executable, str(tree / "bench" / "model_bench.py"), *bench_args, "--out", str(out)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True, cwd=tree)
    return json.loads(out.read_text())


def summarise(runs: dict[str, list[dict]]) -> list[dict]:
    labels = list(runs)
    before, after = labels[0], labels[-1]
    keys = [(r["preset"], r["batch"]) for r in runs[before][0]["results"]]
    rows = []
    for preset, batch in keys:
        row: dict = {"preset": preset, "batch": batch}
        for label in labels:
            hits = [r for run in runs[label] for r in run["results"]
                    if (r["preset"], r["batch"]) == (preset, batch)]
            row[label] = {k: statistics.median(h[k] for h in hits) for k in KEEP}
            row[label]["gflops_per_frame"] = hits[0]["flops"]["total_per_frame"] / 1e9
        for k in ("frames_per_s", "share_of_matmul"):
            row[f"ratio_{k}"] = row[after][k] / row[before][k]
        rows.append(row)
    return rows


def main() -> None:
    argv = sys.argv[1:]
    bench_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", required=True, help="LABEL=DIR, twice or more")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench/results/model_ab.json"))
    args = ap.parse_args(own)
    trees = dict(t.split("=", 1) for t in args.tree)
    load_start = os.getloadavg()
    runs: dict[str, list[dict]] = {label: [] for label in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            order = list(trees) if rnd % 2 == 0 else list(reversed(trees))
            for label in order:
                out = Path(tmp) / f"{label}-{rnd}.json"
                runs[label].append(run_bench(Path(trees[label]).resolve(), bench_args, out))
    summary = summarise(runs)
    labels = list(trees)
    print(f"\n{'preset':16s} {'b':>2s}" + "".join(f" {lb + ' fr/s':>14s} {'%mm':>6s}"
                                             for lb in labels) + "  ratio")
    for row in summary:
        cells = "".join(f" {row[lb]['frames_per_s']:14.2f} {row[lb]['share_of_matmul'] * 100:5.1f}%"
                        for lb in labels)
        print(f"{row['preset']:16s} {row['batch']:2d}{cells}  {row['ratio_frames_per_s']:.3f}")
    doc = {"machine": machine(), "command": ["bench/model_ab.py", *argv],
           "trees": {label: str(Path(d).resolve()) for label, d in trees.items()},
           "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
           "summary": summary, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
