"""Selective-scan speed: the sequential reference vs the chunked torch scan vs the native kernel.

Shapes are the paper preset's SS2D at 256x256 input (d_model 64, expand 2, four directions
stacked on channels as four B/C groups, d_state 16, batch 1):

    stage 0: u (1,  512, 4096)   stage 1: u (1, 1024, 1024)
    stage 2: u (1, 2048,  256)   stage 3: u (1, 4096,   64)     B, C (1, 4, 16, L)

Each configuration runs in a fresh subprocess, with glibc's default allocator settings and
with MALLOC_MMAP_THRESHOLD_=4294967296 (it must be set before the process starts), on
2 torch threads; times are medians over repetitions. Also records the native kernel's
compile time and a torch.profiler breakdown of where the time goes at stage 0.

    python bench/scan_bench.py            # table + bench/results/scan.json
    python bench/scan_bench.py --quick    # fewer repetitions
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "scan.json"
SHAPES = [(512, 4096), (1024, 1024), (2048, 256), (4096, 64)]  # (channels, length)
GROUPS, DSTATE, THREADS = 4, 16, 2
ENVS = {
    "glibc-default": {},
    "mmap-threshold-4G": {"MALLOC_MMAP_THRESHOLD_": "4294967296"},
}
GOAL = 20.0
# The reference's backward is O(L^2) in memory traffic: every step's `deltaA[:, :, i]`
# select materialises a full (b, d, l, n) zero gradient, ~10 minutes at stage 0. Its
# forward+backward is timed only up to this length.
REF_BWD_MAX_LENGTH = 256


def make_inputs(dim, length, seed=0):
    """Inputs at Mamba's initialisation scale: softplus(N(0,1) + bias), A = -exp(N(0,1))."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(1, dim, length, generator=gen)
    delta = torch.randn(1, dim, length, generator=gen)
    A = -torch.exp(torch.randn(dim, DSTATE, generator=gen))
    B = torch.randn(1, GROUPS, DSTATE, length, generator=gen)
    C = torch.randn(1, GROUPS, DSTATE, length, generator=gen)
    D = torch.randn(dim, generator=gen)
    z = torch.randn(1, dim, length, generator=gen)
    dt_init = torch.exp(torch.rand(dim, generator=gen) * 4.6 - 6.9)  # 1e-3 .. 1e-1
    bias = dt_init + torch.log(-torch.expm1(-dt_init))
    return (u, delta, A, B, C), {"D": D, "z": z, "delta_bias": bias, "delta_softplus": True}


def timed(fn, reps):
    """(median, min) seconds over reps calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def worker(quick: bool) -> dict:
    """Runs in the subprocess: every formulation at every shape; returns seconds."""
    import torch

    from raystack.ops.scan_chunked import selective_scan_chunked
    from raystack.ops.scan_native import native_available, native_error, selective_scan_native
    from raystack.ops.selective_scan import selective_scan_ref

    torch.set_num_threads(THREADS)
    have_native = native_available()
    formulations = {
        "ref": lambda a, k: selective_scan_ref(*a, **k),
        "torch": lambda a, k: selective_scan_chunked(*a, **k),
    }
    if have_native:
        formulations["native"] = lambda a, k: selective_scan_native(*a, **k)

    def fwd_bwd(fn, args, kwargs):
        leaves = [t.clone().requires_grad_(True) for t in args]
        extra = {
            k: v.clone().requires_grad_(True) if k != "delta_softplus" else v
            for k, v in kwargs.items()
        }
        out = fn(leaves, extra)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()

    rows = []
    load_before = os.getloadavg()
    for dim, length in SHAPES:
        args, kwargs = make_inputs(dim, length)
        row = {"channels": dim, "length": length}
        for name, fn in formulations.items():
            reps_f = 3 if name == "ref" else (5 if quick else 15)
            reps_b = 1 if name == "ref" else (3 if quick else 7)
            with torch.no_grad():
                med, low = timed(lambda fn=fn, a=args, k=kwargs: fn(a, k), reps_f)
            row[f"{name}_fwd_s"], row[f"{name}_fwd_min_s"] = med, low
            if name != "ref" or length <= REF_BWD_MAX_LENGTH:
                med, low = timed(lambda fn=fn, a=args, k=kwargs: fwd_bwd(fn, a, k), reps_b)
                row[f"{name}_fwd_bwd_s"], row[f"{name}_fwd_bwd_min_s"] = med, low
            print(f"{dim}x{length} {name} done", file=sys.stderr, flush=True)
        rows.append(row)
    return {
        "rows": rows,
        "native": have_native,
        "native_error": native_error(),
        # other processes on the machine skew timings; a 1-minute load well above the
        # 2 threads used here marks a noisy run
        "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def profile_stage0() -> dict:
    """Top ops by self CPU time for each formulation at stage 0 (forward, no grad)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from raystack.ops.scan_chunked import selective_scan_chunked
    from raystack.ops.scan_native import native_available, selective_scan_native
    from raystack.ops.selective_scan import selective_scan_ref

    torch.set_num_threads(THREADS)
    args, kwargs = make_inputs(*SHAPES[0])
    fns = {"ref": selective_scan_ref, "torch": selective_scan_chunked}
    if native_available():
        fns["native"] = selective_scan_native
    report = {}
    for name, fn in fns.items():
        with torch.no_grad():
            fn(*args, **kwargs)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn(*args, **kwargs)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) or 1
        report[name] = [
            {
                "op": e.key,
                "calls": e.count,
                "self_ms": round(e.self_cpu_time_total / 1e3, 2),
                "share": round(e.self_cpu_time_total / total, 3),
            }
            for e in events[:6]
        ]
    return report


def compile_time() -> dict:
    """Seconds to build and load the native kernel from scratch (fresh cache folder)."""
    code = (
        "import time\n"
        "from raystack.ops.scan_native import native_available, native_error\n"
        "t = time.perf_counter()\n"
        "ok = native_available()\n"
        "print(ok, time.perf_counter() - t, native_error())\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "RAYSTACK_NATIVE_CACHE": cache}
        cmd = [sys.executable, "-c", code]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    ok, seconds, error = done.stdout.split(maxsplit=2)
    return {
        "built": ok == "True",
        "compile_and_load_s": round(float(seconds), 2),
        "error": None if error.strip() == "None" else error.strip(),
    }


def run_sub(mode: str, env_extra: dict, quick: bool) -> dict:
    env = {**os.environ, **env_extra, "OMP_NUM_THREADS": str(THREADS)}
    for key in ENVS["mmap-threshold-4G"]:
        if key not in env_extra:
            env.pop(key, None)
    cmd = [sys.executable, __file__, f"--{mode}"] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        msg = f"benchmark subprocess failed:\n{done.stderr[-3000:]}"
        raise RuntimeError(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict:
    from machine_info import machine as base

    return base()


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return done.stdout.strip() + ("+dirty" if dirty else "")


def add_speedups(row: dict) -> None:
    """ref / formulation; for forward+backward without a reference timing, the speedup over
    the reference's forward alone (a lower bound), under a separate key."""
    for n in ("torch", "native"):
        if f"{n}_fwd_s" in row:
            row[f"{n}_fwd_speedup"] = round(row["ref_fwd_s"] / row[f"{n}_fwd_s"], 2)
        if f"{n}_fwd_bwd_s" in row:
            if "ref_fwd_bwd_s" in row:
                ratio = row["ref_fwd_bwd_s"] / row[f"{n}_fwd_bwd_s"]
                row[f"{n}_fwd_bwd_speedup"] = round(ratio, 2)
            ratio = row["ref_fwd_s"] / row[f"{n}_fwd_bwd_s"]
            row[f"{n}_fwd_bwd_speedup_over_ref_fwd"] = round(ratio, 2)


def print_table(results: dict) -> None:
    names = ["ref", "torch", "native"]
    for env_name, res in results["runs"].items():
        load = res["loadavg_1min_before_after"]
        print(f"\n== {env_name}, load average {load[0]} -> {load[1]}")
        print("   (2 threads, median; x = ref time / time; '>' = over the")
        print("   reference's forward alone, where its backward is too slow to time)")
        head = f"{'C x L':>12} | " + " | ".join(f"{n + ' fwd':>19}" for n in names)
        head += " | " + " | ".join(f"{n + ' fwd+bwd':>19}" for n in names)
        print(head)
        for row in res["rows"]:
            cells = []
            for kind in ("fwd", "fwd_bwd"):
                for n in names:
                    t = row.get(f"{n}_{kind}_s")
                    if t is None:
                        cells.append(f"{'-':>19}")
                        continue
                    ref = row.get(f"ref_{kind}_s")
                    mark = "" if ref is not None else ">"
                    ref = ref if ref is not None else row["ref_fwd_s"]
                    cells.append(f"{t * 1e3:9.1f} ms {mark:>1}{ref / t:5.1f}x")
            print(f"{row['channels']:>5} x {row['length']:<5} | " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if opts.worker:
        print(json.dumps(worker(opts.quick)))
        return
    if opts.profile:
        print(json.dumps(profile_stage0()))
        return

    import torch

    results = {
        "benchmark": "selective scan, SS2D shapes of the paper preset at 256x256",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "machine": machine(),
        "threads": THREADS,
        "groups": GROUPS,
        "d_state": DSTATE,
        "goal_speedup_stage0": GOAL,
        "ref_fwd_bwd_max_length": REF_BWD_MAX_LENGTH,
        "compile": compile_time(),
        "runs": {name: run_sub("worker", env, opts.quick) for name, env in ENVS.items()},
        "profile_stage0_fwd": run_sub("profile", {}, opts.quick),
    }
    for res in results["runs"].values():
        for row in res["rows"]:
            add_speedups(row)
    print_table(results)
    print(f"\nnative kernel first use (compile + load): {results['compile']}")
    for name, top in results["profile_stage0_fwd"].items():
        ops = ", ".join(f"{e['op']} {e['share']:.0%}" for e in top[:4])
        print(f"profile {name}: {ops}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
