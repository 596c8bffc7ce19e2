"""The SQL prompt's dot-commands: .help, .quit/.exit, .tables, .schema [NAME], .mode [MODE].

    state = PromptState()
    text = run_dot(con, ".mode csv", state)      # -> "mode: csv"; state.mode == "csv"

A line that starts with ``.`` is always a dot-command, never SQL: an unknown one is a
one-line error, so it cannot sit in the statement buffer and swallow a later ``.quit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raystack.query.output import MODES


@dataclass
class PromptState:
    mode: str = "table"
    quit: bool = False


HELP = f"""\
.help              this text
.quit, .exit       leave (so does Ctrl-D on an empty line)
.tables            the views and table macros
.schema [NAME]     columns of every view, or of one view or macro (with its parameters)
.mode [MODE]       how results print: {', '.join(MODES)} (without MODE: the current one)

Statements end with ';' and may span lines. Up/Down recall earlier statements (kept
across sessions), Tab completes names, Ctrl-C cancels the running statement or clears
the line. Example:
  SELECT * FROM events(threshold := 0.7, min_frames := 10, run := 'RUN');
"""

_TABLES_SQL = (
    "SELECT function_name AS name, 'macro' AS kind FROM duckdb_functions() "
    "WHERE function_type = 'table_macro' AND NOT internal UNION ALL "
    "SELECT view_name, 'view' FROM duckdb_views() WHERE NOT internal "
    "AND view_name NOT LIKE '\\_raw\\_%' ESCAPE '\\' ORDER BY 2, 1"
)


class DotCommandError(ValueError):
    """A dot-command that does not exist or got a bad argument."""


def names(con: Any) -> dict[str, str]:
    """User-visible views and table macros: name -> 'view' | 'macro'."""
    return dict(con.sql(_TABLES_SQL).fetchall())


def _columns(con: Any, relation_sql: str) -> str:
    rows = con.sql(f"DESCRIBE {relation_sql}").fetchall()
    return ", ".join(f"{r[0]} {r[1]}" for r in rows)


def schema_text(con: Any, name: str | None = None) -> str:
    """``.schema``: one line per view (``name(col TYPE, ...)``) or the named view/macro."""
    known = names(con)
    if name is None:
        return "\n".join(f"{v}({_columns(con, v)})" for v, k in known.items() if k == "view")
    if name not in known:
        msg = f".schema: no view or macro named {name!r}; try .tables"
        raise DotCommandError(msg)
    if known[name] == "view":
        return f"{name}({_columns(con, name)})"
    ((params,),) = con.sql(
        "SELECT parameters FROM duckdb_functions() WHERE function_name = ? "
        "AND function_type = 'table_macro' AND NOT internal", params=[name]).fetchall()
    return (f"{name}({', '.join(p + ' := ...' for p in params)}) -> "
            f"({_columns(con, f'SELECT * FROM {name}()')})")


def run_dot(con: Any, line: str, state: PromptState) -> str | None:
    """Run one dot-command line; the text to print (None: nothing)."""
    cmd, *args = line.split()
    if cmd in (".quit", ".exit"):
        state.quit = True
        return None
    if cmd == ".help":
        return HELP.rstrip("\n")
    if cmd == ".tables":
        return "\n".join(f"{n}  ({k})" for n, k in sorted(names(con).items(), key=lambda x: x[1]))
    if cmd == ".schema":
        if len(args) > 1:
            msg = ".schema takes at most one name"
            raise DotCommandError(msg)
        return schema_text(con, args[0] if args else None)
    if cmd == ".mode":
        if not args:
            return f"mode: {state.mode}"
        if len(args) > 1 or args[0] not in MODES:
            msg = f".mode: choose one of {', '.join(MODES)}; got {' '.join(args)!r}"
            raise DotCommandError(msg)
        state.mode = args[0]
        return None
    msg = f"unknown command {cmd!r}: try .help"
    raise DotCommandError(msg)
