"""Watchdog of a private local Ray: when its driver ends, even by SIGKILL, nothing of it stays.

A private Ray (``ray.init(address="local")``) runs as children of the driver. When the driver
is killed, Ray's raylet follows it, but its agents wait for a GCS that is gone and linger
for minutes, and a worker may finish (and write) the unit it had. This process, started by
:func:`raystack.ray_local.private_ray`, watches a pipe whose only writer is the driver: end
of file means the driver is gone (or finished with Ray). Meanwhile it records every
descendant of Ray's head processes (pid and start time, so a reused pid is never hit); at
the end it kills those still alive and removes the session folder.

    python -m raystack.ray_reaper SESSION_DIR ROOT_PID [ROOT_PID ...]   # stdin: the pipe
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import time
from pathlib import Path

POLL_S = 0.25  # how often the process tree is read while the driver lives
MARKER = "raystack-driver"  # in a session folder: "<driver pid> <start time>" of its owner


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (Linux /proc; empty elsewhere)."""
    out = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            out[int(entry.name)] = int(raw[raw.rindex(")") + 2 :].split()[1])
    return out


def track(tracked: dict[int, int]) -> None:
    """Add the live descendants of the tracked processes to ``tracked`` (pid -> start time)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    todo = list(tracked)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in tracked and child != os.getpid():
                started = start_time(child)
                if started is not None:
                    tracked[child] = started
                    todo.append(child)


def kill_tracked(tracked: dict[int, int]) -> list[int]:
    """SIGKILL every tracked process that is still the one recorded; returns their pids."""
    killed = []
    for pid, started in tracked.items():
        if start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def remove_session(session: Path) -> None:
    """Delete the session folder and Ray's ``session_latest`` link if it points there."""
    shutil.rmtree(session, ignore_errors=True)
    latest = session.parent / "session_latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink() and Path(os.readlink(latest)).name == session.name:
            latest.unlink()


def watch(session: Path, roots: list[int], stream=None) -> None:
    """Track ``roots`` and their descendants until ``stream`` (default stdin) reaches EOF."""
    stream = stream if stream is not None else sys.stdin.buffer
    tracked = {pid: t for pid in roots if (t := start_time(pid)) is not None}
    while True:
        track(tracked)
        readable, _, _ = select.select([stream], [], [], POLL_S)
        if readable and not os.read(stream.fileno(), 4096):
            break
    kill_tracked(tracked)
    time.sleep(0.2)  # let the kernel release files before the folder goes
    remove_session(session)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    watch(Path(args[0]), [int(a) for a in args[1:]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
