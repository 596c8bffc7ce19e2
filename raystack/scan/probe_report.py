"""Show or save the ``videos`` table of ``raystack probe``: a rich table for people,
csv/json/parquet for tools.

print_videos(table)                               # rich table, then the probe errors
write_videos(table, "json", None)                 # JSON records on stdout
write_videos(table, "parquet", "videos.parquet")
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa

from raystack.tableio import FORMATS, write_result


def write_videos(table: pa.Table, fmt: str, out: str | Path | None) -> None:
    """Write ``table`` as csv, json (a list of records) or parquet to ``out`` or stdout.

    Raises:
        ValueError: unknown format, or parquet without an output file.
    """
    if fmt not in FORMATS[1:]:
        msg = f"unknown format {fmt!r}; choose one of {FORMATS}"
        raise ValueError(msg)
    text = write_result(table, fmt, out)
    if out is None:
        sys.stdout.write(text)


def print_videos(table: pa.Table, console=None) -> None:
    """Print ``table`` as a rich table, then each probe error in full."""
    from rich.table import Table

    from raystack.console import console as make_console

    console = console or make_console()
    # A narrow terminal (or a pipe, 80 columns) drops the id; csv/json always have it.
    wide = console.width >= 120
    cols = ["relpath", "kind", "frames", "fps", "size", "codec", "duration"]
    cols += ["video_id", "status"] if wide else ["status"]
    view = Table(title=f"{table.num_rows} videos")
    for name in cols:
        right = name in ("frames", "fps", "size", "duration")
        fold = name == "relpath"
        view.add_column(
            name,
            justify="right" if right else "left",
            no_wrap=not fold,
            min_width=12 if fold else len(name),
            overflow="fold",
        )
    rows = table.to_pylist()
    for r in rows:
        cells = {
            "relpath": r["relpath"],
            "kind": r["kind"],
            "frames": "" if r["frames"] is None else str(r["frames"]),
            "fps": "" if r["fps"] is None else f"{r['fps']:g}",
            "size": "" if r["width"] is None else f"{r['width']}x{r['height']}",
            "codec": r["codec"] or "",
            "duration": "" if r["duration_s"] is None else f"{r['duration_s']:.1f} s",
            "video_id": r["video_id"],
            "status": "[green]ok[/green]"
            if r["probe_error"] is None
            else "[bold red]error[/bold red]",
        }
        view.add_row(*(cells[c] for c in cols))
    console.print(view)
    bad = [r for r in rows if r["probe_error"] is not None]
    if bad:
        console.print(f"[bold red]{len(bad)} of {len(rows)} videos cannot be read:[/bold red]")
        for r in bad:
            console.print(f"  [red]{r['relpath']}[/red]: {r['probe_error']}", highlight=False)
