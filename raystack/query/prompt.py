"""The interactive SQL prompt of ``raystack sql STORE``.

    run_prompt(con, "/data/store")           # a terminal: line editing, history, completion
    repl(con, read_line=input)               # the loop itself, with any line reader

On a terminal the prompt uses prompt_toolkit: arrow keys edit and recall, statements may
span lines (Enter runs the text once it ends with ``;``), history is kept in
:func:`history_path`, Tab completes views, macros and SQL words. When stdin or stdout is
not a terminal (a pipe, a test) it reads plain lines instead, echoing the prompt.

Ctrl-C while a statement runs cancels that statement (``con.interrupt()``, see
:mod:`raystack.query.cancel`); at the prompt it clears the line. Neither leaves the prompt:
only ``.quit``, ``.exit`` or end of input (Ctrl-D) do.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raystack.query.dot_commands import DotCommandError, PromptState, names, run_dot
from raystack.query.output import render

PROMPT, CONTINUE = "raystack> ", "     ...> "
_SQL_WORDS = (
    "SELECT FROM WHERE GROUP BY ORDER LIMIT HAVING JOIN LEFT ON USING AS WITH DISTINCT COUNT "
    "AVG MIN MAX SUM DESCRIBE SUMMARIZE EXPLAIN QUALIFY OVER PARTITION WINDOW CASE WHEN THEN "
    "ELSE END AND OR NOT NULL IS IN BETWEEN LIKE DESC ASC UNION ALL"
).split()


def history_path() -> Path:
    """Where statements are remembered across sessions: ``$RAYSTACK_SQL_HISTORY``, else
    ``$XDG_STATE_HOME/raystack/sql_history`` (``~/.local/state/...`` by default)."""
    if os.environ.get("RAYSTACK_SQL_HISTORY"):
        return Path(os.environ["RAYSTACK_SQL_HISTORY"]).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "raystack" / "sql_history"


def banner(con: Any, store: str, runs: list[str]) -> str:
    from raystack import __version__

    shown = ", ".join(runs[:8]) + (f", ... ({len(runs)} in all)" if len(runs) > 8 else "")
    views = sorted(n for n, k in names(con).items() if k == "view")
    return (f"raystack {__version__} SQL prompt, read-only, on {store}\n"
            f"runs: {shown or '(none)'}; views: {', '.join(views)}\n"
            'Enter ".help" for usage hints, ".quit" to leave; statements end with ";".')


def _execute(con: Any, query: str, state: PromptState, write: Callable[[str], Any]) -> bool:
    """Run one statement and print its result; False when it failed or was cancelled."""
    from raystack.query.connection import QueryError, run_sql

    try:
        result = run_sql(con, query)
    except QueryError as e:
        write(f"Error: {e}")
        return False
    if result is not None:
        write(render(result, state.mode))
    return True


def _dot(con: Any, line: str, state: PromptState, write: Callable[[str], Any]) -> bool:
    import duckdb

    try:
        text = run_dot(con, line, state)
    except (DotCommandError, duckdb.Error) as e:
        write(f"Error: {e}")
        return False
    if text:
        write(text)
    return True


def repl(
    con: Any,
    read_line: Callable[[str], str] = input,
    write: Callable[[str], Any] = print,
    state: PromptState | None = None,
) -> int:
    """Read statements (ending in ``;``) and dot-commands until EOF or ``.quit``.

    ``read_line(prompt)`` returns the next line (or, from prompt_toolkit, a whole
    statement). A failing statement prints its error and the prompt goes on; so does one
    cancelled with Ctrl-C, and Ctrl-C at the prompt drops the statement being typed.
    Returns the number of statements and commands that failed or were cancelled.
    """
    state = state or PromptState()
    failures, buf = 0, []
    while not state.quit:
        try:
            line = read_line(PROMPT if not buf else CONTINUE)
        except EOFError:
            break
        except KeyboardInterrupt:
            buf = []
            write("^C")
            continue
        stripped = line.strip()
        try:
            if stripped.startswith("."):
                failures += not _dot(con, stripped, state, write)
                continue
            if stripped:
                buf.append(stripped)
            if not buf or not stripped.endswith(";"):
                continue
            query, buf = "\n".join(buf), []
            failures += not _execute(con, query, state, write)
        except KeyboardInterrupt:  # while printing a long result: the prompt goes on
            buf = []
            failures += 1
            write("^C")
    return failures


def _complete_statement(text: str) -> bool:
    """Enter runs what was typed once it is a whole statement, a dot-command or nothing."""
    t = text.strip()
    return not t or t.endswith(";") or t.startswith(".")


def toolkit_reader(con: Any, history: Path | None, **session_kw: Any) -> Callable[[str], str]:
    """A line reader on prompt_toolkit; ``session_kw`` (input=, output=) is for tests."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    hist: Any = InMemoryHistory()
    if history is not None:
        try:
            history.parent.mkdir(parents=True, exist_ok=True)
            history.touch()
            hist = FileHistory(str(history))
        except OSError as e:
            print(f"warning: history not kept: {history}: {e.strerror or e}", file=sys.stderr)
    keys = KeyBindings()

    @keys.add("enter")
    def _enter(event: Any) -> None:
        buf = event.current_buffer
        if buf.complete_state:  # Enter picks the highlighted completion
            buf.complete_state = None
        elif _complete_statement(buf.text):
            buf.validate_and_handle()
        else:
            buf.insert_text("\n")

    params = [p for (ps,) in con.sql(
        "SELECT parameters FROM duckdb_functions() WHERE function_type = 'table_macro' "
        "AND NOT internal").fetchall() for p in ps]
    words = sorted({*names(con), *params, *_SQL_WORDS, *(w.lower() for w in _SQL_WORDS),
                    ".help", ".quit", ".exit", ".tables", ".schema", ".mode"})
    session: Any = PromptSession(
        history=hist, multiline=True, key_bindings=keys, enable_history_search=False,
        # A word is letters, digits, _ and a leading dot (dot-commands), after any punctuation.
        completer=WordCompleter(words, pattern=re.compile(r"^([.\w]+)")),
        prompt_continuation=lambda width, line, wrap: CONTINUE, **session_kw)
    return lambda prompt: session.prompt(prompt)


def _is_terminal() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def run_prompt(con: Any, store: str, runs: list[str], *, history: Path | None = None) -> int:
    """The prompt of ``raystack sql STORE``: banner, then :func:`repl` on the best reader."""
    import signal
    import threading

    # A shell starts background jobs with SIGINT ignored, and children inherit that: the
    # prompt would then cancel one statement (its own handler) and never again.
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print(banner(con, store, runs), flush=True)
    if not _is_terminal():
        return repl(con)
    return repl(con, toolkit_reader(con, history or history_path()))
