"""Native API routes for webhooks, their deliveries (with the dead-letter list and replay),
and the server-sent-events stream of loop status changes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Header, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import events, schemas, webhooks
from loopin.clock import iso_ms
from loopin.errors import ValidationError
from loopin.models import Delivery, Event, Webhook
from loopin.services import Services
from loopin.validation import fits_db_int
from loopin.web.api.auth import Admin, Ctx

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0


def _webhook(row: Webhook) -> schemas.WebhookInfo:
    return schemas.WebhookInfo(
        name=row.name,
        url=row.url,
        flow=row.flow_name,
        allow_private_network=row.allow_private_network,
        created_at=iso_ms(row.created_at),
    )


def _delivery(d: Delivery, e: Event, w: Webhook) -> schemas.DeliveryInfo:
    return schemas.DeliveryInfo(
        id=d.id,
        webhook=w.name,
        event_id=e.event_id,
        loop=e.loop_name,
        loop_status=e.status,
        status=d.status,
        attempts=d.attempts,
        last_error=d.last_error,
        last_status_code=d.last_status_code,
        next_attempt_at=iso_ms(d.next_attempt_at) if d.status == "pending" else None,
        delivered_at=iso_ms(d.delivered_at) if d.delivered_at else None,
    )


def events_routes(api: FastAPI) -> None:
    @api.post("/webhooks", status_code=201, response_model=schemas.WebhookCreated, tags=["events"])
    def create_webhook(body: schemas.WebhookCreate, ctx: Ctx, _: Admin) -> schemas.WebhookCreated:
        def run(s: Session) -> schemas.WebhookCreated:
            new = webhooks.create_webhook(
                s,
                name=body.name,
                url=body.url,
                flow=body.flow,
                allow_private_network=body.allow_private_network,
                secret_key=ctx.settings.secret_key,
                now_ms=ctx.clock.now_ms(),
            )
            return schemas.WebhookCreated(**_webhook(new.webhook).model_dump(), secret=new.secret)

        return ctx.write(run)

    @api.get("/webhooks", response_model=list[schemas.WebhookInfo], tags=["events"])
    def list_webhooks(ctx: Ctx, _: Admin) -> list[schemas.WebhookInfo]:
        with ctx.db.read() as s:
            return [_webhook(w) for w in webhooks.list_webhooks(s)]

    @api.delete("/webhooks/{name}", status_code=204, tags=["events"])
    def delete_webhook(name: str, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: webhooks.delete_webhook(s, name))

    @api.get("/deliveries", response_model=list[schemas.DeliveryInfo], tags=["events"])
    def list_deliveries(
        ctx: Ctx,
        _: Admin,
        status: Annotated[str | None, Query(description="pending, delivered or dead (the dead-letter list)")] = None,
        webhook: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[schemas.DeliveryInfo]:
        with ctx.db.read() as s:
            return [_delivery(*row) for row in webhooks.list_deliveries(s, status=status, webhook=webhook, limit=limit)]

    @api.post("/deliveries/{delivery_id}/replay", response_model=schemas.DeliveryInfo, tags=["events"])
    def replay(delivery_id: int, ctx: Ctx, _: Admin) -> schemas.DeliveryInfo:
        def run(s: Session) -> schemas.DeliveryInfo:
            d = webhooks.replay(s, delivery_id, now_ms=ctx.clock.now_ms())
            return _delivery(d, s.get_one(Event, d.event_seq), s.get_one(Webhook, d.webhook_id))

        return ctx.write(run)

    @api.get(
        "/events",
        tags=["events"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "Loop status changes as SSE."}},
    )
    async def stream(
        ctx: Ctx,
        _: Admin,
        flow: str | None = None,
        loop: str | None = None,
        replay: Annotated[bool, Query(description="Start with the past events (useful with `loop`).")] = False,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """Server-sent events: one ``loop-status`` event per loop status change, in the A2I
        EventBridge shape; the SSE id is a sequence number, so a reconnect with
        ``Last-Event-ID`` resumes where it left off."""
        if last_event_id:
            if not re.fullmatch(r"[0-9]{1,19}", last_event_id) or not fits_db_int(int(last_event_id)):
                raise ValidationError("Last-Event-ID must be the id of an event this stream sent (a sequence number).")
            start = int(last_event_id)
        elif replay:
            start = 0
        else:
            start = await run_in_threadpool(_last_seq, ctx)
        return StreamingResponse(
            _sse(ctx, start, flow=flow, loop=loop),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _last_seq(ctx: Services) -> int:
    with ctx.db.read() as s:
        return events.last_seq(s)


def _batch(ctx: Services, after: int, flow: str | None, loop: str | None) -> list[tuple[int, str]]:
    s_ = ctx.settings
    with ctx.db.read() as s:
        return [
            (e.seq, json.dumps(events.eventbridge(e, region=s_.region, account_id=s_.account_id)))
            for e in events.events_after(s, after, flow=flow, loop=loop)
        ]


async def _sse(ctx: Services, after: int, *, flow: str | None, loop: str | None) -> AsyncIterator[str]:
    yield ": connected\n\n"
    idle = 0.0
    while True:
        batch = await run_in_threadpool(_batch, ctx, after, flow, loop)
        for seq, data in batch:
            after = seq
            yield f"id: {seq}\nevent: loop-status\ndata: {data}\n\n"
        if batch:
            idle = 0.0
            continue
        await asyncio.sleep(POLL_SECONDS)
        idle += POLL_SECONDS
        if idle >= HEARTBEAT_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"
