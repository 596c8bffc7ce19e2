"""Which stream's box a fused frame should carry: candidate rules on a scanned, labelled run.

A fused score mixes streams; its box is one stream's. For every labelled event of a synth
``labels.json`` this reads the run's stored rows (no scan, no model) and reports, per rule:
whether the box at the event's peak frame hits the labelled box (the localisation rule of
docs/evaluation.md: IoU > 0.1 or the labelled centre inside), and the share of ALL the
event's frames whose box hits, a steadier figure than one peak frame per event. Per stream
it also reports that share for the stream's own box, whatever the fusion picks.

The peak frame (``--peak``): ``major`` (the default, what ``raystack eval`` and SQL
``events()`` pick, :func:`raystack.eval.localisation.event_peak`): of the stream whose box
the rule gives most of the event's frames, the frame with the highest ``raw_score`` of SQL
``fused()`` (the fusion before smoothing); ``raw``: the highest ``raw_score`` of the event;
``smoothed``: the highest smoothed ``score`` (``--sigma``), the first rule. Rules:

- ``anomaly``: the stream with the highest normalised anomaly (the rule before run_z);
- ``weighted_anomaly``: the same times the stream's fusion weight;
- ``video_z``: the highest robust z, (median - psnr) / MAD, over the stream's rows of the video;
- ``run_z``: the same over the stream's rows of the whole run (SQL ``fused()``'s rule);
- ``run_rank``: the smallest share of the stream's rows of the whole run that score as low
  or lower (its empirical tail); ties go to ``run_z``. Unlike a z it does not reward a
  stream whose floor is common (``presence`` saturates at 1 / (training frames + 1));
- ``run_tail``: ``run_rank`` with the share rounded up to a level of TAIL_LEVELS (1-2-5
  steps); ties go to ``run_z``;
- ``run_tail5``: the same at SQL ``tail_levels()`` (read from the query layer), where the
  run's lowest 5% is one level: ``fused()``'s rule, with ``--box-streams`` less ``fr``;
- ``stream:NAME``: always that stream's box.

With ``--window-sigmas S,...`` two temporal rules per S take the box from the frames around
the peak, as the smoothed score takes its value from them (a Gaussian of S frames):

- ``contrib:S``: the ``run_z`` box of the frame that adds most to the smoothed score there,
  the highest exp(-d^2 / 2 S^2) * max(run_z, 0) over the video's frames at distance d;
- ``vote:S``: of the ``run_z`` boxes within 2 S frames, the one the most such weight agrees
  with (boxes that hit each other by the localisation rule, either way round).

    .venv/bin/python bench/box_rules.py --store /tmp/loc/store \
        --run localisation_720p_runz-tiled-small --labels /tmp/loc/archive-test/labels.json \
        --fusion weighted:0.75:fp,fr,presence --name box_rules_test

Printed and written to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def stream_weights(fusion) -> dict[str, float]:
    """Each stream's weight in a ``weighted`` fusion (alpha over the mean of all but the
    last, 1 - alpha the last: docs/evaluation.md)."""
    head = fusion.streams[:-1]
    return {s: fusion.alpha / len(head) for s in head} | {fusion.streams[-1]: 1 - fusion.alpha}


def fused_scores(store: str, run: str, fusion, sigma: float, column: str = "raw_score"
                 ) -> dict[str, tuple]:
    """Per video_id, (frames, scores) of SQL ``fused()``'s ``column``: ``raw_score`` (what
    eval's peak is taken on) or the smoothed ``score``."""
    from raystack.query import connect, run_sql
    from raystack.store import Store

    con = connect(Store(store))
    try:
        t = run_sql(con, f"SELECT video_id, frame, {column} AS score FROM fused(fusion := ?, "
                         "alpha := ?, streams := ?, sigma := ?, run := ?) ORDER BY video_id, frame",
                    [*fusion.macro_args().values(), sigma, run]).to_pandas()
    finally:
        con.close()
    return {v: (g.frame.to_numpy(), g.score.to_numpy()) for v, g in t.groupby("video_id")}


def robust_z(psnr: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(median(ref) - psnr) / MAD(ref); the standard deviation x 0.6745 where MAD is 0."""
    med = float(np.median(ref))
    mad = float(np.median(np.abs(ref - med)))
    spread = mad if mad > 0 else 0.6745 * float(np.std(ref))
    return (med - psnr) / max(spread, 1e-9)


def tail_share(psnr: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Share of ``ref`` at or below each of ``psnr`` (low = unusual)."""
    ref = np.sort(np.asarray(ref, float))
    return np.searchsorted(ref, psnr, side="right") / len(ref)


TAIL_LEVELS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def sql_tail_levels() -> tuple[float, ...]:
    """The levels SQL ``fused()`` ranks boxes by (``tail_levels()`` of v3_fusion.sql)."""
    from raystack.query.connection import connect_scores
    from raystack.store import table_schema

    con = connect_scores(table_schema("scores").empty_table())
    try:
        return tuple(con.sql("SELECT tail_levels()").fetchall()[0][0])
    finally:
        con.close()


def tail_level(psnr: np.ndarray, ref: np.ndarray, levels=TAIL_LEVELS) -> np.ndarray:
    """The smallest of ``levels`` whose quantile of ``ref`` lies above each of ``psnr``
    (1.0 where none does): the run's tail the score lies in, at that resolution. Strictly
    above: a value many rows share (a floor) is in the tail of all of them."""
    q = np.quantile(np.asarray(ref, float), levels, method="inverted_cdf")
    out = np.ones(len(psnr))
    for level, v in zip(levels[::-1], q[::-1], strict=True):
        out[np.asarray(psnr) < v] = level
    return out


def load_rows(store: str, run: str):
    import duckdb

    con = duckdb.connect()
    rows = con.execute(
        f"SELECT s.video_id, v.relpath, s.frame, s.model, s.psnr, s.box_x0, s.box_y0, s.box_x1, "
        f"s.box_y1, s.patch_x0, s.patch_y0, s.patch_x1, s.patch_y1 "
        f"FROM read_parquet('{store}/scores/run={run}/*.parquet') s "
        f"JOIN read_parquet('{store}/videos/run={run}/*.parquet') v USING (video_id) "
        f"WHERE s.gated IS NOT TRUE ORDER BY s.video_id, s.model, s.frame").df()
    con.close()
    return rows


def fixed(stream: str):
    """The rule that always takes ``stream``'s box."""
    return lambda per, i: stream


def gaussian(d: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * (np.asarray(d, float) / sigma) ** 2)


def contrib(streams: list[str], sigma: float):
    """``contrib:S``: the run_z box of the frame that adds most to the smoothed score at i."""
    def rule(per, i):
        z = np.stack([per[m]["run_z"] for m in streams])
        frames = per[streams[0]]["frames"]
        j = int(np.argmax(gaussian(frames - frames[i], sigma) * np.maximum(z.max(0), 0)))
        return streams[int(z[:, j].argmax())], j
    return rule


def vote(streams: list[str], sigma: float):
    """``vote:S``: the run_z box within 2 S frames that the most Gaussian x z weight hits."""
    from raystack.eval.localisation import box_hits

    def rule(per, i):
        z = np.stack([per[m]["run_z"] for m in streams])
        frames = per[streams[0]]["frames"]
        near = np.flatnonzero(np.abs(frames - frames[i]) <= 2 * sigma)
        best = z[:, near].argmax(0)
        boxes = [per[streams[b]]["boxes"][j] for b, j in zip(best, near, strict=True)]
        w = gaussian(frames[near] - frames[i], sigma) * np.maximum(z[:, near].max(0), 0)
        support = [sum(w[b] for b in range(len(near))
                       if box_hits(boxes[a], boxes[b]) or box_hits(boxes[b], boxes[a]))
                   for a in range(len(near))]
        a = int(np.argmax(support))
        return streams[int(best[a])], int(near[a])
    return rule


def boxes_of(d) -> np.ndarray:
    """(n, 4) the patch box where there is one, else the tile box."""
    patch = d[["patch_x0", "patch_y0", "patch_x1", "patch_y1"]].to_numpy(float)
    tile = d[["box_x0", "box_y0", "box_x1", "box_y1"]].to_numpy(float)
    return np.where(np.isnan(patch).any(axis=1)[:, None], tile, patch)


def main(argv: list[str] | None = None) -> None:
    from machine_info import machine

    from raystack.eval.labels import same_video
    from raystack.eval.localisation import box_hits, event_peak, labelled_events
    from raystack.query.fusion import parse_fusion

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--labels", required=True, help="the synth archive's labels.json")
    ap.add_argument("--fusion", default="weighted:0.75:fp,fr,presence")
    ap.add_argument("--sigma", type=float, default=10.0)
    ap.add_argument("--peak", choices=("major", "raw", "smoothed"), default="major",
                    help="how an event's peak frame is picked: major (eval's and events()' "
                         "rule), raw (the highest fused score before smoothing) or smoothed "
                         "(with --sigma)")
    ap.add_argument("--window-sigmas", default="",
                    help="comma-separated S: add the temporal rules contrib:S and vote:S")
    ap.add_argument("--box-streams",
                    help="comma-separated: the streams the rules may take a box from (default "
                         "every stream of the fusion; the fused score still uses them all)")
    ap.add_argument("--name", required=True, help="results file bench/results/NAME.json")
    args = ap.parse_args(argv)

    fusion = parse_fusion(args.fusion)
    if fusion.kind != "weighted":
        msg = f"--fusion must be weighted:ALPHA:A,...,Z; got {args.fusion!r}"
        raise SystemExit(msg)
    streams, weights = list(fusion.streams), stream_weights(fusion)
    rows = load_rows(args.store, args.run)
    missing = sorted(set(streams) - set(rows["model"]))
    if missing:
        msg = f"run {args.run} has no stream {missing} (it has {sorted(set(rows['model']))})"
        raise SystemExit(msg)
    whole = {m: rows[rows.model == m].psnr.to_numpy(float) for m in streams}
    if args.box_streams:
        streams = [m for m in args.box_streams.split(",") if m]
        unknown = sorted(set(streams) - set(fusion.streams))
        if unknown:
            msg = f"--box-streams {unknown} are not streams of the fusion {args.fusion}"
            raise SystemExit(msg)
    fused_by_video = fused_scores(args.store, args.run, fusion, args.sigma,
                                  "score" if args.peak == "smoothed" else "raw_score")
    coarse = sql_tail_levels()
    rules = {
        "anomaly": lambda v, i: max(streams, key=lambda m: (v[m]["anomaly"][i], m)),
        "weighted_anomaly": lambda v, i: max(streams,
                                             key=lambda m: (weights[m] * v[m]["anomaly"][i], m)),
        "video_z": lambda v, i: max(streams, key=lambda m: (v[m]["video_z"][i], m)),
        "run_z": lambda v, i: max(streams, key=lambda m: (v[m]["run_z"][i], m)),
        "run_rank": lambda v, i: max(streams, key=lambda m: (-v[m]["run_tail"][i],
                                                             v[m]["run_z"][i], m)),
        "run_tail": lambda v, i: max(streams, key=lambda m: (-v[m]["tail_level"][i],
                                                             v[m]["run_z"][i], m)),
        "run_tail5": lambda v, i: max(streams, key=lambda m: (-v[m]["tail_coarse"][i],
                                                              v[m]["run_z"][i], m)),
        **{f"stream:{m}": fixed(m) for m in streams},
    }
    for sig in (float(x) for x in args.window_sigmas.split(",") if x.strip()):
        rules |= {f"contrib:{sig:g}": contrib(streams, sig), f"vote:{sig:g}": vote(streams, sig)}
    events = labelled_events(json.loads(Path(args.labels).read_text()))
    detail, totals = [], {r: {"peak_hits": 0, "frame_share_sum": 0.0} for r in rules}
    for e in events:
        mine = rows[[same_video(e.video, p) for p in rows.relpath]]
        per = {}
        for m in streams:
            d = mine[mine.model == m]
            p = d.psnr.to_numpy(float)
            lo, hi = p.min(), p.max()
            per[m] = {"frames": d.frame.to_numpy(), "boxes": boxes_of(d),
                      "anomaly": 1.0 - (p - lo) / (hi - lo) if hi > lo else np.zeros_like(p),
                      "video_z": robust_z(p, p), "run_z": robust_z(p, whole[m]),
                      "run_tail": tail_share(p, whole[m]),
                      "tail_level": tail_level(p, whole[m]),
                      "tail_coarse": tail_level(p, whole[m], coarse)}
        frames = per[streams[0]]["frames"]
        if any(len(per[m]["frames"]) != len(frames) or (per[m]["frames"] != frames).any()
               for m in streams):
            msg = f"{e.video}: the streams scored different frames; this bench needs the same"
            raise SystemExit(msg)
        fused_frames, fused = fused_by_video[mine.video_id.iloc[0]]
        if len(fused_frames) != len(frames) or (fused_frames != frames).any():
            msg = f"{e.video}: fused() scored other frames than the streams' rows"
            raise SystemExit(msg)
        inside = np.flatnonzero((frames >= e.start) & (frames < e.stop))
        if not len(inside):
            continue
        peak = int(inside[np.argmax(fused[inside])])

        def hit(i: int, choice, e=e, per=per, frames=frames) -> bool:
            """Does the box ``choice`` (a stream, or a stream and a frame) hit at frame i?"""
            m, j = choice if isinstance(choice, tuple) else (choice, i)
            return any(box_hits(per[m]["boxes"][j], t) for t in e.boxes.get(int(frames[i]), []))

        row = {"video": e.video, "kind": e.kind, "start": e.start, "stop": e.stop,
               "peak_frame": int(frames[peak]), "rules": {}}
        for name, rule in rules.items():
            choices = {int(i): rule(per, i) for i in inside}
            at = peak
            if args.peak == "major":  # the frame event_peak() picks among the rule's boxes
                named = [c[0] if isinstance(c, tuple) else c for c in choices.values()]
                at = int(inside[event_peak(fused[inside], named)])
            choice = choices[at]
            peak_hit = hit(at, choice)
            share = float(np.mean([hit(i, c) for i, c in choices.items()]))
            stream = choice[0] if isinstance(choice, tuple) else choice
            row["rules"][name] = {"peak_stream": stream, "peak_frame": int(frames[at]),
                                  "peak_hit": peak_hit, "frame_share": round(share, 3)}
            totals[name]["peak_hits"] += int(peak_hit)
            totals[name]["frame_share_sum"] += share
        detail.append(row)
    n = len(detail)
    summary = {r: {"peak_hits": t["peak_hits"], "events": n,
                   "mean_frame_share": round(t["frame_share_sum"] / n, 3) if n else None}
               for r, t in totals.items()}
    print(f"run {args.run}, fusion {args.fusion}, peak {args.peak}, sigma {args.sigma}: "
          f"{n} labelled events\n")
    print("| rule | peak box hits | mean share of event frames hit |\n|---|---|---|")
    for r, s in summary.items():
        print(f"| {r} | {s['peak_hits']}/{n} | {s['mean_frame_share']} |")
    print("\n| video | kind | peak | " + " | ".join(rules) + " |")
    print("|---|---|---|" + "---|" * len(rules))
    for row in detail:
        cells = [f"{'hit' if v['peak_hit'] else 'miss'} {v['peak_stream']} {v['frame_share']:.2f}"
                 for v in row["rules"].values()]
        head = f"| {row['video']} | {row['kind']} | {row['peak_frame']} | "
        print(head + " | ".join(cells) + " |")
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps({
        "machine": machine(), "command": " ".join(sys.argv), "store": args.store,
        "run": args.run, "labels": args.labels, "fusion": args.fusion, "peak": args.peak,
        "sigma": args.sigma,
        "summary": summary, "events": detail}, indent=2, default=float) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
