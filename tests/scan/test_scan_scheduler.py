"""The scan's scheduling rules without Ray: backoff, attempts by failure kind, restart budget."""

from __future__ import annotations

import errno

from raystack.errors import InfrastructureError, UndecodableVideoError
from raystack.scan.manifest import INFRASTRUCTURE, INPUT, manifest_row
from raystack.scan.plan import WorkUnit
from raystack.scan.scheduler import RestartBudget, RetryRules, UnitQueue, failure_kind


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _unit(i: int) -> WorkUnit:
    return WorkUnit(unit_id=f"v-{i:08d}-{i + 1:08d}", video_id="v", uri="/a/v.mp4", start=i,
                    stop=i + 1, context=4, num_frames=100, fps=25.0)


def test_failures_are_classified_by_cause():
    assert failure_kind(None) == INFRASTRUCTURE  # the worker process died
    assert failure_kind(InfrastructureError("store away")) == INFRASTRUCTURE
    assert failure_kind(OSError(errno.ENOSPC, "full")) == INFRASTRUCTURE
    assert failure_kind(MemoryError()) == INFRASTRUCTURE
    assert failure_kind(UndecodableVideoError("/a/v.mp4", "bad header")) == INPUT
    assert failure_kind(RuntimeError("stream returned 3 scores")) == INPUT


def test_a_failed_unit_waits_with_exponential_backoff_while_others_run():
    clock = Clock()
    q = UnitQueue([(_unit(0), 1), (_unit(1), 1)], RetryRules(backoff_s=2, max_backoff_s=5),
                  clock=clock)
    u0, a0 = q.pop()
    assert q.failed(u0, a0, INFRASTRUCTURE)
    assert q.pop() == (_unit(1), 1)  # the other unit runs meanwhile
    assert q.pop() is None and q and q.next_in() == 2.0
    clock.t += 2.0
    assert q.pop() == (u0, 2)
    waits = []
    for attempt in (2, 3, 4):
        assert q.failed(u0, attempt, INFRASTRUCTURE)
        waits.append(q.next_in())
        clock.t += waits[-1]
        assert q.pop() == (u0, attempt + 1)
    assert waits == [4.0, 5.0, 5.0]  # doubling, capped


def test_input_failures_exhaust_a_unit_quickly_and_infrastructure_failures_do_not():
    clock = Clock()
    rules = RetryRules(max_attempts=2, max_infra_attempts=6, backoff_s=0)
    q = UnitQueue([], rules, clock=clock)
    bad, flaky = _unit(0), _unit(1)
    assert q.failed(bad, 1, INPUT) and not q.failed(bad, 2, INPUT)
    results = [q.failed(flaky, a, INFRASTRUCTURE) for a in range(1, 7)]
    assert results == [True] * 5 + [False]
    # Both kinds are counted apart: infrastructure failures do not use up input attempts.
    other = _unit(2)
    for a in range(1, 5):
        assert q.failed(other, a, INFRASTRUCTURE)
    assert q.failed(other, 5, INPUT)
    assert sorted(u.unit_id for u, _ in q.drain()) == sorted(
        [bad.unit_id, *[flaky.unit_id] * 5, *[other.unit_id] * 5])
    assert not q


def test_prefetched_units_given_back_go_first():
    q = UnitQueue([(_unit(0), 1), (_unit(1), 1)], RetryRules())
    first = q.pop()
    q.push_front(first)
    assert q.pop() == first and len(q) == 1


def test_restart_budget_is_per_sliding_window():
    clock = Clock()
    budget = RestartBudget(limit=4, window_s=60, clock=clock)
    # The old rule (4 restarts for the whole run) gave a worker up at the 5th crash even
    # when the crashes were hours apart; a window only stops a burst.
    for _ in range(20):
        assert budget.record()
        clock.t += 20.0
    burst = [budget.record() for _ in range(4)]
    assert burst == [True, False, False, False]  # 3 crashes in the last 60 s + this burst


def test_manifest_rows_carry_the_failure_kind():
    u = _unit(0)
    assert manifest_row(u, "failed", error="x")["failure_kind"] == INPUT
    row = manifest_row(u, "failed", error="x", failure_kind=INFRASTRUCTURE)
    assert row["failure_kind"] == INFRASTRUCTURE
    assert manifest_row(u, "done", rows=3, failure_kind=INFRASTRUCTURE)["failure_kind"] is None


def test_a_unit_that_kills_its_worker_while_others_finish_is_poison_input():
    rules = RetryRules(max_attempts=3, max_infra_attempts=10, backoff_s=0)
    q = UnitQueue([], rules, clock=Clock())
    poison = _unit(0)
    assert q.crashed(poison) == INFRASTRUCTURE and q.failed(poison, 1, INFRASTRUCTURE)
    q.finished()  # the cluster scores other units meanwhile
    assert q.crashed(poison) == INFRASTRUCTURE and q.failed(poison, 2, INFRASTRUCTURE)
    assert q.crashed(poison) == INPUT  # third death under this unit, others went through
    assert not q.failed(poison, 3, INPUT)  # final: no further attempt
    # Deaths while nothing else finishes are the cluster's (kills, a drained node): the
    # unit keeps its infrastructure attempts however often its worker dies under it.
    assert [q.crashed(_unit(1)) for _ in range(5)] == [INFRASTRUCTURE] * 5
