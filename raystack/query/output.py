"""How the SQL prompt prints a result, by ``.mode``: table, csv, json or line.

    print(render(table, "line"))      # one "column = value" line per field, rows apart

Results print through :func:`raystack.tableio.write_result`; files are written by Python
after the query, never by DuckDB, so the analyst's sealed connection can still export what
it may read.
"""

from __future__ import annotations

import pyarrow as pa

from raystack.tableio import write_result

MODES = ("table", "csv", "json", "line")


def render_lines(table: pa.Table) -> str:
    """DuckDB's ``.mode line``: each row as ``name = value`` lines, rows apart."""
    if table.num_rows == 0:
        return "0 rows"
    width = max((len(n) for n in table.column_names), default=0)
    blocks = []
    for row in table.to_pylist():
        blocks.append("\n".join(
            f"{name.rjust(width)} = {'NULL' if v is None else v}" for name, v in row.items()))
    return "\n\n".join(blocks)


def render(table: pa.Table, mode: str) -> str:
    """``table`` as text in ``mode`` (one of :data:`MODES`)."""
    if mode == "line":
        return render_lines(table)
    if mode not in MODES:
        msg = f"unknown mode {mode!r}; choose one of {', '.join(MODES)}"
        raise ValueError(msg)
    return write_result(table, mode).rstrip("\n")
