"""Events query from Parquet: DuckDB (raystack's events() macro) against vectorised pandas.

    python bench/events_bench.py          # 10M and 100M rows, writes bench/results/events.json
    python bench/events_bench.py --rows 10000000 --repeat 3
    python bench/events_bench.py --rows 10000000 --baseline bccaba0 --skip-pandas --skip-side \
        --out bench/results/events_readonly.json       # this tree against a commit, interleaved

Both sides start from the same Parquet store (many videos of 5,000 frames, one stream) and
compute the same events: per-video min-max normalised anomaly = 1 - norm(PSNR), flagged
where > threshold, runs of flagged frames merged across gaps of <= merge_gap frames,
events spanning fewer than min_frames dropped (no smoothing, so pandas needs no per-video
Python loop). pandas: ``read_parquet`` + groupby/transform + sort + diff/cumsum + groupby.
DuckDB: ``connect(store)`` (the sealed analyst connection) + ``SELECT * FROM events(...)``.
Each measurement runs in its own process and reports its own peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``); pandas runs under an address-space cap so that a
100M-row frame cannot take the shared machine down (a failure is recorded, not raised).
Repeats run back to back, so all but the first read warm files from the page cache.

Also measured: the cold start of ``connect`` on a store of 1,000 Parquet files, smoothing
as a Python UDF against a pure-SQL offset join, and the row_number-islands formulation
against lag + running sum.

``--baseline REF`` also runs the DuckDB side (and the cold start) on the code of git commit
REF, exported to a temporary folder and put first on the worker's PYTHONPATH; baseline and
current runs alternate, so both see the same load of a shared machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from events_side import cold_start, formulations
from events_store import FRAMES, ROWS_PER_FILE, generate

THRESHOLD, MIN_FRAMES, MERGE_GAP = 0.8, 5, 3
EVENTS_SQL = ("SELECT * FROM events(threshold := ?, min_frames := ?, merge_gap := ?, "
              "sigma := 0, fusion := 'fp')")
RESULTS = Path(__file__).resolve().parent / "results" / "events.json"


# --- the two implementations (each runs in a worker process) ------------------------------


def run_duckdb(store: Path, threads: int, memory_limit: str | None, spill: str | None) -> dict:
    t0 = time.perf_counter()
    from raystack.query import connect, run_sql

    t1 = time.perf_counter()
    # A sealed (read-only) connection cannot spill; --spill measures the internal one.
    con = connect(store, threads=threads, memory_limit=memory_limit, spill_dir=spill,
                  read_only=spill is None)
    t2 = time.perf_counter()
    ev = run_sql(con, EVENTS_SQL, [THRESHOLD, MIN_FRAMES, MERGE_GAP])
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "connect_s": t2 - t1, "query_s": t3 - t2, "wall_s": t3 - t1,
            "events": ev.num_rows, "flagged_frames": int(np.sum(ev["flagged_frames"].to_numpy()))}


def run_pandas(store: Path) -> dict:
    t0 = time.perf_counter()
    import pandas as pd

    t1 = time.perf_counter()
    df = pd.read_parquet(store / "scores", columns=["run_id", "video_id", "model", "frame",
                                                    "timestamp_s", "psnr"])
    df = df[df["model"] == "fp"]
    keys = ["run_id", "video_id"]
    g = df.groupby(keys, sort=False, observed=True)["psnr"]
    lo = g.transform("min").to_numpy(np.float64)
    hi = g.transform("max").to_numpy(np.float64)
    p = df["psnr"].to_numpy(np.float64)
    span = hi - lo
    score = np.where(span > 0, 1.0 - (p - lo) / np.where(span > 0, span, 1.0), 0.0)
    f = df.loc[score > THRESHOLD].assign(score=score[score > THRESHOLD])
    f = f.sort_values([*keys, "frame"], kind="stable")
    fr = f["frame"].to_numpy()
    new_video = (f["run_id"].ne(f["run_id"].shift()) | f["video_id"].ne(f["video_id"].shift()))
    new_event = new_video.to_numpy() | (np.diff(fr, prepend=fr[:1]) - 1 > MERGE_GAP)
    f = f.assign(ev=np.cumsum(new_event))
    out = f.groupby("ev", sort=False).agg(
        run_id=("run_id", "first"), video_id=("video_id", "first"),
        start_frame=("frame", "min"), end_frame=("frame", "max"), start_s=("timestamp_s", "min"),
        end_s=("timestamp_s", "max"), flagged_frames=("frame", "size"),
        peak_score=("score", "max"), mean_score=("score", "mean"))
    out = out[out["end_frame"] - out["start_frame"] + 1 >= MIN_FRAMES]
    t2 = time.perf_counter()
    return {"import_s": t1 - t0, "wall_s": t2 - t1, "events": len(out),
            "flagged_frames": int(out["flagged_frames"].sum())}


def worker(args: argparse.Namespace) -> None:
    try:
        if args.worker == "duckdb":
            res = run_duckdb(Path(args.store), args.threads, args.memory_limit, args.spill)
        else:
            res = run_pandas(Path(args.store))
        res["ok"] = True
    except MemoryError as e:
        res = {"ok": False, "error": f"MemoryError: {e}"}
    except Exception as e:  # recorded in the results, not hidden: the table shows the error
        res = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res), flush=True)


def export_baseline(ref: str, into: Path) -> tuple[Path, str]:
    """The ``raystack`` package of git commit ``ref`` under ``into``; (folder, full hash)."""
    root = Path(__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", ref], capture_output=True,
                            text=True, check=True).stdout.strip()
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(root), "archive", commit, "raystack", "schemas"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    # setup.py installs the top-level schemas/ as raystack.schemas; mirror that here.
    shutil.copytree(into / "schemas", into / "raystack" / "schemas")
    return into, commit


def measure(kind: str, store: Path, args: argparse.Namespace, cap_gib: float | None,
            src: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--store", str(store),
           "--threads", str(args.threads)]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    if args.spill:
        cmd += ["--spill", args.spill]

    def limit() -> None:
        if cap_gib:
            cap = int(cap_gib * 1024**3)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout)[-400:]
    return {"ok": False, "error": f"exit {proc.returncode}: {tail}", "peak_rss_mib": None}


def compare(rows: int, args: argparse.Namespace) -> dict:
    store = generate(Path(args.dir) / f"store_{rows}", rows)
    size = sum(p.stat().st_size for p in (store / "scores").rglob("*.parquet"))
    files = len(list((store / "scores").rglob("*.parquet")))
    out = {"rows": rows, "videos": rows // FRAMES, "files": files, "parquet_mib": size / 2**20}
    repeat = args.repeat if rows <= 20_000_000 else max(1, args.repeat - 1)
    runs: dict[str, list[dict]] = {"duckdb": [], "duckdb_baseline": [], "pandas": []}
    for _ in range(repeat):  # interleaved: the same load falls on every side
        runs["duckdb"].append(measure("duckdb", store, args, None))
        if args.baseline_src:
            runs["duckdb_baseline"].append(measure("duckdb", store, args, None,
                                                   args.baseline_src))
        if not args.skip_pandas:
            runs["pandas"].append(measure("pandas", store, args, args.pandas_cap_gib))
    for kind, rs in runs.items():
        if not rs:
            continue
        ok = [r for r in rs if r.get("ok")]
        out[kind] = {
            "runs": rs, "ok": bool(ok),
            "wall_s_median": statistics.median(r["wall_s"] for r in ok) if ok else None,
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in ok) if ok else None,
            "error": None if ok else rs[-1].get("error"),
        }
        print(f"  {rows:>11,} rows {kind:15s}: " + (
            f"{out[kind]['wall_s_median']:.2f} s, peak RSS {out[kind]['peak_rss_mib_max']:.0f} MiB"
            if ok else f"failed: {out[kind]['error']}"), flush=True)
    d, p, b = out["duckdb"], out.get("pandas"), out.get("duckdb_baseline")
    if d["ok"] and p and p["ok"]:
        same = {(r["events"], r["flagged_frames"]) for r in d["runs"] + p["runs"] if r.get("ok")}
        out["same_events"] = len(same) == 1
        out["speedup"] = p["wall_s_median"] / d["wall_s_median"]
    if d["ok"] and b and b["ok"]:
        same = {(r["events"], r["flagged_frames"]) for r in d["runs"] + b["runs"] if r.get("ok")}
        out["same_events_as_baseline"] = len(same) == 1
        out["vs_baseline"] = d["wall_s_median"] / b["wall_s_median"]
        print(f"  {rows:>11,} rows: this tree / baseline = {out['vs_baseline']:.2f}x", flush=True)
    return out


def machine() -> dict:
    import duckdb
    from machine_info import machine as base

    try:
        import pandas

        pandas_version = pandas.__version__
    except ImportError:
        pandas_version = None
    return base(duckdb=duckdb.__version__, pyarrow=pa.__version__, pandas=pandas_version)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="10000000,100000000", help="comma-separated row counts")
    ap.add_argument("--dir", default="/tmp/raystack-events-bench", help="where the stores go")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pandas-cap-gib", type=float, default=12.0,
                    help="address-space cap of the pandas process")
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 4GB")
    ap.add_argument("--spill", default=None, help="DuckDB spill folder (default: none)")
    ap.add_argument("--skip-side", action="store_true", help="only the DuckDB/pandas table")
    ap.add_argument("--skip-pandas", action="store_true", help="DuckDB only")
    ap.add_argument("--baseline", default=None,
                    help="git commit whose DuckDB side runs too, interleaved (see above)")
    ap.add_argument("--out", default=str(RESULTS), help="results file")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--worker", choices=["duckdb", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    free = shutil.disk_usage(Path(args.dir).parent).free / 2**30
    print(f"events benchmark: {args.threads} threads, {free:.0f} GiB free under {args.dir}")
    args.baseline_src, baseline_commit = None, None
    if args.baseline:
        args.baseline_src, baseline_commit = export_baseline(args.baseline,
                                                             Path(args.dir) / "baseline-src")
        print(f"baseline: {baseline_commit} in {args.baseline_src}")
    results = {"date": dt.datetime.now(dt.timezone.utc).isoformat(), "machine": machine(),  # noqa: UP017
               "params": {"threshold": THRESHOLD, "min_frames": MIN_FRAMES, "merge_gap": MERGE_GAP,
                          "frames_per_video": FRAMES, "rows_per_file": ROWS_PER_FILE,
                          "threads": args.threads, "repeat": args.repeat,
                          "pandas_cap_gib": args.pandas_cap_gib,
                          "duckdb_memory_limit": args.memory_limit, "spill": args.spill,
                          "baseline_commit": baseline_commit, "pandas": not args.skip_pandas},
               "compare": []}
    for rows in (int(r) for r in args.rows.split(",")):
        results["compare"].append(compare(rows, args))
    if not args.skip_side:
        results["cold_start"] = cold_start(args)
        results["formulations"] = formulations(args)
    print("\n| rows | files | parquet MiB | DuckDB s | DuckDB peak MiB | pandas s "
          "| pandas peak MiB | pandas / DuckDB | same events |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|:--:|")
    skipped = {"ok": True, "wall_s_median": None, "peak_rss_mib_max": None}
    for c in results["compare"]:
        d, p = c["duckdb"], c.get("pandas", skipped)
        fmt = lambda x, f: f.format(x) if x is not None else "n/a"  # noqa: E731
        print(f"| {c['rows']:,} | {c['files']} | {c['parquet_mib']:.0f} | "
              f"{fmt(d['wall_s_median'], '{:.2f}')} | {fmt(d['peak_rss_mib_max'], '{:.0f}')} | "
              f"{fmt(p['wall_s_median'], '{:.2f}')} | {fmt(p['peak_rss_mib_max'], '{:.0f}')} | "
              f"{fmt(c.get('speedup'), '{:.1f}x')} | {c.get('same_events', 'n/a')} |")
        for kind in ("duckdb", "duckdb_baseline", "pandas"):
            if kind in c and not c[kind]["ok"]:
                print(f"  {kind} at {c['rows']:,} rows: {c[kind]['error']}")
        if "vs_baseline" in c:
            b = c["duckdb_baseline"]
            print(f"  {c['rows']:,} rows, DuckDB: baseline {b['wall_s_median']:.2f} s, this tree "
                  f"{d['wall_s_median']:.2f} s ({c['vs_baseline']:.2f}x), same events: "
                  f"{c['same_events_as_baseline']}")
    if not args.no_save:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
