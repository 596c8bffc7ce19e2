"""Regions of interest from Python and the command line, checked as the SQL checks them.

    parse_box("0,0,960,540")                    # [0.0, 0.0, 960.0, 540.0]
    check_boxes([[0, 0, 960, 540]], "roi")      # [[0.0, 0.0, 960.0, 540.0]]
    check_boxes([[10, 0, 5, 5]], "exclude")     # QueryError naming exclude and the box

A box is ``[x0, y0, x1, y1]`` in source-frame pixels, x1/y1 exclusive, as the store's
``box_*`` columns. The SQL macros (``checked_boxes`` in ``schemas/sql/v3_views.sql``) apply
the same rule; checking here first makes a typo on the command line fail before the store
is read, with the option's name in the message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from raystack.query.connection import QueryError


def _refuse(what: str, got: object) -> QueryError:
    return QueryError(
        f"{what} must be a box [x0, y0, x1, y1] or a list of boxes [[x0, y0, x1, y1], ...] "
        f"in source-frame pixels with 0 <= x0 < x1 and 0 <= y0 < y1, got {got}"
    )


def parse_box(text: str, what: str = "roi") -> list[float]:
    """``"x0,y0,x1,y1"`` (the ``--roi``/``--exclude`` form) as four numbers, checked."""
    try:
        box = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise _refuse(what, repr(text)) from None
    return check_boxes([box], what)[0]


def check_boxes(boxes: Sequence[Sequence[float]] | None, what: str) -> list[list[float]] | None:
    """``boxes`` as a list of ``[x0, y0, x1, y1]`` floats, None for None.

    Raises:
        QueryError: an empty list, a box without four finite numbers, or with x0 >= x1,
            y0 >= y1 or a negative corner; the message names ``what``.
    """
    if boxes is None:
        return None
    try:
        out = [[float(v) for v in box] for box in boxes]
    except (TypeError, ValueError):
        raise _refuse(what, boxes) from None
    ok = bool(out) and all(
        len(b) == 4 and all(math.isfinite(v) for v in b) and 0 <= b[0] < b[2] and 0 <= b[1] < b[3]
        for b in out
    )
    if not ok:
        raise _refuse(what, boxes)
    return out
