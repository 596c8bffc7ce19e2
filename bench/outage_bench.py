"""Outage benchmark: a scan over S3 (archive and store) while S3 is cut for 60 s.

The local S3 server (moto, as in the tests) sits behind a TCP forwarder
(infra/local-s3/tcp_forwarder.py); once the scan has recorded a few units, the forwarder is
cut (connections reset, new ones refused) for ``--outage-s`` seconds and then restored. The
archive is made of frame folders, so every unit reads its images from S3 and the outage
hits the archive as well as the store. Reports units lost (must be 0), unit attempts beyond
the first, the storage retries of the driver and of each worker, and wall times (with a
baseline scan of the same archive without an outage), into bench/results/outage.json.

    nice -n 19 python bench/outage_bench.py              # 60 s outage
    python bench/outage_bench.py --outage-s 10 --videos 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "infra" / "local-s3"), str(ROOT)]

from machine_info import machine  # noqa: E402
from tcp_forwarder import TcpForwarder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--segment-frames", type=int, default=2)
    ap.add_argument("--cut-after-units", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "outage.json"))
    args = ap.parse_args(argv)

    import logging

    import boto3
    import torch
    from moto.server import ThreadedMotoServer

    from raystack import retry
    from raystack.models import create_model, save_checkpoint
    from raystack.scan import ScanConfig, scan
    from raystack.store import Store
    from raystack.synth import synthesize

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's one line per request
    tmp = Path(tempfile.mkdtemp(prefix="raystack-outage-"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    fwd = TcpForwarder(host, port).start()
    os.environ.update(AWS_ENDPOINT_URL=fwd.url, AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    direct = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    direct.create_bucket(Bucket="bench")

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp / "fp.pt", create_model("vqmau_fp.tiny"), preset="vqmau_fp.tiny",
                           data_fingerprint="random")
    synthesize(tmp / "a", seed=0, n_train=0, n_test=args.videos, frames=args.frames,
               size=(64, 64), fmt="png")
    for f in sorted((tmp / "a" / "test").rglob("*.png")):
        direct.upload_file(str(f), "bench", f"cams/{f.relative_to(tmp / 'a' / 'test').as_posix()}")

    cfg = ScanConfig(archive="s3://bench/cams", store="s3://bench/store",
                     checkpoints=(str(ckpt),), run_id="outage",
                     segment_frames=args.segment_frames, chunk_frames=args.segment_frames,
                     workers=args.workers, progress=False, cache_dir=str(tmp / "cache"))
    # The same scan without an outage first, for the time the outage costs beyond itself.
    t0 = time.time()
    base = scan(dataclasses.replace(cfg, run_id="baseline"))
    baseline_wall = time.time() - t0
    if not base.ok:
        print("the baseline scan (no outage) failed:", base.summary.failed, file=sys.stderr)
        return 1
    window: dict[str, float] = {}

    def cut_when_running() -> None:
        while True:
            listed = direct.list_objects_v2(Bucket="bench", Prefix="store/manifest/run=outage/")
            if listed.get("KeyCount", 0) >= args.cut_after_units:
                break
            time.sleep(0.1)
        window["cut"] = time.time()
        fwd.cut()
        time.sleep(args.outage_s)
        fwd.restore()
        window["restored"] = time.time()

    threading.Thread(target=cut_when_running, daemon=True).start()
    t0 = time.time()
    result = scan(cfg)
    wall = time.time() - t0
    st = Store(cfg.store)
    rows = st.read_table("manifest", "outage").to_pylist()
    planned = len(result.plan.units)
    s = result.summary
    scores = st.read_table("scores", "outage", columns=["video_id", "frame", "model"])
    distinct = scores.group_by(["video_id", "frame", "model"]).aggregate([]).num_rows
    stuck = max((r["decode_s"] or 0) + (r["write_s"] or 0) for r in rows)
    doc = {
        "benchmark": "outage",
        "machine": machine(),
        "command": "nice -n 19 python bench/outage_bench.py " + " ".join(argv or sys.argv[1:]),
        "settings": {**vars(args), "storage_retry_s": cfg.storage_retry_s,
                     "archive": "frame folders (png) on S3", "store": "S3",
                     "outage": "forwarder cut: connections reset, new connections refused"},
        "outage_happened_during_scan": "restored" in window and window["cut"] > t0,
        "outage_s": (window.get("restored", 0) - window.get("cut", 0)) or None,
        "units_planned": planned,
        "units_done": s.done,
        "units_failed": len(s.failed),
        "units_lost": planned - s.done,
        "unit_attempts": s.attempts,
        "unit_retries": s.attempts - s.units,
        "score_rows": scores.num_rows,
        "score_rows_duplicated": scores.num_rows - distinct,
        "storage_retries_driver": retry.stats()["retries"],
        "storage_retries_workers": [w.get("storage_retries") for w in result.workers],
        "longest_unit_wait_in_io_s": round(stuck, 2),
        "wall_s": round(wall, 2),
        "baseline_wall_s_no_outage": round(baseline_wall, 2),
        "wall_s_lost_beyond_the_outage": round(wall - args.outage_s - baseline_wall, 2),
    }
    fwd.stop()
    server.stop()
    Path(args.out).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k not in ("machine", "settings")},
                     indent=2, default=str))
    return 0 if doc["units_lost"] == 0 and doc["outage_happened_during_scan"] else 1


if __name__ == "__main__":
    sys.exit(main())
