"""Memory of a tiled scan against its chunk size: peak RSS and frames/s of one scan worker.

One synthetic 1280x720 video is scored tiled (the automatic 640x360 working frame: 28
tiles of 128 px with the ``small`` presets, 104 of 64 px with ``tiny``) by the scan worker
(``UnitScorer``, no Ray, the default prefetch of 2 chunks), once per chunk size, each in a
fresh process with the scan actors' allocator setting (``WORKER_ENV``), so that its peak
RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) is that chunk size's alone. A chunk holds its
frames and flow at the working size (float32, ~4.6 MB a frame at 640x360); the model is
far slower than decoding, so the prefetch queue stays full: two chunks queued, one being
scored, one decoded and waiting to be queued. Only a unit of four chunks or more shows
that steady state (the default 264 frames: 4 x 64 scored after the tiny context).
frames/s: scored frames over the unit's wall time (decode and flow overlap the models, as
in a scan); the models load before the clock starts, and ``rss_models_mib`` is the RSS
once they are loaded.

    nice -n 10 python bench/tiles_memory_bench.py      # -> bench/results/tiles_memory.json
    python bench/tiles_memory_bench.py --frames 40 --chunks 32,8 --out /tmp/m.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

SOURCE = (720, 1280)  # (H, W)


def rss_mib() -> float:
    """The current resident set, MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(args: argparse.Namespace) -> dict:
    from raystack.archive import list_archive
    from raystack.scan.plan import plan_units
    from raystack.scan.probe import probe_archive
    from raystack.scan.worker import UnitScorer

    d = Path(args.dir)
    ckpts = [str(d / "fp.pt"), str(d / "fr.pt")]
    scorer = UnitScorer(ckpts, threads=args.threads, chunk_frames=args.chunk, tiles=True,
                        tile_scale=0.0)
    sources = list_archive(d / "a" / "test")
    unit = plan_units(probe_archive(sources), context=scorer.context, segment_frames=100_000,
                      sources=sources).units[0]
    loaded = rss_mib()
    t0 = time.perf_counter()
    table, timings, _ = scorer.score(unit)
    wall = time.perf_counter() - t0
    n = unit.stop - unit.start
    return {"chunk_frames": args.chunk, "prefetch_chunks": scorer.prefetch_chunks,
            "tiles": scorer.grid(SOURCE).count, "work_size": list(scorer.grid(SOURCE).work_size),
            "frames": n, "rows": table.num_rows, "wall_s": round(wall, 2),
            "frames_per_s": round(n / wall, 3), "rss_models_mib": round(loaded),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            **{k: round(v, 2) for k, v in timings.items()}}


def prepare(d: Path, frames: int, preset: str) -> None:
    import torch

    from raystack.models import create_model, save_checkpoint
    from raystack.synth import synthesize

    for task in ("fp", "fr"):
        torch.manual_seed(0)  # random weights: speed and memory do not depend on them
        name = f"vqmau_{task}.{preset}"
        save_checkpoint(d / f"{task}.pt", create_model(name), preset=name,
                        data_fingerprint="random")
    synthesize(d / "a", seed=0, n_train=0, n_test=1, frames=frames, size=(SOURCE[1], SOURCE[0]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=264, help="frames of the video")
    ap.add_argument("--chunks", default="64,32,16", help="chunk sizes, comma-separated")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads (a scan "
                    "actor's CPUs; 1 is the CPU default)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tiles_memory.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0

    from machine_info import machine

    from raystack.scan.pipeline import WORKER_ENV

    d = Path(tempfile.mkdtemp(prefix="raystack-tiles-mem-"))
    prepare(d, args.frames, args.preset)
    results = []
    for chunk in (int(c) for c in args.chunks.split(",")):
        cmd = [sys.executable, __file__, "--worker", "--chunk", str(chunk), "--dir", str(d),
               "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env={**os.environ, **WORKER_ENV})
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if not lines:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        r = json.loads(lines[-1][len("RESULT "):])
        results.append(r)
        print(f"chunk {chunk:3d}: peak RSS {r['peak_rss_mib']:5d} MiB (models loaded "
              f"{r['rss_models_mib']} MiB), {r['frames_per_s']:.3f} frames/s, "
              f"{r['wall_s']:.1f} s for {r['frames']} frames", flush=True)
    doc = {"bench": "tiles_memory_bench", "machine": machine(),
           "source": {"width": SOURCE[1], "height": SOURCE[0], "frames": args.frames},
           "models": [f"vqmau_fp.{args.preset}", f"vqmau_fr.{args.preset}",
                      "baselines diff+motion"],
           "threads": args.threads, "worker_env": WORKER_ENV,
           "command": "python bench/tiles_memory_bench.py "
           + " ".join(argv if argv is not None else sys.argv[1:]),
           "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
