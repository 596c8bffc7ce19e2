"""How long one statement may run and how much memory DuckDB may hold, per connection.

    QueryLimits()                                   # 600 s per statement, 25% of RAM (>= 1 GiB)
    QueryLimits(timeout_s=30, memory_limit="2GB")
    QueryLimits(timeout_s=0)                        # no statement timeout

The timeout is DuckDB's ``max_execution_time``: a statement that runs longer stops with an
error, whatever it is doing (a recursive CTE that never ends included). Both are set before
the analyst connection's configuration is locked, so SQL cannot lift them.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

DEFAULT_TIMEOUT_S = 600.0
_MIN_MEMORY = 1 << 30
_MEMORY_RE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


def default_memory_limit() -> str:
    """A quarter of the machine's RAM, at least 1 GiB: DuckDB's own default (80%) leaves
    too little for everything else a scan node or a laptop runs."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 4 * _MIN_MEMORY
    return f"{max(_MIN_MEMORY, ram // 4) >> 20}MiB"


@dataclass(frozen=True)
class QueryLimits:
    """Per-connection limits; ``None`` fields take the defaults, ``timeout_s=0`` means none."""

    timeout_s: float | None = None
    memory_limit: str | None = None

    def __post_init__(self) -> None:
        t = self.timeout_s
        if t is not None and (isinstance(t, bool) or not math.isfinite(float(t)) or float(t) < 0):
            msg = f"statement timeout must be a number of seconds >= 0 (0: none), got {t!r}"
            raise ValueError(msg)
        if self.memory_limit is not None and not _MEMORY_RE.match(str(self.memory_limit)):
            msg = f"memory limit must look like 4GB or 512MiB, got {self.memory_limit!r}"
            raise ValueError(msg)

    @property
    def timeout(self) -> float:
        """Seconds per statement; 0 for none."""
        return DEFAULT_TIMEOUT_S if self.timeout_s is None else float(self.timeout_s)

    @property
    def memory(self) -> str:
        return str(self.memory_limit) if self.memory_limit is not None else default_memory_limit()

    def settings(self) -> dict[str, object]:
        """DuckDB settings that apply these limits."""
        ms = math.ceil(self.timeout * 1000)  # a tiny timeout must not round to 0, "none"
        return {"memory_limit": self.memory, "max_execution_time": ms}
