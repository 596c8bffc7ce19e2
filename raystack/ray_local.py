"""A private local Ray for one scan or training run, that leaves nothing behind.

``ray.init(address="local")`` as raystack uses it, plus four things Ray 2.60 does not do:

- **No token-authentication warning.** Ray enables token authentication for a new local
  cluster and warns about it on every start unless ``RAY_AUTH_MODE`` is set explicitly
  (``ray/_private/authentication/authentication_token_setup.py``). raystack sets it to
  ``token`` when unset: authentication stays on, the warning goes.
- **No dashboard process.** Even with ``include_dashboard=False`` Ray starts its API server
  (``dashboard.py`` loading only the usage-stats module); a private cluster has no use for
  it, so it is stopped as soon as ``ray.init`` returns. (The per-node ``DashboardAgent``
  stays: the raylet exits when it goes.)
- **No session folders piling up.** Each start makes ``<temp>/ray/session_<date>_<pid>``;
  it is removed at the end, and folders left by drivers that died are swept at the next
  start.
- **Nothing outlives a killed driver.** A watchdog (:mod:`raystack.ray_reaper`) kills what
  Ray left and removes the session folder as soon as the driver is gone, even by SIGKILL.

    with private_ray(num_cpus=2, object_store_bytes=512 * 2**20):
        ...  # ray calls
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from raystack.ray_reaper import MARKER, remove_session, start_time

log = logging.getLogger(__name__)
REAPER_EXIT_TIMEOUT_S = 15.0


@contextlib.contextmanager
def private_ray(
    num_cpus: int, object_store_bytes: int | None = None, log_to_driver: bool = True
) -> Iterator[dict[str, Any]]:
    """Start a private Ray on this machine, shut it down and clean up at the end.

    Yields ``ray.init``'s address info (``session_dir``, ``gcs_address``, ...).
    """
    import ray

    explicit_auth_mode()
    before = _children()
    kwargs: dict[str, Any] = {"object_store_memory": object_store_bytes} \
        if object_store_bytes else {}
    ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                   logging_level=logging.WARNING, log_to_driver=log_to_driver, **kwargs)
    info = dict(ctx.address_info)
    session = Path(info["session_dir"])
    reaper = None
    try:
        sweep_stale_sessions(session.parent, keep=session)
        _write_marker(session)
        _stop_api_server()
        reaper = _start_reaper(session, sorted(_children() - before))
        yield info
    finally:
        ray.shutdown()
        _finish_reaper(reaper, session)


def explicit_auth_mode() -> None:
    """Set ``RAY_AUTH_MODE=token`` unless the user chose a mode: authentication stays as Ray's
    default for a new local cluster, minus the warning Ray prints when the mode is implicit."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    try:  # Ray caches its config at import; refresh it as Ray's own token setup does
        from ray._raylet import Config

        Config.initialize("")
    except Exception as e:
        log.debug("could not refresh Ray's config: %s", e)


def _children() -> set[int]:
    """Pids of this process's direct children (Linux /proc; empty elsewhere)."""
    me, out = os.getpid(), set()
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    raw = Path(entry.path, "stat").read_text()
                except OSError:
                    continue
                if int(raw[raw.rindex(")") + 2 :].split()[1]) == me:
                    out.add(int(entry.name))
    return out


def _write_marker(session: Path) -> None:
    with contextlib.suppress(OSError):
        (session / MARKER).write_text(f"{os.getpid()} {start_time(os.getpid())}\n")


def _stop_api_server() -> None:
    """Stop Ray's API server process of this private cluster (see module docstring)."""
    try:
        from ray._private import worker

        worker._global_node.kill_dashboard(check_alive=False)
    except Exception as e:  # a Ray without this hook: the process stays, nothing breaks
        log.debug("could not stop Ray's API server: %s", e)


def _start_reaper(session: Path, roots: list[int]) -> subprocess.Popen | None:
    if not roots:
        return None
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "raystack.ray_reaper", str(session), *map(str, roots)],
            stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C or a killed process group spare it
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    finally:
        os.close(read_end)
    proc.raystack_pipe = write_end  # only the driver holds it: EOF = the driver is gone
    return proc


def _finish_reaper(reaper: subprocess.Popen | None, session: Path) -> None:
    if reaper is None:
        remove_session(session)
        return
    os.close(reaper.raystack_pipe)
    try:
        reaper.wait(REAPER_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("Ray's cleanup watchdog did not finish; its session folder %s may stay",
                    session)


def sweep_stale_sessions(root: Path, keep: Path | None = None) -> list[Path]:
    """Remove session folders under ``root`` that raystack started for a driver now dead."""
    removed = []
    for marker in root.glob(f"session_*/{MARKER}"):
        session = marker.parent
        if keep is not None and session == keep:
            continue
        try:
            pid, started = marker.read_text().split()
        except (OSError, ValueError):
            continue
        if str(start_time(int(pid))) != started:  # that driver is gone (or its pid reused)
            remove_session(session)
            removed.append(session)
    return removed
