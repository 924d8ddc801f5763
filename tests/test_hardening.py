"""Issue 12: what a held-out security review broke. One test (or a few) per finding; each
failed on the behaviour before its fix."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text as text_

from loopin.client import WorkerClient
from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.services import Services, build_services
from loopin.web.server import create_app
from tests.conftest import basic_auth
from tests.helpers import PASSWORD, admin_client, setup_flow
from tests.test_console import Console

MiB = 1024 * 1024


class Sent:
    """What an ASGI app answered to a request fed to it chunk by chunk, and how much of the
    body it pulled."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.pulled = 0

    def json(self) -> Any:
        return json.loads(self.body)


def asgi_request(
    app: Any,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    chunks: Iterator[bytes] = iter(()),
    host: str | None = "testserver",
) -> Sent:
    """Drive ``app`` directly (the test client would read the whole body first)."""
    sent = Sent()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        + ([(b"host", host.encode())] if host else []),
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done:
            await anyio.sleep(3600)
        chunk = next(chunks, None)
        if chunk is None:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        sent.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.status = message["status"]
            sent.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            sent.body += message.get("body", b"")

    async def main() -> None:
        with anyio.fail_after(60):
            await app(scope, receive, send)

    anyio.run(main)
    return sent


def _zeros(total: int, size: int = MiB) -> Iterator[bytes]:
    while total > 0:
        n = min(size, total)
        total -= n
        yield b" " * n


# -- 1. request bodies: a size limit enforced while reading, auth before a large body ----


@pytest.fixture
def app(services: Services) -> Any:
    return create_app(services=services, run_background=False)


def test_api_refuses_a_large_unauthenticated_body_before_reading_it(app: Any) -> None:
    big = 300 * MiB
    for path in ("/api/v1/loops", "/api/v1/teams", "/api/v1/worker/tasks/next"):
        sent = asgi_request(
            app,
            "POST",
            path,
            headers={"content-type": "application/json", "content-length": str(big)},
            chunks=_zeros(big),
        )
        assert (sent.status, sent.json()["error"]["code"]) in ((401, "UnauthorizedException"), (413, "PayloadTooLarge"))
        assert sent.pulled <= MiB
        # within the limit, chunked: still refused before the body is read
        sent = asgi_request(
            app,
            "POST",
            path,
            headers={"content-type": "application/json", "transfer-encoding": "chunked"},
            chunks=_zeros(big),
        )
        assert sent.status == 401, (path, sent.status)
        assert sent.json()["error"]["code"] == "UnauthorizedException"
        assert sent.pulled == 0


@pytest.mark.parametrize("declared", [True, False])
def test_api_sign_in_refuses_a_large_body_early(app: Any, declared: bool) -> None:
    big = 300 * MiB
    headers = {"content-type": "application/json"}
    headers["content-length" if declared else "transfer-encoding"] = str(big) if declared else "chunked"
    sent = asgi_request(app, "POST", "/api/v1/worker/sign-in", headers=headers, chunks=_zeros(big, 64 * 1024))
    assert sent.status == 413
    assert sent.json()["error"]["code"] == "PayloadTooLarge"
    assert sent.pulled <= 2 * MiB


def test_api_refuses_an_authenticated_body_over_the_route_limit(app: Any, admin_headers: dict[str, str]) -> None:
    big = 40 * MiB
    sent = asgi_request(
        app,
        "POST",
        "/api/v1/teams",
        headers={**admin_headers, "content-type": "application/json", "transfer-encoding": "chunked"},
        chunks=_zeros(big),
    )
    assert sent.status == 413
    assert sent.json()["error"]["code"] == "PayloadTooLarge"
    assert sent.pulled <= 3 * MiB


def test_api_loop_input_of_three_mib_still_fits(app_client: TestClient, access_key: tuple[str, str]) -> None:
    admin = admin_client(app_client, access_key)
    setup_flow(admin, workers=1)
    content = json.dumps({"text": "\n" * 1_500_000})  # each escaped twice: 3 MB of input, 9 MB of body
    response = app_client.post(
        "/api/v1/loops",
        json={"name": "big", "flow": "review", "input_content": content},
        headers=basic_auth(*access_key),
    )
    assert response.status_code == 200, response.text


# -- 2. one sign-in limit for every path, kept in the database --------------------------


def test_api_sign_in_is_rate_limited_and_shares_the_consoles_counts(
    services: Services, settings: Settings, clock: ManualClock, access_key: tuple[str, str]
) -> None:
    app = create_app(services=services, run_background=False)
    with TestClient(app) as http:
        admin = admin_client(http, access_key)
        emails = setup_flow(admin, workers=2)
        for _ in range(5):
            wrong = http.post("/api/v1/worker/sign-in", json={"email": emails[0], "password": "wrong-password"})
            assert wrong.status_code == 401
        refused = http.post("/api/v1/worker/sign-in", json={"email": emails[0], "password": PASSWORD})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "ThrottlingException"
        assert int(refused.headers["retry-after"]) > 0
        # another worker is not held up
        assert http.post("/api/v1/worker/sign-in", json={"email": emails[1], "password": PASSWORD}).status_code == 200

    # A second server process on the same database: locked out in its worker console too,
    # and a worker locked out in the console cannot sign in through the API.
    other = build_services(settings, clock=clock)
    try:
        with TestClient(create_app(services=other, run_background=False)) as http2:
            console = Console(create_app(services=other, run_background=False))
            console.get("/worker/sign-in")
            console.post("/worker/sign-in", 429, email=emails[0], password=PASSWORD, csrf=console.csrf())
            for _ in range(5):
                console.get("/worker/sign-in")
                console.post("/worker/sign-in", 401, email=emails[1], password="wrong-password", csrf=console.csrf())
            refused = http2.post("/api/v1/worker/sign-in", json={"email": emails[1], "password": PASSWORD})
            assert refused.status_code == 429
            clock.advance(15 * 60 + 1)
            assert (
                http2.post("/api/v1/worker/sign-in", json={"email": emails[1], "password": PASSWORD}).status_code == 200
            )
    finally:
        other.db.dispose()


# -- 4. lone surrogates: refused at the door, and stored ones do not break pages ---------

LONE = "\\ud800"  # in JSON text: a lone surrogate, which no UTF-8 database or page can hold
NESTED = json.dumps(json.dumps({"taskObject": "s3://review-bucket/a.jpg", "labels": ["\ud800"]}))


def _raw(http: TestClient, method: str, path: str, body: str, headers: dict[str, str]) -> Any:
    return http.request(method, path, content=body.encode(), headers={**headers, "content-type": "application/json"})


def test_lone_surrogates_are_refused_by_the_api(app_client: TestClient, access_key: tuple[str, str]) -> None:
    admin = admin_client(app_client, access_key)
    emails = setup_flow(admin, workers=1)
    auth = basic_auth(*access_key)
    bodies = [
        ("POST", "/api/v1/teams", f'{{"name": "t9", "description": "{LONE}"}}'),
        ("POST", "/api/v1/teams", '{"name": "t8", "description": "a\\u0000b"}'),  # NUL: no PostgreSQL text
        ("PATCH", "/api/v1/teams/MyTeam", f'{{"description": "a{LONE}"}}'),
        ("POST", "/api/v1/workers", f'{{"email": "x@y.example", "name": "{LONE}"}}'),
        ("POST", "/api/v1/task-uis", f'{{"name": "ui9", "template": "<p>{LONE}</p>"}}'),
        ("PATCH", "/api/v1/flows/review", f'{{"title": "{LONE}"}}'),
        ("POST", "/api/v1/webhooks", f'{{"url": "https://example.com/{LONE}"}}'),
        ("POST", "/api/v1/loops", f'{{"name": "l1", "flow": "review", "input": {{"a": "{LONE}"}}}}'),
        ("POST", "/api/v1/loops", f'{{"name": "l2", "flow": "review", "input_content": {NESTED}}}'),
        ("POST", "/api/v1/worker/sign-in", f'{{"email": "{emails[0]}", "password": "{LONE}"}}'),
    ]
    for method, path, body in bodies:
        response = _raw(app_client, method, path, body, auth)
        assert response.status_code == 400, (path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "ValidationException"
    token = app_client.post("/api/v1/worker/sign-in", json={"email": emails[0], "password": PASSWORD}).json()["token"]
    admin.start_loop("ok", flow="review", input={"taskObject": "s3://review-bucket/a.jpg"})
    bearer = {"Authorization": f"Bearer {token}"}
    task = app_client.post("/api/v1/worker/tasks/next", headers=bearer).json()
    for body in (f'{{"answer": {{"a": "{LONE}"}}}}', f'{{"answer": {{"{LONE}": 1}}}}'):
        response = _raw(app_client, "POST", f"/api/v1/worker/tasks/{task['task_id']}/submit", body, bearer)
        assert response.status_code == 400, response.text


def test_a_stored_lone_surrogate_does_not_break_any_page(
    services: Services, app_client: TestClient, access_key: tuple[str, str], admin_console: Any
) -> None:
    from sqlalchemy import text

    admin = admin_client(app_client, access_key)
    emails = setup_flow(admin, workers=1)
    admin.start_loop("broken", flow="review", input={"taskObject": "s3://review-bucket/a.jpg", "labels": ["cat"]})
    stored = '{"initialValue":[],"labels":["\\ud800"],"taskObject":"s3://review-bucket/a.jpg"}'
    with services.db.write() as s:
        s.execute(text("UPDATE human_loops SET input_content = :c WHERE name = 'broken'"), {"c": stored})
    auth = basic_auth(*access_key)
    assert app_client.get("/api/v1/loops/broken", headers=auth).status_code == 200
    admin_console.get("/admin/loops/broken")
    console = Console(create_app(services=services, run_background=False)).sign_in(emails[0])
    task_id = console.start()
    assert task_id is not None
    console.get(f"/worker/tasks/{task_id}/frame")
    console.get(f"/worker/tasks/{task_id}")
    console.post(f"/worker/tasks/{task_id}/release", csrf=console.csrf())
    token = app_client.post("/api/v1/worker/sign-in", json={"email": emails[0], "password": PASSWORD}).json()["token"]
    response = app_client.post("/api/v1/worker/tasks/next", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json()["input"]["labels"] == ["\ufffd"]


def test_lone_surrogates_in_console_forms_are_refused(
    services: Services, app_client: TestClient, access_key: tuple[str, str]
) -> None:
    admin = admin_client(app_client, access_key)
    emails = setup_flow(admin, workers=1)
    admin.start_loop("one", flow="review", input={"taskObject": "s3://review-bucket/a.jpg"})
    console = Console(create_app(services=services, run_background=False)).sign_in(emails[0])
    task_id = console.start()
    page = console.post(f"/worker/tasks/{task_id}/submit", 400, answer='{"a": "\\ud800"}', csrf=console.csrf())
    assert "surrogate" in page.text
    console.get(f"/worker/tasks/{task_id}")
    console.post(f"/worker/tasks/{task_id}/submit", answer='{"a": "fine"}', csrf=console.csrf())


# -- 6. team membership on every task action; removal and disabling release held tasks ---


def test_a_worker_taken_off_the_team_loses_the_task_they_hold(
    services: Services, app_client: TestClient, access_key: tuple[str, str]
) -> None:
    from sqlalchemy import delete

    from loopin.models import TeamMember

    admin = admin_client(app_client, access_key)
    emails = setup_flow(admin, workers=2)
    admin.start_loop("one", flow="review", input={"taskObject": "s3://review-bucket/a.jpg"})
    admin.start_loop("two", flow="review", input={"taskObject": "s3://review-bucket/b.jpg"})

    def bearer(email: str) -> dict[str, str]:
        answer = app_client.post("/api/v1/worker/sign-in", json={"email": email, "password": PASSWORD})
        return {"Authorization": "Bearer " + answer.json()["token"]}

    first, second = bearer(emails[0]), bearer(emails[1])
    held = app_client.post("/api/v1/worker/tasks/next", headers=first).json()["task_id"]
    # Taken off the team through the API: the task goes back to the pool at once.
    assert app_client.delete(f"/api/v1/teams/MyTeam/members/{emails[0]}", headers=basic_auth(*access_key)).is_success
    assert app_client.get(f"/api/v1/worker/tasks/{held}", headers=first).status_code == 404
    submit = app_client.post(f"/api/v1/worker/tasks/{held}/submit", json={"answer": {}}, headers=first)
    assert submit.status_code == 404
    assert app_client.post("/api/v1/worker/tasks/next", headers=second).json()["task_id"] == held

    # Membership gone by any other way (a row deleted): every action checks it.
    other = app_client.post("/api/v1/worker/tasks/next", headers=second).json()["task_id"]  # still held: same
    assert other == held
    with services.db.write() as s:
        s.execute(delete(TeamMember))
    assert app_client.get(f"/api/v1/worker/tasks/{held}", headers=second).status_code == 404
    submit = app_client.post(f"/api/v1/worker/tasks/{held}/submit", json={"answer": {}}, headers=second)
    assert submit.status_code == 404


def test_disabling_a_worker_in_the_admin_console_releases_their_tasks(
    services: Services, app_client: TestClient, access_key: tuple[str, str], admin_console: Any
) -> None:
    from loopin.models import TaskSlot

    admin = admin_client(app_client, access_key)
    emails = setup_flow(admin, workers=1)
    admin.start_loop("one", flow="review", input={"taskObject": "s3://review-bucket/a.jpg"})
    token = app_client.post("/api/v1/worker/sign-in", json={"email": emails[0], "password": PASSWORD}).json()["token"]
    app_client.post("/api/v1/worker/tasks/next", headers={"Authorization": "Bearer " + token})
    admin_console.get("/admin/teams/MyTeam")
    admin_console.post("/admin/teams/MyTeam/disable", email=emails[0])
    with services.db.read() as s:
        assert [slot.status for slot in s.query(TaskSlot)] == ["available"]


# -- 3. webhooks: connect to the address checked; IPv4 inside IPv6 is checked too --------


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
        "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
        "http://[2002:a01:203::1]/hook",  # 6to4 of 10.1.2.3
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
        "http://[::ffff:7f00:1]/hook",
        "http://[::127.0.0.1]/hook",  # IPv4-compatible (deprecated)
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
    ],
)
def test_webhooks_to_ipv4_embedded_in_ipv6_are_refused(
    app_client: TestClient, access_key: tuple[str, str], url: str
) -> None:
    response = app_client.post("/api/v1/webhooks", json={"name": "bad", "url": url}, headers=basic_auth(*access_key))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "ValidationException"


def test_a_webhook_delivery_connects_to_the_address_that_was_checked(
    settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name resolves to a public address for the check and to loopback
    for whoever resolves it again; the delivery must go to the checked address."""
    import socket
    import sys

    from loopin import outbound
    from loopin.access_keys import create_key
    from loopin.background import run_once
    from tests.receiver import receiver

    real = socket.getaddrinfo

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example.org":
            checked = sys._getframe(1).f_globals.get("__name__") == "loopin.outbound"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34" if checked else "127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(outbound.socket, "getaddrinfo", rebinding)
    ctx = build_services(settings.model_copy(update={"webhook_timeout_seconds": 0.5}), clock=clock)
    try:
        with ctx.db.write() as s:
            key = create_key(s, secret_key=ctx.settings.secret_key, description="", now_ms=0)
        with TestClient(create_app(services=ctx, run_background=False)) as http, receiver() as hook:
            admin = admin_client(http, (key.access_key_id, key.secret_access_key))
            setup_flow(admin, workers=1)
            port = hook.url.split(":")[2].split("/")[0]
            admin.create_webhook("rebound", url=f"http://rebind.example.org:{port}/hook")
            admin.start_loop("x", flow="review", input={})
            run_once(ctx)
            assert hook.received == []
            [delivery] = admin.list_deliveries()
            assert delivery.status == "pending" and delivery.last_error
    finally:
        ctx.db.dispose()


# -- 10. webhook URLs the HTTP client would refuse; one bad delivery never affects another


@pytest.mark.parametrize(
    "url",
    ["http://example.com:99999/hook", "http://exa\x00mple.com/hook", "http://example.com/ho\x00ok", "http://[::1/hook"],
)
def test_webhook_urls_the_client_cannot_use_are_refused(
    app_client: TestClient, access_key: tuple[str, str], url: str
) -> None:
    response = app_client.post(
        "/api/v1/webhooks",
        json={"name": "bad", "url": url, "allow_private_network": True},
        headers=basic_auth(*access_key),
    )
    assert response.status_code == 400, response.text


def test_one_bad_webhook_delivery_does_not_stop_the_others(
    services: Services, app_client: TestClient, access_key: tuple[str, str], clock: ManualClock
) -> None:
    from sqlalchemy import update

    from loopin.background import run_once
    from loopin.models import Webhook
    from tests.receiver import receiver

    admin = admin_client(app_client, access_key)
    setup_flow(admin, workers=1)
    with receiver() as hook:
        for name in ("a-bad", "b-bad", "good"):
            admin.create_webhook(name, url=hook.url, allow_private_network=True)
        with services.db.write() as s:  # stored before URLs were checked as the client parses them
            s.execute(update(Webhook).where(Webhook.name == "a-bad").values(url="http://127.0.0.1:99999/hook"))
            s.execute(update(Webhook).where(Webhook.name == "b-bad").values(url="http://[::1/hook"))
        admin.start_loop("x", flow="review", input={})
        run_once(services)
        assert len(hook.received) == 1
        by_hook = {d.webhook: d for d in admin.list_deliveries()}
        assert by_hook["good"].status == "delivered"
        for name in ("a-bad", "b-bad"):
            assert by_hook[name].status == "pending" and by_hook[name].last_error and by_hook[name].attempts == 1
        clock.advance(2 * 86_400)
        run_once(services)
        assert {d.webhook for d in admin.list_deliveries(status="dead")} == {"a-bad", "b-bad"}


# -- 11. what a flow's tasks may grant read access to ------------------------------------


def test_loop_inputs_naming_outputs_or_places_outside_the_flows_inputs_are_refused(
    services: Services, app_client: TestClient, access_key: tuple[str, str]
) -> None:
    from sqlalchemy import text

    auth = basic_auth(*access_key)
    admin = admin_client(app_client, access_key)
    emails = setup_flow(admin, workers=1)  # flow "review", output s3://review-bucket/a2i-results
    other_output = "s3://review-bucket/a2i-results/review/2026/01/01/00/00/00/secret/output.json"
    services.store.put(other_output, b'{"answers": "of another team"}')
    response = app_client.post(
        "/api/v1/loops", json={"name": "steal", "flow": "review", "input": {"taskObject": other_output}}, headers=auth
    )
    assert response.status_code == 400 and other_output in response.json()["error"]["message"]

    flow = {
        "name": "scoped",
        "team": "MyTeam",
        "task_ui": "boxes",
        "title": "t",
        "description": "d",
        "output_path": "s3://scoped-out/results",
        "input_locations": ["s3://inputs/scoped/"],
    }
    created = app_client.post("/api/v1/flows", json=flow, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["input_locations"] == ["s3://inputs/scoped"]
    for uri in ("s3://secrets/key.jpg", "s3://inputs/scopedX/a.jpg", "s3://inputs/other/a.jpg"):
        response = app_client.post(
            "/api/v1/loops", json={"name": "out", "flow": "scoped", "input": {"taskObject": uri}}, headers=auth
        )
        assert response.status_code == 400 and uri in response.json()["error"]["message"], uri
    ok = app_client.post(
        "/api/v1/loops",
        json={"name": "in", "flow": "scoped", "input": {"taskObject": "s3://inputs/scoped/a.jpg"}},
        headers=auth,
    )
    assert ok.status_code == 200, ok.text

    # A loop stored before the check: the task page grants nothing outside the scope.
    admin.start_loop("old", flow="review", input={"taskObject": "s3://review-bucket/images/a.jpg"})
    stored = json.dumps({"taskObject": other_output})
    with services.db.write() as s:
        s.execute(text("UPDATE human_loops SET input_content = :c WHERE name = 'old'"), {"c": stored})
    console = Console(create_app(services=services, run_background=False)).sign_in(emails[0])
    task_id = console.start("review")
    frame = console.get(f"/worker/tasks/{task_id}/frame")
    assert "/store/" not in frame and "X-Amz-Signature" not in frame and "may not show" in frame


# -- 5. model sources: regular files or objects, with a size cap --------------------------


def test_model_sources_must_be_regular_files_of_bounded_size(
    settings: Settings, clock: ManualClock, tmp_path: Any
) -> None:
    import os
    import time

    from loopin.access_keys import create_key
    from loopin.endpoints import deploy_pending
    from loopin.schemas import VariantSpec
    from tests.test_inference import yolo_spec

    big = tmp_path / "big.onnx"
    big.write_bytes(b"\0" * 5000)
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    ctx = build_services(settings.model_copy(update={"max_model_bytes": 4096}), clock=clock)
    try:
        with ctx.db.write() as s:
            key = create_key(s, secret_key=ctx.settings.secret_key, description="", now_ms=0)
        with TestClient(create_app(services=ctx, run_background=False)) as http:
            admin = admin_client(http, (key.access_key_id, key.secret_access_key))
            spec = yolo_spec().model_dump(mode="json")
            for name, uri in (("zero", "file:///dev/zero"), ("pipe", f"file://{fifo}"), ("big", f"file://{big}")):
                admin.register_model(name, onnx_uri=uri, spec=spec)
                admin.create_endpoint_config(f"c-{name}", variants=[VariantSpec(model=name)])
                admin.create_endpoint(f"ep-{name}", config=f"c-{name}")
            started = time.monotonic()
            deploy_pending(ctx)
            assert time.monotonic() - started < 10
            reasons = {name: admin.describe_endpoint(f"ep-{name}") for name in ("zero", "pipe", "big")}
            assert all(e.status == "Failed" for e in reasons.values())
            assert "not a regular file" in reasons["zero"].failure_reason
            assert "not a regular file" in reasons["pipe"].failure_reason
            assert "max_model_bytes" in reasons["big"].failure_reason
            # A failed endpoint is not loaded again (at the next round, or a restart).
            assert deploy_pending(ctx) == 0
    finally:
        ctx.db.dispose()


def memory_bomb(elements: int) -> bytes:
    """A 64x64 YOLO-shaped model of a few hundred bytes that fills ``elements`` floats when run."""
    from onnx import TensorProto, helper, numpy_helper

    from tests.test_inference import YOLO_ROWS

    rows = YOLO_ROWS.T[None]
    nodes = [
        helper.make_node(
            "ConstantOfShape", ["shape"], ["bomb"], value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
        ),
        helper.make_node("ReduceSum", ["bomb"], ["total"], keepdims=0),
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Add", ["total", "mean"], ["both"]),
        helper.make_node("Mul", ["both", "zero"], ["nothing"]),
        helper.make_node("Add", ["rows", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bomb",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, rows.shape)],
        initializer=[
            numpy_helper.from_array(np.array([elements], dtype=np.int64), "shape"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
            numpy_helper.from_array(rows.astype(np.float32), "rows"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"model_load_memory_bytes": 256 * 1024 * 1024}, "model_load_memory_bytes"),
        ({"model_load_timeout_seconds": 0.05}, "model_load_timeout_seconds"),
    ],
)
def test_a_model_that_takes_too_much_memory_or_time_to_load_fails_its_endpoint_not_the_server(
    settings: Settings, clock: ManualClock, tmp_path: Any, limits: dict[str, Any], expected: str
) -> None:
    from loopin.access_keys import create_key
    from loopin.endpoints import deploy_pending
    from loopin.schemas import VariantSpec
    from tests.test_inference import yolo_spec

    bomb = tmp_path / "bomb.onnx"
    bomb.write_bytes(memory_bomb(3_000_000_000))  # 12 GB of floats at the first run
    assert bomb.stat().st_size < 2000
    ctx = build_services(settings.model_copy(update=limits), clock=clock)
    try:
        with ctx.db.write() as s:
            key = create_key(s, secret_key=ctx.settings.secret_key, description="", now_ms=0)
        with TestClient(create_app(services=ctx, run_background=False)) as http:
            admin = admin_client(http, (key.access_key_id, key.secret_access_key))
            admin.register_model("bomb", onnx_uri=f"file://{bomb}", spec=yolo_spec().model_dump(mode="json"))
            admin.create_endpoint_config("c-bomb", variants=[VariantSpec(model="bomb")])
            admin.create_endpoint("ep-bomb", config="c-bomb")
            deploy_pending(ctx)
            endpoint = admin.describe_endpoint("ep-bomb")
            assert endpoint.status == "Failed" and expected in (endpoint.failure_reason or "")
            assert http.get("/healthz").status_code == 200
            assert deploy_pending(ctx) == 0  # not tried again
    finally:
        ctx.db.dispose()


def test_a_good_model_passes_the_load_check() -> None:
    from loopin.inference.load_check import check_model_loads
    from tests.test_inference import YOLO_ROWS, constant_model, yolo_spec

    model = constant_model({"output0": YOLO_ROWS.T[None]}, [1, 3, 64, 64])
    check_model_loads(model, yolo_spec(), timeout_s=60, memory_bytes=256 * 1024 * 1024)


# -- 7. the data directory is private, whatever the umask --------------------------------


def test_the_data_directory_and_its_files_are_private(tmp_path: Any, database_url: str) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        url = "" if database_url.startswith("sqlite") else database_url  # SQLite: the default file in data_dir
        settings = Settings(data_dir=tmp_path / "data", database_url=url, public_url="http://testserver")
        ctx = build_services(settings)
        try:
            with ctx.db.write() as s:
                s.execute(text_("SELECT 1"))
            ctx.store.put("s3://bucket/some/key.json", b"{}", content_type="application/json")
            mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
            data = tmp_path / "data"
            assert mode(data) == 0o700
            private = [data / "secret_key"]
            if database_url.startswith("sqlite"):
                private += [data / "loopin.db", data / "loopin.db-wal", data / "loopin.db-shm"]
            stored = []
            for root, _dirs, files in os.walk(data / "objects"):
                assert mode(root) & 0o077 == 0, root
                stored += [os.path.join(root, f) for f in files]
            # the object itself, and its metadata sidecar where the filesystem takes no extended attribute
            assert str(data / "objects" / "bucket" / "some" / "key.json") in stored
            private += stored
            for path in private:
                assert mode(path) == 0o600, (path, oct(mode(path)))
        finally:
            ctx.db.dispose()
    finally:
        os.umask(old)


# -- 12. work for nothing: long passwords, large images, many decodes at once --------------


def test_a_password_over_the_length_limit_is_refused_without_hashing(
    app_client: TestClient, access_key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopin import passwords

    admin = admin_client(app_client, access_key)
    emails = setup_flow(admin, workers=1)

    class NoHashing:
        def verify(self, *args: Any) -> bool:
            raise AssertionError("a password over the limit was hashed")

    monkeypatch.setattr(passwords, "_hasher", NoHashing())
    for email in (emails[0], "nobody@example.com"):
        response = app_client.post("/api/v1/worker/sign-in", json={"email": email, "password": "x" * 50_000})
        assert response.status_code == 401, response.text


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(
    app_client: TestClient, access_key: tuple[str, str], services: Services
) -> None:
    import io

    from PIL import Image

    from loopin.background import run_once
    from loopin.schemas import VariantSpec

    admin = admin_client(app_client, access_key)
    admin.create_endpoint_config("c", variants=[VariantSpec(model="nanodet-m-416-coco")])
    admin.create_endpoint("det", config="c")
    run_once(services)
    buf = io.BytesIO()
    Image.new("1", (6300, 6300)).save(buf, "PNG")  # 39.7 M pixels in a few kB
    response = app_client.post(
        "/api/v1/endpoints/det/invoke",
        content=buf.getvalue(),
        headers={**basic_auth(*access_key), "content-type": "image/png"},
    )
    assert response.status_code == 400 and "pixels" in response.json()["error"]["message"]


def test_image_decodes_at_once_are_bounded_per_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import threading
    import time

    from loopin import model_host
    from loopin.store import LocalStore

    running, most = 0, 0
    lock = threading.Lock()

    def slow_decode(data: bytes, *, max_pixels: int) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return None

    monkeypatch.setattr(model_host, "decode_image", slow_decode)
    host = model_host.ModelHost(LocalStore(tmp_path, public_url="http://x", secret_key="k"), concurrent_decodes=2)
    threads = [threading.Thread(target=host.decode, args=(b"",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 2


# -- 13. sessions end for good; tokens from before a disable stay dead ---------------------


def test_a_console_session_cookie_stops_working_at_sign_out(
    services: Services, app_client: TestClient, access_key: tuple[str, str], admin_console: Any
) -> None:
    from tests.admin_support import ADMIN_EMAIL, ADMIN_PASSWORD, AdminConsole

    emails = setup_flow(admin_client(app_client, access_key), workers=1)
    app = create_app(services=services, run_background=False)
    console = Console(app).sign_in(emails[0])
    cookie = console.http.cookies.get("loopin_session")
    console.get("/worker/jobs")
    console.post("/worker/sign-out", csrf=console.csrf())
    replayed = Console(app)
    replayed.http.cookies.set("loopin_session", cookie, path="/worker")
    assert replayed.http.get("/worker/jobs").status_code == 303

    admin = AdminConsole(app).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)  # the account admin_console made
    saved = admin.http.cookies.get("loopin_admin")
    admin.get("/admin/teams")
    admin.post("/admin/sign-out")
    again = AdminConsole(app)
    again.http.cookies.set("loopin_admin", saved, path="/admin")
    refused = again.http.get("/admin/teams")
    assert refused.status_code == 303 and "sign-in" in refused.headers["location"]


def test_a_disabled_workers_old_token_stays_dead_after_re_enabling(
    app_client: TestClient, access_key: tuple[str, str]
) -> None:
    auth = basic_auth(*access_key)
    emails = setup_flow(admin_client(app_client, access_key), workers=1)
    token = app_client.post("/api/v1/worker/sign-in", json={"email": emails[0], "password": PASSWORD}).json()["token"]
    bearer = {"Authorization": "Bearer " + token}
    assert app_client.get("/api/v1/worker/jobs", headers=bearer).status_code == 200
    assert app_client.patch(f"/api/v1/workers/{emails[0]}", json={"status": "disabled"}, headers=auth).is_success
    assert app_client.patch(f"/api/v1/workers/{emails[0]}", json={"status": "active"}, headers=auth).is_success
    assert app_client.get("/api/v1/worker/jobs", headers=bearer).status_code == 401
    fresh = app_client.post("/api/v1/worker/sign-in", json={"email": emails[0], "password": PASSWORD}).json()["token"]
    assert app_client.get("/api/v1/worker/jobs", headers={"Authorization": "Bearer " + fresh}).status_code == 200


def test_a_stale_token_can_neither_claim_nor_submit_and_changes_nothing(
    app_client: TestClient, access_key: tuple[str, str]
) -> None:
    """Claims and submits check the worker inside their (grouped) write transaction, not in
    a read of their own before it: a token that ended meanwhile is refused there, with 401,
    and a claim of another worker in flight at the same time still gets its task."""
    admin = admin_client(app_client, access_key)
    emails = setup_flow(admin, workers=2)
    for i in range(3):
        admin.start_loop(f"stale-{i}", flow="review", input={"i": i})
    sign_in = [{"email": e, "password": PASSWORD} for e in emails]
    stale, other = (app_client.post("/api/v1/worker/sign-in", json=body).json()["token"] for body in sign_in)
    bearer, other_bearer = ({"Authorization": "Bearer " + t} for t in (stale, other))
    held = app_client.post("/api/v1/worker/tasks/next", json={}, headers=bearer).json()
    app_client.post("/api/v1/worker/sign-out", headers=bearer)

    answers: dict[str, Any] = {}

    def claim(who: str, headers: dict[str, str]) -> None:
        answers[who] = app_client.post("/api/v1/worker/tasks/next", json={}, headers=headers)

    for _ in range(3):  # the two claims race, often into one group transaction
        racers = [threading.Thread(target=claim, args=args) for args in (("stale", bearer), ("other", other_bearer))]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        assert answers["stale"].status_code == 401
        assert answers["stale"].json()["error"]["code"] == "UnauthorizedException"
        assert answers["other"].status_code in (200, 204)
    submitted = app_client.post(
        f"/api/v1/worker/tasks/{held['task_id']}/submit", json={"answer": {"late": True}}, headers=bearer
    )
    assert submitted.status_code == 401 and "not active" in submitted.json()["error"]["message"]
    # Had it been kept, its loop (one answer wanted) would be Completed.
    assert {loop.status for loop in admin.list_loops(flow="review").loops} == {"InProgress"}


def test_api_sign_out_ends_every_token_of_the_worker_on_every_server(
    app_client: TestClient, access_key: tuple[str, str]
) -> None:
    emails = setup_flow(admin_client(app_client, access_key), workers=1)
    sign_in = {"email": emails[0], "password": PASSWORD}
    phone, laptop = (app_client.post("/api/v1/worker/sign-in", json=sign_in).json()["token"] for _ in range(2))
    reviewer = WorkerClient("http://testserver", token=phone, http_client=TestClient(app_client.app))
    assert reviewer.jobs() is not None
    reviewer.sign_out()
    for token in (phone, laptop):
        refused = app_client.get("/api/v1/worker/jobs", headers={"Authorization": "Bearer " + token})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "UnauthorizedException"
    assert app_client.post("/api/v1/worker/sign-out", headers={"Authorization": "Bearer " + phone}).status_code == 401
    fresh = app_client.post("/api/v1/worker/sign-in", json=sign_in).json()["token"]
    assert app_client.get("/api/v1/worker/jobs", headers={"Authorization": "Bearer " + fresh}).status_code == 200


def test_the_api_docs_load_nothing_from_elsewhere_and_carry_a_csp(app_client: TestClient) -> None:
    import re

    page = app_client.get("/api/v1/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    assert "<script>" not in page.text  # no inline script
    for asset in re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text):
        response = app_client.get("/api/v1/" + asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
    assert app_client.get("/api/v1/docs/../openapi.json").status_code in (200, 404)
    assert app_client.get("/api/v1/docs/index.html").status_code == 404
    assert app_client.get("/api/v1/redoc").status_code == 404


def test_error_messages_do_not_tell_whether_an_access_key_id_exists(
    app_client: TestClient, access_key: tuple[str, str]
) -> None:
    unknown = app_client.get("/api/v1/teams", headers=basic_auth("AKNOSUCHKEY0000000", "whatever"))
    wrong_secret = app_client.get("/api/v1/teams", headers=basic_auth(access_key[0], "whatever"))
    assert unknown.status_code == wrong_secret.status_code == 401
    assert unknown.json() == wrong_secret.json()


# -- 8. 4xx, not 500: ids beyond 64 bits, signed headers not sent, odd paths ---------------

HUGE = "99999999999999999999"


def test_ids_beyond_64_bits_are_client_errors(
    services: Services, app_client: TestClient, access_key: tuple[str, str]
) -> None:
    auth = basic_auth(*access_key)
    emails = setup_flow(admin_client(app_client, access_key), workers=1)
    token = app_client.post("/api/v1/worker/sign-in", json={"email": emails[0], "password": PASSWORD}).json()["token"]
    bearer = {"Authorization": "Bearer " + token}
    http = TestClient(app_client.app, raise_server_exceptions=False)
    for method, path, headers in [
        ("GET", f"/api/v1/worker/tasks/{HUGE}", bearer),
        ("GET", f"/api/v1/worker/tasks/-{HUGE}", bearer),
        ("POST", f"/api/v1/worker/tasks/{HUGE}/release", bearer),
        ("POST", f"/api/v1/deliveries/{HUGE}/replay", auth),
    ]:
        response = http.request(method, path, headers=headers)
        assert response.status_code == 404, (path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "ResourceNotFound"
    for last_event_id in (HUGE, "1e3", "-1"):
        response = http.get("/api/v1/events", headers={**auth, "Last-Event-ID": last_event_id})
        assert response.status_code == 400, (last_event_id, response.text)
    console = Console(create_app(services=services, run_background=False)).sign_in(emails[0])
    assert console.http.get(f"/worker/tasks/{HUGE}").status_code == 404
    assert console.http.get(f"/worker/tasks/{HUGE}/frame").status_code == 404


def test_api_paths_with_a_line_break_answer_in_the_apis_error_shape(
    app_client: TestClient, access_key: tuple[str, str]
) -> None:
    response = app_client.get("/api/v1/teams/a%0Ab", headers=basic_auth(*access_key))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ResourceNotFound"


def test_a_sigv4_request_that_signs_host_but_sends_none_is_refused(
    app: Any, access_key: tuple[str, str], clock: ManualClock
) -> None:
    from tests.aws_support import signed_headers

    body = b"{}"
    headers = signed_headers(
        "POST",
        "http://testserver/",
        access_key,
        body=body,
        headers={"X-Amz-Target": "SageMaker.ListWorkteams", "Content-Type": "application/x-amz-json-1.1"},
        at_ms=clock.now_ms(),
    )
    headers = {k: v for k, v in headers.items() if k.lower() != "host"}
    headers["content-length"] = str(len(body))
    sent = asgi_request(app, "POST", "/", headers=headers, chunks=iter([body]), host=None)
    assert 400 <= sent.status < 500, (sent.status, sent.body)


# -- the same class as 1 on the AWS protocols: no body is read before the signature's form,
# time and key are checked -----------------------------------------------------------------


def test_aws_protocols_refuse_an_unsigned_large_body_before_reading_it(app: Any) -> None:
    big = 300 * MiB
    for path, extra in [
        ("/", {"x-amz-target": "SageMaker.ListWorkteams"}),
        ("/human-loops", {}),
        ("/endpoints/any/invocations", {"content-type": "image/jpeg"}),
    ]:
        headers = {"content-length": str(10 * MiB), **extra}
        sent = asgi_request(app, "POST", path, headers=headers, chunks=_zeros(big))
        assert 400 <= sent.status < 500, (path, sent.status)
        assert sent.pulled == 0, (path, sent.pulled)
