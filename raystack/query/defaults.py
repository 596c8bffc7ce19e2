"""The one set of event defaults: the argument defaults of the SQL ``events()`` macro.

``schemas/sql/v3_query.sql`` declares them once; ``raystack events``, ``raystack report``,
:func:`raystack.query.find_events` and their ``--help`` read them from there, so SQL, CLI
and report find the same events on the same store.

    EVENTS.threshold, EVENTS.min_frames, EVENTS.merge_gap   # 0.7, 5, 3
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class EventsDefaults:
    threshold: float  # fixed threshold on the [0, 1] score: flagged = score > threshold
    min_frames: int  # events spanning fewer frames (after merging) are dropped
    merge_gap: int  # events at most this many frames apart merge
    fusion: str  # 'auto': the run's only stream, or weighted alpha of its known pair
    alpha: float  # weight of the first stream in weighted fusion
    sigma: float  # Gaussian smoothing in frames (0: none)
    roi: list | None  # boxes [[x0, y0, x1, y1], ...] frames must point into (None: anywhere)
    exclude: list | None  # boxes frames must not point into (None: none)


def macro_defaults(sql: str, macro: str) -> dict[str, object]:
    """``{argument: default}`` of ``CREATE ... MACRO macro(a := 1, ...)`` in ``sql``."""
    m = re.search(rf"MACRO\s+{re.escape(macro)}\s*\((.*?)\)\s+AS\b", sql, re.S)
    if m is None:
        msg = f"the query SQL defines no macro {macro}()"
        raise LookupError(msg)
    out: dict[str, object] = {}
    for name, raw in re.findall(r"(\w+)\s*:=\s*('[^']*'|\[[^\]]*\]|[^,\s]+)", m.group(1)):
        text = raw.strip()
        out[name] = None if text.upper() == "NULL" else ast.literal_eval(text)
    return out


def _load() -> EventsDefaults:
    from raystack.store.schema import QUERY_SQL, sql_text

    d = macro_defaults(sql_text(QUERY_SQL), "events")
    return EventsDefaults(threshold=float(d["threshold"]), min_frames=int(d["min_frames"]),
                          merge_gap=int(d["merge_gap"]), fusion=str(d["fusion"]),
                          alpha=float(d["alpha"]), sigma=float(d["sigma"]),
                          roi=d["roi"], exclude=d["exclude"])


EVENTS = _load()
