"""Killed workers and a killed driver, with the scan's own private Ray (as a user runs it).

Each test lets ``scan`` start its Ray, so what is checked is also what a user gets: no
token-authentication warning, no dashboard process, no session folder left, nothing alive
after the driver is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _procs() -> dict[int, tuple[int, str]]:
    """pid -> (session id, command line) of every process we can read."""
    out = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out[int(p.name)] = (os.getsid(int(p.name)), cmd.strip())
        except (OSError, ProcessLookupError):
            continue
    return out


def _busy_actor_pids() -> set[int]:
    """Scan actors of this test's Ray that are scoring a unit (Ray titles them so)."""
    me = os.getsid(0)
    return {pid for pid, (sid, cmd) in _procs().items()
            if sid == me and cmd.startswith("ray::_ScanActor.run")}


def test_ten_worker_kills_in_quick_succession_lose_no_unit(tiny_checkpoints, tiny_archive,
                                                           tmp_path):
    """The old rule (4 restarts per actor for the whole run) failed every remaining unit
    after the fifth kill; the budget per time window rides the burst out."""
    import ray

    from raystack.scan import ScanConfig, scan
    from raystack.store import Store

    assert not ray.is_initialized()
    cfg = ScanConfig(archive=str(tiny_archive), store=str(tmp_path / "store"),
                     checkpoints=(tiny_checkpoints["fp"],), run_id="kills", segment_frames=1,
                     chunk_frames=1, workers=1, progress=False, retry_backoff_s=0.2)
    kills: list[float] = []

    def killer() -> None:
        seen: set[int] = set()
        deadline = time.monotonic() + 300
        while len(kills) < 10 and time.monotonic() < deadline:
            fresh = _busy_actor_pids() - seen
            if not fresh:
                time.sleep(0.02)
                continue
            for pid in fresh:  # killed mid-unit, as soon as it scores again
                seen.add(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                kills.append(time.monotonic())

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    result = scan(cfg)
    t.join(5)
    assert len(kills) == 10, f"only {len(kills)} kills happened before the scan ended"
    assert kills[-1] - kills[0] < 120
    assert result.ok, result.summary.failed
    assert result.summary.done == 60
    rows = Store(cfg.store).read_table("manifest", "kills").to_pylist()
    died = [r for r in rows if r["status"] == "failed"]
    assert died and all(r["failure_kind"] == "infrastructure" for r in died)
    assert all("worker died" in r["error"] for r in died)


def test_a_worker_past_its_restart_budget_is_given_up_and_the_rest_fail_as_infrastructure(
    tiny_checkpoints, tiny_archive, tmp_path, monkeypatch
):
    from raystack.scan import ScanConfig, scan
    from raystack.store import Store

    # The worker crashes on the first unit, with a budget of no restart at all.
    units = scan(ScanConfig(archive=str(tiny_archive), checkpoints=(tiny_checkpoints["fp"],),
                            segment_frames=512, dry_run=True)).plan.units
    monkeypatch.setenv("RAYSTACK_FAULT_CRASH_UNIT", units[0].unit_id)
    cfg = ScanConfig(archive=str(tiny_archive), store=str(tmp_path / "store"),
                     checkpoints=(tiny_checkpoints["fp"],), run_id="budget", segment_frames=512,
                     workers=1, progress=False, max_actor_restarts=0, retry_backoff_s=0.1)
    result = scan(cfg)
    assert not result.ok
    failed = {u for u, _, _ in result.summary.failed}
    assert failed == {u.unit_id for u in units}  # the crash, then nobody left to run the rest
    assert all("no live scan worker" in e or "worker died" in e
               for _, _, e in result.summary.failed)
    rows = Store(cfg.store).read_table("manifest", "budget").to_pylist()
    assert {r["failure_kind"] for r in rows if r["status"] == "failed"} == {"infrastructure"}
    assert any("a rerun resumes" in (r["error"] or "") for r in rows)


def test_cli_scan_prints_no_ray_warning_runs_no_dashboard_and_leaves_no_session_folder(
    tiny_checkpoints, tiny_archive, tmp_path
):
    import tempfile

    ray_tmp = Path(tempfile.gettempdir()) / "ray"
    sessions_before = set(ray_tmp.glob("session_2*")) if ray_tmp.is_dir() else set()
    args = [sys.executable, "-m", "raystack.cli", "scan", str(tiny_archive),
            "-c", tiny_checkpoints["fp"], "--store", str(tmp_path / "store"),
            "--run-id", "clean", "--workers", "1", "--segment-frames", "4", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Ray 2.60 starts its API server (dashboard.py) inside ray.init whatever the options;
    # raystack stops it as soon as ray.init returns, so none runs while the scan works.
    seen_cmds: set[str] = set()
    while proc.poll() is None:  # watch its session's processes while its workers score
        cmds = {cmd for sid, cmd in _procs().values() if sid == proc.pid}
        if any(c.startswith("ray::_ScanActor") for c in cmds):
            seen_cmds |= cmds
        time.sleep(0.2)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert any("raylet" in c for c in seen_cmds)  # we did watch the Ray it started
    assert not [c for c in seen_cmds if "dashboard/dashboard.py" in c]
    assert "Token authentication" not in err + out and "RAY_AUTH_MODE" not in err + out
    sessions_after = set(ray_tmp.glob("session_2*")) if ray_tmp.is_dir() else set()
    assert not [s for s in sessions_after - sessions_before if s.name.endswith(f"_{proc.pid}")]
    assert not [pid for pid, (sid, _) in _procs().items() if sid == proc.pid]


def test_after_the_driver_is_killed_nothing_of_its_ray_runs_on(tiny_checkpoints, tiny_archive,
                                                               tmp_path):
    store = tmp_path / "store"
    args = [sys.executable, "-m", "raystack.cli", "scan", str(tiny_archive),
            "-c", tiny_checkpoints["fp"], "--store", str(store), "--run-id", "orphans",
            "--workers", "1", "--segment-frames", "1", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    scores = store / "scores" / "run=orphans"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if scores.is_dir() and len(list(scores.glob("*.parquet"))) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        session = next(Path("/tmp/ray").glob(f"session_*_{proc.pid}"))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed_at = time.monotonic()
        left = [1]
        while time.monotonic() - killed_at < 10 and left:
            left = [pid for pid, (sid, _) in _procs().items() if sid == proc.pid]
            time.sleep(0.2)
        assert not left, f"{len(left)} processes of the killed scan still run after 10 s"
        written = len(list(scores.glob("*.parquet")))
        time.sleep(3.0)
        assert len(list(scores.glob("*.parquet"))) == written  # nobody writes any more
        deadline = time.monotonic() + 10
        while session.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not session.exists()
    finally:
        for pid, (sid, _) in _procs().items():
            if sid == proc.pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_a_file_that_kills_its_worker_every_time_fails_as_input_and_the_rest_is_scored(
    tiny_checkpoints, tiny_archive, tmp_path, monkeypatch
):
    """A poison file (one that segfaults the decoder) used to count as infrastructure for
    all its 10 attempts, and the scan exited 3 ("retry later") on every rerun."""
    from raystack.exitcodes import FAILED, run_exit_code
    from raystack.scan import ScanConfig, scan
    from raystack.store import Store

    units = scan(ScanConfig(archive=str(tiny_archive), checkpoints=(tiny_checkpoints["fp"],),
                            segment_frames=512, dry_run=True)).plan.units
    monkeypatch.setenv("RAYSTACK_FAULT_POISON_UNIT", units[0].unit_id)
    cfg = ScanConfig(archive=str(tiny_archive), store=str(tmp_path / "store"),
                     checkpoints=(tiny_checkpoints["fp"],), run_id="poison", segment_frames=512,
                     workers=1, progress=False, retry_backoff_s=0.5)
    result = scan(cfg)
    assert result.summary.done == len(units) - 1
    assert [u for u, _, _ in result.summary.failed] == [units[0].unit_id]
    rows = Store(cfg.store).read_table("manifest", "poison").to_pylist()
    poison = sorted((r for r in rows if r["unit_id"] == units[0].unit_id),
                    key=lambda r: r["attempt"])
    assert [r["failure_kind"] for r in poison] == ["infrastructure"] * 2 + ["input"]
    assert "probably crashes the decoder" in poison[-1]["error"]
    assert run_exit_code(result.ok, result.summary.kinds_and_errors()) == FAILED
