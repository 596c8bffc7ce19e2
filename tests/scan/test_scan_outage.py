"""Outages of S3 (store and archive) behind a TCP forwarder that the tests cut and restore.

The scan test runs its own private Ray (started by ``scan``), so the workers inherit the
forwarder's endpoint; the outage is short (6 s) to keep the suite fast.
bench/outage_bench.py runs the same scenario with a 60 s outage.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra" / "local-s3"))
from tcp_forwarder import TcpForwarder  # noqa: E402

OUTAGE_S = 6.0


@pytest.fixture
def forwarded_s3(s3_server, monkeypatch):
    """The local S3 server behind a forwarder; AWS_ENDPOINT_URL points at the forwarder.
    Yields ``(forwarder, direct_client)``: the client talks to the server itself."""
    import boto3

    u = urlparse(s3_server)
    fwd = TcpForwarder(u.hostname, u.port).start()
    for k, v in {"AWS_ENDPOINT_URL": fwd.url, "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    direct = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    yield fwd, direct
    fwd.stop()


def _bucket(client, name: str) -> str:
    client.create_bucket(Bucket=name)
    return name


def test_store_writes_and_reads_ride_out_a_cut(forwarded_s3):
    """The driver's writes (manifest rows, run.json) and reads wait for the store to return."""
    import pyarrow as pa

    from raystack import retry
    from raystack.scan.manifest import Manifest, manifest_row
    from raystack.scan.plan import WorkUnit
    from raystack.store import Store

    fwd, direct = forwarded_s3
    bucket = _bucket(direct, "rs-outage-store")
    store = Store(f"s3://{bucket}/st").ensure()
    unit = WorkUnit(unit_id="v-00000004-00000008", video_id="v", uri="/a/v.mp4", start=4,
                    stop=8, context=4, num_frames=8, fps=25.0)
    before = retry.stats()
    fwd.cut()
    # Longer than boto3's own retries (5 attempts, ~8 s of backoff), which alone rode out
    # short cuts before raystack retried.
    threading.Timer(12.0, fwd.restore).start()
    t0 = time.monotonic()
    Manifest(store, "r1").record(manifest_row(unit, "done", rows=4, run_id="r1"))
    store.write_run_json("r1", {"note": "written during an outage"})
    waited = time.monotonic() - t0
    assert waited >= 11  # it did wait for the store
    assert retry.stats()["retries"] > before["retries"]
    keys = [o["Key"] for o in direct.list_objects_v2(Bucket=bucket)["Contents"]]
    assert "st/runs/r1/run.json" in keys and any(k.startswith("st/manifest/") for k in keys)
    # Reads too: the manifest is read back through a second cut.
    fwd.cut()
    threading.Timer(5.0, fwd.restore).start()
    rows = Manifest(Store(f"s3://{bucket}/st"), "r1").table()
    assert isinstance(rows, pa.Table) and rows.num_rows == 1


def test_a_budget_shorter_than_the_outage_gives_an_infrastructure_error(forwarded_s3):
    from raystack import retry
    from raystack.errors import InfrastructureError
    from raystack.store import Store

    fwd, direct = forwarded_s3
    bucket = _bucket(direct, "rs-outage-short")
    store = Store(f"s3://{bucket}/st").ensure()
    old = retry.policy()
    retry.configure(total_s=2.0)
    fwd.cut()
    try:
        with pytest.raises(InfrastructureError, match=rf"s3://{bucket}/st/runs/r1/run.json"):
            store.write_run_json("r1", {})
    finally:
        retry.configure(total_s=old.total_s)
        fwd.restore()


@pytest.mark.slow
def test_a_scan_rides_out_an_outage_of_store_and_archive_with_nothing_lost(
    forwarded_s3, tiny_checkpoints, tmp_path
):
    import ray

    from raystack.scan import ScanConfig, scan
    from raystack.store import Store
    from raystack.synth import synthesize

    assert not ray.is_initialized()  # the scan must start its own Ray, inheriting the env
    fwd, direct = forwarded_s3
    bucket = _bucket(direct, "rs-outage-scan")
    # Frame folders: every unit reads its images from S3, so the outage hits the archive
    # as well as the store, whenever it falls.
    synthesize(tmp_path / "a", seed=0, n_train=0, n_test=3, frames=24, size=(64, 64),
               fmt="png")
    for f in sorted((tmp_path / "a" / "test").rglob("*.png")):
        rel = f.relative_to(tmp_path / "a" / "test").as_posix()
        direct.upload_file(str(f), bucket, f"cams/{rel}")
    cfg = ScanConfig(archive=f"s3://{bucket}/cams", store=f"s3://{bucket}/store",
                     checkpoints=(tiny_checkpoints["fp"],), run_id="outage",
                     segment_frames=2, chunk_frames=2, workers=1, progress=False,
                     cache_dir=str(tmp_path / "cache"), storage_retry_s=60.0)
    units = 3 * (24 - 4) // 2
    window: dict[str, float] = {}

    def cut_when_running() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            listed = direct.list_objects_v2(Bucket=bucket, Prefix="store/manifest/")
            if listed.get("KeyCount", 0) >= 3:
                break
            time.sleep(0.1)
        window["cut"] = time.time()
        fwd.cut()
        time.sleep(OUTAGE_S)
        fwd.restore()
        window["restored"] = time.time()

    cutter = threading.Thread(target=cut_when_running, daemon=True)
    cutter.start()
    result = scan(cfg)
    cutter.join(5)
    assert "restored" in window, "the scan ended before the outage was over"
    assert result.ok, result.summary.failed
    s = result.summary
    assert (s.done, s.attempts, s.retried_units) == (units, units, 0)  # no unit lost or redone
    rows = Store(cfg.store).read_table("manifest", "outage").to_pylist()
    finished_before_cut = sum(r["finished_at"].timestamp() < window["cut"] for r in rows)
    assert finished_before_cut < units
    # Someone waited the outage out: a worker inside a unit's reads or its write, or the
    # driver writing the manifest (then the workers sat idle until it got through). Which
    # one depends on where the cut falls, so the retries of both count, as run.json has them.
    worker_retries = sum(w.get("storage_retries", 0) for w in result.workers)
    assert result.storage_retries == result.driver_storage_retries + worker_retries > 0
    invocation = Store(cfg.store).read_run_json("outage")["invocations"][-1]
    assert invocation["driver_storage_retries"] == result.driver_storage_retries
    # A unit in flight waited inside its reads or its write, or the driver held the units
    # back while its manifest write waited (the cut fell between units).
    stuck = max((r["decode_s"] or 0) + (r["write_s"] or 0) for r in rows)
    assert stuck >= OUTAGE_S / 2 or result.driver_storage_retries > 0
    scores = Store(cfg.store).read_table("scores", "outage")
    assert scores.num_rows == 3 * 20 * 3  # fp, diff, motion for every scorable frame
    assert scores.group_by(["video_id", "frame", "model"]).aggregate([]).num_rows == 180


def test_probing_through_a_long_outage_fails_the_scan_not_the_file(forwarded_s3, tiny_archive):
    """S3 away past the budget says nothing about the video: no probe_error is recorded."""
    from raystack import retry
    from raystack.archive import list_archive
    from raystack.errors import InfrastructureError
    from raystack.scan.probe import probe_source

    fwd, direct = forwarded_s3
    bucket = _bucket(direct, "rs-outage-probe")
    video = sorted(tiny_archive.glob("*.mp4"))[0]
    direct.upload_file(str(video), bucket, f"cams/{video.name}")
    (src,) = list_archive(f"s3://{bucket}/cams")
    old = retry.policy()
    retry.configure(total_s=2.0)
    fwd.cut()
    try:
        with pytest.raises(InfrastructureError, match=video.name):
            probe_source(src)
    finally:
        retry.configure(total_s=old.total_s)
        fwd.restore()
    assert probe_source(src)["probe_error"] is None  # and once S3 is back, it probes fine
