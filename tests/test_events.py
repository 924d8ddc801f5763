"""Status-change events: the outbox, signed webhook deliveries with retries, the dead-letter
list and replay, the SSRF guard, and the server-sent-events stream."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loopin.background import run_once
from loopin.client import Client, WorkerClient
from loopin.errors import ValidationError
from tests.helpers import PASSWORD, admin_client, setup_flow, worker_client
from tests.receiver import receiver
from tests.servers import create_key, loopin_env, serve


@pytest.fixture
def admin(app_client: TestClient, access_key: tuple[str, str]):
    return admin_client(app_client, access_key)


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (Standard Webhooks), written independently of loopin's code."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, sig.split(",", 1)[1]) for sig in headers["webhook-signature"].split())


def test_every_status_change_is_delivered_signed_in_the_a2i_shape(admin, app_client, services, clock) -> None:
    emails = setup_flow(admin, availability=600)
    with receiver() as hook:
        created = admin.create_webhook("all", url=hook.url, allow_private_network=True)
        assert created.secret.startswith("whsec_")
        admin.start_loop("done", flow="review", input={"a": 1})
        admin.start_loop("stopped", flow="review", input={"a": 2})
        admin.start_loop("expired", flow="review", input={"a": 3})
        worker = worker_client(app_client, emails[0])
        worker.submit(worker.next_task().task_id, {"ok": True})
        admin.stop_loop("stopped")
        clock.advance(601)
        run_once(services)
        run_once(services)
        received = hook.bodies()
        statuses = sorted((b["detail"]["humanLoopName"], b["detail"]["humanLoopStatus"]) for b in received)
        assert statuses == [
            ("done", "Completed"),
            ("done", "InProgress"),
            ("expired", "Failed"),
            ("expired", "InProgress"),
            ("stopped", "InProgress"),
            ("stopped", "Stopped"),
        ]
        for raw in hook.received:
            assert _verify(created.secret, {k.lower(): v for k, v in raw["headers"].items()}, raw["body"])
        done = next(b for b in received if b["detail"]["humanLoopStatus"] == "Completed")
        assert done["detail-type"] == "SageMaker A2I HumanLoop Status Change" and done["source"] == "aws.sagemaker"
        assert done["resources"] == [done["detail"]["humanLoopArn"]] and done["account"] == "000000000000"
        assert done["detail"]["humanLoopOutput"]["outputS3Uri"] == admin.describe_loop("done").output_uri
        assert done["time"].endswith("Z") and len(done["time"]) == 20
        failed = next(b for b in received if b["detail"]["humanLoopStatus"] == "Failed")
        assert failed["detail"]["failureCode"] == "Expired"
        assert len({b["id"] for b in received}) == 6
    assert {d.status for d in admin.list_deliveries()} == {"delivered"}


def test_failing_receiver_is_retried_then_dead_lettered_then_replayed(admin, services, clock) -> None:
    setup_flow(admin, availability=864_000)  # the loop stays InProgress: one event
    with receiver() as hook:
        hook.status = 500
        admin.create_webhook("flaky", url=hook.url, flow="review", allow_private_network=True)
        admin.start_loop("x", flow="review", input={})
        run_once(services)
        assert len(hook.received) == 1
        run_once(services)  # not due yet: back-off
        assert len(hook.received) == 1
        for _ in range(30):  # a day of retries, minute by minute... in big steps
            clock.advance(3600)
            run_once(services)
        attempts = len(hook.received)
        assert 5 <= attempts <= 40  # exponential back-off, not one per step
        dead = admin.list_deliveries(status="dead")
        assert len(dead) == 1 and dead[0].last_status_code == 500 and "500" in dead[0].last_error
        assert len({r["headers"]["webhook-id"] for r in hook.received}) == 1  # the same event each time
        hook.status = 200
        replayed = admin.replay_delivery(dead[0].id)
        assert replayed.status == "pending"
        run_once(services)
        assert admin.list_deliveries(status="dead") == []
        assert admin.list_deliveries(status="delivered")[0].id == dead[0].id


@pytest.fixture
def quick_timeout_services(settings, clock):
    from loopin.services import build_services

    ctx = build_services(settings.model_copy(update={"webhook_timeout_seconds": 0.3}), clock=clock)
    yield ctx
    ctx.db.dispose()


def test_slow_receiver_times_out_and_is_retried(quick_timeout_services, clock) -> None:
    from loopin.access_keys import create_key as make_key
    from loopin.web.server import create_app

    ctx = quick_timeout_services
    with ctx.db.write() as s:
        key = make_key(s, secret_key=ctx.settings.secret_key, description="", now_ms=0)
    with TestClient(create_app(services=ctx, run_background=False)) as http, receiver() as hook:
        admin = admin_client(http, (key.access_key_id, key.secret_access_key))
        setup_flow(admin, workers=1)
        hook.delay = 1.0
        admin.create_webhook("slow", url=hook.url, allow_private_network=True)
        admin.start_loop("x", flow="review", input={})
        run_once(ctx)
        pending = admin.list_deliveries(status="pending")
        assert len(pending) == 1 and pending[0].attempts == 1 and "Timeout" in pending[0].last_error
        hook.delay = 0.0
        clock.advance(10)
        run_once(ctx)
        assert len(admin.list_deliveries(status="delivered")) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::1]/hook",
        "http://localhost:8080/hook",  # a hostname that resolves to loopback
        "ftp://example.com/hook",
        "http://user:pass@example.com/hook",
    ],
)
def test_webhooks_to_private_addresses_are_refused(admin, url) -> None:
    with pytest.raises(ValidationError):
        admin.create_webhook("bad", url=url)
    assert admin.list_webhooks() == []


def test_private_addresses_need_the_explicit_admin_choice(admin) -> None:
    assert admin.create_webhook(
        "internal", url="http://10.1.2.3/hook", allow_private_network=True
    ).allow_private_network


def test_a_webhook_allowed_private_is_checked_again_when_its_host_changes(admin, services, monkeypatch) -> None:
    """DNS can change after creation: each delivery resolves and checks again."""
    import socket

    from loopin import outbound

    setup_flow(admin, workers=1)
    real = socket.getaddrinfo
    answers = {"hooks.example.org": "93.184.216.34"}

    def fake(host, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], 80))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(outbound.socket, "getaddrinfo", fake)
    admin.create_webhook("public", url="http://hooks.example.org/hook")
    answers["hooks.example.org"] = "169.254.169.254"  # rebinding to the metadata service
    admin.start_loop("x", flow="review", input={})
    run_once(services)
    delivery = admin.list_deliveries()[0]
    assert delivery.status == "pending" and "169.254.169.254" in delivery.last_error


def test_sse_stream_and_wait_for_loop(tmp_path: Path, database_url: str) -> None:
    env = loopin_env(tmp_path / "data", database_url, LOOPIN_JOB_INTERVAL_SECONDS="0.2")
    key = create_key(env)
    with serve(env) as url:
        admin = Client(url, access_key_id=key[0], secret_access_key=key[1])
        emails = setup_flow(admin, workers=1)
        admin.start_loop("watched", flow="review", input={"a": 1})
        replayed = next(iter(admin.events(loop="watched", replay=True, max_seconds=10)))
        assert replayed["detail"]["humanLoopStatus"] == "InProgress"
        worker = WorkerClient.sign_in(url, emails[0], PASSWORD)
        worker.submit(worker.next_task().task_id, {"done": True})
        loop = admin.wait_for_loop("watched", timeout=30)
        assert loop.status == "Completed" and loop.output_uri
        statuses = [e["detail"]["humanLoopStatus"] for e in admin.events(loop="watched", replay=True, max_seconds=2)]
        assert statuses == ["InProgress", "Completed"]
        with pytest.raises(TimeoutError):
            admin.start_loop("never", flow="review", input={})
            admin.wait_for_loop("never", timeout=1.5)
