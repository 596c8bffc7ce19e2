"""Cost of tiled scoring: scan-worker frames/s against tiles per frame, in one run.

One synthetic 1280x720 video is scored by the scan worker (``UnitScorer``, no Ray) with the
``small`` FP and FR presets (random weights: speed does not depend on them) plus the
baselines, whole-frame and then tiled at working scales that give 3 to 28 tiles per frame
(28: the automatic scale at 720p, 640x360). Each setting scores the same unit once after a
warm-up; frames/s is scored frames over the wall time of the unit (decode, flow and models,
decode and flow overlapping the models on their helper thread as in a scan).

    nice -n 10 python bench/tiles_bench.py                   # -> bench/results/tiles_cost.json
    python bench/tiles_bench.py --frames 16 --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from machine_info import machine  # noqa: E402

SOURCE = (720, 1280)  # (H, W)
# (tile_scale, tile_overlap): tiles per 1280x720 frame with 128-px tiles in the comment.
SETTINGS = [(5.625, 0.0),  # 2: 228x128
            (5.625, 0.25),  # 3
            (5.0, 0.25),  # 6: 256x144
            (3.5, 0.25),  # 8: 366x206
            (3.0, 0.25),  # 15: 427x240
            (0.0, 0.25)]  # 28: auto, 640x360


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20, help="frames of the video (8 are context)")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads (a scan "
                    "actor's CPUs; 1 is the CPU default)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tiles_cost.json"))
    args = ap.parse_args(argv)

    import torch

    from raystack.archive import list_archive
    from raystack.models import create_model, save_checkpoint
    from raystack.scan.plan import plan_units
    from raystack.scan.probe import probe_archive
    from raystack.scan.worker import UnitScorer
    from raystack.synth import synthesize
    from raystack.tiles import TileGrid

    tmp = Path(tempfile.mkdtemp(prefix="raystack-tiles-"))
    ckpts = []
    for task in ("fp", "fr"):
        torch.manual_seed(0)
        name = f"vqmau_{task}.small"
        ckpts.append(str(save_checkpoint(tmp / f"{task}.pt", create_model(name), preset=name,
                                         data_fingerprint="random")))
    synthesize(tmp / "a", seed=0, n_train=0, n_test=1, frames=args.frames,
               size=(SOURCE[1], SOURCE[0]))
    sources = list_archive(tmp / "a" / "test")
    probed = probe_archive(sources)

    def run(**kw) -> dict:
        scorer = UnitScorer(ckpts, threads=args.threads, chunk_frames=args.frames, **kw)
        unit = plan_units(probed, context=scorer.context, segment_frames=args.frames,
                          sources=sources).units[0]
        scorer(unit)  # warm-up: first-call allocations and the decoder's open
        t0 = time.perf_counter()
        table, timings, _ = scorer.score(unit)
        wall = time.perf_counter() - t0
        n = unit.stop - unit.start
        tiles = (TileGrid.for_frame(SOURCE, scorer.scorer.img_size, kw["tile_scale"],
                                    kw["tile_overlap"]) if kw.get("tiles") else None)
        return {
            "mode": "tiles" if tiles else "whole",
            "tile_scale": kw.get("tile_scale"), "tile_overlap": kw.get("tile_overlap"),
            "work_size": list(tiles.work_size) if tiles else list(scorer.scorer.img_size),
            "tiles": tiles.count if tiles else 1,
            "frames": n, "rows": table.num_rows, "wall_s": round(wall, 3),
            "frames_per_s": round(n / wall, 3),
            **{k: round(v, 3) for k, v in timings.items()},
        }

    results = [run()]
    results += [run(tiles=True, tile_scale=s, tile_overlap=o) for s, o in SETTINGS]
    base = results[0]["frames_per_s"]
    print(f"{'mode':6} {'work':>9} {'tiles':>5} {'frames/s':>9} {'x whole':>8} "
          f"{'model_s':>8} {'flow_s':>7} {'decode_s':>8}")
    for r in results:
        r["slowdown_vs_whole"] = round(base / r["frames_per_s"], 2)
        work = "x".join(map(str, r["work_size"][::-1]))
        print(f"{r['mode']:6} {work:>9} {r['tiles']:>5} {r['frames_per_s']:>9.2f} "
              f"{r['slowdown_vs_whole']:>8.2f} {r['model_s']:>8.2f} {r['flow_s']:>7.2f} "
              f"{r['decode_s']:>8.2f}")
    doc = {
        "bench": "tiles_bench",
        "machine": machine(),
        "source": {"width": SOURCE[1], "height": SOURCE[0], "frames": args.frames},
        "models": ["vqmau_fp.small", "vqmau_fr.small", "baselines diff+motion"],
        "threads": args.threads,
        "results": results,
        "note": ("frames/s of one UnitScorer (one scan actor) on one unit; a tile costs about "
                 "one whole-frame model call at the tile size, so model time grows with the "
                 "tile count while decode and flow grow with the working size only"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
