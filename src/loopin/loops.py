"""Human loops: start, describe, list, stop, delete, and the output document.

Status moves InProgress -> Completed | Failed | Stopping -> Stopped. A loop whose answers
are all in first gets ``output_state='pending'``; it takes its final status only once its
``output.json`` exists (see ``outputs.write_pending_outputs``), so no loop is ever Completed
without its file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session, make_transient_to_detached, object_session

from loopin import adaptive, consolidation, flow_cache, loop_stats
from loopin.clock import iso_ms, utc_path
from loopin.errors import ConflictError, NotFoundError, ValidationError
from loopin.events import record_status
from loopin.flows import (
    MAX_AVAILABILITY_S,
    MAX_PRIORITY,
    MAX_TIME_LIMIT_S,
    check_input_uris,
    check_priority,
    consolidation_settings,
    get_flow,
)
from loopin.models import FlowDefinition, HumanLoop, TaskSlot, Worker
from loopin.store import join_uri
from loopin.validation import LOOP_NAME, check_name, loads_stored, refuse_lone_surrogates
from loopin.worker_quality import worker_label_reliability, worker_reliability

OUTPUTS_DUE = "loopin.outputs_due"  # key in Session.info: ids of the loops made pending in it

MAX_INPUT_CHARS = 3_145_728
MAX_PAGE_SIZE = 100
HISTORY_ANSWERS = 600  # the flow's latest answers consolidation may learn from (~200 loops of 3)
_TASK_SLOTS = cast(Table, TaskSlot.__table__)  # inserted through Core (see ``start_loop``)
_LOOPS = cast(Table, HumanLoop.__table__)
_INSERT_LOOP = insert(_LOOPS).returning(_LOOPS.c.id)
_LOOP_COLUMNS = [c.key for c in _LOOPS.columns if c.key != "id"]
# Statements of every start, describe and submit, built once (building one and its cache
# key costs about as much as running it).
_LOOP_NAMED = select(HumanLoop).where(HumanLoop.name == bindparam("name"))
_LOOP_NAMED_LOCKED = _LOOP_NAMED.with_for_update()
_LOOP_LOCKED = select(HumanLoop).where(HumanLoop.id == bindparam("loop")).with_for_update()
_SLOT_COUNTS = (
    select(TaskSlot.status, func.count()).where(TaskSlot.loop_id == bindparam("loop")).group_by(TaskSlot.status)
)
_SLOTS_WITH_WORKERS = (
    select(TaskSlot, Worker)
    .outerjoin(Worker, Worker.id == TaskSlot.worker_id)
    .where(TaskSlot.loop_id == bindparam("loop"))
)

log = logging.getLogger("loopin.loops")
CONTENT_CLASSIFIERS = {"FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"}
ACTIVE = ("InProgress", "Stopping")
STATUSES = ("InProgress", "Stopping", "Completed", "Failed", "Stopped")
# Priorities (docs/deadlines.md): one point is worth this much waiting, so priority 100
# (flows.MAX_PRIORITY) is worth an hour: the whole range ages away in an hour.
PRIORITY_POINT_MS = 36_000
# An escalated loop is ranked this much before its escalation: more than any loop not
# escalated can be ahead of its own start (the longest availability lifetime plus the
# longest time limit plus the whole priority range), so it is served before all of them.
ESCALATION_LEAD_MS = (MAX_AVAILABILITY_S + MAX_TIME_LIMIT_S) * 1000 + MAX_PRIORITY * PRIORITY_POINT_MS


@dataclass(frozen=True)
class OutputDocument:
    body: bytes  # output.json
    event_data: dict[str, Any] | None  # loopin's additions to the loop's final event


@dataclass(frozen=True)
class LoopPage:
    loops: list[tuple[HumanLoop, str]]  # (loop, flow name)
    next_token: str | None


def parse_input(input_content: str) -> dict[str, Any]:
    if not isinstance(input_content, str):
        raise ValidationError("InputContent must be a string holding a JSON object.")
    if len(input_content) > MAX_INPUT_CHARS:
        raise ValidationError(f"InputContent is {len(input_content):,} characters; the limit is {MAX_INPUT_CHARS:,}.")
    try:
        value = json.loads(input_content, parse_constant=_not_json)
    except ValueError as exc:
        raise ValidationError(f"InputContent is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValidationError("InputContent is nested too deeply.") from exc
    if not isinstance(value, dict):
        raise ValidationError("InputContent must be a JSON object ({...}).")
    refuse_lone_surrogates(value, what="InputContent")
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def queue_rank(*, created_at: int, priority: int, deadline_at: int | None, time_limit_ms: int) -> int:
    """A task slot's static place in its flow's queue: smaller is claimed first.

    ``created_at - priority * PRIORITY_POINT_MS``: a loop is served as if it had been
    started ``priority`` points of waiting earlier, so a later loop overtakes it only if it
    arrives less than ``(its priority - this priority) * PRIORITY_POINT_MS`` after it (at
    most an hour). A deadline lowers the rank to that of a priority-100 loop started one
    task time limit before the deadline: from then on, no later work goes ahead of it.
    """
    rank = created_at - priority * PRIORITY_POINT_MS
    if deadline_at is not None:
        rank = min(rank, deadline_at - time_limit_ms - MAX_PRIORITY * PRIORITY_POINT_MS)
    return rank


def escalated_rank(*, escalated_at: int) -> int:
    """The rank of an escalated loop's task slots: ahead of every loop that has not
    escalated (whose rank is at least its start, at most an availability lifetime ago,
    minus a time limit and the priority range); escalated loops among themselves in the
    order they escalated."""
    return escalated_at - ESCALATION_LEAD_MS


def start_loop(
    session: Session,
    *,
    name: str,
    flow_name: str,
    input_content: str,
    content_classifiers: Sequence[str] | None = None,
    priority: int | None = None,
    default_input_locations: Sequence[str] | None = None,
    now_ms: int,
) -> tuple[HumanLoop, bool]:
    """Start a loop, or return the existing one when name, flow and input are the same.

    Returns ``(loop, created)``. Same name with another input or flow: ConflictError.
    ``priority`` None: the flow's default priority. ``default_input_locations``: where the
    input may point when the flow sets no input locations (``Services.default_input_locations``).
    """
    check_name(name, what="Human loop name", pattern=LOOP_NAME)
    if priority is not None:
        check_priority(priority)
    task_input = parse_input(input_content)
    if content_classifiers is not None:
        unknown = set(content_classifiers) - CONTENT_CLASSIFIERS
        if unknown or len(content_classifiers) > 256:
            raise ValidationError(
                "ContentClassifiers may hold only FreeOfPersonallyIdentifiableInformation and FreeOfAdultContent."
            )
    flow = flow_cache.get_flow(session, flow_name)  # a copy: read it only
    check_input_uris(
        session, flow, task_input, default_locations=default_input_locations, outputs=flow_cache.output_paths(session)
    )
    digest = hashlib.sha256(input_content.encode()).hexdigest()
    existing = session.scalar(_LOOP_NAMED, {"name": name})
    if existing is not None:
        if existing.flow_id == flow.id and existing.input_sha256 == digest:
            return existing, False
        raise ConflictError(
            f"A human loop named '{name}' exists already with a different input or flow definition. Use a new name."
        )
    values: dict[str, Any] = dict.fromkeys(_LOOP_COLUMNS) | {
        "name": name,
        "flow_id": flow.id,
        "status": "InProgress",
        "input_content": input_content,
        "input_sha256": digest,
        "content_classifiers": json.dumps(list(content_classifiers)) if content_classifiers is not None else None,
        "created_at": now_ms,
        "expires_at": now_ms + flow.availability_lifetime_s * 1000,
        "output_state": "none",
        "output_attempts": 0,
        "priority": flow.default_priority if priority is None else priority,
        "deadline_at": now_ms + flow.deadline_s * 1000 if flow.deadline_s else None,
        "adaptive_info": adaptive.start_record(flow),
    }
    # Core, not the ORM's unit of work (a start's largest cost there): the row is inserted,
    # then its object joins the session as if loaded, every column set (nothing to reload);
    # the loop counters are told by hand, as ``loop_stats`` does for ORM inserts.
    loop = HumanLoop(id=session.connection().execute(_INSERT_LOOP, values).scalar_one(), **values)
    make_transient_to_detached(loop)
    session.add(loop)
    loop_stats.count_new_loop(session, loop)
    record_status(session, loop, now_ms=now_ms, flow_name=flow.name)
    rank = queue_rank(
        created_at=now_ms, priority=loop.priority, deadline_at=loop.deadline_at, time_limit_ms=flow.time_limit_s * 1000
    )
    session.connection().execute(  # Core: the ORM's bulk insert costs more than the rows
        insert(_TASK_SLOTS),
        [
            {"loop_id": loop.id, "flow_id": flow.id, "slot_index": i, "status": "available", "queue_rank": rank}
            for i in range(adaptive.first_slots(flow))  # adaptive: one, more when answers disagree
        ],
    )
    return loop, True


def get_loop(session: Session, name: str, *, for_update: bool = False) -> HumanLoop:
    loop = session.scalar(_LOOP_NAMED_LOCKED if for_update else _LOOP_NAMED, {"name": name})
    if loop is None:
        raise NotFoundError(f"No human loop named '{name}'.")
    return loop


def list_loops(
    session: Session,
    *,
    flow_name: str | None = None,
    status: str | None = None,
    created_after_ms: int | None = None,
    created_before_ms: int | None = None,
    sort_order: str = "Descending",
    page_token: str | None = None,
    max_results: int = MAX_PAGE_SIZE,
) -> LoopPage:
    """Keyset pagination over (created_at, id): stable under inserts, never OFFSET. Every
    combination of flow and status filters is a range of one index (see ``HumanLoop``)."""
    if status is not None and status not in STATUSES:
        raise ValidationError(f"Status must be one of {', '.join(STATUSES)}.")
    if sort_order not in ("Ascending", "Descending"):
        raise ValidationError("SortOrder must be 'Ascending' or 'Descending'.")
    if isinstance(max_results, bool) or not 1 <= max_results <= MAX_PAGE_SIZE:
        raise ValidationError(f"MaxResults must be from 1 to {MAX_PAGE_SIZE}.")
    query = select(HumanLoop, FlowDefinition.name).join(FlowDefinition, FlowDefinition.id == HumanLoop.flow_id)
    flow_id = None
    if flow_name is not None:
        flow_id = get_flow(session, flow_name).id
        query = query.where(HumanLoop.flow_id == flow_id)
    if status is not None:
        query = query.where(HumanLoop.status == status)
    if created_after_ms is not None:
        query = query.where(HumanLoop.created_at >= created_after_ms)
    if created_before_ms is not None:
        query = query.where(HumanLoop.created_at <= created_before_ms)
    scope = {"f": flow_id, "a": created_after_ms, "b": created_before_ms, "s": sort_order, "st": status}
    descending = sort_order == "Descending"
    if page_token:
        created, last_id = _decode_token(page_token, scope)
        # The first condition bounds the index range; the second skips the rows of the
        # last page's millisecond that were shown already.
        if descending:
            query = query.where(
                HumanLoop.created_at <= created,
                or_(
                    HumanLoop.created_at < created,
                    and_(HumanLoop.created_at == created, HumanLoop.id < last_id),
                ),
            )
        else:
            query = query.where(
                HumanLoop.created_at >= created,
                or_(
                    HumanLoop.created_at > created,
                    and_(HumanLoop.created_at == created, HumanLoop.id > last_id),
                ),
            )
    if descending:
        query = query.order_by(HumanLoop.created_at.desc(), HumanLoop.id.desc())
    else:
        query = query.order_by(HumanLoop.created_at, HumanLoop.id)
    rows = [(loop, fname) for loop, fname in session.execute(query.limit(max_results + 1))]
    next_token = None
    if len(rows) > max_results:
        rows = rows[:max_results]
        last = rows[-1][0]
        next_token = _encode_token(last.created_at, last.id, scope)
    return LoopPage(rows, next_token)


def stop_loop(session: Session, name: str, *, now_ms: int) -> HumanLoop:
    """InProgress -> Stopped at once, or Stopping while a worker still holds a task."""
    loop = get_loop(session, name, for_update=True)
    if loop.status in ("Stopping", "Stopped"):
        return loop
    if loop.status != "InProgress" or loop.output_state != "none":
        raise ValidationError(
            f"Human loop '{name}' is {_describe_state(loop)}; only a loop in progress can be stopped."
        )
    _cancel_available_slots(session, loop.id)
    loop.status = "Stopping"
    settle_loop(session, loop, now_ms=now_ms)
    return loop


def delete_loop(session: Session, name: str) -> None:
    """Remove a finished loop. Written outputs stay in the store."""
    loop = get_loop(session, name, for_update=True)
    if loop.status in ACTIVE or loop.output_state == "pending":
        raise ValidationError(f"Human loop '{name}' is {_describe_state(loop)}; stop it before deleting it.")
    session.delete(loop)


def answers_received(session: Session, loop: HumanLoop) -> int:
    return session.scalar(select(func.count()).where(TaskSlot.loop_id == loop.id, TaskSlot.status == "submitted")) or 0


def answers_wanted(session: Session, loop: HumanLoop) -> int:
    """The loop's own task count: one slot per answer, made when it started (the flow's
    task count may have changed since), or added since by adaptive reviewers."""
    return session.scalar(select(func.count()).where(TaskSlot.loop_id == loop.id)) or 0


def settle_loop(session: Session, loop: HumanLoop, *, now_ms: int) -> None:
    """Move a loop on after one of its slots changed. The caller holds the loop's row lock."""
    if loop.output_state != "none" or loop.status not in ACTIVE:
        return
    counts = dict(session.execute(_SLOT_COUNTS, {"loop": loop.id}).all())
    submitted, held = counts.get("submitted", 0), counts.get("held", 0)
    if loop.status == "InProgress":
        flow_task_count = sum(counts.values()) - counts.get("cancelled", 0)
        if submitted and submitted >= flow_task_count:
            _mark_output_pending(loop, "Completed", now_ms=now_ms)
    elif held == 0:  # Stopping, and nobody is working on it any more
        if submitted:
            # Answers given before or during the stop are kept and written out.
            _mark_output_pending(loop, "Stopped", now_ms=now_ms)
        else:
            loop.status = "Stopped"
            loop.ended_at = now_ms
            record_status(session, loop, now_ms=now_ms)


def fail_loop(session: Session, loop: HumanLoop, *, code: str, reason: str, now_ms: int) -> None:
    _cancel_available_slots(session, loop.id)
    loop.status = "Failed"
    loop.failure_code = code
    loop.failure_reason = reason[:1024]
    loop.ended_at = now_ms
    record_status(session, loop, now_ms=now_ms)


def output_uri_for(flow: FlowDefinition, loop: HumanLoop) -> str:
    """A2I's key layout: <output path>/<flow>/<YYYY/MM/DD/hh/mm/ss>/<loop>/output.json."""
    return join_uri(flow.output_path, flow.name, utc_path(loop.created_at), loop.name, "output.json")


def build_output(session: Session, loop: HumanLoop, *, flow_arn: str, issuer: str) -> OutputDocument:
    """The output.json document, deterministic so that a retried write is identical; with
    ``consolidatedAnswer`` beside ``humanAnswers`` when the flow consolidates."""
    # Every slot of the loop in one statement: its answers, and how many it wants.
    slots = session.execute(_SLOTS_WITH_WORKERS, {"loop": loop.id}).all()
    rows = sorted(
        ((slot, worker) for slot, worker in slots if slot.status == "submitted" and worker is not None),
        key=lambda row: (row[0].submitted_at or 0, row[0].slot_index),
    )
    answers = [
        {
            "acceptanceTime": iso_ms(slot.accepted_at or slot.submitted_at or 0),
            "answerContent": loads_stored(slot.answer or "{}"),
            "submissionTime": iso_ms(slot.submitted_at or 0),
            "timeSpentInSeconds": round(((slot.submitted_at or 0) - (slot.accepted_at or 0)) / 1000, 3),
            "workerId": worker.worker_id,
            "workerMetadata": {
                "identityData": {
                    "identityProviderType": "Loopin",
                    "issuer": issuer,
                    "sub": worker.sub,
                }
            },
        }
        for slot, worker in rows
    ]
    document: dict[str, Any] = {
        "flowDefinitionArn": flow_arn,
        "humanAnswers": answers,
        "humanLoopName": loop.name,
        "inputContent": loads_stored(loop.input_content),
    }
    if loop.fallback_info:  # loopin's extension: the deadline or the declines answered it
        document["loopinFallback"] = json.loads(loop.fallback_info)
    if loop.escalation_info:  # loopin's extension: a second team was asked too
        document["loopinEscalation"] = json.loads(loop.escalation_info)
    if loop.adaptive_info:  # loopin's extension: how many workers adaptive reviewers asked, and why
        document["loopinAdaptive"] = json.loads(loop.adaptive_info)
    event_data = None
    flow = flow_cache.get_flow_by_id(session, loop.flow_id)
    enabled, quorum = consolidation_settings(flow, answers=len(slots))  # as ``answers_wanted``
    if enabled and answers:
        last_submitted = max(slot.submitted_at or 0 for slot, _ in rows)
        consolidated = _consolidate(
            session,
            loop,
            [(a["workerId"], a["answerContent"]) for a in answers],
            quorum=quorum,
            before_ms=last_submitted,
        )
        document["consolidatedAnswer"] = consolidated
        event_data = {
            "consolidation": {
                "agreement": consolidated["agreement"],
                "notConsolidated": sorted(consolidated["notConsolidated"]),
                "workers": consolidated["workers"],
            }
        }
    return OutputDocument(json.dumps(document, sort_keys=True).encode(), event_data)


def _consolidate(
    session: Session, loop: HumanLoop, answers: list[tuple[str, Any]], *, quorum: int, before_ms: int
) -> dict[str, Any]:
    """The ``consolidatedAnswer`` object. Labels and boxes learn from the flow's answers to
    other loops submitted up to this loop's last answer (so a retried write sees the same
    history). A failure here never holds the loop back: it is written with the reason."""
    try:
        history: list[list[tuple[str, Any]]] = []
        if consolidation.needs_history(answers):
            history = _flow_history(session, loop, before_ms=before_ms)
        # The flow's own quorum when set; None lets history decide objects (see consolidation).
        explicit = session.get_one(FlowDefinition, loop.flow_id).consolidation_quorum
        # Gold accuracy, where the workers have any, weighs them instead of the learned estimate.
        workers = [worker for worker, _ in answers]
        known = worker_reliability(session, loop.flow_id, workers, submitted_up_to=before_ms) or None
        labelling = None
        if known:  # no gold answers at all, so no labelling accuracy either
            labelling = worker_label_reliability(session, loop.flow_id, workers, submitted_up_to=before_ms) or None
        return consolidation.consolidate(
            answers, quorum=explicit, history=history, reliability=known, label_reliability=labelling
        ).to_json()
    except Exception as exc:  # a bug in a method must not keep the loop from completing
        log.exception("consolidating the answers of loop %s failed", loop.name)
        return {
            "agreement": None,
            "answerContent": {},
            "method": {},
            "notConsolidated": {"*": f"consolidation failed: {type(exc).__name__}"},
            "perField": {},
            "quorum": quorum,
            "workers": [],
        }


def _flow_history(session: Session, loop: HumanLoop, *, before_ms: int) -> list[list[tuple[str, Any]]]:
    rows = session.execute(
        select(TaskSlot.loop_id, Worker.worker_id, TaskSlot.answer)
        .join(Worker, Worker.id == TaskSlot.worker_id)
        .where(
            TaskSlot.status == "submitted",
            TaskSlot.submitted_at <= before_ms,
            TaskSlot.flow_id == loop.flow_id,
            TaskSlot.loop_id != loop.id,
        )
        .order_by(TaskSlot.submitted_at.desc(), TaskSlot.id.desc())
        .limit(HISTORY_ANSWERS)
    ).all()
    items: dict[int, list[tuple[str, Any]]] = {}
    for loop_id, worker_id, answer in rows:
        content = json.loads(answer or "{}")
        if isinstance(content, dict):
            items.setdefault(loop_id, []).append((worker_id, content))
    return [items[k] for k in sorted(items)]


def claim_pending_outputs(session: Session, *, now_ms: int, retry_after_ms: int, limit: int) -> list[HumanLoop]:
    """Take loops whose output is due, pushing their next attempt out so that another
    process does not take them at the same time (a crashed attempt is retried later)."""
    query = (
        select(HumanLoop)
        .where(HumanLoop.output_state == "pending", HumanLoop.output_next_attempt_at <= now_ms)
        .order_by(HumanLoop.output_next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    loops = list(session.scalars(query))
    for loop in loops:
        loop.output_attempts += 1
        loop.output_next_attempt_at = now_ms + retry_after_ms
    return loops


def complete_output(
    session: Session, loop_id: int, *, uri: str, now_ms: int, event_data: dict[str, Any] | None = None
) -> None:
    """The file is written: the loop takes its final status (and its event is recorded)."""
    loop = session.scalar(_LOOP_LOCKED, {"loop": loop_id})
    if loop is None or loop.output_state != "pending":
        return  # another process finished it, or it was deleted meanwhile
    loop.status = loop.output_final_status or "Completed"
    loop.output_state = "written"
    loop.output_uri = uri
    loop.output_last_error = None
    loop.ended_at = now_ms
    flow_name = flow_cache.get_flow_by_id(session, loop.flow_id).name
    record_status(session, loop, now_ms=now_ms, data=event_data, flow_name=flow_name)


def note_output_due(session: Session, loop_id: int) -> None:
    """Ask for the loop's output to be written as soon as this session commits
    (``Services.write`` does it)."""
    session.info.setdefault(OUTPUTS_DUE, set()).add(loop_id)


def take_outputs_due(session: Session) -> set[int]:
    """The loops made pending in this (committed) session, forgotten once taken."""
    due: set[int] = session.info.pop(OUTPUTS_DUE, set())
    return due


def output_failed(session: Session, loop_id: int, *, error: str, next_attempt_ms: int) -> None:
    session.execute(
        update(HumanLoop)
        .where(HumanLoop.id == loop_id, HumanLoop.output_state == "pending")
        .values(output_last_error=error[:1024], output_next_attempt_at=next_attempt_ms)
    )


def complete_with_answers_in(loop: HumanLoop, *, now_ms: int) -> None:
    """Finish a loop with the answers it has now (a fallback): Completed once written."""
    _mark_output_pending(loop, "Completed", now_ms=now_ms)


def _mark_output_pending(loop: HumanLoop, final_status: str, *, now_ms: int) -> None:
    loop.output_state = "pending"
    loop.output_final_status = final_status
    loop.output_next_attempt_at = now_ms
    session = object_session(loop)
    if session is not None:
        note_output_due(session, loop.id)


def _cancel_available_slots(session: Session, loop_id: int) -> None:
    session.execute(
        update(TaskSlot).where(TaskSlot.loop_id == loop_id, TaskSlot.status == "available").values(status="cancelled")
    )


def _describe_state(loop: HumanLoop) -> str:
    if loop.output_state == "pending":
        return "writing its output"
    return loop.status


def _encode_token(created_at: int, loop_id: int, scope: dict[str, Any]) -> str:
    raw = json.dumps({"c": created_at, "i": loop_id, **scope}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str, scope: dict[str, Any]) -> tuple[int, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        created, loop_id = int(raw["c"]), int(raw["i"])
        same_scope = all(raw.get(k) == v for k, v in scope.items())
        if not (0 <= created < 2**63 and 0 <= loop_id < 2**63):  # what the columns hold
            raise ValueError("out of range")
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise ValidationError("NextToken is not a token this server handed out.") from exc
    if not same_scope:
        raise ValidationError(
            "NextToken belongs to a listing with other filters or sort order; repeat the same query to continue it."
        )
    return created, loop_id
