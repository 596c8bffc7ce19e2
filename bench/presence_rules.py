"""The scene prior with neighbouring cells pooled: ``presence`` replayed on a stored tiled run.

``presence`` scores each cell by the share of normal frames whose persistent foreground
share reached the level it reaches now (raystack/scene_prior.py); a level never seen at a
cell sits at the floor p = 1 / (training frames + 1). A person walking a little off the
paths the training footage shows reaches the floor too. Variant ``nbR`` takes each cell's
normal tail as the largest over the (2R + 1)^2 cells around it: a level is normal where it
was seen at a neighbouring cell. ``same`` replays the prior as it is (and checks that the
replay reproduces the run's stored ``presence`` rows).

Per variant, the run's rows with ``presence`` replaced are written as ``<run>-pres-<variant>``
and scored by ``raystack eval`` (the fusion and ``presence`` alone):

    .venv/bin/python bench/presence_rules.py --store /tmp/loc12/rules-store --run s5-worst \
        --archive /tmp/loc12/archive-test-s5/test --labels /tmp/loc12/archive-test-s5/labels.json \
        --checkpoints <fp.pt>,<fr.pt> --tile-scale 4 --variants same,nb1,nb2 \
        --name presence_rules_val

Printed and written to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def pooled(exceed: np.ndarray, r: int) -> np.ndarray:
    """(gh, gw, L) the largest normal tail over each cell's (2r + 1)^2 neighbourhood."""
    gh, gw = exceed.shape[:2]
    pad = np.pad(exceed, ((r, r), (r, r), (0, 0)), mode="edge")
    out = np.zeros_like(exceed)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out = np.maximum(out, pad[dy:dy + gh, dx:dx + gw])
    return out


def refit_persist(prior, clips: list[np.ndarray], k: int):
    """The prior fitted again on its own training ``clips`` at a persistence of ``k`` frames
    (the same frames give the same background and noise, which is checked)."""
    from raystack.scene_prior import fit_scene_prior

    new = fit_scene_prior(clips, cell=prior.cell, persist=k)
    if not np.array_equal(new.background, prior.background):
        msg = "the training frames given do not reproduce the run's scene prior background"
        raise SystemExit(msg)
    return new


def tail_at(frames: np.ndarray, prior, k: int) -> np.ndarray:
    """presence_tail with a persistence of ``k`` frames read from the video's start (fewer
    before frame k - 1): row j is frame j."""
    from raystack.scene_prior import clip_shares, normal_tail, persistent

    held = persistent(clip_shares(frames, prior.background, prior.noise, prior.cell), k)
    return normal_tail(held, prior)


def presence_rows(rows, frames: np.ndarray, prior, grid, k: int | None = None):
    """The stored ``presence`` rows of one video with psnr, boxes and patches recomputed
    (at a persistence of ``k`` frames when given)."""
    import pyarrow as pa

    from raystack.scene_prior import presence_scores, presence_tail
    from raystack.store.schema import BOX_COLUMNS, PATCH_COLUMNS

    tail = presence_tail(frames, prior) if k is None else tail_at(frames, prior, k)
    psnr, box = presence_scores(tail, prior, grid.boxes)
    # presence_tail's row j is frame j + persist - 1; tail_at's is frame j
    idx = rows["frame"].to_numpy() - (prior.persist - 1 if k is None else 0)
    ps, bx = psnr[idx], box[idx]
    worst = ps.argmin(axis=1)
    n = np.arange(len(idx))
    patch = grid.to_source(bx[n, worst] + grid.boxes[worst][:, [0, 1, 0, 1]])
    cols = {"psnr": ps[n, worst], "psnr_mean": ps.mean(axis=1)}
    cols |= {c: grid.source_boxes[worst][:, i] for i, c in enumerate(BOX_COLUMNS)}
    cols |= {c: patch[:, i] for i, c in enumerate(PATCH_COLUMNS)}
    for k, v in cols.items():
        i = rows.schema.get_field_index(k)
        rows = rows.set_column(i, rows.schema.field(k), pa.array(v).cast(rows.schema.field(k).type))
    return rows


def prior_clips(archive: str, img_size: tuple[int, int], scale: float) -> list[np.ndarray]:
    """The training frames the run's prior was fitted on (scene_calibration's selection)."""
    from raystack.train import TrainConfig
    from raystack.train.data import decode_frames
    from raystack.train.listing import list_training_videos
    from raystack.train.scene_calibration import MAX_FRAMES

    sources = list_training_videos(archive)
    per_video = max(8, MAX_FRAMES // max(1, len(sources)))
    frac = TrainConfig.__dataclass_fields__["val_fraction"].default
    return [decode_frames(s, img_size, scale=scale, head=(frac, per_video)) for s in sources]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--run", required=True, help="a tiled scan run with presence rows")
    ap.add_argument("--archive", required=True, help="the archive the run scanned")
    ap.add_argument("--labels", required=True)
    ap.add_argument("--checkpoints", required=True, help="the run's checkpoints, comma-separated")
    ap.add_argument("--tile-scale", type=float, required=True)
    ap.add_argument("--variants", default="same,nb1,nb2",
                    help="same, nbR (R cells pooled) or persistK (K frames of persistence)")
    ap.add_argument("--train-archive", help="the normal footage the prior was fitted on "
                    "(persistK variants refit its tail)")
    ap.add_argument("--fusion", default="weighted:0.75:fp,fr,presence")
    ap.add_argument("--sigma", type=float, default=10.0)
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)

    import pyarrow as pa
    import pyarrow.compute as pc
    from machine_info import save_results
    from tile_rules import write_run

    from raystack.archive import list_archive
    from raystack.eval import evaluate
    from raystack.eval.labels import same_video
    from raystack.inference import FrameScorer
    from raystack.store import Store
    from raystack.tiles import TileGrid
    from raystack.train.data import decode_frames

    scorer = FrameScorer.from_checkpoints(args.checkpoints.split(","), presence=True, tiles=True)
    if scorer.scene_prior is None:
        msg = f"{args.checkpoints}: no tiled scene prior recorded"
        raise SystemExit(msg)
    st = Store(args.store)
    scores, videos = st.read_table("scores", args.run), st.read_table("videos", args.run)
    sources = list_archive(args.archive)
    decoded = {}
    for v in videos.to_pylist():
        src = next(s for s in sources if same_video(v["relpath"], s.relpath))
        decoded[v["video_id"]] = (decode_frames(src, tuple(scorer.img_size), scale=args.tile_scale),
                                  TileGrid.for_frame((v["height"], v["width"]),
                                                     tuple(scorer.img_size), args.tile_scale))
    rows, train_clips = [], None
    for variant in args.variants.split(","):
        prior, k = scorer.scene_prior, None
        if variant.startswith("nb"):
            prior = replace(prior, exceed=pooled(prior.exceed, int(variant[2:])))
        elif variant.startswith("persist"):
            if not args.train_archive:
                msg = "persistK variants refit the prior: give --train-archive"
                raise SystemExit(msg)
            if train_clips is None:
                train_clips = prior_clips(args.train_archive, tuple(scorer.img_size),
                                          args.tile_scale)
            k = int(variant[len("persist"):])
            prior = refit_persist(prior, train_clips, k)
        elif variant != "same":
            msg = f"unknown variant {variant!r}: same, nbR or persistK"
            raise SystemExit(msg)
        tables, drift = {}, 0.0
        for vid, (frames, grid) in decoded.items():
            mine = scores.filter(pc.equal(scores["video_id"], vid))
            old = mine.filter(pc.equal(mine["model"], "presence"))
            new = presence_rows(old, frames, prior, grid, k)
            if variant == "same":
                drift = max(drift, float(np.abs(new["psnr"].to_numpy()
                                                - old["psnr"].to_numpy()).max()))
            other = mine.filter(pc.not_equal(mine["model"], "presence"))
            tables[vid] = pa.concat_tables([other, new.cast(other.schema)])
        if drift > 1e-4:
            msg = f"the replay does not reproduce the run's presence rows (|d psnr| {drift})"
            raise SystemExit(msg)
        run = f"{args.run}-pres-{variant}"
        write_run(Path(args.store), run, videos, tables)
        for fusion in (args.fusion, "presence"):
            res = evaluate(st, args.labels, run, fusion=fusion, sigma=args.sigma)
            loc = res.localisation or {}
            row = {"variant": variant, "fusion": res.fusion, "micro_auc": round(res.micro_auc, 4),
                   "baselines": {k: round(x, 4) for k, x in res.baselines.items()},
                   "localised": loc.get("hits"), "events": loc.get("judged"),
                   "by_kind": {k: [d["hits"], d["judged"]] for k, d in loc.get("by_kind",
                                                                            {}).items()}}
            rows.append(row)
            print(f"{variant:5s} {res.fusion:30s} micro {row['micro_auc']:.4f}  localised "
                  f"{row['localised']}/{row['events']}  {row['by_kind']}", flush=True)
    save_results(args.name, {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
