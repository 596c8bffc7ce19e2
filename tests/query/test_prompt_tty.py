"""`raystack sql STORE` on a real terminal (a pseudo-terminal): arrow keys recall and edit
instead of printing ^[[A, and Ctrl-C (the terminal's SIGINT) cancels the running statement
or clears the line without leaving the prompt (issue 12 C.2)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import numpy as np
import pytest

from raystack.store import Store

# Runs for hours on one core, in constant memory.
LONG = "SELECT sum(hash(i)) AS s FROM range(1000000000000) t(i);"


@pytest.fixture
def store(tmp_path, write_scores):
    st = Store(tmp_path / "store").ensure()
    f = np.arange(16, 116)
    write_scores(st, "r1", {("cam-a", "fp"): (f, 30 + np.sin(f))})
    return st


class Terminal:
    """The prompt on a pseudo-terminal that is its controlling terminal."""

    def __init__(self, store: Store, history) -> None:
        self.master, slave = os.openpty()
        env = {**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", "NO_COLOR": "1",
               "RAYSTACK_SQL_HISTORY": str(history), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "raystack.cli", "sql", store.uri], stdin=slave,
            stdout=slave, stderr=slave, env=env, start_new_session=True,
            preexec_fn=lambda: __import__("fcntl").ioctl(0, __import__("termios").TIOCSCTTY, 0))
        os.close(slave)
        self.out = b""

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_for(self, needle: str, limit_s: float) -> bool:
        """Read until ``needle`` has appeared ``needle`` times since the last call."""
        end = time.monotonic() + limit_s
        while needle.encode() not in self.out and time.monotonic() < end:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    break
        found = needle.encode() in self.out
        if found:
            self.out = self.out[self.out.index(needle.encode()) + len(needle):]
        return found

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


def test_arrow_keys_history_and_ctrl_c_on_a_terminal(store, tmp_path):
    term = Terminal(store, tmp_path / "history")
    try:
        assert term.wait_for("SQL prompt, read-only", 60), term.out
        term.send("SELECT 6 * 7 AS answer;\r")
        assert term.wait_for("│     42 │", 30), term.out
        term.send("\x1b[A\r")  # Up: the same statement again, not ^[[A
        assert term.wait_for("│     42 │", 30), term.out
        term.send(LONG + "\r")
        time.sleep(2)  # well into the statement
        sent = time.monotonic()
        term.send("\x03")  # the terminal turns it into SIGINT for the prompt's process
        assert term.wait_for("query cancelled (Ctrl-C)", 10), term.out
        assert time.monotonic() - sent < 5
        term.send("SELECT 'half")
        time.sleep(0.5)
        term.send("\x03")  # at the prompt: clears the line only
        time.sleep(0.5)
        term.send("SELECT 'still here' AS s;\r")
        assert term.wait_for("│ still here │", 30), term.out  # the result, not the echo
        assert term.proc.poll() is None
        term.send(".quit\r")
        assert term.proc.wait(30) == 0
        assert b"^[[A" not in term.out and b"Traceback" not in term.out
    finally:
        term.close()
    assert "+SELECT 6 * 7 AS answer;" in (tmp_path / "history").read_text()
