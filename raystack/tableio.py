"""Tables out of raystack for people and tools: a boxed text table, CSV, JSON or Parquet.

    write_result(table, "csv", "events.csv")        # -> writes the file, returns its path
    print(write_result(table, "table"))             # a boxed text table for the terminal
    text = write_result(table, "json")              # JSON records (NaN -> null, dates ISO)

Shared by the CLI commands that print tables (``probe``, ``sql``, ``events``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa

FORMATS = ("table", "csv", "json", "parquet")
MAX_TABLE_ROWS = 200


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    return v


def render_table(table: pa.Table, max_rows: int = MAX_TABLE_ROWS) -> str:
    """A boxed text table of the first ``max_rows`` rows, with a row count footer."""
    from rich.console import Console
    from rich.table import Table

    out = Table(show_lines=False, header_style="bold")
    for name, typ in zip(table.column_names, table.schema.types, strict=True):
        out.add_column(f"{name}\n{typ}", justify="right" if pa.types.is_integer(typ)
                       or pa.types.is_floating(typ) else "left")
    for row in table.slice(0, max_rows).to_pylist():
        out.add_row(*("NULL" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)
                      for v in row.values()))
    buf = io.StringIO()
    width = max(80, 14 * max(1, table.num_columns))
    Console(file=buf, width=width, force_terminal=False).print(out)
    more = (f" (showing {max_rows}; use --format csv|json|parquet --out FILE for all)"
            if table.num_rows > max_rows else "")
    return buf.getvalue() + f"{table.num_rows} rows{more}"


def write_result(table: pa.Table, fmt: str = "table", out: str | Path | None = None) -> str:
    """Format ``table``; write it to ``out`` if given, else return the text.

    Returns:
        The text (``table``/``csv``/``json`` without ``out``), or the path written.

    Raises:
        ValueError: an unknown format, or ``parquet`` without ``out``.
    """
    if fmt not in FORMATS:
        msg = f"unknown format {fmt!r}; choose one of {list(FORMATS)}"
        raise ValueError(msg)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if out is None:
            msg = "--format parquet needs --out FILE"
            raise ValueError(msg)
        pq.write_table(table, str(out))
        return str(out)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf)
        text = buf.getvalue().to_pybytes().decode()
    elif fmt == "json":
        rows = [{k: _json_value(v) for k, v in r.items()} for r in table.to_pylist()]
        text = json.dumps(rows, indent=1) + "\n"
    else:
        text = render_table(table) + "\n"
    if out is None:
        return text
    Path(out).write_text(text)
    return str(out)
