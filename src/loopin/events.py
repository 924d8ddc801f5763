"""Loop status-change events: the outbox rows written in the same transaction as the
change, and their A2I EventBridge form (reference D.4)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from loopin.arns import arn
from loopin.clock import iso_ms
from loopin.models import Event, FlowDefinition, HumanLoop

DETAIL_TYPE = "SageMaker A2I HumanLoop Status Change"
STREAMED_STATUSES = ("InProgress", "Completed", "Failed", "Stopped")
NEW_EVENTS = "loopin.new_events"  # key in Session.info
_INSERT_EVENT = insert(cast(Table, Event.__table__))


def record_status(
    session: Session,
    loop: HumanLoop,
    *,
    now_ms: int,
    data: dict[str, Any] | None = None,
    flow_name: str | None = None,
) -> None:
    """Write the outbox row for the loop's current status (the caller's transaction).
    ``data``: loopin's additions to the event's ``detail`` (new keys only), e.g. the
    consolidation summary of a Completed loop. ``flow_name``: the loop's flow's, when the
    caller has it (else it is read)."""
    if loop.status not in STREAMED_STATUSES:
        return
    session.info[NEW_EVENTS] = True  # lets this process's job runner deliver it right away
    if loop.escalation_info:  # every event after an escalation says so (docs/deadlines.md)
        data = {**(data or {}), "loopinEscalation": json.loads(loop.escalation_info)}
    if flow_name is None:
        flow_name = session.get_one(FlowDefinition, loop.flow_id).name
    # Core, not the ORM's unit of work: nothing reads the row back in this transaction.
    session.connection().execute(
        _INSERT_EVENT,
        {
            "event_id": str(uuid.uuid4()),
            "loop_name": loop.name,
            "flow_name": flow_name,
            "status": loop.status,
            "loop_created_at": loop.created_at,
            "failure_code": loop.failure_code,
            "failure_reason": loop.failure_reason,
            "output_uri": loop.output_uri if loop.output_state == "written" else None,
            "data": json.dumps(data, sort_keys=True) if data else None,
            "fallback_info": loop.fallback_info if loop.status in ("Completed", "Failed") else None,
            "fanned_out": False,
            "created_at": now_ms,
        },
    )


def eventbridge(event: Event, *, region: str, account_id: str) -> dict[str, Any]:
    """The event as EventBridge delivers A2I's: envelope plus camelCase ``detail``."""
    loop_arn = arn(region, account_id, "human-loop", event.loop_name)
    detail: dict[str, Any] = {
        "creationTime": iso_ms(event.loop_created_at),
        "failureCode": event.failure_code,
        "failureReason": event.failure_reason,
        "flowDefinitionArn": arn(region, account_id, "flow-definition", event.flow_name),
        "humanLoopArn": loop_arn,
        "humanLoopName": event.loop_name,
        "humanLoopOutput": {"outputS3Uri": event.output_uri} if event.output_uri else None,
        "humanLoopStatus": event.status,
    }
    # loopin's extensions come after A2I's keys and never replace one: extra data (e.g.
    # "consolidation", "loopinEscalation") and, when a deadline or the declines answered
    # the loop, its fallback.
    extra = json.loads(event.data) if event.data else {}
    if event.fallback_info:
        extra["loopinFallback"] = json.loads(event.fallback_info)
    detail.update({k: v for k, v in extra.items() if k not in detail})
    return {
        "version": "0",
        "id": event.event_id,
        "detail-type": DETAIL_TYPE,
        "source": "aws.sagemaker",
        "account": account_id,
        "time": datetime.fromtimestamp(event.created_at // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [loop_arn],
        "detail": detail,
    }


def events_after(
    session: Session, after_seq: int, *, flow: str | None = None, loop: str | None = None, limit: int = 500
) -> list[Event]:
    query = select(Event).where(Event.seq > after_seq).order_by(Event.seq).limit(limit)
    if flow is not None:
        query = query.where(Event.flow_name == flow)
    if loop is not None:
        query = query.where(Event.loop_name == loop)
    return list(session.scalars(query))


def last_seq(session: Session) -> int:
    return session.scalar(select(Event.seq).order_by(Event.seq.desc()).limit(1)) or 0
