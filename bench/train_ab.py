"""Training throughput before/after: two checkouts' StreamTrainer, alternately, in one run.

The machine is shared, so only same-run figures compare. Each round runs, per preset, one
``bench/train_worker.py`` process per tree (A B, then B A in the next round, so a drift in
load hits both alike); the worker is this checkout's, the raystack it imports is the
measured tree's, so both run their own training step on the same synthetic clips. Per
preset the summary keeps the median and the best clips/s over rounds and their
after/before ratios (``--summarise`` recomputes them from a saved result).

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/train_ab.py \\
        --tree main=/work/wt-base --tree branch=. --rounds 2 \\
        --presets vqmau_fp.small vqmau_fr.small vqmau_fp.paper vqmau_fr.paper m2s2l.small \\
        --out bench/results/train_throughput.json

The first --tree is "before", the last "after". A tree may also set fields of its
``TrainConfig`` (``--tree fp32=.,amp=off --tree bf16=.,amp=bf16``: one checkout, two
settings). ``--steps`` sets the measured optimiser
steps of the small VQ-MaU presets; paper presets (256x256) and M2S2L take a third of them.
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

WORKER = ROOT / "bench" / "train_worker.py"


def steps_for(preset: str, steps: int) -> int:
    # the paper presets and M2S2L take several seconds a step: a third of the steps
    fast = preset.startswith("vqmau") and preset.endswith((".small", ".tiny"))
    return steps if fast else max(1, steps // 3)


def run_worker(tree: Path, preset: str, steps: int, batch: int, out: Path,
               settings: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(WORKER), "--preset", preset, "--steps", str(steps),
           "--batch", str(batch), "--out", str(out)]
    for kv in settings:
        cmd += ["--set", kv]
    print(f"$ PYTHONPATH={tree}", " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True, cwd=tree)
    return json.loads(out.read_text())


def commit_of(tree: Path) -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True,
                              text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def summarise(runs: dict[str, dict[str, list[dict]]], labels: list[str]) -> list[dict]:
    """Per preset: median and best clips/s of each tree over the rounds, and after/before
    ratios of both. The best is the figure least touched by another process's burst (a
    round that shared the cores is slow, never fast)."""
    before, after = labels[0], labels[-1]
    summary = []
    for preset, per_tree in runs.items():
        row: dict = {"preset": preset, "steps": per_tree[before][0]["steps"]}
        for label in labels:
            figures = [r["clips_per_s"] for r in per_tree[label]]
            row[label] = statistics.median(figures)
            row[f"{label}_best"] = max(figures)
        row["ratio"] = row[after] / row[before]
        row["ratio_best"] = row[f"{after}_best"] / row[f"{before}_best"]
        summary.append(row)
    return summary


def print_table(summary: list[dict], labels: list[str]) -> None:
    head = "".join(f" {lb + ' median':>14s} {lb + ' best':>12s}" for lb in labels)
    print(f"\n{'preset':16s}{head}  ratio (median, best)   clips/s")
    for row in summary:
        cells = "".join(f" {row[lb]:14.2f} {row[lb + '_best']:12.2f}" for lb in labels)
        print(f"{row['preset']:16s}{cells}  {row['ratio']:.2f}x  {row['ratio_best']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", required=True,
                    help="LABEL=DIR[,KEY=VALUE...], twice or more; KEY=VALUE sets a "
                         "TrainConfig field in that tree's runs")
    ap.add_argument("--presets", nargs="+",
                    default=["vqmau_fp.small", "vqmau_fr.small", "vqmau_fp.paper",
                             "vqmau_fr.paper", "m2s2l.small"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench/results/train_throughput.json"))
    ap.add_argument("--summarise", metavar="JSON",
                    help="only recompute the summary and table of a saved result, in place")
    args = ap.parse_args()
    if args.summarise:
        doc = json.loads(Path(args.summarise).read_text())
        labels = list(doc["trees"])
        doc["summary"] = summarise(doc["runs"], labels)
        print_table(doc["summary"], labels)
        Path(args.summarise).write_text(json.dumps(doc, indent=2) + "\n")
        return
    specs = {label: spec.split(",") for label, spec in (t.split("=", 1) for t in args.tree)}
    trees = {label: Path(parts[0]).resolve() for label, parts in specs.items()}
    settings = {label: parts[1:] for label, parts in specs.items()}
    labels = list(trees)
    load_start = os.getloadavg()
    runs: dict[str, dict[str, list[dict]]] = {p: {lb: [] for lb in labels} for p in args.presets}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            order = labels if rnd % 2 == 0 else labels[::-1]
            for preset in args.presets:
                for label in order:
                    out = Path(tmp) / f"{label}-{preset}-{rnd}.json"
                    runs[preset][label].append(run_worker(
                        trees[label], preset, steps_for(preset, args.steps), args.batch, out,
                        settings[label]))
    summary = summarise(runs, labels)
    print_table(summary, labels)
    doc = {"machine": machine(), "command": ["bench/train_ab.py", *sys.argv[1:]],
           "trees": {lb: {"path": str(d), "settings": settings[lb], **commit_of(d)}
                     for lb, d in trees.items()},
           "batch": args.batch, "rounds": args.rounds,
           "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
           "summary": summary, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
