"""Ctrl-C stops the running statement, not the process.

    table = interruptible(con, lambda: con.sql(query).to_arrow_table())

While DuckDB runs, the main thread sits inside C++ and Python's SIGINT handler waits for it
to come back, which may be never. So the statement runs on a helper thread while the main
thread waits in Python: Ctrl-C then reaches the handler at once, and the handler calls
``con.interrupt()``. A second Ctrl-C, if DuckDB has not stopped yet, raises
``KeyboardInterrupt`` as usual.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


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

    def on_sigint(signum: int, frame: Any) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        con.interrupt()

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main interpreter
        return fn()
    try:
        threading.Thread(target=work, name="raystack-query", daemon=True).start()
        while not done.wait(0.05):
            pass
    finally:
        signal.signal(signal.SIGINT, previous)
    if "error" in outcome:
        if pressed.is_set():
            msg = "query cancelled (Ctrl-C)"
            raise Cancelled(msg) from outcome["error"]
        raise outcome["error"]
    return outcome["value"]
