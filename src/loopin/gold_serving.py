"""Serving gold items to workers, mixed into their flows' tasks, and scoring their answers.

The worker surfaces (the API and the worker console) call this module's ``claim_next``,
``get_held_task``, ``release``, ``decline`` and ``submit`` instead of ``tasks``'; each
handles a gold task itself and hands anything else to ``tasks``. A gold task is shown
through the same ``HeldTask`` as a real one (built from transient rows, never added to the
session), so the task page, the frame and the API's task object are the same; its id comes
from the task slots' id space (PostgreSQL: their sequence; SQLite: one past the largest
id of both tables), so it reads as any task's id. A gold answer is scored, stored on the
gold task and nothing else: no loop, no output.json, no event, no counter.

A worker whose gold accuracy in a flow (over at least the flow's ``min_scored`` gold tasks
since their last un-pause) falls below its ``min_accuracy`` is paused from the flow: a
``WorkerPause`` row (``tasks`` leaves paused flows out of the worker's jobs) and the tasks
of the flow they hold go back to the pool.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from sqlalchemy import bindparam, exists, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopin import flow_cache, gold, tasks
from loopin.errors import AccessDeniedError, NotFoundError, TaskStateError
from loopin.models import FlowDefinition, GoldItem, GoldTask, HumanLoop, TaskSlot, Worker, WorkerPause
from loopin.validation import fits_db_int

_random = random.SystemRandom()
T = TypeVar("T")


# -- claiming -------------------------------------------------------------------------


def claim_next(
    session: Session,
    worker: Worker,
    *,
    flow_name: str | None = None,
    now_ms: int,
    rng: random.Random | None = None,
) -> tasks.HeldTask | None:
    """The task the worker holds (gold or real), else, at the flow's gold rate and while a
    real task is waiting for them, a gold item they have not been served, else the next
    real task (``tasks.claim_next``)."""
    if worker.status != "active":
        raise AccessDeniedError("This worker account is not active.")
    scope = tasks.claim_scope(session, worker)
    flow_ids = scope.flow_ids
    if flow_name is not None:
        flow_id = tasks.flow_id_named(session, flow_name)
        if flow_id is None or flow_id not in flow_ids:
            # Not one of their teams' flows: no gold there; ``tasks`` knows whether the
            # flow is theirs through an escalation, or not theirs at all.
            return tasks.claim_next(session, worker, flow_name=flow_name, now_ms=now_ms, scope=scope)
        flow_ids = [flow_id]
    held = _held_gold(session, worker, flow_ids, now_ms=now_ms)
    if held is not None:
        return _view(session, held)
    # Most flows draw no gold: the flow cache tells, and the checks below are skipped.
    drawing = _flows_drawing_gold(session, flow_ids)
    if drawing and not _holds_real_task(session, worker, flow_ids, now_ms=now_ms):
        served = _serve_gold(session, worker, drawing, now_ms=now_ms, rng=rng or _random)
        if served is not None:
            return _view(session, served)
    return tasks.claim_next(session, worker, flow_name=flow_name, now_ms=now_ms, scope=scope)


def held_flow_ids(session: Session, worker: Worker, *, now_ms: int) -> set[int]:
    """The flows in which the worker holds a gold task right now."""
    return set(
        session.scalars(
            select(GoldTask.flow_id).where(
                GoldTask.worker_id == worker.id, GoldTask.status == "held", GoldTask.lease_expires_at > now_ms
            )
        )
    )


_HELD_GOLD = (  # built once: every claim asks it
    select(GoldTask)
    .where(
        GoldTask.worker_id == bindparam("worker"),
        GoldTask.status == "held",
        GoldTask.flow_id.in_(bindparam("flows", expanding=True)),
        GoldTask.lease_expires_at > bindparam("now"),
    )
    .order_by(GoldTask.accepted_at)
    .limit(1)
)


def _held_gold(session: Session, worker: Worker, flow_ids: Collection[int], *, now_ms: int) -> GoldTask | None:
    return session.scalar(_HELD_GOLD, {"worker": worker.id, "flows": list(flow_ids), "now": now_ms})


def _holds_real_task(session: Session, worker: Worker, flow_ids: Collection[int], *, now_ms: int) -> bool:
    return (
        session.scalar(
            select(TaskSlot.id)
            .where(
                TaskSlot.worker_id == worker.id,
                TaskSlot.status == "held",
                TaskSlot.flow_id.in_(flow_ids),
                TaskSlot.lease_expires_at > now_ms,
            )
            .limit(1)
        )
        is not None
    )


def _flows_drawing_gold(session: Session, flow_ids: Collection[int]) -> dict[int, float]:
    """The gold rate of each of these flows that draws gold (rate above 0)."""
    rates = flow_cache.gold_rates(session)
    return {flow_id: rates[flow_id] for flow_id in flow_ids if flow_id in rates}


def _serve_gold(
    session: Session, worker: Worker, rates: dict[int, float], *, now_ms: int, rng: random.Random
) -> GoldTask | None:
    """A new gold task in the first of the flows (by name) that draws gold at its rate
    (``rates``), has a real task waiting for the worker (a gold task never comes from an
    empty queue) and an item the worker was never served."""
    waiting: dict[int, int] | None = None
    for flow in session.scalars(
        select(FlowDefinition).where(FlowDefinition.id.in_(rates)).order_by(FlowDefinition.name)
    ):
        rate = rates[flow.id]
        if rng.random() >= rate:
            continue
        if waiting is None:
            waiting = {job.flow.id: job.tasks_waiting for job in tasks.list_jobs(session, worker)}
        if not waiting.get(flow.id):
            continue
        item = session.scalar(
            select(GoldItem)
            .where(
                GoldItem.flow_id == flow.id,
                ~exists().where(GoldTask.gold_item_id == GoldItem.id, GoldTask.worker_id == worker.id),
            )
            .order_by(func.random())
            .limit(1)
        )
        if item is None:
            continue
        task = GoldTask(
            id=_next_task_id(session),
            gold_item_id=item.id,
            flow_id=flow.id,
            worker_id=worker.id,
            status="held",
            accepted_at=now_ms,
            lease_expires_at=now_ms + flow.time_limit_s * 1000,
        )
        try:
            with session.begin_nested():  # a concurrent claim of the same worker served it first
                session.add(task)
        except IntegrityError:
            continue
        return task
    return None


def _next_task_id(session: Session) -> int:
    if session.get_bind().dialect.name == "postgresql":
        return int(session.scalar(text("SELECT nextval(pg_get_serial_sequence('task_slots', 'id'))")) or 0)
    largest = max(
        session.scalar(select(func.max(TaskSlot.id))) or 0,
        session.scalar(select(func.max(GoldTask.id))) or 0,
    )
    return int(largest) + 1


def _view(session: Session, task: GoldTask) -> tasks.HeldTask:
    """The gold task as a HeldTask: transient TaskSlot and HumanLoop objects (never added to
    the session) carrying what the surfaces show."""
    flow = session.get_one(FlowDefinition, task.flow_id)
    item = session.get(GoldItem, task.gold_item_id) if task.gold_item_id is not None else None
    slot = TaskSlot(
        id=task.id,
        flow_id=task.flow_id,
        slot_index=0,
        status=task.status,
        worker_id=task.worker_id,
        accepted_at=task.accepted_at,
        lease_expires_at=task.lease_expires_at,
        submitted_at=task.submitted_at,
    )
    loop = HumanLoop(
        name=f"gold-item-{task.gold_item_id}",
        flow_id=task.flow_id,
        status="InProgress",
        input_content=item.input_content if item is not None else "{}",
    )
    return tasks.HeldTask(slot, loop, flow)


# -- a held task ----------------------------------------------------------------------


def gold_task_of(session: Session, worker: Worker, task_id: int) -> GoldTask | None:
    """The worker's gold task with this id; None when it is not one (a real slot the worker
    owns with the same id wins: on SQLite the two can share an id)."""
    if not fits_db_int(task_id):
        return None
    task = session.get(GoldTask, task_id)
    if task is None or task.worker_id != worker.id or task.gold_item_id is None:
        return None
    if session.scalar(select(TaskSlot.id).where(TaskSlot.id == task_id, TaskSlot.worker_id == worker.id)):
        return None
    return task


def _real_or_gold(session: Session, worker: Worker, task_id: int, real: Callable[[], T]) -> T | GoldTask:
    """``real()`` (the action on the worker's real task with this id), or, when the worker
    holds no real task with this id, their gold task with it. The real task is tried first:
    most tasks are real, and the real slot wins when the two share an id."""
    try:
        return real()
    except NotFoundError:
        task = gold_task_of(session, worker, task_id)
        if task is None:
            raise
        return task


def get_held_task(session: Session, worker: Worker, task_id: int, *, now_ms: int) -> tasks.HeldTask:
    found = _real_or_gold(
        session, worker, task_id, lambda: tasks.get_held_task(session, worker, task_id, now_ms=now_ms)
    )
    if not isinstance(found, GoldTask):
        return found
    _check_usable(session, worker, found, now_ms=now_ms)
    return _view(session, found)


def release(session: Session, worker: Worker, task_id: int, *, now_ms: int) -> HumanLoop:
    found = _real_or_gold(session, worker, task_id, lambda: tasks.release(session, worker, task_id, now_ms=now_ms))
    return _give_back(session, worker, found, "released", now_ms=now_ms) if isinstance(found, GoldTask) else found


def decline(session: Session, worker: Worker, task_id: int, *, now_ms: int) -> HumanLoop:
    found = _real_or_gold(session, worker, task_id, lambda: tasks.decline(session, worker, task_id, now_ms=now_ms))
    return _give_back(session, worker, found, "declined", now_ms=now_ms) if isinstance(found, GoldTask) else found


def submit(session: Session, worker: Worker, task_id: int, answer: dict[str, Any], *, now_ms: int) -> HumanLoop:
    """Submit an answer: a gold task's is scored (and may pause the worker), a real one
    goes to ``tasks.submit``. Returns the loop (for a gold task a transient one naming the
    flow)."""
    found = _real_or_gold(
        session, worker, task_id, lambda: tasks.submit(session, worker, task_id, answer, now_ms=now_ms)
    )
    if not isinstance(found, GoldTask):
        return found
    task = found
    encoded = tasks.checked_answer(answer)
    session.refresh(task, with_for_update=True)
    if task.status == "submitted":
        raise TaskStateError(f"Task {task_id} was submitted already; an answer counts once.")
    _check_usable(session, worker, task, now_ms=now_ms)
    item = session.get_one(GoldItem, task.gold_item_id)
    task.status = "submitted"
    task.submitted_at = now_ms
    task.answer = encoded
    task.score = round(gold.score(answer, json.loads(item.answer)), 6)
    session.flush()
    pause_if_below(session, worker, task.flow_id, now_ms=now_ms)
    return _view(session, task).loop


def _give_back(session: Session, worker: Worker, task: GoldTask, status: str, *, now_ms: int) -> HumanLoop:
    session.refresh(task, with_for_update=True)
    if task.status != "held":
        raise TaskStateError(f"Task {task.id} was already {task.status}; nothing to {status[:-1]}.")
    _check_usable(session, worker, task, now_ms=now_ms)
    loop = _view(session, task).loop
    task.status = status  # never served to this worker again, like a declined loop
    return loop


def _check_usable(session: Session, worker: Worker, task: GoldTask, *, now_ms: int) -> None:
    """The same refusals, in the same words, as ``tasks`` gives for a real slot."""
    if worker.status != "active":
        raise AccessDeniedError("This worker account is not active.")
    if task.flow_id not in tasks.worker_flow_ids(session, worker) or task.status in ("released", "declined"):
        raise NotFoundError(
            f"You do not hold task {task.id}: it is not yours, or it was released or its "
            "time limit passed and it went back to the pool."
        )
    if task.status == "held" and task.lease_expires_at <= now_ms:
        raise TaskStateError("The time limit for this task has passed; the task went back to the pool.")


# -- pausing --------------------------------------------------------------------------


def accuracy_since_unpause(session: Session, worker_id: int, flow_id: int) -> tuple[float | None, int]:
    """The worker's mean gold score in the flow and how many gold tasks it is over, counting
    only those submitted after their last un-pause."""
    pause = session.get(WorkerPause, (flow_id, worker_id))
    query = select(func.avg(GoldTask.score), func.count()).where(
        GoldTask.worker_id == worker_id, GoldTask.flow_id == flow_id, GoldTask.status == "submitted"
    )
    if pause is not None and pause.cleared_at is not None:
        query = query.where(GoldTask.submitted_at > pause.cleared_at)
    mean, n = session.execute(query).one()
    return (None if mean is None else float(mean)), int(n)


def pause_if_below(session: Session, worker: Worker, flow_id: int, *, now_ms: int) -> WorkerPause | None:
    flow = session.get_one(FlowDefinition, flow_id)
    settings = gold.get_settings(session, flow)
    if settings.min_accuracy is None:
        return None
    accuracy, scored = accuracy_since_unpause(session, worker.id, flow.id)
    if accuracy is None or scored < settings.min_scored or accuracy >= settings.min_accuracy:
        return None
    pause = session.get(WorkerPause, (flow.id, worker.id))
    if pause is not None and pause.cleared_at is None:
        return pause
    reason = (
        f"Gold accuracy {accuracy:.0%} over {scored} gold tasks is below the flow's limit of "
        f"{settings.min_accuracy:.0%}."
    )
    if pause is None:
        pause = WorkerPause(flow_id=flow.id, worker_id=worker.id)
        session.add(pause)
    pause.paused_at = now_ms
    pause.reason = reason
    pause.accuracy = round(accuracy, 6)
    pause.scored = scored
    pause.cleared_at = None
    session.flush()
    _release_held(session, worker, flow.id, now_ms=now_ms)
    return pause


def _release_held(session: Session, worker: Worker, flow_id: int, *, now_ms: int) -> None:
    """Give back every task of the flow the worker holds (real ones to the pool)."""
    slot_ids = session.scalars(
        select(TaskSlot.id).where(
            TaskSlot.worker_id == worker.id, TaskSlot.status == "held", TaskSlot.flow_id == flow_id
        )
    ).all()
    for slot_id in slot_ids:
        tasks.release(session, worker, slot_id, now_ms=now_ms)
    for task in session.scalars(
        select(GoldTask).where(GoldTask.worker_id == worker.id, GoldTask.flow_id == flow_id, GoldTask.status == "held")
    ):
        task.status = "released"
