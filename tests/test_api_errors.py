"""Bad input on every endpoint: a 4xx with a stable code and a message, and nothing
written. Also authentication, the error shape and the OpenAPI document."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from loopin.models import Base
from loopin.services import Services
from tests.conftest import basic_auth
from tests.helpers import PASSWORD, admin_client, setup_flow

LONG = "x" * 300


def _snapshot(services: Services) -> dict[str, int]:
    with services.db.read() as session:
        return {
            name: session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
        }


@pytest.fixture
def world(app_client: TestClient, access_key: tuple[str, str]):
    admin = admin_client(app_client, access_key)
    setup_flow(admin, workers=1)
    admin.start_loop("existing", flow="review", input={"a": 1})
    return admin


def _token(raw: str) -> str:
    """A page token as the server encodes one, with made-up contents."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


BAD_ADMIN_REQUESTS = [
    # (method, path, json body or raw bytes, expected status, expected code)
    ("POST", "/teams", b"{not json", 400, "ValidationException"),
    ("POST", "/teams", {"name": "t"}, 400, "ValidationException"),
    ("POST", "/teams", {"name": 5, "description": "d"}, 400, "ValidationException"),
    ("POST", "/teams", {"name": "bad name!", "description": "d"}, 400, "ValidationException"),
    ("POST", "/teams", {"name": "t2", "description": LONG}, 400, "ValidationException"),
    ("POST", "/teams", {"name": "MyTeam", "description": "again"}, 409, "ResourceInUse"),
    ("POST", "/teams", {"name": "t3", "description": "d", "extra": 1}, 400, "ValidationException"),
    ("PATCH", "/teams/MyTeam", {"description": ""}, 400, "ValidationException"),
    ("PATCH", "/teams/nope", {"description": "d"}, 404, "ResourceNotFound"),
    ("GET", "/teams/nope", None, 404, "ResourceNotFound"),
    ("DELETE", "/teams/MyTeam", None, 409, "ResourceInUse"),
    ("POST", "/teams/MyTeam/members", {"email": "nobody@example.com"}, 404, "ResourceNotFound"),
    ("POST", "/teams/nope/members", {"email": "worker0@myteam.example"}, 404, "ResourceNotFound"),
    (
        "POST",
        "/workers",
        {"email": "not-an-email", "teams": ["MyTeam"]},
        400,
        "ValidationException",
    ),
    ("POST", "/workers", {"email": "w@example.com", "teams": ["nope"]}, 404, "ResourceNotFound"),
    (
        "POST",
        "/workers",
        {"email": "w@example.com", "password": "short"},
        400,
        "ValidationException",
    ),
    ("POST", "/workers", {"email": "worker0@myteam.example"}, 409, "ResourceInUse"),
    ("POST", "/workers", {"email": "w@example.com", "name": LONG}, 400, "ValidationException"),
    ("PATCH", "/workers/worker0@myteam.example", {"status": "boss"}, 400, "ValidationException"),
    ("PATCH", "/workers/nobody@example.com", {"status": "disabled"}, 404, "ResourceNotFound"),
    ("POST", "/workers/worker0@myteam.example/invitation", None, 400, "ValidationException"),
    (
        "POST",
        "/task-uis",
        {"name": "t", "template": "{% if x %}never closed"},
        400,
        "ValidationException",
    ),
    ("POST", "/task-uis", {"name": "t", "template": ""}, 400, "ValidationException"),
    ("POST", "/task-uis", {"name": "t", "template": "x" * 128_001}, 400, "ValidationException"),
    ("POST", "/task-uis", {"name": "Upper", "template": "x"}, 400, "ValidationException"),
    ("POST", "/task-uis", {"name": "boxes", "template": "x"}, 409, "ResourceInUse"),
    ("DELETE", "/task-uis/boxes", None, 409, "ResourceInUse"),
    ("GET", "/task-uis/nope", None, 404, "ResourceNotFound"),
    ("POST", "/flows", {"name": "f"}, 400, "ValidationException"),
    (
        "POST",
        "/flows",
        {
            "name": "f",
            "team": "MyTeam",
            "task_ui": "boxes",
            "title": "t",
            "description": "d",
            "output_path": "s3://bucket/o",
            "task_count": 4,
        },
        400,
        "ValidationException",
    ),
    (
        "POST",
        "/flows",
        {
            "name": "f",
            "team": "MyTeam",
            "task_ui": "boxes",
            "title": "t",
            "description": "d",
            "output_path": "s3://bucket/o",
            "time_limit_seconds": 10,
        },
        400,
        "ValidationException",
    ),
    (
        "POST",
        "/flows",
        {
            "name": "f",
            "team": "MyTeam",
            "task_ui": "boxes",
            "title": "t",
            "description": "d",
            "output_path": "s3://bucket/../../etc",
        },
        400,
        "ValidationException",
    ),
    (
        "POST",
        "/flows",
        {
            "name": "f",
            "team": "MyTeam",
            "task_ui": "boxes",
            "title": "t",
            "description": "d",
            "output_path": "file:///etc",
        },
        400,
        "ValidationException",
    ),
    (
        "POST",
        "/flows",
        {
            "name": "f",
            "team": "MyTeam",
            "task_ui": "boxes",
            "title": "t",
            "description": "d",
            "output_path": "s3://bucket/o",
            "keywords": ["ok", "not-ok!"],
        },
        400,
        "ValidationException",
    ),
    (
        "POST",
        "/flows",
        {
            "name": "f",
            "team": "nope",
            "task_ui": "boxes",
            "title": "t",
            "description": "d",
            "output_path": "s3://bucket/o",
        },
        404,
        "ResourceNotFound",
    ),
    (
        "POST",
        "/flows",
        {
            "name": "f",
            "team": "MyTeam",
            "task_ui": "nope",
            "title": "t",
            "description": "d",
            "output_path": "s3://bucket/o",
        },
        404,
        "ResourceNotFound",
    ),
    (
        "POST",
        "/flows",
        {
            "name": "review",
            "team": "MyTeam",
            "task_ui": "boxes",
            "title": "t",
            "description": "d",
            "output_path": "s3://bucket/o",
        },
        409,
        "ResourceInUse",
    ),
    (
        "POST",
        "/flows",
        {
            "name": "f",
            "team": "MyTeam",
            "task_ui": "boxes",
            "title": "t",
            "description": "d",
            "output_path": "s3://bucket/o",
            "role_arn": "not-an-arn",
        },
        400,
        "ValidationException",
    ),
    ("DELETE", "/flows/review", None, 409, "ResourceInUse"),
    ("GET", "/flows/nope", None, 404, "ResourceNotFound"),
    ("POST", "/loops", {"name": "l", "flow": "review"}, 400, "ValidationException"),
    (
        "POST",
        "/loops",
        {"name": "l", "flow": "review", "input": {"a": 1}, "input_content": "{}"},
        400,
        "ValidationException",
    ),
    (
        "POST",
        "/loops",
        {"name": "l", "flow": "review", "input": [1, 2]},
        400,
        "ValidationException",
    ),
    (
        "POST",
        "/loops",
        {"name": "l", "flow": "review", "input_content": "[1]"},
        400,
        "ValidationException",
    ),
    (
        "POST",
        "/loops",
        {"name": "l" * 64, "flow": "review", "input": {}},
        400,
        "ValidationException",
    ),
    ("POST", "/loops", {"name": "l", "flow": "nope", "input": {}}, 404, "ResourceNotFound"),
    (
        "POST",
        "/loops",
        {"name": "existing", "flow": "review", "input": {"a": 2}},
        409,
        "ConflictException",
    ),
    (
        "POST",
        "/loops",
        {"name": "l", "flow": "review", "input": {}, "content_classifiers": ["Nope"]},
        400,
        "ValidationException",
    ),
    ("GET", "/loops?sort_order=Sideways", None, 400, "ValidationException"),
    ("GET", "/loops?max_results=0", None, 400, "ValidationException"),
    ("GET", "/loops?max_results=101", None, 400, "ValidationException"),
    ("GET", "/loops?max_results=abc", None, 400, "ValidationException"),
    ("GET", "/loops?created_after=yesterday", None, 400, "ValidationException"),
    ("GET", "/loops?next_token=%ZZ", None, 400, "ValidationException"),
    ("GET", "/loops?next_token=" + _token('{"c":1e400,"i":1}'), None, 400, "ValidationException"),
    (
        "GET",
        "/loops?next_token=eyJjIjoxMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwLCJpIjoxfQ",
        None,
        400,
        "ValidationException",
    ),  # c: 10**30
    (
        "POST",
        "/loops",
        {"name": "l", "flow": "review", "input_content": '{"score": NaN}'},
        400,
        "ValidationException",
    ),
    (
        "POST",
        "/loops",
        {"name": "l", "flow": "review", "input_content": '{"a": ' + "[" * 50_000 + "]" * 50_000 + "}"},
        400,
        "ValidationException",
    ),
    ("POST", "/loops", {"name": "l\n", "flow": "review", "input": {}}, 400, "ValidationException"),
    ("POST", "/teams", {"name": "evil\n", "description": "x"}, 400, "ValidationException"),
    ("POST", "/workers", {"email": "a:b@c.de"}, 400, "ValidationException"),
    ("POST", "/workers", {"email": "ü@example.com"}, 400, "ValidationException"),
    ("GET", "/loops?flow=nope", None, 404, "ResourceNotFound"),
    ("GET", "/loops/nope", None, 404, "ResourceNotFound"),
    ("POST", "/loops/nope/stop", None, 404, "ResourceNotFound"),
    ("DELETE", "/loops/existing", None, 400, "ValidationException"),
    ("DELETE", "/loops/nope", None, 404, "ResourceNotFound"),
    ("GET", "/no-such-route", None, 404, "ResourceNotFound"),
    ("PUT", "/teams", {"name": "x"}, 405, "MethodNotAllowed"),
]


@pytest.mark.parametrize("method,path,body,status,code", BAD_ADMIN_REQUESTS)
def test_bad_admin_requests_are_refused_and_change_nothing(
    world, app_client, admin_headers, services, method, path, body, status, code
):
    before = _snapshot(services)
    kwargs = (
        {"content": body, "headers": {**admin_headers, "content-type": "application/json"}}
        if isinstance(body, bytes)
        else {"json": body, "headers": admin_headers}
    )
    response = app_client.request(method, "/api/v1" + path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    assert _snapshot(services) == before


@pytest.fixture
def worker_headers(world, app_client):
    token = app_client.post(
        "/api/v1/worker/sign-in", json={"email": "worker0@myteam.example", "password": PASSWORD}
    ).json()["token"]
    return {"Authorization": f"Bearer {token}"}


BAD_WORKER_REQUESTS = [
    ("POST", "/worker/tasks/next", b"[", 400, "ValidationException"),
    ("POST", "/worker/tasks/next", {"flow": "nope"}, 404, "ResourceNotFound"),
    ("POST", "/worker/tasks/next", {"flow": 5}, 400, "ValidationException"),
    ("GET", "/worker/tasks/999", None, 404, "ResourceNotFound"),
    ("GET", "/worker/tasks/abc", None, 400, "ValidationException"),
    ("POST", "/worker/tasks/999/submit", {"answer": {}}, 404, "ResourceNotFound"),
    ("POST", "/worker/tasks/1/submit", {"answer": "not an object"}, 400, "ValidationException"),
    ("POST", "/worker/tasks/1/submit", {}, 400, "ValidationException"),
    ("POST", "/worker/tasks/1/submit", b'{"answer": {"x": NaN}}', 400, "ValidationException"),
    ("POST", "/worker/tasks/999/release", None, 404, "ResourceNotFound"),
    ("POST", "/worker/tasks/999/decline", None, 404, "ResourceNotFound"),
]


@pytest.mark.parametrize("method,path,body,status,code", BAD_WORKER_REQUESTS)
def test_bad_worker_requests_are_refused_and_change_nothing(
    app_client, worker_headers, services, method, path, body, status, code
):
    before = _snapshot(services)
    kwargs = (
        {"content": body, "headers": {**worker_headers, "content-type": "application/json"}}
        if isinstance(body, bytes)
        else {"json": body, "headers": worker_headers}
    )
    response = app_client.request(method, "/api/v1" + path, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert _snapshot(services) == before


def test_admin_calls_need_a_valid_unrevoked_key(world, app_client, access_key, services, clock):
    from loopin.access_keys import revoke_key

    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic !!!"},
        basic_auth(access_key[0], "wrong"),
        basic_auth("LKIAUNKNOWN", access_key[1]),
    ):
        response = app_client.get("/api/v1/teams", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UnauthorizedException"
    assert app_client.get("/api/v1/teams", headers=basic_auth(*access_key)).status_code == 200
    with services.db.write() as session:
        revoke_key(session, access_key[0], now_ms=1)
    clock.advance(6)  # secrets are cached for 5 s per process
    assert app_client.get("/api/v1/teams", headers=basic_auth(*access_key)).status_code == 401


def test_worker_tokens_cannot_call_admin_routes_and_vice_versa(app_client, worker_headers, admin_headers):
    assert app_client.get("/api/v1/teams", headers=worker_headers).status_code == 401
    assert app_client.get("/api/v1/worker/jobs", headers=admin_headers).status_code == 401
    tampered = {"Authorization": worker_headers["Authorization"][:-2] + "xx"}
    assert app_client.get("/api/v1/worker/jobs", headers=tampered).status_code == 401


def test_worker_token_expires(app_client, worker_headers, clock):
    assert app_client.get("/api/v1/worker/jobs", headers=worker_headers).status_code == 200
    clock.advance(13 * 3600)
    response = app_client.get("/api/v1/worker/jobs", headers=worker_headers)
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


def test_sign_in_errors_do_not_tell_which_part_was_wrong(world, app_client):
    unknown = app_client.post("/api/v1/worker/sign-in", json={"email": "nobody@example.com", "password": PASSWORD})
    wrong = app_client.post(
        "/api/v1/worker/sign-in",
        json={"email": "worker0@myteam.example", "password": "wrong-password"},
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["error"]["message"] == wrong.json()["error"]["message"]


def test_openapi_document_lists_the_routes(app_client):
    doc = app_client.get("/api/v1/openapi.json").json()
    assert {"/loops", "/loops/{name}", "/flows", "/teams", "/worker/tasks/next"} <= set(doc["paths"])
