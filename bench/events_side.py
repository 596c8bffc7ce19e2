"""Side measurements of bench/events_bench.py: the cold start of ``connect`` on 1,000 files,
smoothing as a Python UDF against a pure-SQL offset join, and row_number islands against
lag + running sum.

    cold_start(args)     # {"files": 1000, "median": {...}, "runs": [...]}
    formulations(args)   # {"udf_s": ..., "sql_join_s": ..., "max_abs_diff": ...}
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from events_store import generate, write_v1


def cold_start(args: argparse.Namespace) -> dict:
    """connect() on a store of 1,000 small Parquet files, in a fresh process."""
    root = Path(args.dir) / "store_1000_files"
    if not (root / "scores" / ".complete").exists():
        from raystack.store import table_schema

        shutil.rmtree(root, ignore_errors=True)
        f = np.arange(16, 516)
        for i in range(1000):  # schema v1, as events_store.generate, for --baseline
            write_v1(root, "cold", f"u{i:04d}", pa.table({
                "run_id": ["cold"] * f.size, "video_id": [f"v{i // 4:04d}"] * f.size,
                "frame": f + 500 * (i % 4), "timestamp_s": f / 25.0, "model": ["fp"] * f.size,
                "psnr": np.full(f.size, 30.0, np.float32), "aux": [None] * f.size},
                schema=table_schema("scores", 1)))
        (root / "scores" / ".complete").write_text("ok\n")
    connect = f"connect(r'{root}', threads={args.threads})"
    code = (
        "import time, json; t0 = time.perf_counter()\n"
        "from raystack.query import connect, run_sql\n"
        f"t1 = time.perf_counter(); con = {connect}; t2 = time.perf_counter()\n"
        "n = run_sql(con, 'SELECT count(*) AS n FROM scores')['n'][0].as_py()\n"
        "t3 = time.perf_counter()\n"
        "ev = run_sql(con, 'SELECT count(*) AS n FROM events(threshold := 0.5, sigma := 0)')\n"
        "t4 = time.perf_counter()\n"
        f"con2 = {connect}; t5 = time.perf_counter()\n"
        "print(json.dumps(dict(import_s=t1-t0, connect_cold_s=t2-t1, first_count_s=t3-t2, rows=n,"
        " first_events_s=t4-t3, connect_warm_s=t5-t4)))\n"
    )
    sides = {"current": None, "baseline": args.baseline_src} if args.baseline_src else {
        "current": None}
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for _ in range(args.repeat):
        for side, src in sides.items():
            env = dict(os.environ)
            if src is not None:
                env["PYTHONPATH"] = str(src)
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True, env=env)
            runs[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out: dict = {"files": 1000}
    for side, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"  connect on 1,000 files ({side}): cold {med['connect_cold_s'] * 1000:.0f} ms "
              f"(+ import {med['import_s'] * 1000:.0f} ms), warm "
              f"{med['connect_warm_s'] * 1000:.0f} ms, first count(*) "
              f"{med['first_count_s'] * 1000:.0f} ms", flush=True)
        if side == "current":
            out.update(median=med, runs=rs)
        else:
            out["baseline"] = {"median": med, "runs": rs}
    return out


SMOOTH_SQL_JOIN = """
WITH n AS (
    SELECT run_id, video_id, model, frame, anomaly,
           row_number() OVER (PARTITION BY run_id, video_id, model ORDER BY frame) - 1 AS i,
           count(*) OVER (PARTITION BY run_id, video_id, model) AS len
    FROM normalised()
),
k AS (
    SELECT o AS off, exp(-0.5 * o * o / (? * ?)) AS w
    FROM range(-CAST(floor(4.0 * ? + 0.5) AS BIGINT), CAST(floor(4.0 * ? + 0.5) AS BIGINT) + 1) r(o)
),
kn AS (SELECT off, w / sum(w) OVER () AS w FROM k),
taps AS (
    SELECT n.run_id, n.video_id, n.model, n.i, n.len, kn.w,
           CASE WHEN n.len = 1 THEN 0
                ELSE ((n.i + kn.off) % (2 * (n.len - 1)) + 2 * (n.len - 1)) % (2 * (n.len - 1))
           END AS m
    FROM n, kn
),
t AS (  -- scipy's mirror: reflect about the end samples, period 2 (len - 1)
    SELECT *, CASE WHEN m >= len THEN 2 * (len - 1) - m ELSE m END AS j FROM taps
)
SELECT t.run_id, t.video_id, t.model, t.i, sum(t.w * n2.anomaly) AS score
FROM t JOIN n AS n2 ON n2.run_id = t.run_id AND n2.video_id = t.video_id
    AND n2.model = t.model AND n2.i = t.j
GROUP BY t.run_id, t.video_id, t.model, t.i
"""

ISLANDS_ROW_NUMBER = """
SELECT count(*) AS n FROM events(threshold := 0.8, min_frames := 5, merge_gap := 3, sigma := 0)
"""

ISLANDS_LAG = """
WITH f AS (SELECT run_id, video_id, frame, score FROM flags(threshold := 0.8, sigma := 0)
           WHERE flagged),
m AS (SELECT *, CASE WHEN frame - lag(frame) OVER (PARTITION BY run_id, video_id ORDER BY frame)
                     - 1 <= 3 THEN 0 ELSE 1 END AS new_event FROM f),
e AS (SELECT *, sum(new_event) OVER (PARTITION BY run_id, video_id ORDER BY frame
                                     ROWS UNBOUNDED PRECEDING) AS ev FROM m)
SELECT count(*) AS n FROM (SELECT run_id, video_id, ev, min(frame) s, max(frame) e FROM e
                           GROUP BY ALL HAVING max(frame) - min(frame) + 1 >= 5)
"""


def formulations(args: argparse.Namespace) -> dict:
    """Smoothing UDF vs pure-SQL join (1M rows); islands vs lag + running sum (10M rows)."""
    from raystack.query import connect

    def best(con, sql, params=None, n=3):
        times, result = [], None
        for _ in range(n):
            t = time.perf_counter()
            result = con.sql(sql, params=params).to_arrow_table()
            times.append(time.perf_counter() - t)
        return min(times), result

    small = generate(Path(args.dir) / "store_1000000", 1_000_000)
    con = connect(small, threads=args.threads, read_only=False)
    sigma = 10.0
    udf_s, udf = best(con, "SELECT run_id, video_id, model, frame, score FROM smoothed(sigma := ?)",
                      [sigma])
    sql_s, joined = best(con, SMOOTH_SQL_JOIN, [sigma] * 4, n=1)
    a = np.sort(udf["score"].to_numpy())
    b = np.sort(joined["score"].to_numpy())
    out = {"smoothing_rows": udf.num_rows, "sigma": sigma, "udf_s": udf_s, "sql_join_s": sql_s,
           "max_abs_diff": float(np.max(np.abs(a - b)))}
    print(f"  smoothing 1M rows, sigma 10: Python UDF {udf_s:.2f} s, pure-SQL offset join "
          f"{sql_s:.2f} s (max |diff| {out['max_abs_diff']:.1e})", flush=True)
    con.close()
    big = Path(args.dir) / "store_10000000"
    if big.exists():
        con = connect(big, threads=args.threads, read_only=False)
        rn_s, rn = best(con, ISLANDS_ROW_NUMBER)
        lag_s, lag = best(con, ISLANDS_LAG)
        out.update(islands_rows=10_000_000, row_number_islands_s=rn_s, lag_running_sum_s=lag_s,
                   same_count=rn["n"][0].as_py() == lag["n"][0].as_py())
        print(f"  events 10M rows (in-process, warm): row_number islands {rn_s:.2f} s, lag + "
              f"running sum {lag_s:.2f} s", flush=True)
    return out
