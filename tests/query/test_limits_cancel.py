"""Statement timeout, memory limit and Ctrl-C on the analyst connection (issue 12 A.4)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import duckdb
import numpy as np
import pytest

from raystack.query import QueryError, connect, run_sql
from raystack.store import Store

FOREVER_CTE = (
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"
)
LIMITS_SQL = (
    "SELECT current_setting('max_execution_time') AS t, current_setting('memory_limit') AS m"
)
# Runs for hours on one core, in constant memory.
LONG = "SELECT sum(hash(i)) AS s FROM range(1000000000000) t(i)"


@pytest.fixture
def store(tmp_path, write_scores):
    st = Store(tmp_path / "store").ensure()
    f = np.arange(16, 116)
    write_scores(st, "r1", {("cam-a", "fp"): (f, 30 + np.sin(f))})
    return st


def gib(text: str) -> float:
    """DuckDB's '5.8 GiB' / '953.6 MiB' as GiB."""
    value, unit = re.fullmatch(r"([\d.]+)\s*(\w+)", text).groups()
    return float(value) * {"KiB": 2**-20, "MiB": 2**-10, "GiB": 1, "TiB": 2**10}[unit]


def test_recursive_cte_stops_at_the_statement_timeout(store):
    con = connect(store, timeout_s=1)
    t0 = time.perf_counter()
    with pytest.raises(QueryError, match="timeout"):
        run_sql(con, FOREVER_CTE)
    assert time.perf_counter() - t0 < 10
    with pytest.raises(duckdb.Error, match="maximum execution time"):  # raw SQL too
        con.sql(FOREVER_CTE).fetchall()
    for q in ("SET max_execution_time = 0", "RESET max_execution_time"):
        with pytest.raises(QueryError, match="read-only"):
            run_sql(con, q)
    assert run_sql(con, "SELECT count(*) AS n FROM scores")["n"][0].as_py() == 100


def test_default_limits_are_set_and_locked(store):
    con = connect(store)
    timeout, memory = run_sql(con, LIMITS_SQL).to_pylist()[0].values()
    assert int(timeout) == 600_000
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    assert 0.9 <= gib(memory) <= max(1.1, 0.3 * ram)  # a quarter of RAM, not DuckDB's 80%
    for q in ("SET memory_limit = '1TB'", "SET threads = 64"):
        with pytest.raises(QueryError, match="read-only"):
            run_sql(con, q)
    con = connect(store, memory_limit="1GB", timeout_s=0)
    t, m = run_sql(con, LIMITS_SQL).to_pylist()[0].values()
    assert int(t) == 0 and abs(gib(m) - 0.93) < 0.01


@pytest.mark.parametrize(
    "bad",
    [
        {"timeout_s": -1},
        {"timeout_s": float("nan")},
        {"memory_limit": "lots"},
        {"memory_limit": "4GB; SET x=1"},
    ],
)
def test_bad_limits_are_refused(store, bad):
    from raystack.query.limits import QueryLimits

    with pytest.raises(ValueError):
        QueryLimits(**bad)
    with pytest.raises(ValueError):
        connect(store, **bad)


def test_ctrl_c_cancels_the_statement_in_process(store):
    con = connect(store)
    ctrl_c = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    backstop = threading.Timer(8, con.interrupt)  # ends the query where Ctrl-C cannot
    ctrl_c.start()
    backstop.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(QueryError, match="cancelled"):
            run_sql(con, LONG)
    finally:
        backstop.cancel()
    assert time.perf_counter() - t0 < 0.5 + 1.0
    assert run_sql(con, "SELECT 42 AS x")["x"][0].as_py() == 42  # the connection goes on


def cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "raystack.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


class Reader:
    """Reads a pipe on a helper thread, noting when each character arrived."""

    def __init__(self, stream) -> None:
        self.chars: list[tuple[float, str]] = []
        self.done = threading.Event()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        while ch := stream.read(1):
            self.chars.append((time.perf_counter(), ch))
        self.done.set()

    def text(self) -> str:
        return "".join(c for _, c in list(self.chars))

    def wait_for(self, needle: str, limit_s: float) -> float:
        """When ``needle`` was complete; inf if not within ``limit_s``."""
        end = time.perf_counter() + limit_s
        while time.perf_counter() < end:
            chars = list(self.chars)
            i = "".join(c for _, c in chars).find(needle)
            if i >= 0:
                return chars[i + len(needle) - 1][0]
            if self.done.is_set():
                break
            time.sleep(0.01)
        return float("inf")


@pytest.fixture
def procs():
    """Processes a test starts, killed at its end whatever happened."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_ctrl_c_cancels_a_one_shot_query_within_a_second(store, procs):
    proc = cli("sql", store.uri, LONG)
    procs.append(proc)
    out, err = Reader(proc.stdout), Reader(proc.stderr)
    time.sleep(6)  # import, connect, and well into the query
    assert proc.poll() is None, err.text()
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    at = err.wait_for("query cancelled", 10)
    proc.wait(10)
    err.done.wait(5)
    assert at - sent < 1.0, err.text()
    lines = [line for line in err.text().splitlines() if line.strip()]
    assert lines == ["error: query cancelled (Ctrl-C)"], err.text()
    assert proc.returncode == 130 and out.text() == ""


def test_ctrl_c_in_the_prompt_cancels_only_the_statement(store, procs):
    proc = cli("sql", store.uri, stdin=subprocess.PIPE)
    procs.append(proc)
    out, err = Reader(proc.stdout), Reader(proc.stderr)
    proc.stdin.write(LONG + ";\n")
    proc.stdin.flush()
    time.sleep(6)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    at = out.wait_for("query cancelled", 10)
    assert at - sent < 1.0, out.text() + err.text()
    assert out.wait_for("cancelled (Ctrl-C)\nraystack> ", 10) < float("inf")
    proc.send_signal(signal.SIGINT)  # at the prompt: drops the line being typed
    assert out.wait_for("^C", 10) < float("inf"), out.text() + err.text()
    proc.stdin.write("SELECT 6 * 7 AS answer;\n.quit\n")
    proc.stdin.close()
    proc.wait(30)
    out.done.wait(5)
    err.done.wait(5)
    assert proc.returncode == 0, err.text()
    assert "│     42 │" in out.text(), out.text()
    assert "Traceback" not in out.text() + err.text()
