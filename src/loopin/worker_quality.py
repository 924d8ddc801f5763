"""How good each worker of a flow is: gold accuracy (``gold_serving`` scores gold tasks),
agreement with the consolidated answers (what consolidation recorded in each completed
loop's event: the workers whose answer contributed to the consolidated one), time per task
and tasks per working hour; the pauses for low gold accuracy; and ``worker_reliability``,
the gold accuracy consolidation can weight workers by. See docs/quality.md.

It imports nothing above ``flows`` and ``workforce``, so that ``loops`` may call
``worker_reliability`` when it consolidates without an import cycle.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopin import consolidation, workforce
from loopin.consolidation.fields import is_box
from loopin.errors import ValidationError
from loopin.flows import get_flow
from loopin.models import (
    Event,
    FlowDefinition,
    GoldItem,
    GoldTask,
    HumanLoop,
    TaskSlot,
    TeamMember,
    Worker,
    WorkerPause,
)

RELIABILITY_PRIOR = 0.7  # what an unknown worker's accuracy is taken to be
RELIABILITY_PRIOR_WEIGHT = 3.0  # how many gold tasks the prior is worth
LABEL_PRIOR_WEIGHT = 5.0  # how many gold boxes the prior is worth for the accuracy at labelling
LABEL_GOLD_TASKS = 100  # the latest gold tasks per worker labelling accuracy is measured on
AGREEMENT_LOOPS = 1_000  # the flow's latest consolidated loops agreement is measured on
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
TREND_DAYS = 30


@dataclass(frozen=True)
class Pause:
    paused_at: int
    reason: str
    accuracy: float
    scored: int


@dataclass(frozen=True)
class WorkerQuality:
    worker: Worker
    gold_scored: int
    gold_accuracy: float | None
    consolidated_loops: int  # consolidated loops (two answers or more) the worker answered
    agreement: float | None  # the share of them where their answer contributed
    tasks: int  # tasks submitted in the flow (real and gold)
    seconds_per_task: float | None  # mean time from accepting to submitting
    tasks_per_hour: float | None  # tasks per hour in which they submitted any
    pause: Pause | None


@dataclass(frozen=True)
class DayAccuracy:
    day_ms: int  # the UTC day's start
    worker_id: str
    accuracy: float
    scored: int


def quality(session: Session, flow_name: str) -> list[WorkerQuality]:
    """One row per worker of the flow's team or with work in the flow, by e-mail."""
    flow = get_flow(session, flow_name)
    workers = {
        w.id: w
        for w in session.scalars(
            select(Worker).join(TeamMember, TeamMember.worker_id == Worker.id).where(TeamMember.team_id == flow.team_id)
        )
    }
    gold_stats = {
        wid: (int(n), None if mean is None else float(mean))
        for wid, n, mean in session.execute(
            select(GoldTask.worker_id, func.count(), func.avg(GoldTask.score))
            .where(GoldTask.flow_id == flow.id, GoldTask.status == "submitted")
            .group_by(GoldTask.worker_id)
        )
    }
    pace = _pace(session, flow)
    agreement = _agreement(session, flow)
    pauses = {
        p.worker_id: Pause(p.paused_at, p.reason, p.accuracy, p.scored)
        for p in session.scalars(
            select(WorkerPause).where(WorkerPause.flow_id == flow.id, WorkerPause.cleared_at.is_(None))
        )
    }
    for wid in {*gold_stats, *pace, *agreement, *pauses} - set(workers):
        worker = session.get(Worker, wid)
        if worker is not None:
            workers[wid] = worker
    rows = []
    for wid, worker in workers.items():
        scored, accuracy = gold_stats.get(wid, (0, None))
        loops, agreed = agreement.get(wid, (0, 0))
        done, spent_ms, hours = pace.get(wid, (0, 0, 0))
        rows.append(
            WorkerQuality(
                worker=worker,
                gold_scored=scored,
                gold_accuracy=accuracy,
                consolidated_loops=loops,
                agreement=agreed / loops if loops else None,
                tasks=done,
                seconds_per_task=spent_ms / done / 1000 if done else None,
                tasks_per_hour=done / hours if hours else None,
                pause=pauses.get(wid),
            )
        )
    return sorted(rows, key=lambda r: r.worker.email)


def accuracy_by_day(session: Session, flow_name: str, *, now_ms: int) -> list[DayAccuracy]:
    """Each worker's gold accuracy per UTC day over the last ``TREND_DAYS`` days."""
    flow = get_flow(session, flow_name)
    since = (now_ms // DAY_MS - TREND_DAYS + 1) * DAY_MS
    day = GoldTask.submitted_at // DAY_MS
    rows = session.execute(
        select(Worker.worker_id, day, func.avg(GoldTask.score), func.count())
        .join(Worker, Worker.id == GoldTask.worker_id)
        .where(GoldTask.flow_id == flow.id, GoldTask.status == "submitted", GoldTask.submitted_at >= since)
        .group_by(Worker.worker_id, day)
        .order_by(day, Worker.worker_id)
    ).all()
    return [DayAccuracy(int(d) * DAY_MS, wid, float(mean), int(n)) for wid, d, mean, n in rows]


def unpause(session: Session, flow_name: str, email: str, *, now_ms: int) -> None:
    """Let a paused worker work on the flow again; their accuracy is counted anew from now."""
    flow = get_flow(session, flow_name)
    worker = workforce.get_worker(session, email)
    pause = session.get(WorkerPause, (flow.id, worker.id))
    if pause is None or pause.cleared_at is not None:
        raise ValidationError(f"{worker.email} is not paused from flow '{flow.name}'.")
    pause.cleared_at = now_ms


def worker_reliability(
    session: Session, flow_id: int, worker_ids: list[str], *, submitted_up_to: int | None = None
) -> dict[str, float]:
    """Consolidation's weights: each worker's gold accuracy in the flow (public worker ids),
    shrunk toward ``RELIABILITY_PRIOR`` by ``RELIABILITY_PRIOR_WEIGHT`` pseudo gold tasks,
    so that a worker with two lucky golds is not trusted like one with fifty. Workers with
    no scored gold get the prior; an empty dict when none of them has any (the caller then
    keeps its own estimate). ``submitted_up_to``: count only gold answers submitted by then
    (a loop's output written again comes out the same)."""
    if not worker_ids:
        return {}
    scored = select(Worker.worker_id, func.sum(GoldTask.score), func.count()).join(
        Worker, Worker.id == GoldTask.worker_id
    )
    scored = scored.where(GoldTask.flow_id == flow_id, GoldTask.status == "submitted", Worker.worker_id.in_(worker_ids))
    if submitted_up_to is not None:
        scored = scored.where(GoldTask.submitted_at <= submitted_up_to)
    known = {wid: (float(total or 0.0), int(n)) for wid, total, n in session.execute(scored.group_by(Worker.worker_id))}
    if not known:
        return {}
    return {wid: shrunk_accuracy(*known.get(wid, (0.0, 0))) for wid in worker_ids}


def worker_label_reliability(
    session: Session, flow_id: int, worker_ids: list[str], *, submitted_up_to: int | None = None
) -> dict[str, float]:
    """Each worker's accuracy at labelling boxes in the flow: of the boxes in their latest
    ``LABEL_GOLD_TASKS`` gold answers that match a known box (IoU 0.5, any label), the
    share with the known label, shrunk toward ``RELIABILITY_PRIOR`` by ``LABEL_PRIOR_WEIGHT``
    pseudo boxes. Consolidation settles a box's label by it: gold box F1 mixes drawing and
    labelling, and a worker who draws well but mixes labels up would win label ties.
    An empty dict when none of the workers has a matched gold box."""
    counts = {worker_id: [0, 0] for worker_id in worker_ids}  # boxes with the known label, matched
    for worker_id in worker_ids:
        rows = select(GoldTask.answer, GoldItem.answer).join(GoldItem, GoldItem.id == GoldTask.gold_item_id)
        rows = rows.join(Worker, Worker.id == GoldTask.worker_id).where(
            GoldTask.flow_id == flow_id, GoldTask.status == "submitted", Worker.worker_id == worker_id
        )
        if submitted_up_to is not None:
            rows = rows.where(GoldTask.submitted_at <= submitted_up_to)
        for given, known in session.execute(rows.order_by(GoldTask.submitted_at.desc()).limit(LABEL_GOLD_TASKS)):
            same, matched = _labelled(json.loads(given or "{}"), json.loads(known))
            counts[worker_id][0] += same
            counts[worker_id][1] += matched
    if not any(matched for _, matched in counts.values()):
        return {}
    return {wid: shrunk_accuracy(same, matched, LABEL_PRIOR_WEIGHT) for wid, (same, matched) in counts.items()}


def _labelled(given: object, known: object) -> tuple[int, int]:
    """(boxes with the known label, boxes matched) over the box fields of one gold answer."""
    same = matched = 0
    if not isinstance(given, dict) or not isinstance(known, dict):
        return 0, 0
    for name, truth in known.items():
        value = given.get(name)
        if not (isinstance(truth, dict) and isinstance(truth.get("boundingBoxes"), list) and isinstance(value, dict)):
            continue
        found = value.get("boundingBoxes")
        if isinstance(found, list):
            s, m = consolidation.label_agreement([b for b in found if is_box(b)], truth["boundingBoxes"])
            same, matched = same + s, matched + m
    return same, matched


def shrunk_accuracy(score_total: float, scored: int, prior_weight: float = RELIABILITY_PRIOR_WEIGHT) -> float:
    """An accuracy shrunk toward ``RELIABILITY_PRIOR``: ``scored`` gold tasks (or boxes)
    that scored ``score_total`` in all, plus ``prior_weight`` pseudo ones at the prior
    (nothing scored gives the prior)."""
    if not scored:
        return RELIABILITY_PRIOR
    return (score_total + prior_weight * RELIABILITY_PRIOR) / (scored + prior_weight)


def _pace(session: Session, flow: FlowDefinition) -> dict[int, tuple[int, int, int]]:
    """Per worker: tasks submitted in the flow (real and gold), the time they took in all,
    and the distinct hours in which they submitted."""
    done: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    hours: dict[int, set[int]] = defaultdict(set)
    for table in (TaskSlot, GoldTask):
        spent = func.sum(table.submitted_at - table.accepted_at)
        hour = table.submitted_at // HOUR_MS
        for wid, h, n, ms in session.execute(
            select(table.worker_id, hour, func.count(), spent)
            .where(table.flow_id == flow.id, table.status == "submitted", table.worker_id.is_not(None))
            .group_by(table.worker_id, hour)
        ):
            if wid is None or h is None:
                continue
            done[wid][0] += int(n)
            done[wid][1] += int(ms or 0)
            hours[wid].add(int(h))
    return {wid: (n, ms, len(hours[wid])) for wid, (n, ms) in done.items()}


def _agreement(session: Session, flow: FlowDefinition) -> dict[int, tuple[int, int]]:
    """Per worker: the consolidated loops (with two answers or more) they answered, and in
    how many of them their answer contributed to the consolidated answer."""
    contributed: dict[str, set[str]] = {}
    for loop_name, data in session.execute(
        select(Event.loop_name, Event.data)
        .where(Event.flow_name == flow.name, Event.status == "Completed", Event.data.is_not(None))
        .order_by(Event.seq.desc())
        .limit(AGREEMENT_LOOPS)
    ):
        summary = json.loads(data or "{}").get("consolidation")
        if isinstance(summary, dict) and isinstance(summary.get("workers"), list):
            contributed[loop_name] = {str(w) for w in summary["workers"]}
    answered: dict[str, list[tuple[int, str]]] = defaultdict(list)
    names = list(contributed)
    for start in range(0, len(names), 500):
        for loop_name, wid, public_id in session.execute(
            select(HumanLoop.name, Worker.id, Worker.worker_id)
            .join(TaskSlot, TaskSlot.loop_id == HumanLoop.id)
            .join(Worker, Worker.id == TaskSlot.worker_id)
            .where(
                HumanLoop.name.in_(names[start : start + 500]),
                HumanLoop.flow_id == flow.id,
                TaskSlot.status == "submitted",
            )
        ):
            answered[loop_name].append((wid, public_id))
    result: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for loop_name, workers in answered.items():
        if len(workers) < 2:
            continue
        for wid, public_id in workers:
            result[wid][0] += 1
            result[wid][1] += public_id in contributed[loop_name]
    return {wid: (n, agreed) for wid, (n, agreed) in result.items()}
