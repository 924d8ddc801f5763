"""Adaptive reviewers: ask one worker first, and more (up to the flow's task count) only
while the answers disagree with the model's prediction or with each other.

A flow with ``adaptive`` on starts each loop with one task slot (``loops.start_loop``,
which records the task count and limits of the moment on the loop). Each time all of a
loop's slots are answered (``tasks.submit`` calls ``after_answer``), ``decide`` looks at
the answers in:

- one answer: its agreement with the model's prediction (``model_agreement``: box F1 at
  IoU 0.5, one-to-one per label, against the boxes pre-filled in the input or the logged
  prediction; a match against a pre-filled label). At or above the model limit the loop
  completes with that answer; below it, or with no prediction to compare with, one slot
  is added;
- two or more: their agreement with each other (``Consolidation.agreement``, the same
  number ``consolidatedAnswer`` reports). At or above the worker limit the loop completes;
  below it, one slot is added.

A loop never gets more slots than its task count. The added slot keeps the first slot's
place in the queue (its ``queue_rank``: priority and deadline) and escalation team; the
claim never gives a worker a second slot of a loop they answered. Every decision is kept
on the loop and written to output.json as ``loopinAdaptive``. ``decide`` is pure:
bench/bench_consolidation.py measures it as the server runs it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopin.consolidation import DEFAULT_IOU, Answer, box_f1, consolidate
from loopin.consolidation.fields import is_box
from loopin.models import FlowDefinition, HumanLoop, TaskSlot

# Chosen on bench/bench_consolidation.py's simulated crowd (BENCHMARKS.md, "Adaptive
# reviewers"); a flow may set its own.
DEFAULT_MODEL_AGREEMENT = 0.6
DEFAULT_WORKER_AGREEMENT = 0.4

Prediction = str | list[Any] | None  # a label, boxes or labels; None: no prediction


@dataclass(frozen=True)
class Decision:
    add: bool  # ask one more worker
    # agreesWithModel | disagreesWithModel | noPrediction | workersAgree | workersDisagree | taskCountReached
    reason: str
    model_agreement: float | None  # the newest answer against the model's prediction
    worker_agreement: float | None  # the answers among themselves (two or more)

    def to_json(self, answers: int) -> dict[str, Any]:
        return {
            "answers": answers,
            "action": "addedTask" if self.add else "completed",
            "reason": self.reason,
            "modelAgreement": _rounded(self.model_agreement),
            "workerAgreement": _rounded(self.worker_agreement),
        }


def limits(flow: FlowDefinition) -> tuple[float, float]:
    """(model limit, worker limit) as they apply: the flow's, else the defaults."""
    model = flow.adaptive_model_agreement
    worker = flow.adaptive_worker_agreement
    return (
        DEFAULT_MODEL_AGREEMENT if model is None else model,
        DEFAULT_WORKER_AGREEMENT if worker is None else worker,
    )


def decide(
    answers: Sequence[Answer], prediction: Prediction, *, task_count: int, model_limit: float, worker_limit: float
) -> Decision:
    """Whether a loop whose slots are all answered (``answers``, oldest first) gets one more."""
    model = model_agreement(answers[-1][1], prediction) if answers else None
    workers = consolidate(answers).agreement if len(answers) >= 2 else None
    if len(answers) == 1:
        done = model is not None and model >= model_limit
        reason = "agreesWithModel" if done else "noPrediction" if model is None else "disagreesWithModel"
    else:
        done = workers is not None and workers >= worker_limit
        reason = "workersAgree" if done else "workersDisagree"
    if not done and len(answers) >= task_count:
        return Decision(False, "taskCountReached", model, workers)
    return Decision(not done, reason, model, workers)


def model_agreement(answer: Mapping[str, Any], prediction: Prediction) -> float | None:
    """How far one answer agrees with the model, 0..1, averaged over the answer's fields
    the prediction speaks to: box F1 at IoU 0.5 (boxes), label match (a label), Jaccard
    (a list of labels). None when no field is comparable or there is no prediction."""
    if prediction is None:
        return None
    boxes = [b for b in prediction if is_box(b)] if isinstance(prediction, list) else None
    labels = [x for x in prediction if isinstance(x, str)] if isinstance(prediction, list) else None
    scores: list[float] = []
    for value in answer.values():
        if not isinstance(value, Mapping):
            continue
        if isinstance(value.get("boundingBoxes"), list) and boxes is not None and len(boxes) == len(prediction or []):
            drawn = [b for b in value["boundingBoxes"] if is_box(b)]
            scores.append(box_f1(drawn, boxes, iou_threshold=DEFAULT_IOU))
        elif isinstance(value.get("label"), str) and isinstance(prediction, str):
            scores.append(1.0 if value["label"] == prediction else 0.0)
        elif isinstance(value.get("labels"), list) and labels is not None and len(labels) == len(prediction or []):
            a, b = {str(x) for x in value["labels"]}, set(labels)
            scores.append(1.0 if not a and not b else len(a & b) / len(a | b))
    return statistics.fmean(scores) if scores else None


# -- in the server -----------------------------------------------------------------------


def start_record(flow: FlowDefinition) -> str | None:
    """The loop's ``adaptive_info`` at its start (None: the flow is not adaptive)."""
    if not flow.adaptive:
        return None
    model, worker = limits(flow)
    record = {"taskCount": flow.task_count, "modelAgreementLimit": model, "workerAgreementLimit": worker}
    return json.dumps({**record, "tasks": 1, "decisions": []}, sort_keys=True)


def first_slots(flow: FlowDefinition) -> int:
    return 1 if flow.adaptive else flow.task_count


def after_answer(session: Session, loop: HumanLoop, *, prediction: Prediction) -> Decision | None:
    """After an answer to an adaptive loop (the caller holds the loop's lock): when every
    slot is answered, decide and add a slot or leave the loop to complete. ``prediction``:
    the model's (``deadlines.model_prediction``). None when nothing was decided (not
    adaptive, not in progress, or an answer is still due)."""
    if loop.adaptive_info is None or loop.status != "InProgress" or loop.output_state != "none":
        return None
    every = list(session.scalars(select(TaskSlot).where(TaskSlot.loop_id == loop.id).order_by(TaskSlot.slot_index)))
    slots = [slot for slot in every if slot.status != "cancelled"]
    if not slots or any(slot.status != "submitted" for slot in slots):
        return None
    record = json.loads(loop.adaptive_info)
    answers = [(str(slot.worker_id), _content(slot.answer)) for slot in slots]
    decision = decide(
        answers,
        prediction,
        task_count=record["taskCount"],
        model_limit=record["modelAgreementLimit"],
        worker_limit=record["workerAgreementLimit"],
    )
    record["decisions"].append(decision.to_json(len(answers)))
    if decision.add:
        first = slots[0]
        session.add(
            TaskSlot(
                loop_id=loop.id,
                flow_id=first.flow_id,
                slot_index=every[-1].slot_index + 1,
                status="available",
                queue_rank=first.queue_rank,
                escalation_team_id=first.escalation_team_id,
            )
        )
        record["tasks"] = len(slots) + 1
        session.flush()
    loop.adaptive_info = json.dumps(record, sort_keys=True)
    return decision


def _content(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
