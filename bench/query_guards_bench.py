"""Cost of the query layer's guards and defaults on the events query, against a baseline commit.

Issue 12 C3 added to the SQL macros: an unknown run fails at planning (constant list), an
unknown fusion or stream fails in a guard branch (one scan of run_id, model), fusion 'auto',
and a range check of the threshold. This times the events benchmark's query (explicit
arguments, so both versions compute the same events) on the 10M-row store of
``events_bench.py``, this tree against ``--baseline``, interleaved, each run in a fresh
process, and writes ``bench/results/query_guards.json``.

    python bench/query_guards_bench.py --baseline 353f0c6 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from events_bench import export_baseline, generate, machine  # noqa: E402

QUERY = ("SELECT * FROM events(threshold := 0.8, min_frames := 5, merge_gap := 3, sigma := 0, "
         "fusion := 'fp')")
ONE = """
import json, sys, time
from raystack.query import connect, run_sql
con = connect(sys.argv[1], threads=int(sys.argv[2]))
times = []
for _ in range(3):
    t = time.perf_counter(); n = run_sql(con, sys.argv[3]).num_rows
    times.append(time.perf_counter() - t)
print("RESULT " + json.dumps({"best_s": min(times), "events": n}))
"""


def one(src: Path, store: Path, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", ONE, str(store), str(threads), QUERY], env=env,
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.split("RESULT ", 1)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="git ref to compare with")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", default="/tmp/raystack-events-bench", help="where the store goes")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    store = generate(Path(args.dir) / f"store_{args.rows}", args.rows)
    base, base_commit = export_baseline(args.baseline, Path(tempfile.mkdtemp()) / "baseline")
    here = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    runs: dict[str, list[dict]] = {"baseline": [], "this": []}
    for _ in range(args.runs):
        runs["baseline"].append(one(base, store, args.threads))
        runs["this"].append(one(root, store, args.threads))
    med = {k: statistics.median(r["best_s"] for r in v) for k, v in runs.items()}
    doc = {
        "bench": "query_guards", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": here, "baseline_commit": base_commit, "machine": machine(),
        "query": QUERY, "rows": args.rows, "threads": args.threads, "runs": runs,
        "median_best_s": med, "ratio": med["this"] / med["baseline"],
        "same_events": len({r["events"] for v in runs.values() for r in v}) == 1,
        "command": "python bench/query_guards_bench.py " + " ".join(sys.argv[1:]),
    }
    out = root / "bench" / "results" / "query_guards.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({"median_best_s": med, "ratio": doc["ratio"]}))


if __name__ == "__main__":
    main()
