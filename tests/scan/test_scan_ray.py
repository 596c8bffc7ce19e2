"""The scan on Ray, end to end: local and S3 stores, bad files, resume, killed driver and worker.

One local Ray serves the whole module (starting one takes 6-8 s); the driver-kill test
runs its first scan in a subprocess with a Ray of its own, as a real crash would.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from raystack.scan import ScanConfig, scan, status
from raystack.store import Store

FRAMES, SIZE = 24, (64, 64)  # as the tiny_archive fixture writes them (conftest.py)
CONTEXT = 4  # tiny FP preset: t = 4
REPO = Path(__file__).resolve().parents[2]
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local(s3_server):
    """One private local Ray for the module. Workers inherit the driver's environment at
    start, so the S3 settings of the local server go in first."""
    import ray

    env = {**AWS, "AWS_ENDPOINT_URL": s3_server}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ray.init(address="local", num_cpus=2, object_store_memory=256 * 1024**2,
             include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _cfg(archive, store, ckpts, **kw) -> ScanConfig:
    base = {"archive": str(archive), "store": str(store), "checkpoints": tuple(ckpts),
            "segment_frames": 8, "chunk_frames": 8, "progress": False, "workers": 1}
    return ScanConfig(**{**base, **kw})


def _duckdb_scores(store_path: Path):
    import duckdb

    glob = str(store_path / "scores" / "**" / "*.parquet")
    con = duckdb.connect()
    return con, f"read_parquet('{glob}', hive_partitioning=true)"


def _check_complete(con, src: str, run_id: str, videos: int, streams: int) -> None:
    """Exactly one row per (video, scorable frame, stream): none missing, none twice."""
    n, dupes, lo, hi = con.sql(
        f"SELECT count(*), count(*) - count(DISTINCT (video_id, frame, model)), "
        f"min(frame), max(frame) FROM {src} WHERE run = '{run_id}'"
    ).fetchall()[0]
    assert (n, dupes, lo, hi) == (videos * streams * (FRAMES - CONTEXT), 0, CONTEXT, FRAMES - 1)
    per = con.sql(f"SELECT video_id, model, count(*) FROM {src} WHERE run = '{run_id}' "
                  "GROUP BY ALL").fetchall()
    assert len(per) == videos * streams and {c for *_, c in per} == {FRAMES - CONTEXT}


def test_scan_to_a_local_store_that_duckdb_reads_then_resume_skips(
    ray_local, tiny_checkpoints, tiny_archive, tmp_path
):
    store = tmp_path / "store"
    cfg = _cfg(tiny_archive, store, [tiny_checkpoints["fp"], tiny_checkpoints["fr"]],
               run_id="r1")
    result = scan(cfg)
    assert result.ok and result.summary.done == 9 and result.summary.rows == 3 * 4 * 20
    # One worker with the 2 CPUs of the test cluster, and as many torch threads.
    assert [(w["cpus"], w["threads"]) for w in result.workers] == [(2.0, 2)]
    # No GPU in the cluster: the actor asked for none and scores on the CPU at its batch.
    assert [(w["gpus"], w["device"], w["batch_size"], w["amp"]) for w in result.workers] == [
        (0.0, "cpu", 8, "off")]
    con, src = _duckdb_scores(store)
    _check_complete(con, src, "r1", videos=3, streams=4)
    psnr = con.sql(f"SELECT psnr FROM {src}").fetchnumpy()["psnr"]
    assert np.isfinite(psnr).all()
    st = Store(store)
    assert st.read_run_json("r1")["identity"]["segment_frames"] == 8
    assert st.read_table("videos", "r1").num_rows == 3
    # The same summary later, from the manifest.
    later = status(store, "r1")
    assert (later.done, later.rows, later.failed, later.pending) == (9, 240, [], 0)

    # A rerun of the same run skips every done unit and writes no attempt rows.
    manifest_files = len(st.list_files("manifest", "r1"))
    again = scan(cfg)
    assert again.ok and again.skipped_done == 9
    assert len(st.list_files("manifest", "r1")) == manifest_files
    _check_complete(con, src, "r1", videos=3, streams=4)

    # Resuming with another segment size would mix plans: refused, naming the setting.
    from raystack.errors import ConfigError

    with pytest.raises(ConfigError, match="segment_frames"):
        scan(dataclasses.replace(cfg, segment_frames=5))

    from typer.testing import CliRunner

    from raystack.cli import app

    out = CliRunner().invoke(app, ["status", str(store), "--run-id", "r1"])
    assert out.exit_code == 0, out.output
    assert "9/9" in out.output and "240" in out.output


def test_bad_and_short_files_are_recorded_and_the_cli_exits_nonzero(
    ray_local, tiny_checkpoints, tiny_archive, tmp_path
):
    import shutil

    from typer.testing import CliRunner

    from raystack.cli import app
    from raystack.synth import write_video

    archive = tmp_path / "archive"
    shutil.copytree(tiny_archive, archive)
    (archive / "broken.mp4").write_bytes(b"this is not a video" * 100)
    rng = np.random.default_rng(0)
    write_video(archive / "tiny.mp4", rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8))
    store = tmp_path / "store"
    args = ["scan", str(archive), "-c", tiny_checkpoints["fp"], "--store", str(store),
            "--run-id", "bad", "--workers", "1", "--segment-frames", "512", "--no-progress"]
    out = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert out.exit_code == 1, out.output
    text = " ".join(out.output.split())
    assert "broken.mp4" in text and "failed units (1)" in text
    latest = {r["unit_id"]: r for r in Store(store).read_table("manifest", "bad").to_pylist()}
    bad = [r for r in latest.values() if r["status"] == "failed"]
    assert len(bad) == 1 and bad[0]["uri"].endswith("broken.mp4")
    assert "not a readable video" in bad[0]["error"] or "broken.mp4" in bad[0]["error"]
    short = [r for r in latest.values() if r["unit_id"].endswith("-short")]
    assert len(short) == 1 and short[0]["status"] == "skipped" and short[0]["rows"] == 0
    assert short[0]["error"].startswith("too short to score: 3 frames")
    assert "skipped videos (1)" in text and "tiny.mp4" in text  # named in the summary
    # Every other unit completed.
    con, src = _duckdb_scores(store)
    _check_complete(con, src, "bad", videos=3, streams=3)  # fp + diff, motion

    # The status command reports the same failure later, and exits 1 too.
    out = CliRunner().invoke(app, ["status", str(store), "--run-id", "bad"], env={"COLUMNS": "300"})
    assert out.exit_code == 1 and "broken.mp4" in out.output

    # Rerun after fixing the file: only it is scanned, nothing written before is lost,
    # and its old probe failure is closed, so the run is complete.
    shutil.copy(next(tiny_archive.glob("*.mp4")), archive / "broken.mp4")
    again = scan(_cfg(archive, store, [tiny_checkpoints["fp"]], run_id="bad", segment_frames=512))
    assert again.ok and again.skipped_done == 3 and again.summary.done == 4
    assert len(again.summary.skipped) == 1  # the short video: named, not a unit done
    _check_complete(con, src, "bad", videos=4, streams=3)
    assert status(store, "bad").ok


def test_a_worker_killed_mid_unit_is_retried_and_the_run_completes(
    ray_local, tiny_checkpoints, tiny_archive, tmp_path, monkeypatch
):
    store = tmp_path / "store"
    cfg = _cfg(tiny_archive, store, [tiny_checkpoints["fp"]], run_id="crash")
    victim = scan(dataclasses.replace(cfg, dry_run=True)).plan.units[1].unit_id
    monkeypatch.setenv("RAYSTACK_FAULT_CRASH_UNIT", victim)  # the actor os._exit()s on it
    result = scan(cfg)
    assert result.ok, result.summary.failed
    rows = Store(store).read_table("manifest", "crash").to_pylist()
    tries = sorted((r["attempt"], r["status"]) for r in rows if r["unit_id"] == victim)
    assert tries[0] == (1, "failed") and tries[-1][1] == "done"
    first = next(r for r in rows if r["unit_id"] == victim and r["attempt"] == 1)
    assert "worker died" in first["error"]
    assert result.summary.retried_units >= 1
    con, src = _duckdb_scores(store)
    _check_complete(con, src, "crash", videos=3, streams=3)


def _session_pids(sid: int) -> list[int]:
    """Processes of session ``sid`` (the killed driver's Ray runs in it)."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if os.getsid(int(p.name)) == sid:
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


def test_driver_killed_with_sigkill_then_rerun_gives_every_row_once(
    ray_local, tiny_checkpoints, tiny_archive, tmp_path
):
    store = tmp_path / "store"
    # 60 one-frame units (FP + FR): long enough to kill the driver halfway.
    args = [sys.executable, "-m", "raystack.cli", "scan", str(tiny_archive),
            "-c", tiny_checkpoints["fp"], "-c", tiny_checkpoints["fr"], "--store", str(store),
            "--run-id", "kill", "--workers", "1", "--segment-frames", "1", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = store / "manifest" / "run=kill"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.is_dir() and len(list(manifest.glob("*.parquet"))) >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        done_before = len(list(manifest.glob("*.parquet")))
        assert 5 <= done_before < 60
    finally:
        # The killed driver's Ray dies with it; make sure nothing of it outlives the test.
        time.sleep(1.0)
        for pid in _session_pids(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # Between the crash and the rerun, status shows the run as incomplete.
    before = status(store, "kill")
    assert before.pending > 0 and before.done == done_before and not before.ok

    result = scan(_cfg(tiny_archive, store, [tiny_checkpoints["fp"], tiny_checkpoints["fr"]],
                       run_id="kill", segment_frames=1))
    assert result.ok and result.skipped_done >= 5
    assert result.summary.done == 60
    con, src = _duckdb_scores(store)
    _check_complete(con, src, "kill", videos=3, streams=4)


def test_s3_archive_and_s3_store_end_to_end(ray_local, tiny_checkpoints, tiny_archive,
                                            s3_bucket, tmp_path):
    import duckdb

    from raystack.io.s3 import s3_client

    for f in sorted(tiny_archive.iterdir()):
        s3_client().upload_file(str(f), s3_bucket, f"cams/{f.name}")
    store_uri = f"s3://{s3_bucket}/store"
    cfg = _cfg(f"s3://{s3_bucket}/cams", store_uri,
               [tiny_checkpoints["fp"], tiny_checkpoints["fr"]], run_id="s3run",
               segment_frames=512, cache_dir=str(tmp_path / "cache"), workers=2)
    result = scan(cfg)
    assert result.ok and result.summary.rows == 3 * 4 * 20
    assert sorted((w["cpus"], w["threads"]) for w in result.workers) == [(1.0, 1), (1.0, 1)]
    st = Store(store_uri)
    con = duckdb.connect()
    con.register("scores", st.dataset("scores"))
    n, dupes = con.sql("SELECT count(*), count(*) - count(DISTINCT (video_id, frame, model)) "
                       "FROM scores WHERE run = 's3run'").fetchall()[0]
    assert (n, dupes) == (240, 0)
    assert status(store_uri, "s3run").done == 3
    # Same video ids as a local scan of the same files (ids come from relative paths).
    local_ids = {s.video_id for s in __import__("raystack.archive").archive.list_archive(
        tiny_archive)}
    assert set(st.read_table("videos", "s3run")["video_id"].to_pylist()) == local_ids


def test_job_entrypoint_joins_the_cluster_in_ray_address(ray_local, tiny_checkpoints,
                                                          tiny_archive, tmp_path):
    """``ray job submit`` runs the entrypoint with RAY_ADDRESS set: the scan must join that
    cluster (here the module's Ray) instead of starting its own."""
    import importlib.util
    import json

    import ray

    toml = tmp_path / "scan.toml"
    toml.write_text(
        "[scan]\n"
        f'archive = "{tiny_archive}"\n'
        f'checkpoints = ["{tiny_checkpoints["fp"]}"]\n'
        f'store = "{tmp_path / "store"}"\n'
        'run_id = "job"\nsegment_frames = 512\nworkers = 1\nprogress = false\n'
    )
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "RAY_ADDRESS": address}
    out = subprocess.run([sys.executable, "jobs/scan.py", "--config", str(toml), "--set",
                          "limit=2"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert status(tmp_path / "store", "job").rows == 2 * 3 * 20  # fp, diff, motion
    run = json.loads((tmp_path / "store" / "runs" / "job" / "run.json").read_text())
    assert {w["ray_address"] for w in run["invocations"][-1]["workers"]} == {address}

    spec = importlib.util.spec_from_file_location("scan_job", REPO / "jobs" / "scan.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    assert job.parse_set(["workers=2", "store=s3://b/s", 'checkpoints=["a.pt"]']) == {
        "workers": 2, "store": "s3://b/s", "checkpoints": ["a.pt"]}
    assert job.main(["--config", str(toml), "--set", "nonsense=1"]) == 2


def test_m2s2l_trains_scans_and_evaluates_through_the_same_paths(ray_local, tmp_path):
    """``raystack train --model m2s2l``, a scan with its checkpoint and ``raystack eval``:
    the registry carries M2S2L through; no path names it."""
    import pyarrow.compute as pc
    from typer.testing import CliRunner

    from raystack.cli import app
    from raystack.synth import synthesize

    synthesize(tmp_path / "a", seed=3, n_train=2, n_test=2, frames=40, size=SIZE)
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(tmp_path / "a" / "train"), "--model", "m2s2l",
                            "--preset", "tiny", "--epochs", "1", "--batch-size", "4",
                            "--clips-per-epoch", "8", "--workers", "0",
                            "--storage", str(tmp_path / "runs"), "--name", "m2",
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    ckpt = tmp_path / "runs" / "m2" / "m2s2l.pt"
    assert ckpt.is_file(), r.output

    from raystack.scene_prior import WHOLE_FRAME_PERSIST

    result = scan(_cfg(tmp_path / "a" / "test", tmp_path / "store", [str(ckpt)], run_id="m2",
                       segment_frames=16))
    assert result.ok
    st = Store(tmp_path / "store")
    t = st.read_table("scores", "m2")
    # m2s2l.tiny's 5 (longest window 4 + 1), but presence reads 8 whole frames
    context = WHOLE_FRAME_PERSIST - 1
    # ... and the scene prior `raystack train` fitted into the checkpoint adds presence
    assert set(t["model"].to_pylist()) == {"m2s2l_app", "m2s2l_mot", "diff", "motion",
                                           "presence"}
    assert t.num_rows == 2 * 5 * (40 - context)
    assert pc.min(t["frame"]).as_py() == context
    m2 = t.filter(pc.starts_with(t["model"], "m2s2l"))
    assert m2.filter(pc.is_null(m2["aux"])).num_rows == 0  # memory distance as aux

    r = runner.invoke(app, ["eval", str(tmp_path / "store"), "--labels",
                            str(tmp_path / "a" / "frame_labels_synth.npy"), "--run-id", "m2",
                            "--fusion", "weighted:0.5:m2s2l_app,m2s2l_mot", "--sigma", "2",
                            "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert "micro AUC" in r.output and (tmp_path / "ev" / "eval.json").is_file()
    doc = __import__("json").loads((tmp_path / "ev" / "eval.json").read_text())
    assert doc["fusion"] == "weighted:0.5:m2s2l_app,m2s2l_mot" and not doc["uses_test_labels"]
    assert set(doc["baselines"]) == {"diff", "motion", "presence"}  # beside it, same frames

    r = runner.invoke(app, ["events", str(tmp_path / "store"), "--run-id", "m2",
                            "--threshold", "0.5", "--format", "json"])  # auto: the M2S2L pair
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(tmp_path / "store"), "--run-id", "m2",
                            "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "m2s2l_app" in (tmp_path / "rep" / "index.html").read_text()
