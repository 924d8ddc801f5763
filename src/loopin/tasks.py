"""Task slots: workers claim the next one, hold a lease for the time limit, and release,
decline or submit it. Leases and availability lapse through ``expire_*`` (run by jobs).

Locking: an action on a held slot locks the loop row first, then the slot; claiming locks
only the candidate slot (``SKIP LOCKED``), so concurrent claimers never wait on each other
and never take the same slot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from loopin import adaptive, flow_cache, workforce
from loopin.deadlines import fall_back_if_all_declined, model_prediction
from loopin.errors import AccessDeniedError, NotFoundError, TaskStateError, ValidationError
from loopin.loops import fail_loop, settle_loop
from loopin.models import Decline, FlowDefinition, HumanLoop, TaskSlot, TeamMember, Worker, WorkerPause
from loopin.validation import fits_db_int, refuse_lone_surrogates

MAX_ANSWER_CHARS = 3_145_728
SEEN_EVERY_MS = 60_000  # how often a working worker's last_seen_at is moved on

_TASK_SLOTS = cast(Table, TaskSlot.__table__)
# Built once: an alias builds its column collection, which cost a fifth of a claim per call.
_OTHER_SLOTS = _TASK_SLOTS.alias("other")


@dataclass(frozen=True)
class HeldTask:
    slot: TaskSlot
    loop: HumanLoop
    flow: FlowDefinition


@dataclass(frozen=True)
class Job:
    flow: FlowDefinition
    tasks_waiting: int
    escalated: bool = False  # the worker has this job only through an escalation to their team


@dataclass(frozen=True)
class ClaimScope:
    """Which task slots a worker may take: those of their teams' flows, and, during an
    escalation, those of loops escalated to one of their teams (the slot's
    ``escalation_team_id`` is set only while its loop is escalated; see
    ``deadlines.escalate``). Nothing else: a worker never sees another team's tasks."""

    flow_ids: list[int]  # the flows of the worker's teams, less those they were paused from
    team_ids: list[int]  # the worker's teams

    def conditions(self, flow_id: int | None = None) -> list[Any]:
        """The slots in scope (of one flow, or of all), as conditions each served by one
        index (the flow's queue, the escalation team's queue): the claim asks each."""
        own = [f for f in self.flow_ids if flow_id in (None, f)]
        found: list[Any] = [TaskSlot.flow_id.in_(own)] if own else []
        if self.team_ids:
            escalated = TaskSlot.escalation_team_id.in_(self.team_ids)
            found.append(escalated if flow_id is None else and_(escalated, TaskSlot.flow_id == flow_id))
        return found


def claim_scope(session: Session, worker: Worker) -> ClaimScope:
    rows = session.execute(_SCOPE, {"worker": worker.id}).all()
    team_ids = sorted({team_id for team_id, _ in rows})
    return ClaimScope([flow_id for _, flow_id in rows if flow_id is not None], team_ids)


def worker_flow_ids(session: Session, worker: Worker) -> list[int]:
    """The flows of the worker's teams, but those they were paused from."""
    return list(
        session.scalars(
            select(FlowDefinition.id)
            .join(TeamMember, TeamMember.team_id == FlowDefinition.team_id)
            .where(TeamMember.worker_id == worker.id, _not_paused(worker.id))
        )
    )


def _not_paused(worker_id: Any) -> Any:
    """The flow is not one the worker was paused from for low gold accuracy (see gold_serving)."""
    return ~exists().where(
        WorkerPause.flow_id == FlowDefinition.id, WorkerPause.worker_id == worker_id, WorkerPause.cleared_at.is_(None)
    )


# Each of the worker's teams with each of its flows they were not paused from (built once).
_SCOPE = (
    select(TeamMember.team_id, FlowDefinition.id)
    .outerjoin(FlowDefinition, and_(FlowDefinition.team_id == TeamMember.team_id, _not_paused(bindparam("worker"))))
    .where(TeamMember.worker_id == bindparam("worker"))
)


def list_jobs(session: Session, worker: Worker) -> list[Job]:
    """One entry per flow the worker may work on, with the tasks waiting for them: their
    teams' flows, and the flows with loops escalated to one of their teams now (or whose
    escalated task they hold)."""
    _require_active(worker)
    scope = claim_scope(session, worker)
    escalated_flows = set(
        session.scalars(
            select(TaskSlot.flow_id)
            .where(
                TaskSlot.escalation_team_id.in_(scope.team_ids),
                or_(TaskSlot.status == "available", and_(TaskSlot.status == "held", TaskSlot.worker_id == worker.id)),
            )
            .distinct()
        )
    ) - set(scope.flow_ids)
    flows = session.scalars(
        select(FlowDefinition)
        .where(FlowDefinition.id.in_([*scope.flow_ids, *escalated_flows]))
        .order_by(FlowDefinition.name)
    ).all()
    jobs = []
    for flow in flows:
        waiting = session.scalar(
            select(func.count(func.distinct(TaskSlot.loop_id))).where(
                or_(*scope.conditions(flow.id)),
                TaskSlot.status == "available",
                ~_worker_touched(TaskSlot.loop_id, worker.id),
            )
        )
        jobs.append(Job(flow, int(waiting or 0), escalated=flow.id in escalated_flows))
    return jobs


def claim_next(
    session: Session,
    worker: Worker,
    *,
    flow_name: str | None = None,
    now_ms: int,
    scope: ClaimScope | None = None,
) -> HeldTask | None:
    """The worker's current task in the job if they hold one, else the next available
    slot (the most urgent first: smallest ``queue_rank``, see ``loops.queue_rank``; then
    the oldest loop; never a loop they hold, answered or declined). None if none.
    ``scope``: the worker's ``claim_scope`` when the caller has read it in this transaction."""
    _require_active(worker)
    _seen(session, worker, now_ms=now_ms)
    scope = scope or claim_scope(session, worker)
    flow_id = None
    if flow_name is not None:
        flow_id = flow_id_named(session, flow_name)
        if flow_id is None or not (flow_id in scope.flow_ids or _escalated_to(session, scope, flow_id, worker)):
            raise NotFoundError(f"You have no job named '{flow_name}'.")
    own = scope.flow_ids if flow_id is None else [f for f in scope.flow_ids if f == flow_id]
    queues = ([_CANDIDATE_OWN] if own else []) + (
        [_CANDIDATE_ESCALATED if flow_id is None else _CANDIDATE_ESCALATED_IN_FLOW] if scope.team_ids else []
    )
    if not queues:
        return None
    params = {"worker": worker.id, "now": now_ms, "flows": own, "teams": scope.team_ids, "flow": flow_id}
    current = session.scalar(_HELD_NOW if flow_id is None else _HELD_NOW_IN_FLOW, params)
    if current is not None:
        return _held(session, current)
    for _ in range(8):  # a lost race on the conditional update: try the next candidate
        # The most urgent candidate of each queue in scope (each locked, others' locks
        # skipped), then the most urgent of those.
        candidates = [candidate for queue in queues if (candidate := session.scalar(queue, params)) is not None]
        if not candidates:
            return None
        # The candidate not taken stays locked until this transaction ends: other claimers
        # skip it for that moment, never wait on it.
        slot = min(candidates, key=lambda c: (c.queue_rank, c.loop_id, c.slot_index))
        flow = flow_cache.get_flow_by_id(session, slot.flow_id)
        held = {
            "status": "held",
            "worker_id": worker.id,
            "accepted_at": now_ms,
            "lease_expires_at": now_ms + flow.time_limit_s * 1000,
        }
        values = {"slot": slot.id} | {f"new_{key}": value for key, value in held.items()}
        taken = session.connection().execute(_TAKE, values).rowcount
        if taken == 1:
            for key, value in held.items():  # what the row now holds: no read back
                set_committed_value(slot, key, value)
            return _held(session, slot)
    return None


def flow_id_named(session: Session, name: str) -> int | None:
    try:
        return flow_cache.get_flow(session, name).id
    except NotFoundError:
        return None


def get_held_task(session: Session, worker: Worker, slot_id: int, *, now_ms: int) -> HeldTask:
    slot = _own_slot(session, worker, slot_id)
    _require_live_lease(slot, now_ms=now_ms)
    return _held(session, slot)


def release(session: Session, worker: Worker, slot_id: int, *, now_ms: int) -> HumanLoop:
    """Give the task back to the pool (the work is thrown away)."""
    slot, loop = _lock_own_slot(session, worker, slot_id)
    if slot.status != "held":
        raise TaskStateError(f"Task {slot_id} was already {slot.status}; nothing to release.")
    _free_slot(slot, loop)
    settle_loop(session, loop, now_ms=now_ms)
    return loop


def decline(session: Session, worker: Worker, slot_id: int, *, now_ms: int) -> HumanLoop:
    """Give the task back and never be offered this loop again."""
    slot, loop = _lock_own_slot(session, worker, slot_id)
    if slot.status != "held":
        raise TaskStateError(f"Task {slot_id} was already {slot.status}; nothing to decline.")
    _free_slot(slot, loop)
    if session.get(Decline, (loop.id, worker.id)) is None:
        session.add(Decline(loop_id=loop.id, worker_id=worker.id, declined_at=now_ms))
    settle_loop(session, loop, now_ms=now_ms)
    session.flush()
    fall_back_if_all_declined(session, loop, now_ms=now_ms)
    return loop


def submit(session: Session, worker: Worker, slot_id: int, answer: dict[str, Any], *, now_ms: int) -> HumanLoop:
    """Record the worker's answer; the loop completes when all its answers are in (with
    adaptive reviewers, when ``adaptive.after_answer`` asks for no more)."""
    encoded = checked_answer(answer)
    _seen(session, worker, now_ms=now_ms)  # before the loop's lock, in the order disabling takes them
    slot, loop = _lock_own_slot(session, worker, slot_id)
    if slot.status == "submitted":
        raise TaskStateError(f"Task {slot_id} was submitted already; an answer counts once.")
    if slot.status != "held":
        raise TaskStateError(f"Task {slot_id} is no longer yours ({slot.status}).")
    _require_live_lease(slot, now_ms=now_ms)
    slot.status = "submitted"
    slot.submitted_at = now_ms
    slot.answer = encoded
    if loop.adaptive_info is not None:  # may ask one more worker before the loop completes
        adaptive.after_answer(session, loop, prediction=model_prediction(session, loop))
    settle_loop(session, loop, now_ms=now_ms)
    fall_back_if_all_declined(session, loop, now_ms=now_ms)  # answers still wanted, nobody left
    return loop


def checked_answer(answer: object) -> str:
    """The answer as stored JSON text; ValidationError when it may not be stored."""
    if not isinstance(answer, dict):
        raise ValidationError("The answer must be a JSON object.")
    try:  # NaN and Infinity are not JSON: output.json must stay readable everywhere
        encoded = json.dumps(answer, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (ValueError, RecursionError) as exc:
        raise ValidationError("The answer holds a number that is not finite (NaN or Infinity).") from exc
    if len(encoded) > MAX_ANSWER_CHARS:
        raise ValidationError(f"The answer is larger than {MAX_ANSWER_CHARS:,} characters.")
    refuse_lone_surrogates(answer, what="The answer")
    return encoded


def slots_of_loop(session: Session, loop: HumanLoop) -> list[tuple[TaskSlot, Worker | None]]:
    """A loop's task slots in order, with the worker holding or having answered each."""
    return [
        (slot, worker)
        for slot, worker in session.execute(
            select(TaskSlot, Worker)
            .outerjoin(Worker, Worker.id == TaskSlot.worker_id)
            .where(TaskSlot.loop_id == loop.id)
            .order_by(TaskSlot.slot_index)
        )
    ]


def release_all_for_worker(session: Session, worker: Worker, *, now_ms: int) -> None:
    """Free every slot the worker holds and may no longer work on (they were disabled,
    removed, or left the team that gave them the task)."""
    slot_ids = session.scalars(
        select(TaskSlot.id).where(TaskSlot.worker_id == worker.id, TaskSlot.status == "held")
    ).all()
    for slot_id in slot_ids:
        slot = session.get_one(TaskSlot, slot_id)
        if worker.status == "active" and _member_for(session, worker, slot):
            continue
        loop = _lock_loop(session, slot.loop_id)
        session.refresh(slot)
        if slot.status == "held":
            _free_slot(slot, loop)
            settle_loop(session, loop, now_ms=now_ms)


def recheck_declines(session: Session, team_ids: Sequence[int], *, now_ms: int) -> None:
    """After a worker of these teams left (disabled, removed, or off a team): the waiting
    loops those teams answer that somebody declined may have nobody left who could answer,
    so run the all-declined check on each now instead of waiting for a deadline."""
    loop_ids = session.scalars(
        select(HumanLoop.id)
        .join(FlowDefinition, FlowDefinition.id == HumanLoop.flow_id)
        .where(
            HumanLoop.status == "InProgress",
            HumanLoop.output_state == "none",
            or_(FlowDefinition.team_id.in_(team_ids), HumanLoop.escalation_team_id.in_(team_ids)),
            exists().where(Decline.loop_id == HumanLoop.id),
        )
        .order_by(HumanLoop.id)
    ).all()
    for loop_id in loop_ids:
        fall_back_if_all_declined(session, _lock_loop(session, loop_id), now_ms=now_ms)


# -- workforce changes that end a worker's hold on tasks ----------------------------------
# The web layer calls these, not workforce's own, so that no path forgets the tasks or the
# loops that were waiting for this worker.


def remove_member(session: Session, team_name: str, email: str, *, now_ms: int) -> None:
    """Take a worker off a team; the tasks they held through it go back to the pool."""
    workforce.remove_member(session, team_name, email)
    team = workforce.get_team(session, team_name)
    release_all_for_worker(session, workforce.get_worker(session, email), now_ms=now_ms)
    recheck_declines(session, [team.id], now_ms=now_ms)


def set_worker_status(session: Session, email: str, status: str, *, now_ms: int) -> Worker:
    """Enable or disable a worker; disabling gives the tasks they hold back to the pool."""
    worker = workforce.set_worker_status(session, email, status)
    if worker.status == "disabled":
        release_all_for_worker(session, worker, now_ms=now_ms)
        recheck_declines(session, claim_scope(session, worker).team_ids, now_ms=now_ms)
    return worker


def remove_worker(session: Session, email: str, *, now_ms: int) -> Worker:
    """Disable the worker and take them off every team; the tasks they hold go back to the pool."""
    team_ids = claim_scope(session, workforce.get_worker(session, email)).team_ids
    worker = workforce.remove_worker(session, email)
    release_all_for_worker(session, worker, now_ms=now_ms)
    recheck_declines(session, team_ids, now_ms=now_ms)
    return worker


def expire_leases(session: Session, *, now_ms: int, limit: int = 500) -> int:
    """Return slots whose time limit passed to the pool. Idempotent; safe in N processes."""
    slots = session.scalars(
        select(TaskSlot)
        .where(TaskSlot.status == "held", TaskSlot.lease_expires_at <= now_ms)
        .order_by(TaskSlot.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    done = 0
    for slot in slots:
        loop = _lock_loop(session, slot.loop_id)
        session.refresh(slot)
        if slot.status == "held" and (slot.lease_expires_at or 0) <= now_ms:
            _free_slot(slot, loop)
            settle_loop(session, loop, now_ms=now_ms)
            done += 1
    return done


def expire_loops(session: Session, *, now_ms: int, limit: int = 500) -> int:
    """Fail loops nobody finished within the availability lifetime (FailureCode Expired).
    A loop a worker is still working on waits for that worker's lease."""
    loops = session.scalars(
        select(HumanLoop)
        .where(
            HumanLoop.status == "InProgress",
            HumanLoop.output_state == "none",
            HumanLoop.expires_at <= now_ms,
        )
        .order_by(HumanLoop.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    done = 0
    for loop in loops:
        held = session.scalar(
            select(func.count()).where(
                TaskSlot.loop_id == loop.id,
                TaskSlot.status == "held",
                TaskSlot.lease_expires_at > now_ms,
            )
        )
        if held:
            continue
        session.execute(
            update(TaskSlot).where(TaskSlot.loop_id == loop.id, TaskSlot.status == "held").values(status="cancelled")
        )
        fail_loop(
            session,
            loop,
            code="Expired",
            reason="The task availability lifetime ran out before all answers were in.",
            now_ms=now_ms,
        )
        done += 1
    return done


def _worker_touched(loop_id_col: Any, worker_id: Any) -> Any:
    return exists().where(
        _OTHER_SLOTS.c.loop_id == loop_id_col, _OTHER_SLOTS.c.worker_id == worker_id
    ) | exists().where(Decline.loop_id == loop_id_col, Decline.worker_id == worker_id)


# The claim's statements, built once with parameters (``claim_next``'s ``params``): building
# one per call, and its cache key, cost as much as running it.
_IN_FLOWS = TaskSlot.flow_id.in_(bindparam("flows", expanding=True))
_IN_TEAMS = TaskSlot.escalation_team_id.in_(bindparam("teams", expanding=True))
_OF_FLOW = TaskSlot.flow_id == bindparam("flow")


def _held_now(escalated: Any) -> Any:
    """The slot the worker holds, of their teams' flows or of a loop ``escalated`` to them."""
    return (
        select(TaskSlot)
        .where(
            TaskSlot.worker_id == bindparam("worker"),
            TaskSlot.status == "held",
            or_(_IN_FLOWS, escalated),
            TaskSlot.lease_expires_at > bindparam("now"),
        )
        .order_by(TaskSlot.accepted_at)
        .limit(1)
    )


def _candidate(queue: Any) -> Any:
    """The most urgent slot of one queue (one index) the worker may take, locked."""
    return (
        select(TaskSlot)
        .where(TaskSlot.status == "available", queue, ~_worker_touched(TaskSlot.loop_id, bindparam("worker")))
        .order_by(TaskSlot.queue_rank, TaskSlot.loop_id, TaskSlot.slot_index)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


_HELD_NOW = _held_now(_IN_TEAMS)
_HELD_NOW_IN_FLOW = _held_now(and_(_IN_TEAMS, _OF_FLOW))
_CANDIDATE_OWN = _candidate(_IN_FLOWS)
_CANDIDATE_ESCALATED = _candidate(_IN_TEAMS)
_CANDIDATE_ESCALATED_IN_FLOW = _candidate(and_(_IN_TEAMS, _OF_FLOW))
_TAKE = (
    update(_TASK_SLOTS)
    .where(_TASK_SLOTS.c.id == bindparam("slot"), _TASK_SLOTS.c.status == "available")
    .values({name: bindparam(f"new_{name}") for name in ("status", "worker_id", "accepted_at", "lease_expires_at")})
)


def _held(session: Session, slot: TaskSlot) -> HeldTask:
    loop = session.get_one(HumanLoop, slot.loop_id)
    return HeldTask(slot, loop, flow_cache.get_flow_by_id(session, slot.flow_id))


def _own_slot(session: Session, worker: Worker, slot_id: int) -> TaskSlot:
    _require_active(worker)
    slot = session.get(TaskSlot, slot_id) if fits_db_int(slot_id) else None
    if slot is None or slot.worker_id != worker.id or not _member_for(session, worker, slot):
        # The same answer for "no such task" and "someone else's task": nothing leaks.
        raise NotFoundError(
            f"You do not hold task {slot_id}: it is not yours, or it was released or its "
            "time limit passed and it went back to the pool."
        )
    return slot


def _member_for(session: Session, worker: Worker, slot: TaskSlot) -> bool:
    """Whether the worker is (still) on the team of the slot's flow, or on the team its
    loop escalated to: checked on every task action, so a worker taken off a team can no
    longer read or answer its tasks."""
    flow = flow_cache.get_flow_by_id(session, slot.flow_id)
    teams = [flow.team_id] if slot.escalation_team_id is None else [flow.team_id, slot.escalation_team_id]
    return any(session.get(TeamMember, (team_id, worker.id)) is not None for team_id in teams)


def _escalated_to(session: Session, scope: ClaimScope, flow_id: int, worker: Worker) -> bool:
    """Whether the flow has a loop escalated to one of the worker's teams now (a task
    waiting, or one the worker holds)."""
    return scope.team_ids != [] and (
        session.scalar(
            select(TaskSlot.id)
            .where(
                TaskSlot.flow_id == flow_id,
                TaskSlot.escalation_team_id.in_(scope.team_ids),
                or_(TaskSlot.status == "available", and_(TaskSlot.status == "held", TaskSlot.worker_id == worker.id)),
            )
            .limit(1)
        )
        is not None
    )


def _lock_own_slot(session: Session, worker: Worker, slot_id: int) -> tuple[TaskSlot, HumanLoop]:
    slot = _own_slot(session, worker, slot_id)
    loop = _lock_loop(session, slot.loop_id)
    if session.get_bind().dialect.name != "sqlite":
        # Read again under the loop's lock. On SQLite the write transaction (BEGIN
        # IMMEDIATE) held the database's lock when the slot was read: it is current.
        session.refresh(slot, with_for_update=True)
    if slot.worker_id != worker.id:
        raise NotFoundError(f"You hold no task {slot_id}.")
    return slot, loop


_LOCK_LOOP = (
    select(HumanLoop)
    .where(HumanLoop.id == bindparam("loop"))
    .with_for_update()
    .execution_options(populate_existing=True)  # the row as locked, not an older copy
)


def _lock_loop(session: Session, loop_id: int) -> HumanLoop:
    loop = session.scalar(_LOCK_LOOP, {"loop": loop_id})
    if loop is None:
        raise NotFoundError("The human loop of this task was deleted.")
    return loop


def _free_slot(slot: TaskSlot, loop: HumanLoop) -> None:
    slot.status = "available" if loop.status == "InProgress" and loop.output_state == "none" else "cancelled"
    slot.worker_id = None
    slot.accepted_at = None
    slot.lease_expires_at = None


def _seen(session: Session, worker: Worker, *, now_ms: int) -> None:
    """Move the worker's last_seen_at on (for the overview's active workers), at most once
    every ``SEEN_EVERY_MS`` so that a busy worker does not write their row on every task."""
    if worker.last_seen_at is not None and worker.last_seen_at >= now_ms - SEEN_EVERY_MS:
        return  # as read with this request's sign-in check: recent enough, no statement
    session.execute(
        update(Worker)
        .where(
            Worker.id == worker.id,
            or_(Worker.last_seen_at.is_(None), Worker.last_seen_at < now_ms - SEEN_EVERY_MS),
        )
        .values(last_seen_at=now_ms)
        .execution_options(synchronize_session=False)
    )


def _require_live_lease(slot: TaskSlot, *, now_ms: int) -> None:
    if slot.status == "held" and (slot.lease_expires_at or 0) <= now_ms:
        raise TaskStateError("The time limit for this task has passed; the task went back to the pool.")


def _require_active(worker: Worker) -> None:
    if worker.status != "active":
        raise AccessDeniedError("This worker account is not active.")
