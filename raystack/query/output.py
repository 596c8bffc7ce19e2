"""The interactive SQL prompt of ``raystack sql``.

    repl(con, read_line=input, write=print)         # statements until EOF or .quit

Results print through :func:`raystack.tableio.render_table`; files are written by Python
after the query (:func:`raystack.tableio.write_result`), never by DuckDB, so the analyst's
sealed connection can still export what it may read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raystack.tableio import render_table


def repl(
    con: Any,
    read_line: Callable[[str], str] = input,
    write: Callable[[str], Any] = print,
) -> int:
    """Read SQL statements (ending in ``;``) until EOF or ``.quit``; print each result.

    ``.tables`` lists the views and macros, ``.help`` says what is allowed. A failing
    statement prints its error and the prompt goes on; so does one cancelled with Ctrl-C,
    and Ctrl-C at the prompt drops the statement being typed. Returns the number of
    statements that failed or were cancelled.
    """
    from raystack.query.connection import READ_ONLY_HELP, QueryError, run_sql

    failures, buf = 0, []
    while True:
        try:
            line = read_line("raystack> " if not buf else "     ...> ")
        except EOFError:
            break
        except KeyboardInterrupt:
            buf = []
            write("^C")
            continue
        stripped = line.strip()
        if not buf and stripped in (".quit", ".exit", "\\q"):
            break
        if not buf and stripped == ".help":
            write(READ_ONLY_HELP)
            continue
        if not buf and stripped == ".tables":
            stripped = (
                "SELECT function_name AS name, 'macro' AS kind FROM duckdb_functions() "
                "WHERE function_type = 'table_macro' AND NOT internal UNION ALL "
                "SELECT view_name, 'view' FROM duckdb_views() WHERE NOT internal "
                "AND view_name NOT LIKE '\\_raw\\_%' ESCAPE '\\' ORDER BY 2, 1;"
            )
        if not stripped:
            continue
        buf.append(stripped)
        if not stripped.endswith(";"):
            continue
        query, buf = "\n".join(buf), []
        try:
            result = run_sql(con, query)
        except QueryError as e:
            failures += 1
            write(f"Error: {e}")
            continue
        if result is not None:
            write(render_table(result))
    return failures
