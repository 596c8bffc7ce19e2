"""Restart benchmark: a scan whose workers are SIGKILLed 10 times, and a scan of bad files.

Issue 12 measured the old rules: 4 restarts per actor for the whole run and immediate
retries, so 10 worker kills in 46 s failed the remaining 30 units in about 1 s. This
bench runs a 2-worker scan of a synthetic archive (tiny FP model, random weights: the
pipeline is measured, not the scores) and kills a busy worker process with SIGKILL every
few seconds, alternating between the two workers and waiting for each one's restart, 10
times in all. Rows:

- ``window budget``: the shipped settings (``max_actor_restarts`` 20 per
  ``actor_restart_window_s`` 600 s, 2 s backoff doubling per failure): every unit must end
  done, none failed for infrastructure reasons.
- ``old rule``: the same kills with the old limits set through the same code (4 restarts
  per worker for the whole run, immediate retries, 3 attempts): for comparison.
- ``no kills``: the same scan undisturbed, for the wall time the kills cost.
- ``bad files``: an archive with one good video, one file that is not a video (it fails at
  probing) and one whose middle is zeroed (probes fine, fails decoding in the worker):
  input failures end after one attempt each, in seconds, with no retries.

Prints a table and writes bench/results/restart.json (machine, date, commit, every figure).

    nice -n 19 python bench/restart_bench.py                 # about 4 min on 2 cores
    python bench/restart_bench.py --kills 4 --no-old-rule --no-baseline
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from machine_info import machine  # noqa: E402

ACTOR_TITLE = "ray::_ScanActor"  # Ray titles an actor's process so; ".run" while it scores
REPLACEMENT_WAIT_S = 60.0  # a worker not back after this long was given up by the scan


class GiveUps(logging.Handler):
    """Counts the scan driver's "giving it up" warnings (a worker past its restart budget)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "giving it up" in record.getMessage():
            self.count += 1


def _actor_pids(busy: bool = False) -> set[int]:
    """Scan actor processes of this bench's own Ray (they share its session id)."""
    me, out = os.getsid(0), set()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if os.getsid(int(p.name)) != me:
                continue
        except (OSError, ProcessLookupError):
            continue
        if cmd.startswith(f"{ACTOR_TITLE}.run" if busy else ACTOR_TITLE):
            out.add(int(p.name))
    return out


class Killer:
    """SIGKILLs scan workers mid-unit from a thread, alternating between the workers.

    Each worker is followed through its restarts (a restarted actor is a new process):
    after a kill, the next new actor process is that worker's replacement, and the next
    kill waits for it, so the kills spread evenly (5 each for 10 kills on 2 workers).
    """

    def __init__(self, kills: int, every_s: float, workers: int) -> None:
        self.kills, self.every_s, self.workers = kills, every_s, workers
        self.give_ups = GiveUps()
        logging.getLogger("raystack.scan.pipeline").addHandler(self.give_ups)
        self.times: list[float] = []
        self.per_worker = [0] * workers
        self.given_up: list[int] = []  # workers that did not come back after a kill
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="killer", daemon=True)

    def start(self) -> Killer:
        self.thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        self.thread.join(10)
        logging.getLogger("raystack.scan.pipeline").removeHandler(self.give_ups)

    def _wait(self, cond: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while not self.stop.is_set() and time.monotonic() < deadline:
            if got := cond():
                return got
            time.sleep(0.05)
        return None

    def _run(self) -> None:
        first = self._wait(lambda: (p := _actor_pids()) and len(p) >= self.workers and p, 300)
        if not first:
            return
        current = sorted(first)[: self.workers]  # worker i's live process
        known = set(first)
        turn = 0
        while len(self.times) < self.kills and not self.stop.is_set():
            live = [i for i in range(self.workers) if i not in self.given_up]
            if not live:
                return
            w = live[turn % len(live)]
            turn += 1
            if self.times:  # at least every_s between two kills
                self.stop.wait(max(0.0, self.times[-1] + self.every_s - time.monotonic()))
            pid = current[w]
            state = self._wait(lambda pid=pid: "busy" if pid in _actor_pids(busy=True) else
                               "gone" if pid not in _actor_pids() else None, 60)
            if state == "gone":  # Ray restarted it, then the scan gave the worker up
                self.given_up.append(w)
                continue
            if state is None:
                continue  # idle for a minute: the scan is ending
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.times.append(time.monotonic())
            self.per_worker[w] += 1
            before = self.give_ups.count
            fresh = self._wait(lambda known=known, before=before: (
                "given up" if self.give_ups.count > before else _actor_pids() - known),
                REPLACEMENT_WAIT_S)
            if fresh == "given up" or (not fresh and not self.stop.is_set()):
                self.given_up.append(w)
            elif fresh:
                current[w] = min(fresh)
                known |= fresh


def _attempt_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Attempts per unit, failures by kind, and how long a killed unit waited to be done."""
    per_unit: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        per_unit.setdefault(r["unit_id"], []).append(r)
    latest = {u: max(rs, key=lambda r: r["attempt"]) for u, rs in per_unit.items()}
    final_failed = [r for r in latest.values() if r["status"] == "failed"]
    recovery = []
    for rs in per_unit.values():
        died = [r for r in rs if r["status"] == "failed" and r["failure_kind"] == "infrastructure"]
        done = [r for r in rs if r["status"] == "done"]
        if died and done:
            recovery.append((max(r["finished_at"] for r in done)
                             - min(r["finished_at"] for r in died)).total_seconds())
    return {
        "units": len(per_unit),
        "units_done": sum(r["status"] == "done" for r in latest.values()),
        "units_failed": len(final_failed),
        "units_failed_input": sum(r["failure_kind"] == "input" for r in final_failed),
        "units_failed_infrastructure": sum(r["failure_kind"] == "infrastructure"
                                           for r in final_failed),
        "attempts": len(rows),
        "attempts_per_unit": dict(sorted(Counter(len(rs) for rs in per_unit.values()).items())),
        "attempts_failed_worker_died": sum("worker died" in (r["error"] or "") for r in rows),
        "attempts_failed_input": sum(r["status"] == "failed" and r["failure_kind"] == "input"
                                     for r in rows),
        "killed_unit_done_after_s": {
            "median": round(statistics.median(recovery), 2) if recovery else None,
            "max": round(max(recovery), 2) if recovery else None},
    }


def _run(name: str, cfg: Any, kills: int, every_s: float) -> dict[str, Any]:
    from raystack.scan import scan
    from raystack.store import Store

    killer = Killer(kills, every_s, cfg.workers).start() if kills else None
    t0 = time.monotonic()
    result = scan(cfg)
    wall = time.monotonic() - t0
    if killer is not None:
        killer.join()
    rows = Store(cfg.store).read_table("manifest", cfg.run_id).to_pylist()
    row = {"scenario": name, "run_id": cfg.run_id,
           "limits": {k: getattr(cfg, k) for k in (
               "max_actor_restarts", "actor_restart_window_s", "retry_backoff_s",
               "max_attempts", "max_infra_attempts")},
           "kills": len(killer.times) if killer else 0,
           "kills_span_s": round(killer.times[-1] - killer.times[0], 1)
           if killer and len(killer.times) > 1 else None,
           "restarts_used_per_worker": killer.per_worker if killer else [0] * cfg.workers,
           "workers_given_up": len(killer.given_up) if killer else 0,
           "ok": result.ok, **_attempt_figures(rows), "wall_s": round(wall, 1)}
    if name == "bad files":  # each failed unit: attempts, first start to final failure
        by_unit: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_unit.setdefault(r["unit_id"], []).append(r)
        row["failed_units"] = [
            {"file": Path(rs[0]["uri"]).name, "kind": rs[-1]["failure_kind"],
             "attempts": len(rs), "error": (rs[-1]["error"] or "")[:110],
             "first_start_to_final_failure_s": round(
                 (max(r["finished_at"] for r in rs) - min(
                     r["started_at"] or r["finished_at"] for r in rs)).total_seconds(), 2)}
            for rs in by_unit.values() if max(rs, key=lambda r: r["attempt"])["status"] == "failed"]
    return row


def _bad_archive(src: Path, out: Path) -> Path:
    """One good video, one file that is not a video, one with 4000 zeroed bytes inside."""
    out.mkdir(parents=True)
    good = sorted(src.glob("*.mp4"))[0]
    shutil.copy(good, out / "good.mp4")
    (out / "not_a_video.mp4").write_bytes(b"this is not a video" * 100)
    data = bytearray(good.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4000] = bytes(4000)
    (out / "zeroed_middle.mp4").write_bytes(bytes(data))
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("scenario", "kills", "restarts/worker", "done", "failed in/infra", "attempts/unit",
            "died attempts", "wall s")
    lines = [" | ".join(head)]
    for r in rows:
        lines.append(" | ".join(str(x) for x in (
            r["scenario"], r["kills"], r["restarts_used_per_worker"],
            f"{r['units_done']}/{r['units']}",
            f"{r['units_failed_input']}/{r['units_failed_infrastructure']}",
            r["attempts_per_unit"], r["attempts_failed_worker_died"], r["wall_s"])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--segment-frames", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--kill-every-s", type=float, default=3.0)
    ap.add_argument("--no-old-rule", action="store_true", help="skip the old-limits row")
    ap.add_argument("--no-baseline", action="store_true", help="skip the no-kills row")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "restart.json"))
    args = ap.parse_args(argv)

    import torch

    from raystack.models import create_model, save_checkpoint
    from raystack.scan import ScanConfig
    from raystack.synth import synthesize

    tmp = Path(tempfile.mkdtemp(prefix="raystack-restart-"))
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp / "fp.pt", create_model("vqmau_fp.tiny"),
                           preset="vqmau_fp.tiny", data_fingerprint="random")
    synthesize(tmp / "a", seed=0, n_train=0, n_test=args.videos, frames=args.frames,
               size=(64, 64))
    cfg = ScanConfig(archive=str(tmp / "a" / "test"), store=str(tmp / "store"),
                     checkpoints=(str(ckpt),), segment_frames=args.segment_frames,
                     chunk_frames=args.segment_frames, workers=args.workers,
                     cpus_per_worker=1, progress=False, baselines=False)
    rows = [_run("window budget", dataclasses.replace(cfg, run_id="window"),
                 args.kills, args.kill_every_s)]
    if not args.no_old_rule:
        old = dataclasses.replace(cfg, run_id="old", max_actor_restarts=4,
                                  actor_restart_window_s=1e9, retry_backoff_s=0.0,
                                  max_infra_attempts=3)
        rows.append(_run("old rule", old, args.kills, args.kill_every_s))
    if not args.no_baseline:
        rows.append(_run("no kills", dataclasses.replace(cfg, run_id="base"), 0, 0.0))
    bad = _bad_archive(tmp / "a" / "test", tmp / "bad")
    rows.append(_run("bad files", dataclasses.replace(cfg, archive=str(bad), run_id="bad",
                                                      segment_frames=32, chunk_frames=32),
                     0, 0.0))
    main_row = rows[0]
    doc = {
        "benchmark": "restart",
        "machine": machine(),
        "command": "nice -n 19 python bench/restart_bench.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "settings": {**{k: v for k, v in vars(args).items() if k != "out"},
                     "model": "vqmau_fp.tiny, random weights", "size": "64x64 mp4",
                     "kill": "SIGKILL to a busy scan actor process, alternating workers, "
                             "each kill after the previous worker's restart"},
        "no_unit_failed_for_infrastructure": main_row["units_failed_infrastructure"] == 0,
        "every_unit_done_despite_kills": main_row["ok"] and main_row["kills"] == args.kills,
        "rows": rows,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    Path(args.out).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(_table(rows))
    print(json.dumps({k: doc[k] for k in ("no_unit_failed_for_infrastructure",
                                          "every_unit_done_despite_kills")}))
    return 0 if doc["every_unit_done_despite_kills"] else 1


if __name__ == "__main__":
    sys.exit(main())
