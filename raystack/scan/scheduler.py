"""Which unit runs next, when a failed unit is tried again, and when a crashing worker is given up.

Plain Python, no Ray: :class:`~raystack.scan.pipeline.ActorPool` drives these, and the tests
drive them with a fake clock.

- :class:`UnitQueue` holds the units waiting to run, each with the time it may start. A unit
  that failed waits before its next attempt (exponential backoff), so a store that is away
  for a minute is not hammered, and other units run meanwhile.
- :func:`failure_kind` and :meth:`UnitQueue.failed` tell the causes apart. An *input*
  failure (the file: undecodable, or an unexpected error while scoring it) gets few
  attempts; an *infrastructure* failure (a dead worker, the store or the network away) gets
  many, further apart, since waiting cures it.
- A unit whose worker dies under it ``max_attempts`` times while other units finish is a
  *poison* input (a file that crashes the decoder process): it fails as input instead of
  using up the infrastructure attempts meant for outages, and a rerun of the scan then
  exits 1 (units failed) rather than 3 (retry later), which would loop a scheduler forever.
- :class:`RestartBudget` allows a worker N restarts per sliding window of M seconds: a
  burst of crashes (a node drained, processes killed by hand) is ridden out, a worker that
  crashes on everything is given up.

    q = UnitQueue([(unit, 1)], RetryRules(max_attempts=3, max_infra_attempts=10))
    unit, attempt = q.pop()
    q.failed(unit, attempt, INFRASTRUCTURE)      # -> True: back in the queue in 2 s
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable

from raystack.errors import InfrastructureError
from raystack.scan.manifest import INFRASTRUCTURE, INPUT
from raystack.scan.plan import WorkUnit

Item = tuple[WorkUnit, int]  # (unit, attempt number as the manifest records it)


def failure_kind(err: BaseException | None) -> str:
    """``"infrastructure"`` for errors of the machinery around a unit, else ``"input"``.

    ``None`` (no exception: the worker process died) is infrastructure. OSError covers a
    store or network error that was not retried, or not retried long enough; MemoryError a
    worker short of memory, which another attempt (or worker) may not be.
    """
    if err is None:
        return INFRASTRUCTURE
    if isinstance(err, (InfrastructureError, OSError, MemoryError, ConnectionError)):
        return INFRASTRUCTURE
    return INPUT


@dataclasses.dataclass(frozen=True)
class RetryRules:
    """Attempts per unit by failure kind, and the wait before the next attempt."""

    max_attempts: int = 3  # input failures of a unit before it is recorded as failed
    max_infra_attempts: int = 10  # infrastructure failures of a unit before the same
    backoff_s: float = 2.0  # wait after the first failure; doubles with each failure
    max_backoff_s: float = 60.0

    def wait(self, failures: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** max(0, failures - 1))


class UnitQueue:
    """Units to run: a FIFO of ready units plus units waiting out their backoff."""

    def __init__(
        self, work: Iterable[Item], rules: RetryRules,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = rules
        self.clock = clock
        self._ready: deque[Item] = deque(work)
        self._later: list[tuple[float, int, Item]] = []  # (ready_at, tiebreak, item)
        self._seq = itertools.count()
        self._failures: dict[str, dict[str, int]] = {}
        self._finished = 0  # units done so far, to tell a poison unit from a sick cluster
        self._crashes: dict[str, tuple[int, int]] = {}  # unit -> (deaths, _finished at 1st)
        self._poison: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self._ready or self._later)

    def __len__(self) -> int:
        return len(self._ready) + len(self._later)

    def _promote(self) -> None:
        now = self.clock()
        while self._later and self._later[0][0] <= now:
            self._ready.append(heapq.heappop(self._later)[2])

    def pop(self) -> Item | None:
        """The next unit that may run now, or None."""
        self._promote()
        return self._ready.popleft() if self._ready else None

    def has_ready(self) -> bool:
        self._promote()
        return bool(self._ready)

    def push_front(self, item: Item) -> None:
        """Give back a unit taken but not started (a worker's lost prefetch)."""
        self._ready.appendleft(item)

    def next_in(self) -> float | None:
        """Seconds until a waiting unit becomes ready (0 if one is ready, None if empty)."""
        if self._ready:
            return 0.0
        if not self._later:
            return None
        return max(0.0, self._later[0][0] - self.clock())

    def finished(self) -> None:
        """A unit was scored: the workers are healthy at least some of the time."""
        self._finished += 1

    def crashed(self, unit: WorkUnit) -> str:
        """The kind of a worker's death while it scored ``unit``.

        Infrastructure, unless this unit has now killed its worker ``max_attempts`` times
        and other units finished after its first death: then the unit itself is the cause
        (input), and :meth:`failed` does not requeue it.
        """
        deaths, finished_then = self._crashes.get(unit.unit_id, (0, self._finished))
        deaths += 1
        self._crashes[unit.unit_id] = (deaths, finished_then)
        if deaths >= self.rules.max_attempts and self._finished > finished_then:
            self._poison.add(unit.unit_id)
            return INPUT
        return INFRASTRUCTURE

    def failed(self, unit: WorkUnit, attempt: int, kind: str) -> bool:
        """Record a failed attempt; requeue the unit after its backoff if it has attempts
        left for that kind of failure. Returns whether it was requeued."""
        if unit.unit_id in self._poison:
            return False
        counts = self._failures.setdefault(unit.unit_id, {INPUT: 0, INFRASTRUCTURE: 0})
        counts[kind] += 1
        limit = self.rules.max_infra_attempts if kind == INFRASTRUCTURE else self.rules.max_attempts
        if counts[kind] >= limit:
            return False
        ready_at = self.clock() + self.rules.wait(counts[kind])
        heapq.heappush(self._later, (ready_at, next(self._seq), (unit, attempt + 1)))
        return True

    def drain(self) -> list[Item]:
        """Remove and return every queued unit (ready or waiting)."""
        items = [*self._ready, *(it for _, _, it in sorted(self._later))]
        self._ready.clear()
        self._later.clear()
        return items


class RestartBudget:
    """At most ``limit`` restarts within any ``window_s`` seconds (a sliding window)."""

    def __init__(self, limit: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = int(limit)
        self.window_s = float(window_s)
        self.clock = clock
        self._times: deque[float] = deque()

    def record(self) -> bool:
        """Count a restart now; False when it exceeds the budget (give the worker up)."""
        now = self.clock()
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        self._times.append(now)
        return len(self._times) <= self.limit

    @property
    def recent(self) -> int:
        return len(self._times)
