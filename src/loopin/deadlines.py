"""Deadlines and fallbacks: a loop gets an answer in time, always (docs/deadlines.md).

A flow may give its loops a deadline (``deadline_s``). When it passes before all the
answers are in (``fall_back_overdue``, run by the background runner), or when every worker
who could still answer has declined (``fall_back_if_all_declined``, run after a decline or
an answer), the loop is finished by its fallback:

1. the answers already in (``kind='partialAnswers'``), else
2. with ``fallback='model'``, the model's own prediction (``kind='model'``): the boxes
   pre-filled in the loop's input, with the prediction log's provenance, else
3. the loop fails (``FailureCode`` ``Expired``; ``kind='fail'``).

Cases 1 and 2 complete the loop (status Completed, ``output.json`` with a top-level
``loopinFallback`` object); the status event carries the same object. Tasks still held
are withdrawn: an answer submitted after the deadline is refused.

A flow with an escalation team first **escalates** instead (``escalate``, once per loop):
the loop's waiting task slots become claimable by the escalation team's workers too (the
flow's own team keeps them), ranked ahead of every loop that has not escalated, for the
flow's escalation time; the loop records it (``loopinEscalation``) and an InProgress event
announces it. When that time ends without all the answers, the fallback above finishes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from loopin.clock import iso_ms
from loopin.events import record_status
from loopin.loops import complete_with_answers_in, escalated_rank, fail_loop
from loopin.models import Decline, FlowDefinition, HumanLoop, Prediction, TaskSlot, TeamMember, Worker, Workteam

DEADLINE = "deadline"
ALL_DECLINED = "allDeclined"
ESCALATION_ENDED = "escalationEnded"


def fall_back_overdue(session: Session, *, now_ms: int, limit: int = 500) -> int:
    """Move on the loops whose deadline has passed (escalate them when their flow has an
    escalation team, else finish them by their fallback) and finish those whose escalation
    has ended; how many loops were moved on. Idempotent; safe in N processes (the loops are
    taken with SKIP LOCKED and re-checked under their lock)."""
    done = 0
    past_deadline = _open_loops_locked(
        session,
        HumanLoop.deadline_at.is_not(None),
        HumanLoop.deadline_at <= now_ms,
        HumanLoop.escalation_info.is_(None),
        order=HumanLoop.deadline_at,
        limit=limit,
    )
    for loop in past_deadline:
        if loop.escalation_info is None:
            if not escalate(session, loop, trigger=DEADLINE, now_ms=now_ms):
                fall_back(session, loop, trigger=DEADLINE, now_ms=now_ms)
            done += 1
    escalation_over = _open_loops_locked(
        session,
        HumanLoop.escalation_ends_at.is_not(None),
        HumanLoop.escalation_ends_at <= now_ms,
        order=HumanLoop.escalation_ends_at,
        limit=limit,
    )
    for loop in escalation_over:
        fall_back(session, loop, trigger=ESCALATION_ENDED, now_ms=now_ms)
        done += 1
    return done


def _open_loops_locked(session: Session, *conditions: Any, order: Any, limit: int) -> list[HumanLoop]:
    """Loops in progress matching ``conditions``, locked (others' locks skipped) and
    re-read under the lock; those another process finished meanwhile left out."""
    loops = session.scalars(
        select(HumanLoop)
        .where(HumanLoop.status == "InProgress", HumanLoop.output_state == "none", *conditions)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for loop in loops:
        session.refresh(loop)
    return [loop for loop in loops if loop.status == "InProgress" and loop.output_state == "none"]


def escalate(session: Session, loop: HumanLoop, *, trigger: str, now_ms: int) -> bool:
    """Open the loop's task slots to the flow's escalation team for the escalation time
    (the caller holds the loop's lock). False when the flow has no escalation team or the
    loop escalated already: a loop escalates once."""
    flow = session.get_one(FlowDefinition, loop.flow_id)
    if flow.escalation_team_id is None or flow.escalation_s is None or loop.escalation_info is not None:
        return False
    team = session.get_one(Workteam, flow.escalation_team_id)
    # Never past the availability lifetime, even if the flow's settings changed since the start.
    ends = min(now_ms + flow.escalation_s * 1000, loop.expires_at)
    info = {
        "team": team.name,
        "trigger": trigger,
        "reason": _why(session, flow, trigger),
        "time": iso_ms(now_ms),
        "endsAt": iso_ms(ends),
        "escalationSeconds": flow.escalation_s,
    }
    loop.escalation_info = json.dumps(info, sort_keys=True)
    loop.escalation_team_id = team.id
    loop.escalation_ends_at = ends
    session.execute(
        update(TaskSlot)
        .where(TaskSlot.loop_id == loop.id)
        .values(escalation_team_id=team.id, queue_rank=escalated_rank(escalated_at=now_ms))
    )
    record_status(session, loop, now_ms=now_ms)  # an InProgress event carrying loopinEscalation
    return True


def answering_teams(loop: HumanLoop, flow: FlowDefinition) -> list[int]:
    """The teams whose workers may answer the loop now: the flow's, and during an
    escalation the escalation team too."""
    return [flow.team_id] if loop.escalation_team_id is None else [flow.team_id, loop.escalation_team_id]


def fall_back_if_all_declined(session: Session, loop: HumanLoop, *, now_ms: int) -> bool:
    """After a decline, an answer or a worker leaving (the caller holds the loop's lock):
    if answers are still wanted, nobody holds a task, somebody declined, and no active
    member of the answering teams (``answering_teams``) is left who has neither answered
    nor declined, escalate at once (when the flow escalates and the escalation team has
    somebody who could answer), else fall back at once. True when the loop moved on."""
    if loop.status != "InProgress" or loop.output_state != "none":
        return False
    counts = dict(
        session.execute(
            select(TaskSlot.status, func.count()).where(TaskSlot.loop_id == loop.id).group_by(TaskSlot.status)
        ).all()
    )
    if counts.get("held", 0) or not counts.get("available", 0):
        return False
    if session.scalar(select(func.count()).where(Decline.loop_id == loop.id)) == 0:
        return False
    flow = session.get_one(FlowDefinition, loop.flow_id)
    if _still_eligible(session, loop, answering_teams(loop, flow)):
        return False
    if escalate(session, loop, trigger=ALL_DECLINED, now_ms=now_ms) and _still_eligible(
        session, loop, answering_teams(loop, flow)
    ):
        return True
    fall_back(session, loop, trigger=ALL_DECLINED, now_ms=now_ms)
    return True


def _still_eligible(session: Session, loop: HumanLoop, team_ids: list[int]) -> int:
    """Active members of these teams who have neither answered, held nor declined the loop."""
    return (
        session.scalar(
            select(func.count(func.distinct(Worker.id)))
            .select_from(TeamMember)
            .join(Worker, Worker.id == TeamMember.worker_id)
            .where(
                TeamMember.team_id.in_(team_ids),
                Worker.status == "active",
                ~exists().where(TaskSlot.loop_id == loop.id, TaskSlot.worker_id == Worker.id),
                ~exists().where(Decline.loop_id == loop.id, Decline.worker_id == Worker.id),
            )
        )
        or 0
    )


def fall_back(session: Session, loop: HumanLoop, *, trigger: str, now_ms: int) -> None:
    """Finish a loop in progress with the best answer there is (see the module's notes)."""
    flow = session.get_one(FlowDefinition, loop.flow_id)
    session.execute(
        update(TaskSlot)
        .where(TaskSlot.loop_id == loop.id, TaskSlot.status.in_(("available", "held")))
        .values(status="cancelled", lease_expires_at=None)
    )
    wanted = session.scalar(select(func.count()).where(TaskSlot.loop_id == loop.id)) or 0
    received = (
        session.scalar(select(func.count()).where(TaskSlot.loop_id == loop.id, TaskSlot.status == "submitted")) or 0
    )
    why = _why(session, flow, trigger, loop)
    info: dict[str, Any] = {
        "trigger": trigger,
        "reason": why,
        "time": iso_ms(now_ms),
        "answersReceived": received,
        "answersWanted": wanted,
    }
    if received:
        info["kind"] = "partialAnswers"
    elif flow.fallback == "model" and (answer := model_answer(session, loop)) is not None:
        info["kind"] = "model"
        info["modelAnswer"] = answer
    else:
        info["kind"] = "fail"
        loop.fallback_info = json.dumps(info, sort_keys=True)
        detail = "no model prediction to fall back to" if flow.fallback == "model" else "the flow's fallback is 'fail'"
        fail_loop(session, loop, code="Expired", reason=f"{why} No answer was in and {detail}.", now_ms=now_ms)
        return
    loop.fallback_info = json.dumps(info, sort_keys=True)
    complete_with_answers_in(loop, now_ms=now_ms)


def model_answer(session: Session, loop: HumanLoop) -> dict[str, Any] | None:
    """The model's own answer for the loop: the boxes pre-filled in its input
    (``initialValue``, what the routing judged confident), else the confident detections
    of the prediction that started it; with that prediction's provenance when logged.
    None when there is neither (a loop started by hand without pre-filled boxes)."""
    prediction = session.scalar(
        select(Prediction)
        .where(Prediction.loop_name == loop.name, Prediction.created_at <= loop.created_at)
        .order_by(Prediction.id.desc())
        .limit(1)
    )
    try:
        task_input = json.loads(loop.input_content)
    except ValueError:
        task_input = {}
    boxes: list[Any] | None = None
    source = None
    initial = task_input.get("initialValue") if isinstance(task_input, dict) else None
    if isinstance(initial, list):
        boxes, source = initial, "inputContent.initialValue"
    elif prediction is not None:
        threshold = prediction.threshold
        boxes = [
            {
                "label": d["label"],
                "left": round(d["left"]),
                "top": round(d["top"]),
                "width": round(d["right"] - d["left"]),
                "height": round(d["bottom"] - d["top"]),
                "score": d["score"],
            }
            for d in json.loads(prediction.detections)
            if threshold is None or d["score"] >= threshold
        ]
        source = "predictionLog"
    if boxes is None:
        return None
    answer: dict[str, Any] = {"source": source, "boundingBoxes": boxes}
    if prediction is not None:
        answer["predictionId"] = prediction.id
        answer["endpointName"] = prediction.endpoint_name
        answer["modelName"] = prediction.model_name
    return answer


def model_prediction(session: Session, loop: HumanLoop) -> str | list[Any] | None:
    """What the model said, for adaptive reviewers: a label (or labels) pre-filled in the
    input's ``initialValue``, else its boxes (``model_answer``); None: nothing to compare."""
    try:
        task_input = json.loads(loop.input_content)
    except ValueError:
        task_input = {}
    if not isinstance(task_input, dict):
        return None
    initial = task_input.get("initialValue")
    if isinstance(initial, str):
        return initial
    if isinstance(initial, list) and initial and all(isinstance(x, str) for x in initial):
        return list(initial)
    found = model_answer(session, loop)
    return None if found is None else list(found["boundingBoxes"])


def declined_by(session: Session, loop: HumanLoop) -> list[tuple[str, int]]:
    """Who declined the loop and when: (e-mail, epoch ms), earliest first."""
    return [
        (email, at)
        for email, at in session.execute(
            select(Worker.email, Decline.declined_at)
            .join(Worker, Worker.id == Decline.worker_id)
            .where(Decline.loop_id == loop.id)
            .order_by(Decline.declined_at, Worker.email)
        )
    ]


def _why(session: Session, flow: FlowDefinition, trigger: str, loop: HumanLoop | None = None) -> str:
    if trigger == DEADLINE:
        return f"The deadline ({flow.deadline_s} s after the start) passed before all answers were in."
    if trigger == ESCALATION_ENDED and loop is not None and loop.escalation_info:
        escalation = json.loads(loop.escalation_info)
        return (
            f"The escalation to team '{escalation['team']}' ({escalation['escalationSeconds']} s) "
            "ended before all answers were in."
        )
    if loop is not None and loop.escalation_info:
        return "Every active worker of the flow's team and of the escalation team who had not answered declined."
    return "Every active worker of the flow's team who had not answered declined the task."


SERVICE_SAMPLE = 2_000  # the service-level view reads at most this many recent loops
WAITING_AGES = ((600_000, "under 10 min"), (3_600_000, "10 min – 1 h"), (86_400_000, "1 h – 1 day"))
DAY_MS = 86_400_000


@dataclass(frozen=True)
class ServiceLevels:
    """A flow's service level: its waiting loops by age (all of them, counted on the
    index of its loops by status), and over its ``sample`` most recent loops: how many
    finished, how many were answered by people within their deadline, the fallbacks used
    by kind, the median time to a human answer, and per UTC day (people / fallback /
    failed)."""

    waiting_by_age: list[tuple[str, int]]
    sample: int
    finished: int
    with_deadline: int
    in_time: int
    fallbacks: dict[str, int]
    median_answer_ms: float | None
    days: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def in_time_share(self) -> float | None:
        return self.in_time / self.with_deadline if self.with_deadline else None


def service_levels(session: Session, flow_id: int, *, now_ms: int, sample: int = SERVICE_SAMPLE) -> ServiceLevels:
    waiting = []
    lower = 0
    for upper, label in WAITING_AGES:
        waiting.append((label, _waiting_between(session, flow_id, now_ms - upper, now_ms - lower)))
        lower = upper
    waiting.append(("over 1 day", _waiting_between(session, flow_id, None, now_ms - lower)))
    rows = session.execute(
        select(
            HumanLoop.status, HumanLoop.created_at, HumanLoop.ended_at, HumanLoop.deadline_at, HumanLoop.fallback_info
        )
        .where(HumanLoop.flow_id == flow_id)
        .order_by(HumanLoop.created_at.desc(), HumanLoop.id.desc())
        .limit(sample)
    ).all()
    finished = with_deadline = in_time = 0
    fallbacks: dict[str, int] = {"partialAnswers": 0, "model": 0, "fail": 0}
    answer_times: list[int] = []
    days: dict[int, dict[str, int]] = {}
    for status, created, ended, deadline, fallback in rows:
        if ended is None or status not in ("Completed", "Failed"):
            continue
        finished += 1
        kind = json.loads(fallback).get("kind") if fallback else None
        if kind in fallbacks:
            fallbacks[kind] += 1
        by_people = status == "Completed" and kind is None
        if by_people:
            answer_times.append(ended - created)
        if deadline is not None:
            with_deadline += 1
            in_time += by_people and ended <= deadline
        bucket = "people" if by_people else "fallback" if status == "Completed" else "failed"
        day = days.setdefault(ended // DAY_MS, {"people": 0, "fallback": 0, "failed": 0})
        day[bucket] += 1
    answer_times.sort()
    median = None
    if answer_times:
        mid = len(answer_times) // 2
        median = float(answer_times[mid]) if len(answer_times) % 2 else (answer_times[mid - 1] + answer_times[mid]) / 2
    return ServiceLevels(waiting, len(rows), finished, with_deadline, in_time, fallbacks, median, days)


def _waiting_between(session: Session, flow_id: int, after_ms: int | None, before_ms: int) -> int:
    query = select(func.count()).where(
        HumanLoop.flow_id == flow_id, HumanLoop.status == "InProgress", HumanLoop.created_at <= before_ms
    )
    if after_ms is not None:
        query = query.where(HumanLoop.created_at > after_ms)
    return session.scalar(query) or 0
