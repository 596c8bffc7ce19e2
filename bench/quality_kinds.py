"""What each anomaly kind costs the micro AUC of a scanned, labelled synth archive.

The quality benchmark's micro AUC pools every test frame, so a kind that no prediction
error can see (a person who walks into a flower bed and stands there) caps it whatever the
other kinds score. For every stream of a run this prints the micro AUC over all videos and
over the videos left when one kind's videos are left out, under the evaluation protocol
(``raystack eval``'s selection, normalisation and smoothing: docs/evaluation.md). It reads
an existing store; nothing is trained or scanned.

    .venv/bin/python bench/quality_kinds.py --store /tmp/qrun/store \
        --run quality_fp_fr_quiet-fp-fr-small-test --archive /tmp/qrun/archive-test \
        --name quality_kinds

Printed and written to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def stream_scores(store, run_id: str, labels: Path, stream: str, sigma: float):
    """(video names, per-video scores, per-video labels) of one stream, as eval selects them."""
    from raystack.query.connection import connect_scores

    ev = importlib.import_module("raystack.eval.evaluate")  # the package shadows the module
    videos = ev.run_videos(store, run_id)
    labs = ev.labels_for_videos(labels, videos)
    table = store.read_table("scores", run_id,
                             columns=["video_id", "frame", "model", "psnr", "gated"])
    groups = ev.group_psnr(table)
    fz = ev.resolve_fusion(stream, sorted({m for _, m in groups}), allow_oracle=False)
    sel = ev.select_frames(groups, videos, labs, list(fz.streams), run_id,
                           labels_name=str(labels))
    con = connect_scores(sel.table)
    try:
        scores = ev.sql_scores(con, sel, fz, sigma=sigma, normalise="video")
    finally:
        con.close()
    names = [Path(v["relpath"]).name.split(".")[0] for v in sel.videos]
    return names, scores, sel.labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", required=True)
    p.add_argument("--run", required=True, help="the scan run of the labelled test archive")
    p.add_argument("--archive", required=True, help="the synth archive (labels.json inside)")
    p.add_argument("--streams", default="fp,fr,diff,motion")
    p.add_argument("--sigma", type=float, default=10.0)
    p.add_argument("--name", default="quality_kinds")
    p.add_argument("--without", action="append", default=[], metavar="KIND,KIND",
                   help="also leave these kinds' videos out together (repeatable)")
    args = p.parse_args()

    from machine_info import machine

    from raystack.eval.metrics import micro_auc
    from raystack.store import Store

    archive = Path(args.archive)
    meta = json.loads((archive / "labels.json").read_text())
    kind_of = {m["name"]: m["kinds"][0] for m in meta["test"]}
    positives: dict[str, int] = {}
    for m in meta["test"]:
        for a in m["anomalies"]:
            positives[a["kind"]] = positives.get(a["kind"], 0) + a["stop"] - a["start"]
    kinds = sorted(positives)
    groups = [tuple(k) for k in ([k] for k in kinds)]
    groups += [tuple(g.split(",")) for g in args.without]
    unknown = sorted({k for g in groups for k in g} - set(kinds))
    if unknown:
        p.error(f"--without: no videos of kind {', '.join(unknown)} in {archive}")
    store = Store(args.store)
    rows = {}
    for stream in args.streams.split(","):
        names, scores, labs = stream_scores(store, args.run, archive / "frame_labels_synth.npy",
                                            stream, args.sigma)
        row = {"all": micro_auc(scores, labs)}
        for g in groups:
            keep = [i for i, n in enumerate(names) if kind_of.get(n) not in g]
            row["without_" + "+".join(g)] = micro_auc([scores[i] for i in keep],
                                                      [labs[i] for i in keep])
        rows[stream] = row

    total = sum(positives.values())
    print(f"anomalous frames by kind (of {total}): "
          + ", ".join(f"{k} {positives[k]} ({positives[k] / total:.0%})" for k in kinds))
    cols = ["+".join(g) for g in groups]
    width = max(15, *(len(c) + 1 for c in cols))
    print(f"{'stream':8s} {'all':>6s} " + " ".join(f"{'-' + c:>{width}s}" for c in cols))
    for stream, row in rows.items():
        print(f"{stream:8s} {row['all']:6.3f} "
              + " ".join(f"{row['without_' + c]:{width}.3f}" for c in cols))
    doc = {"machine": machine(), "command": " ".join(["bench/quality_kinds.py", *sys.argv[1:]]),
           "run": args.run, "sigma": args.sigma, "positives_by_kind": positives,
           "micro_auc": rows}
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
