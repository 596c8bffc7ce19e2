"""Ctrl-C stops the running statement, not the process.

    table = interruptible(con, lambda: con.sql(query).to_arrow_table())

While DuckDB runs, the main thread sits inside C++ and Python's SIGINT handler waits for it
to come back, which may be never. So the statement runs on a helper thread while the main
thread waits in Python: Ctrl-C then reaches the handler at once, and the handler calls
``con.interrupt()`` (and again every 50 ms until the statement ends, in case the first
came before DuckDB started). Ctrl-C more than two seconds later, if DuckDB has still not
stopped, raises ``KeyboardInterrupt`` as usual.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
# A Ctrl-C this long after the first one, with the statement still running, gives up on it.
_PATIENCE_S = 2.0


class Cancelled(Exception):  # noqa: N818 - it is what the user did, not a failure
    """The statement was interrupted by Ctrl-C."""


def interruptible(con: Any, fn: Callable[[], T]) -> T:
    """``fn()`` (a statement on ``con``), stoppable with Ctrl-C; raises :class:`Cancelled`.

    Off the main thread, or where SIGINT is not Python's to handle, ``fn`` just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn()
    outcome: dict[str, Any] = {}
    done = threading.Event()
    pressed = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as e:  # handed to the waiting thread, which raises it
            outcome["error"] = e
        finally:
            done.set()

    first: list[float] = []

    def on_sigint(signum: int, frame: Any) -> None:
        if first and time.monotonic() - first[0] > _PATIENCE_S:
            raise KeyboardInterrupt
        if not first:
            first.append(time.monotonic())
        pressed.set()
        con.interrupt()

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main interpreter
        return fn()
    try:
        threading.Thread(target=work, name="raystack-query", daemon=True).start()
        while not done.wait(0.05):
            if pressed.is_set():  # again: a first interrupt may land before DuckDB runs
                con.interrupt()
    finally:
        signal.signal(signal.SIGINT, previous)
    if "error" in outcome:
        if pressed.is_set():
            msg = "query cancelled (Ctrl-C)"
            raise Cancelled(msg) from outcome["error"]
        raise outcome["error"]
    return outcome["value"]
