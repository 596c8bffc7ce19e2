"""What a fused frame's box rule costs in SQL: fused() and events() of a three-stream
fusion (fp, fr, presence, tiled rows with boxes), this tree against a git commit.

The box of a multi-stream fused frame is an arg_max over its streams' rows keyed by
``box_key`` (v3_query.sql). This times the analyst's two queries that compute it for every
frame, each in a fresh process, this tree and ``--baseline`` alternating so both see the
same load of a shared machine:

    .venv/bin/python bench/fused_box_bench.py --frames 2000000 --baseline HEAD \
        --name fused_box

Printed and written to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

FRAMES = 5000  # per video
STREAMS = ("fp", "fr", "presence")
FUSION = "fusion := 'weighted', alpha := 0.75, streams := ['fp', 'fr', 'presence'], sigma := 10"
QUERIES = {
    "fused": f"SELECT count(*) AS n, sum(box_x0) AS sx FROM fused({FUSION})",
    "events": f"SELECT count(*) AS n, sum(box_x0) AS sx FROM events({FUSION}, "
              "threshold := 0.5, min_frames := 5)",
}


def generate(root: Path, frames: int, seed: int = 0) -> Path:
    """A store of ``frames`` tiled frames (videos of FRAMES) scored by three streams, with
    a few dips per video and presence at its floor on a quarter of its rows."""
    import pyarrow as pa

    from raystack.store import Store, table_schema

    marker = root / f".complete-{frames}"
    if marker.exists():
        return root
    st = Store(str(root)).ensure()
    schema = table_schema("scores")
    rng = np.random.default_rng(seed)
    n_videos = max(1, frames // FRAMES)
    f = np.arange(FRAMES, dtype=np.int64)
    for v in range(n_videos):
        parts = []
        for k, model in enumerate(STREAMS):
            if model == "presence":
                psnr = np.where(rng.random(FRAMES) < 0.25, -33.0, rng.normal(-20, 4, FRAMES))
            else:
                psnr = rng.normal(18 + k, 1.5, FRAMES)
            for _ in range(rng.integers(1, 6)):
                s = int(rng.integers(0, FRAMES - 200))
                psnr[s: s + int(rng.integers(20, 200))] -= rng.uniform(2.0, 6.0)
            x0 = rng.integers(0, 6, FRAMES) * 160
            cols = {"run_id": ["bench"] * FRAMES, "video_id": [f"cam{v:05d}"] * FRAMES,
                    "frame": f, "timestamp_s": f / 25.0, "model": [model] * FRAMES,
                    "psnr": psnr.astype(np.float32), "aux": pa.nulls(FRAMES, pa.float32()),
                    "gated": np.zeros(FRAMES, bool), "psnr_mean": psnr.astype(np.float32) + 2,
                    "tiles": np.full(FRAMES, 6, np.int16), "box_x0": x0, "box_y0": x0 * 0,
                    "box_x1": x0 + 480, "box_y1": x0 * 0 + 480, "patch_x0": x0 + 16,
                    "patch_y0": x0 * 0 + 16, "patch_x1": x0 + 80, "patch_y1": x0 * 0 + 80}
            parts.append(pa.table({k: pa.array(cols[k], schema.field(k).type)
                                   for k in schema.names}, schema=schema))
        st.write_table("scores", "bench", f"cam{v:05d}", pa.concat_tables(parts))
    marker.write_text("ok\n")
    return root


def worker(store: str, query: str, threads: int) -> None:
    t0 = time.perf_counter()
    from raystack.query import connect, run_sql
    from raystack.store import Store

    con = connect(Store(store), threads=threads)
    t1 = time.perf_counter()
    row = run_sql(con, QUERIES[query]).to_pylist()[0]
    t2 = time.perf_counter()
    row = {k: float(v) if v is not None else None for k, v in row.items()}
    print("RESULT " + json.dumps({"connect_s": t1 - t0, "query_s": t2 - t1, **row}), flush=True)


def measure(store: Path, query: str, threads: int, src: Path | None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, __file__, "--worker", query, "--store", str(store),
                           "--threads", str(threads)], capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    msg = f"{query} failed: {(proc.stderr or proc.stdout)[-600:]}"
    raise SystemExit(msg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2_000_000, help="fused frames (x3 rows)")
    ap.add_argument("--dir", default="/tmp/raystack-fused-box-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", help="git commit to compare with (its raystack and schemas)")
    ap.add_argument("--name", default="fused_box")
    ap.add_argument("--worker", choices=sorted(QUERIES), help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.store, args.worker, args.threads)
        return 0

    from events_bench import export_baseline
    from machine_info import save_results

    store = generate(Path(args.dir) / f"store_{args.frames}", args.frames)
    tmp = Path(tempfile.mkdtemp(prefix="fused-box-baseline-"))
    src, commit = export_baseline(args.baseline, tmp) if args.baseline else (None, None)
    sides = {"this tree": None, **({f"baseline {commit[:8]}": src} if src else {})}
    runs: dict[str, dict[str, list[dict]]] = {q: {s: [] for s in sides} for q in QUERIES}
    for _ in range(args.repeat):  # interleaved: the same load falls on every side
        for q in QUERIES:
            for side, path in sides.items():
                runs[q][side].append(measure(store, q, args.threads, path))
    rows = []
    print(f"{args.frames:,} fused frames ({3 * args.frames:,} rows), {args.threads} threads, "
          f"median of {args.repeat}\n")
    print(f"{'query':8s} {'side':20s} {'query s':>8s} {'rows':>10s}")
    for q, by_side in runs.items():
        for side, rs in by_side.items():
            med = statistics.median(r["query_s"] for r in rs)
            rows.append({"query": q, "side": side, "median_query_s": round(med, 3),
                         "n": rs[0]["n"], "runs": rs})
            print(f"{q:8s} {side:20s} {med:8.3f} {int(rs[0]['n']):>10,}")
        if len(by_side) == 2:
            a, b = (statistics.median(r["query_s"] for r in rs) for rs in by_side.values())
            print(f"{q:8s} {'ratio (this / base)':20s} {a / b:8.2f}")
            rows.append({"query": q, "ratio_this_over_baseline": round(a / b, 3)})
    print()
    save_results(args.name, {"frames": args.frames, "baseline_commit": commit, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
