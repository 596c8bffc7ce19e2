"""Which tile speaks for a tiled frame: per-tile normalisation rules on a scanned, labelled run.

A tiled scan keeps, per frame and stream, the worst tile's score and box. On a fixed camera
the worst tile is mostly the same busy place (people near the camera err most in
prediction), so an unusual event in a quiet tile must out-err the busiest normal tile to
be seen or boxed. This replays a tiled run's scoring with every tile's score kept, and
writes runs of the same rows whose frame score and box follow a rule; ``raystack eval``
then scores each with the labels, so AUC and localisation are the product's own:

- ``worst``: the scan's rule (the lowest tile PSNR and its patch); reproduces the run;
- ``tile_z:video``: per tile, the robust z of its PSNR against the tile's own median and
  MAD over the video's frames, (median - psnr) / max(MAD, floor), floor the median MAD of
  the tiles; the frame's score is minus the largest z, its box that tile's patch;
- ``tile_z:run``: the same with each tile's median and MAD over the whole run (every video
  of the camera);
- ``tile_z:train``: the same with each tile's median and MAD over the held-out end of
  every normal training video (``--reference-archive``, ``--tail``): what a scan can know
  before it reads a frame;
- ``box:<scope>``: the scan's frame score, the box of the tile with the largest z (the
  localisation effect alone).

The rules apply to the streams of ``--streams`` (default the models' and the trivial
``diff`` and ``motion``, so the baselines are judged under the same rule); the others keep
their scan rows (``presence`` is already a per-cell normal tail).

    .venv/bin/python bench/tile_rules.py --store /tmp/loc12/rules-store --run s5 \
        --archive /tmp/loc12/archive-test-s5/test --labels /tmp/loc12/archive-test-s5/labels.json \
        --checkpoints /tmp/loc12/runs/<fp run>/fp.pt,/tmp/loc12/runs/<fr run>/fr.pt \
        --tile-scale 4 --reference-archive /tmp/loc12/archive-train/train --name tile_rules_val

The scan is replayed with the run's checkpoints and scan settings (``UnitScorer``, no Ray)
and written as ``<run>-<rule>`` per rule (``<run>-worst`` is the scan's own rows). Printed
and written to ``bench/results/<name>.json``; the per-tile scores are cached in
``<store>/../tile_rules-<run>.pkl`` (and ``-reference.pkl``), so a second call only
re-evaluates.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

RULES = ("worst", "tile_z:video", "tile_z:run", "box:video", "box:run")
TRAIN_RULES = ("tile_z:train", "box:train")


def capture(args: argparse.Namespace, archive: str, tail: float = 0.0) -> dict:
    """Per unit: the scan's table and, per stream, (n, N) tile PSNRs and (n, N, 4) tile and
    patch boxes in source pixels, from a replay of the run's scoring. ``tail`` > 0 scores
    only the last ``round(tail x frames)`` frames of each video (training's held-out part)."""
    import dataclasses

    from raystack.archive import list_archive
    from raystack.scan.plan import plan_units
    from raystack.scan.probe import probe_archive
    from raystack.scan.worker import UnitScorer

    scorer = UnitScorer(args.checkpoints.split(","), threads=args.threads,
                        region=args.region, tiles=True, tile_scale=args.tile_scale)
    seen: list[dict] = []
    score_tiles = scorer.scorer.score_tiles

    def keep_tiles(*a, **kw):  # every tile's scores, before the scan keeps the worst
        out = score_tiles(*a, **kw)
        seen.append(out)
        return out

    scorer.scorer.score_tiles = keep_tiles
    sources = list_archive(archive)
    videos = probe_archive(sources)
    plan = plan_units(videos, context=scorer.context, segment_frames=1_000_000,
                      sources=sources)
    units = {}
    for unit in plan.units:
        if tail > 0:
            start = max(unit.start, unit.num_frames - round(tail * unit.num_frames))
            unit = dataclasses.replace(unit, start=start, unit_id=f"{unit.unit_id}-tail")
        seen.clear()
        table, _, _ = scorer.score(unit)
        (grid,) = scorer._grids.values()
        off = grid.boxes[:, [0, 1, 0, 1]]  # (N, 4) tile corners, working pixels
        tiles = {}
        for s in scorer.streams:
            parts = [out[s] for out in seen]
            patch = None
            if parts[0].box is not None:
                patch = np.concatenate([grid.to_source(np.asarray(p.box) + off[None])
                                        for p in parts]).astype(np.int32)
            tiles[s] = {"psnr": np.concatenate([np.asarray(p.psnr, np.float32) for p in parts]),
                        "patch": patch, "tile_box": grid.source_boxes.astype(np.int32)}
        units[unit.unit_id] = {"video_id": unit.video_id, "table": table, "tiles": tiles}
        print(f"  captured {unit.unit_id}: {table.num_rows} rows", flush=True)
    return {"videos": videos, "units": units}


def robust_z(psnr: np.ndarray, med: np.ndarray, mad: np.ndarray) -> np.ndarray:
    """(n, N) z of each tile against its own median and spread; the spread is floored at
    the median spread of the tiles, so a tile that never changes does not turn noise into
    the frame's largest z."""
    floor = max(float(np.median(mad)), 1e-6)
    return (med[None] - psnr) / np.maximum(mad, floor)[None]


def tile_stats(psnr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    med = np.median(psnr, axis=0)
    return med, np.median(np.abs(psnr - med[None]), axis=0)


def apply_rule(rule: str, units: dict, streams: list[str], reference: dict | None = None):
    """Per unit id, the scan's table with the rule's psnr, box and patch for ``streams``.
    Scope ``video``: each tile's statistics over the unit; ``run``: over every unit;
    ``train``: over the ``reference`` units (held-out normal footage)."""
    import pyarrow as pa

    from raystack.store.schema import BOX_COLUMNS, PATCH_COLUMNS

    kind, _, scope = rule.partition(":")
    run_stats = {}
    if scope in ("run", "train"):
        pool = units if scope == "run" else reference
        if pool is None:
            msg = f"rule {rule} needs --reference-archive"
            raise SystemExit(msg)
        for s in streams:
            run_stats[s] = tile_stats(np.concatenate([u["tiles"][s]["psnr"]
                                                      for u in pool.values()]))
    out = {}
    for uid, u in units.items():
        table = u["table"]
        if kind == "worst":
            out[uid] = table
            continue
        cols = {name: table[name].to_numpy(zero_copy_only=False).copy()
                for name in ("psnr", *BOX_COLUMNS, *PATCH_COLUMNS)}
        model = np.asarray(table["model"].to_pylist())
        for s in streams:
            t = u["tiles"][s]
            psnr = t["psnr"]
            med, mad = run_stats[s] if s in run_stats else tile_stats(psnr)
            z = robust_z(psnr, med, mad)
            pick = z.argmax(axis=1)
            rows = np.flatnonzero(model == s)
            if len(rows) != len(psnr):
                msg = f"{uid} {s}: {len(rows)} rows against {len(psnr)} captured frames"
                raise SystemExit(msg)
            n = np.arange(len(psnr))
            if kind == "tile_z":
                cols["psnr"][rows] = -z[n, pick]
            for i, c in enumerate(BOX_COLUMNS):
                cols[c][rows] = t["tile_box"][pick, i]
            if t["patch"] is not None:
                for i, c in enumerate(PATCH_COLUMNS):
                    cols[c][rows] = t["patch"][n, pick, i]
        for name, values in cols.items():
            idx = table.schema.get_field_index(name)
            table = table.set_column(idx, name, pa.array(values, table.schema.field(name).type))
        out[uid] = table
    return out


def with_run(table, run: str):
    """``table`` with its ``run_id`` column (if any) naming ``run``."""
    import pyarrow as pa

    if "run_id" not in table.schema.names:
        return table
    return table.set_column(table.schema.get_field_index("run_id"), "run_id",
                            pa.array([run] * table.num_rows, pa.string()))


def write_run(store_path: Path, run: str, videos, tables: dict) -> None:
    """Run ``run`` in the store: the probed ``videos`` and a scores file per unit (what
    ``raystack eval`` reads), replacing any earlier run of that name."""
    from raystack.store import Store

    for part in store_path.glob(f"*/run={run}"):
        shutil.rmtree(part)
    st = Store(str(store_path)).ensure()
    st.write_table("videos", run, "videos", with_run(videos, run))
    for uid, table in tables.items():
        st.write_table("scores", run, uid, with_run(table, run))


def main(argv: list[str] | None = None) -> int:
    from raystack.threads import short_omp_spin

    short_omp_spin()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--run", required=True,
                    help="name of the replayed scan; the rules' runs are <run>-<rule>")
    ap.add_argument("--archive", required=True, help="the archive to scan")
    ap.add_argument("--labels", required=True)
    ap.add_argument("--checkpoints", required=True, help="the run's checkpoints, comma-separated")
    ap.add_argument("--tile-scale", type=float, required=True)
    ap.add_argument("--region", default="patch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fusion", default="weighted:0.75:fp,fr,presence")
    ap.add_argument("--baseline-fusion", default="weighted:0.5:diff,motion")
    ap.add_argument("--sigma", type=float, default=10.0)
    ap.add_argument("--streams", default="fp,fr,diff,motion")
    ap.add_argument("--rules", help=f"default {','.join(RULES)}, and with "
                    f"--reference-archive {','.join(TRAIN_RULES)}")
    ap.add_argument("--name", required=True)
    ap.add_argument("--reference-archive",
                    help="normal footage of the camera (the training archive) for the train scope")
    ap.add_argument("--tail", type=float, default=0.1,
                    help="the held-out share of each reference video scored (training's "
                         "val_fraction)")
    ap.add_argument("--cache", help="the per-tile scores (default <store>/../tile_rules-<run>.pkl)")
    args = ap.parse_args(argv)

    import pickle

    from machine_info import save_results

    from raystack.eval import evaluate

    store = Path(args.store)
    cache = Path(args.cache or store.parent / f"tile_rules-{args.run}.pkl")
    if cache.exists():
        units = pickle.loads(cache.read_bytes())
    else:
        units = capture(args, args.archive)
        cache.write_bytes(pickle.dumps(units))
    videos, units = units["videos"], units["units"]
    reference = None
    if args.reference_archive:
        ref_cache = cache.with_name(cache.stem + "-reference.pkl")
        if ref_cache.exists():
            reference = pickle.loads(ref_cache.read_bytes())
        else:
            reference = capture(args, args.reference_archive, tail=args.tail)
            ref_cache.write_bytes(pickle.dumps(reference))
        reference = reference["units"]
    streams = [s for s in args.streams.split(",") if s]
    rows = []
    rules = args.rules.split(",") if args.rules else [
        *RULES, *(TRAIN_RULES if args.reference_archive else ())]
    for rule in rules:
        new = f"{args.run}-{rule.replace(':', '-')}"
        write_run(store, new, videos, apply_rule(rule, units, streams, reference))
        for fusion in (args.fusion, args.baseline_fusion):
            res = evaluate(store, args.labels, new, fusion=fusion, sigma=args.sigma)
            loc = res.localisation or {}
            row = {"rule": rule, "fusion": res.fusion, "micro_auc": round(res.micro_auc, 4),
                   "macro_auc": None if res.macro_auc is None else round(res.macro_auc, 4),
                   "baselines": {k: round(v, 4) for k, v in res.baselines.items()},
                   "localised": loc.get("hits"), "events": loc.get("judged"),
                   "subtle": loc.get("subtle"), "by_kind": loc.get("by_kind"),
                   "events_detail": loc.get("events_detail")}
            rows.append(row)
            print(f"{rule:14s} {res.fusion:32s} micro {res.micro_auc:.4f}  "
                  f"localised {row['localised']}/{row['events']}  "
                  f"baselines {row['baselines']}", flush=True)
    save_results(args.name, {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
