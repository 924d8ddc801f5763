"""Webhooks and their deliveries: at-least-once, signed with HMAC-SHA256 under the Standard
Webhooks headers, retried with exponential back-off and jitter up to a horizon, then
dead-lettered (and replayable). Several server processes share the work."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loopin.errors import NotFoundError, ResourceInUseError, ValidationError
from loopin.events import eventbridge
from loopin.flows import get_flow
from loopin.models import Delivery, Event, Webhook
from loopin.outbound import check_url_syntax, pinned_client, resolve_allowed
from loopin.services import Services
from loopin.signing import seal, unseal
from loopin.validation import check_name, fits_db_int

log = logging.getLogger("loopin.webhooks")
PURPOSE = "loopin-webhook-secrets"
CLAIM_MS = 60_000  # a delivery being sent is not retried by another process before this
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class NewWebhook:
    webhook: Webhook
    secret: str  # whsec_..., shown once


def create_webhook(
    session: Session,
    *,
    name: str,
    url: str,
    flow: str | None = None,
    allow_private_network: bool = False,
    secret_key: str,
    now_ms: int,
) -> NewWebhook:
    check_name(name, what="Webhook name")
    resolve_allowed(url, allow_private=allow_private_network)
    if flow is not None:
        get_flow(session, flow)
    if session.scalar(select(Webhook.id).where(Webhook.name == name)) is not None:
        raise ResourceInUseError(f"A webhook named '{name}' exists already.")
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    row = Webhook(
        name=name,
        url=url,
        flow_name=flow,
        secret_encrypted=seal(secret_key, PURPOSE, secret),
        allow_private_network=allow_private_network,
        created_at=now_ms,
    )
    session.add(row)
    session.flush()
    return NewWebhook(row, secret)


def get_webhook(session: Session, name: str) -> Webhook:
    row = session.scalar(select(Webhook).where(Webhook.name == name))
    if row is None:
        raise NotFoundError(f"No webhook named '{name}'.")
    return row


def list_webhooks(session: Session) -> list[Webhook]:
    return list(session.scalars(select(Webhook).order_by(Webhook.name)))


def delete_webhook(session: Session, name: str) -> None:
    session.delete(get_webhook(session, name))


def list_deliveries(
    session: Session, *, status: str | None = None, webhook: str | None = None, limit: int = 100
) -> list[tuple[Delivery, Event, Webhook]]:
    query = (
        select(Delivery, Event, Webhook)
        .join(Event, Event.seq == Delivery.event_seq)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .order_by(Delivery.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    if status is not None:
        if status not in ("pending", "delivered", "dead"):
            raise ValidationError("status is one of pending, delivered, dead.")
        query = query.where(Delivery.status == status)
    if webhook is not None:
        query = query.where(Webhook.name == webhook)
    return [(d, e, w) for d, e, w in session.execute(query)]


def replay(session: Session, delivery_id: int, *, now_ms: int) -> Delivery:
    """Send a dead-lettered (or delivered) event again, with a fresh retry budget."""
    delivery = session.get(Delivery, delivery_id) if fits_db_int(delivery_id) else None
    if delivery is None:
        raise NotFoundError(f"No delivery {delivery_id}.")
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = now_ms
    delivery.created_at = now_ms  # the retry horizon counts from the replay
    delivery.last_error = None
    return delivery


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


# -- delivery ------------------------------------------------------------------------


def fan_out(session: Session, *, now_ms: int, limit: int = 500) -> int:
    """Create one delivery per matching webhook for new events."""
    events = session.scalars(
        select(Event)
        .where(Event.fanned_out.is_(False))
        .order_by(Event.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not events:
        return 0
    hooks = list_webhooks(session)
    for event in events:
        for hook in hooks:
            if hook.flow_name in (None, event.flow_name):
                session.add(
                    Delivery(
                        event_seq=event.seq,
                        webhook_id=hook.id,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now_ms,
                        created_at=now_ms,
                    )
                )
        event.fanned_out = True
    return len(events)


def deliver_due(ctx: Services, *, limit: int = 50) -> int:
    """Send due deliveries; returns how many were delivered."""
    s = ctx.settings
    now = ctx.clock.now_ms()
    with ctx.db.write() as session:
        fan_out(session, now_ms=now)
    with ctx.db.write() as session:
        due = session.scalars(
            select(Delivery)
            .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        work = []
        for delivery in due:
            delivery.next_attempt_at = now + CLAIM_MS
            event = session.get_one(Event, delivery.event_seq)
            hook = session.get_one(Webhook, delivery.webhook_id)
            body = json.dumps(eventbridge(event, region=s.region, account_id=s.account_id)).encode()
            work.append((delivery.id, delivery.attempts, delivery.created_at, hook, event.event_id, body))
    if not work:
        return 0
    # A slow receiver must not hold up the others: send in parallel.
    with ThreadPoolExecutor(max_workers=min(8, len(work))) as pool:
        results = list(pool.map(lambda w: _send(ctx, w[3], w[4], w[5]), work))
    return sum(
        _record(ctx, delivery_id, attempts, started_at, error=error, status_code=code)
        for (delivery_id, attempts, started_at, *_), (error, code) in zip(work, results, strict=True)
    )


def _send(ctx: Services, hook: Webhook, event_id: str, body: bytes) -> tuple[str | None, int | None]:
    """POST the event; returns (error or None, HTTP status or None)."""
    s = ctx.settings
    timestamp = ctx.clock.now_ms() // 1000
    try:
        secret = unseal(s.secret_key, PURPOSE, hook.secret_encrypted)
    except ValueError:
        return "The webhook secret cannot be read with this server's secret key.", None
    headers = {
        "content-type": "application/json",
        "user-agent": "loopin-webhooks",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, event_id, timestamp, body),
    }
    url = hook.url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            # Every hop is checked, and its connection goes to exactly the addresses checked.
            addresses = resolve_allowed(url, allow_private=hook.allow_private_network)
            with pinned_client(addresses, timeout=s.webhook_timeout_seconds) as client:
                response = client.post(url, content=body, headers=headers)
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                check_url_syntax(url)
                continue
            if 200 <= response.status_code < 300:
                return None, response.status_code
            return f"The receiver answered HTTP {response.status_code}.", response.status_code
        return "Too many redirects.", None
    except ValidationError as exc:
        return exc.message, None
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}", None
    except Exception as exc:  # one bad delivery must never stop the others being recorded
        log.exception("webhook delivery to %r failed unexpectedly", url)
        return f"{type(exc).__name__}: {exc}", None


def _record(
    ctx: Services, delivery_id: int, attempts: int, started_at: int, *, error: str | None, status_code: int | None
) -> int:
    now = ctx.clock.now_ms()
    values: dict[str, Any] = {"attempts": attempts + 1, "last_status_code": status_code, "last_error": error}
    if error is None:
        values |= {"status": "delivered", "delivered_at": now}
    else:
        # Exponential back-off with full jitter, until the horizon; then the dead-letter list.
        backoff = min(3_600_000, 1000 * 2 ** min(attempts, 20))
        next_at = now + random.randint(backoff // 2, backoff)
        horizon = started_at + ctx.settings.webhook_retry_horizon_seconds * 1000
        values |= {"status": "dead"} if next_at > horizon else {"next_attempt_at": next_at}
        log.info("webhook delivery %d failed (attempt %d): %s", delivery_id, attempts + 1, error)
    with ctx.db.write() as session:
        session.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.status == "pending").values(**values)
        )
    return 1 if error is None else 0
