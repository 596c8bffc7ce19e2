"""Rich consoles for logs and tables: a pipe or a file gets long lines, never 80 columns.

Rich assumes 80 columns when its output is not a terminal, so a scan's log redirected to a
file wrapped every long line (file names, errors) in the middle. A terminal keeps its width.

    console(stderr=True).print("scan: 120/400 units ...")
"""

from __future__ import annotations

import os
from typing import Any

# Columns a pipe or a file gets: wide enough for a table of long paths on one line.
PIPE_WIDTH = 400


def console(*, stderr: bool = False, **kwargs: Any) -> Any:
    """A ``rich.console.Console``; off a terminal (and without ``COLUMNS``) lines do not wrap."""
    from rich.console import Console

    con = Console(stderr=stderr, **kwargs)
    if con.is_terminal or "COLUMNS" in os.environ or "width" in kwargs:
        return con
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True, **kwargs)
