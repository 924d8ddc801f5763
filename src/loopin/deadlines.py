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
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from loopin.clock import iso_ms
from loopin.loops import complete_with_answers_in, fail_loop
from loopin.models import Decline, FlowDefinition, HumanLoop, Prediction, TaskSlot, TeamMember, Worker

DEADLINE = "deadline"
ALL_DECLINED = "allDeclined"


def fall_back_overdue(session: Session, *, now_ms: int, limit: int = 500) -> int:
    """Finish the loops whose deadline has passed. Idempotent; safe in N processes (the
    loops are taken with SKIP LOCKED and re-checked under their lock)."""
    loops = session.scalars(
        select(HumanLoop)
        .where(
            HumanLoop.status == "InProgress",
            HumanLoop.deadline_at.is_not(None),
            HumanLoop.deadline_at <= now_ms,
            HumanLoop.output_state == "none",
        )
        .order_by(HumanLoop.deadline_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    done = 0
    for loop in loops:
        session.refresh(loop)
        if loop.status == "InProgress" and loop.output_state == "none":
            fall_back(session, loop, trigger=DEADLINE, now_ms=now_ms)
            done += 1
    return done


def fall_back_if_all_declined(session: Session, loop: HumanLoop, *, now_ms: int) -> bool:
    """After a decline or an answer (the caller holds the loop's lock): if answers are
    still wanted, nobody holds a task, somebody declined, and no active member of the
    flow's team is left who has neither answered nor declined, fall back at once."""
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
    still_eligible = session.scalar(
        select(func.count())
        .select_from(TeamMember)
        .join(Worker, Worker.id == TeamMember.worker_id)
        .where(
            TeamMember.team_id == flow.team_id,
            Worker.status == "active",
            ~exists().where(TaskSlot.loop_id == loop.id, TaskSlot.worker_id == Worker.id),
            ~exists().where(Decline.loop_id == loop.id, Decline.worker_id == Worker.id),
        )
    )
    if still_eligible:
        return False
    fall_back(session, loop, trigger=ALL_DECLINED, now_ms=now_ms)
    return True


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
    why = _why(session, flow, trigger)
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


def _why(session: Session, flow: FlowDefinition, trigger: str) -> str:
    if trigger == DEADLINE:
        return f"The deadline ({flow.deadline_s} s after the start) passed before all answers were in."
    return "Every active worker of the flow's team who had not answered declined the task."
