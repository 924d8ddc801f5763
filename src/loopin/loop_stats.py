"""Pre-aggregated counts for the admin console, so that no page counts over
``human_loops`` or ``predictions``:

- ``loop_status_counts``: loops per flow and current status;
- ``loop_day_counts``: loops per UTC day of creation, flow and current status;
- ``invocation_hour_counts``: endpoint invocations per hour, and how many went to people.

They are kept by two session hooks, so every change made through the ORM is counted,
whatever module makes it: ``before_flush`` turns each new, re-statused or deleted loop and
each new prediction into deltas, and ``before_commit`` adds them up in the same
transaction. The upserts come last in the transaction and in a fixed key order, so a
counter row's lock is held only for the commit and two transactions never wait on each
other's counters in a cycle; each transaction writes to one of ``SHARDS`` rows per counter
(chosen at random), so concurrent commits rarely meet on the same row. A count is the sum
over its shard rows.

Statements that bypass the ORM (bulk ``update(HumanLoop)`` of the status) would bypass the
counters too: the domain does not issue any.
"""

from __future__ import annotations

import functools
import random
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, case, delete, event, func, insert, inspect, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loopin.models import HumanLoop, InvocationHourCount, LoopDayCount, LoopStatusCount, Prediction, TaskSlot, Worker

SHARDS = 4
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
ANSWER_SAMPLE = 1001  # the most recent answers the median is taken over
ANSWER_WINDOW_MS = 7 * DAY_MS
_DELTAS = "loopin.stat_deltas"  # key in Session.info


@dataclass
class _Deltas:
    status: Counter[tuple[int, str]]  # (flow_id, status)
    day: Counter[tuple[int, int, str]]  # (day, flow_id, status)
    invocations: Counter[tuple[int, str, str]]  # (hour, endpoint, "total" | "routed")


@dataclass(frozen=True)
class AnswerTimes:
    answers: int  # in the sample
    median_wait_ms: float | None  # from the loop's start to the answer
    median_work_ms: float | None  # from the worker's accepting the task to the answer


@dataclass(frozen=True)
class Invocations:
    total: int
    routed: int


# -- keeping the counts ------------------------------------------------------------------


def count_invocation(session: Session, *, endpoint_name: str, created_at: int, routed: bool) -> None:
    """Count a prediction row written without the ORM (an ORM-added one is counted by
    ``_collect``); the counters are written when the transaction commits."""
    invocations = _deltas(session).invocations
    hour = created_at // HOUR_MS
    invocations[(hour, endpoint_name, "total")] += 1
    if routed:
        invocations[(hour, endpoint_name, "routed")] += 1


def _deltas(session: Session) -> _Deltas:
    deltas: _Deltas | None = session.info.get(_DELTAS)
    if deltas is None:
        deltas = session.info[_DELTAS] = _Deltas(Counter(), Counter(), Counter())
    return deltas


def count_new_loop(session: Session, loop: HumanLoop) -> None:
    """Count a loop row inserted without the ORM (an ORM-added one is counted by ``_collect``)."""
    _count(session, loop, loop.status, 1)


def _count(session: Session, loop: HumanLoop, status: str, n: int) -> None:
    deltas = _deltas(session)
    deltas.status[(loop.flow_id, status)] += n
    deltas.day[(loop.created_at // DAY_MS, loop.flow_id, status)] += n


@event.listens_for(Session, "before_flush")
def _collect(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.new:
        if isinstance(obj, HumanLoop):
            _count(session, obj, obj.status, 1)
        elif isinstance(obj, Prediction):
            routed = obj.routed_reason is not None
            count_invocation(session, endpoint_name=obj.endpoint_name, created_at=obj.created_at, routed=routed)
    for obj in session.dirty:
        if isinstance(obj, HumanLoop):
            history = inspect(obj).attrs.status.history
            if history.deleted and history.added and history.deleted[0] != history.added[0]:
                _count(session, obj, history.deleted[0], -1)
                _count(session, obj, history.added[0], 1)
    for obj in session.deleted:
        if isinstance(obj, HumanLoop):
            history = inspect(obj).attrs.status.history
            _count(session, obj, history.deleted[0] if history.deleted else obj.status, -1)


@event.listens_for(Session, "before_commit")
def _apply(session: Session) -> None:
    session.flush()  # the last changes' deltas, and their row locks before the counters'
    deltas: _Deltas | None = session.info.pop(_DELTAS, None)
    if deltas is None:
        return
    shard = random.randrange(SHARDS)
    _upsert(
        session,
        LoopStatusCount.__table__,  # type: ignore[arg-type]
        [{"flow_id": f, "status": s, "shard": shard, "n": n} for (f, s), n in sorted(deltas.status.items()) if n],
        ["flow_id", "status", "shard"],
        ["n"],
    )
    _upsert(
        session,
        LoopDayCount.__table__,  # type: ignore[arg-type]
        [
            {"day": d, "flow_id": f, "status": s, "shard": shard, "n": n}
            for (d, f, s), n in sorted(deltas.day.items())
            if n
        ],
        ["day", "flow_id", "status", "shard"],
        ["n"],
    )
    per_hour: dict[tuple[int, str], dict[str, int]] = {}
    for (hour, endpoint, kind), n in deltas.invocations.items():
        per_hour.setdefault((hour, endpoint), {"total": 0, "routed": 0})[kind] += n
    _upsert(
        session,
        InvocationHourCount.__table__,  # type: ignore[arg-type]
        [{"hour": h, "endpoint_name": e, "shard": shard, **n} for (h, e), n in sorted(per_hour.items())],
        ["hour", "endpoint_name", "shard"],
        ["total", "routed"],
    )


@event.listens_for(Session, "after_rollback")
def _discard(session: Session) -> None:
    session.info.pop(_DELTAS, None)


def _upsert(session: Session, table: Table, rows: list[dict[str, Any]], key: list[str], added: list[str]) -> None:
    if not rows:
        return
    statement = _upsert_statement(session.get_bind().dialect.name, table, tuple(key), tuple(added))
    session.execute(statement, rows)  # executemany of one cached statement


@functools.cache
def _upsert_statement(dialect: str, table: Table, key: tuple[str, ...], added: tuple[str, ...]) -> Any:
    """Built once per table: a statement with the rows inlined (``.values(rows)``) is new
    each time and SQLAlchemy compiles it again, which cost a quarter of a start's CPU."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(key), set_={c: table.c[c] + statement.excluded[c] for c in added}
    )


def recount(session: Session) -> None:
    """Rebuild every count from the loops and the prediction log (``loopin db recount``):
    after the database was edited by hand or loaded with SQL. Writers wait meanwhile."""
    if session.get_bind().dialect.name == "postgresql":
        # Counter updates of transactions committing meanwhile wait, then add to the new rows.
        session.execute(
            text("LOCK TABLE loop_status_counts, loop_day_counts, invocation_hour_counts IN EXCLUSIVE MODE")
        )
    for model in (LoopStatusCount, LoopDayCount, InvocationHourCount):
        session.execute(delete(model))
    loops, day = HumanLoop.__table__.c, (HumanLoop.created_at // DAY_MS).label("day")
    session.execute(
        insert(LoopStatusCount).from_select(
            ["flow_id", "status", "shard", "n"],
            select(loops.flow_id, loops.status, literal(0), func.count()).group_by(loops.flow_id, loops.status),
        )
    )
    session.execute(
        insert(LoopDayCount).from_select(
            ["day", "flow_id", "status", "shard", "n"],
            select(day, loops.flow_id, loops.status, literal(0), func.count()).group_by(
                day, loops.flow_id, loops.status
            ),
        )
    )
    hour = (Prediction.created_at // HOUR_MS).label("hour")
    routed = func.sum(case((Prediction.routed_reason.is_(None), 0), else_=1))
    session.execute(
        insert(InvocationHourCount).from_select(
            ["hour", "endpoint_name", "shard", "total", "routed"],
            select(hour, Prediction.endpoint_name, literal(0), func.count(), routed).group_by(
                hour, Prediction.endpoint_name
            ),
        )
    )


# -- reading them ------------------------------------------------------------------------


def status_counts(session: Session, *, flow_id: int | None = None) -> dict[str, int]:
    """Loops per current status (of one flow, or of all)."""
    query = select(LoopStatusCount.status, func.sum(LoopStatusCount.n)).group_by(LoopStatusCount.status)
    if flow_id is not None:
        query = query.where(LoopStatusCount.flow_id == flow_id)
    return {status: int(n) for status, n in session.execute(query) if n}


def loops_per_day(session: Session, *, first_day: int, last_day: int) -> dict[int, dict[str, int]]:
    """Loops created on each UTC day (days since the epoch) from ``first_day`` to
    ``last_day``, by their current status."""
    rows = session.execute(
        select(LoopDayCount.day, LoopDayCount.status, func.sum(LoopDayCount.n))
        .where(LoopDayCount.day >= first_day, LoopDayCount.day <= last_day)
        .group_by(LoopDayCount.day, LoopDayCount.status)
    )
    days: dict[int, dict[str, int]] = {day: {} for day in range(first_day, last_day + 1)}
    for day, status, n in rows:
        if n:
            days[day][status] = int(n)
    return days


def invocations_since(session: Session, since_ms: int) -> Invocations:
    """Invocations of every endpoint from the hour holding ``since_ms`` on."""
    total, routed = session.execute(
        select(func.sum(InvocationHourCount.total), func.sum(InvocationHourCount.routed)).where(
            InvocationHourCount.hour >= since_ms // HOUR_MS
        )
    ).one()
    return Invocations(int(total or 0), int(routed or 0))


def answer_times(session: Session, *, now_ms: int) -> AnswerTimes:
    """Medians over the most recent answers (at most ``ANSWER_SAMPLE``, of the last
    ``ANSWER_WINDOW_MS``): one bounded range of ``ix_slots_submitted`` and as many
    primary-key look-ups, exact for what it covers, and following the current pace
    rather than all of history."""
    rows = session.execute(
        select(TaskSlot.submitted_at - HumanLoop.created_at, TaskSlot.submitted_at - TaskSlot.accepted_at)
        .join(HumanLoop, HumanLoop.id == TaskSlot.loop_id)
        .where(TaskSlot.status == "submitted", TaskSlot.submitted_at >= now_ms - ANSWER_WINDOW_MS)
        .order_by(TaskSlot.submitted_at.desc())
        .limit(ANSWER_SAMPLE)
    ).all()
    return AnswerTimes(
        answers=len(rows),
        median_wait_ms=_median(wait for wait, _ in rows),
        median_work_ms=_median(work for _, work in rows),
    )


def active_workers(session: Session, *, since_ms: int) -> int:
    """Workers who signed in, took or answered a task since ``since_ms`` (the workers
    table is small: no counter needed)."""
    return session.scalar(select(func.count()).where(Worker.last_seen_at >= since_ms)) or 0


def _median(values: Iterable[int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None
