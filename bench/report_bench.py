"""The HTML report at scale: time and size of `raystack report` on a run of 1,000 videos.

    nice -n 19 python bench/report_bench.py                 # writes bench/results/report_scale.json
    python bench/report_bench.py --videos 200 --baseline none --out /tmp/r.json
    python bench/report_bench.py --regions --baseline none   # v2 scores, boxes drawn

The store: N videos of 1,500 frames (60 s at 25 fps), fp and fr scores, one or two dips
per video (so about 1.5 events each), written through the Store API. Every video's uri is
the same real 1,500-frame synthetic clip, so the report decodes real thumbnails (its
default cap: the 60 strongest events).

Measured for this tree and, with ``--baseline REF`` (default: the commit before the
report was split into pages, 429850c), for the code of REF exported to a temporary folder:
each report is written in its own process (wall time and peak RSS), then its folder is
measured (bytes of the index, of all pages, the largest page, the number of files), and,
where Debian's chromium is installed, the time headless Chromium takes to load and lay out
the index (``--dump-dom``, browser start included; a page that a browser chokes on shows
here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FRAMES, FPS = 1500, 25.0
RESULTS = HERE / "results" / "report_scale.json"
OPTS = dict(sigma=2.0, threshold=0.7, min_frames=5, merge_gap=3)


def region_columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Schema v2 region columns for ``n`` frames of a 128x96 clip: a 64x48 tile and a
    16x16 patch inside it, placed at random per frame (the report draws both)."""
    tx = rng.integers(0, 65, n).astype(np.int32)
    ty = rng.integers(0, 49, n).astype(np.int32)
    px = tx + rng.integers(0, 49, n).astype(np.int32)
    py = ty + rng.integers(0, 33, n).astype(np.int32)
    return {"tiles": np.full(n, 6, np.int16), "box_x0": tx, "box_y0": ty, "box_x1": tx + 64,
            "box_y1": ty + 48, "patch_x0": px, "patch_y0": py, "patch_x1": px + 16,
            "patch_y1": py + 16}


def build_store(root: Path, n_videos: int, seed: int = 0, regions: bool = False) -> Path:
    """A store with run 'r1' of ``n_videos`` videos, all pointing at one real clip; with
    ``regions``, in schema v2 with a tile and patch box on every frame."""
    from raystack.scan.probe import probe_archive
    from raystack.store import Store, table_schema
    from raystack.synth import synthesize

    synthesize(root / "arch", n_train=0, n_test=1, frames=FRAMES, size=(128, 96), seed=seed)
    clip = probe_archive(str(root / "arch" / "test")).to_pylist()[0]
    rng = np.random.default_rng(seed)
    store = Store(root / "store")
    rows = [{**clip, "video_id": f"cam{i:04d}-{i:08x}",
             "relpath": f"site{i % 20:02d}/cam{i:04d}.mp4"} for i in range(n_videos)]
    videos = pa.Table.from_pylist(rows, schema=table_schema("videos"))
    store.write_table("videos", "r1", "videos", videos)
    frames = np.arange(16, FRAMES)
    for r in rows:
        psnr = 32 + rng.normal(0, 0.3, len(frames))
        for _ in range(rng.integers(1, 3)):
            a = int(rng.integers(50, FRAMES - 100))
            psnr[a - 16 : a - 16 + int(rng.integers(10, 60))] -= 8
        parts = [pa.table({
            "run_id": ["r1"] * len(frames), "video_id": [r["video_id"]] * len(frames),
            "frame": frames, "timestamp_s": frames / FPS, "model": [m] * len(frames),
            "psnr": (psnr + off + rng.normal(0, 0.2, len(frames))).astype(np.float32),
            "aux": [None] * len(frames)}, schema=table_schema("scores", 1))
            for m, off in (("fp", 0.0), ("fr", 1.0))]
        if regions:
            parts = [_with_regions(t, region_columns(t.num_rows, rng)) for t in parts]
        store.write_table("scores", "r1", r["video_id"], pa.concat_tables(parts))
    return root / "store"


def _with_regions(t: pa.Table, cols: dict[str, np.ndarray]) -> pa.Table:
    from raystack.store import table_schema

    schema = table_schema("scores")
    for name, values in cols.items():
        t = t.append_column(schema.field(name), pa.array(values, schema.field(name).type))
    return t


def worker(store: str, out: str) -> None:
    """Write one report with whatever ``raystack`` is first on sys.path; print figures."""
    from raystack.report import ReportOptions, write_report

    t0 = time.perf_counter()
    write_report(store, "r1", out, ReportOptions(**OPTS))
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": round(wall, 2), "peak_rss_mib": round(rss, 1)}))


def run_worker(code: Path, store: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run([sys.executable, __file__, "--worker", str(store), str(out)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(folder: Path) -> dict:
    files = [p for p in folder.rglob("*") if p.is_file()]
    html = [p for p in files if p.suffix == ".html"]
    sizes = [p.stat().st_size for p in html]
    index = folder / "index.html"
    doc = {"files": len(files), "html_pages": len(html),
           "total_mib": round(sum(p.stat().st_size for p in files) / 2**20, 2),
           "index_kib": round(index.stat().st_size / 1024, 1),
           "largest_page_kib": round(max(sizes) / 1024, 1),
           "median_page_kib": round(statistics.median(sizes) / 1024, 1),
           "thumbnails": len([p for p in files if p.suffix == ".jpg"])
           or index.read_text().count("data:image/jpeg")}
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        with tempfile.TemporaryDirectory() as profile:
            t0 = time.perf_counter()
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            f"--user-data-dir={profile}", "--dump-dom", index.as_uri()],
                           capture_output=True, timeout=600, check=False)
            doc["chromium_index_load_s"] = round(time.perf_counter() - t0, 2)
    return doc


def export(ref: str, into: Path) -> Path:
    into.mkdir(parents=True)
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "raystack", "schemas"],
                         capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    # raystack.schemas is the repo's top-level schemas/, shipped inside the package.
    shutil.copytree(into / "schemas", into / "raystack" / "schemas", dirs_exist_ok=True)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--baseline", default="429850c", help="git ref to compare, or 'none'")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--regions", action="store_true",
                    help="scores in schema v2 with boxes (code before v2 cannot read them)")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    from machine_info import machine

    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        store = build_store(tmp, args.videos, regions=args.regions)
        doc = {"machine": machine(), "videos": args.videos, "frames_per_video": FRAMES,
               "options": OPTS, "store_build_s": round(time.perf_counter() - t0, 1),
               "command": f"nice -n 19 python bench/report_bench.py --videos {args.videos} "
                          f"--baseline {args.baseline}"
                          + (" --regions" if args.regions else "")}
        sides = {"this_tree": ROOT}
        if args.baseline != "none":
            sides[f"baseline_{args.baseline}"] = export(args.baseline, tmp / "baseline")
        for name, code in sides.items():
            out = tmp / f"report-{name}"
            doc[name] = run_worker(code, store, out)
            if "error" not in doc[name]:
                doc[name].update(measure(out))
            print(name, doc[name], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
