"""One error contract for every surface but the AWS protocols (which keep their own wire
shapes, pinned in the test_aws_* files): the JSON body ``{"error": {"code", "message",
"details"}}`` (``details`` always in the native API, else only when there are any) at the
status of ``web.errors.STATUS_BY_CODE``, and console pages at the same status. The shape
does not depend on the database: SQLite only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from loopin import errors
from loopin.services import Services
from loopin.web.errors import STATUS_BY_CODE
from loopin.web.server import create_app
from tests.admin_support import AdminConsole, create_admin_account
from tests.conftest import basic_auth
from tests.helpers import admin_client, setup_flow
from tests.test_console import Console


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'loopin.db'}"


def _assert_error_shape(response: httpx.Response, code: str, *, details_always: bool = False) -> None:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    keys = set(body["error"])
    assert keys == {"code", "message", "details"} or (not details_always and keys == {"code", "message"}), body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    assert isinstance(body["error"].get("details", {}), dict), body
    assert response.status_code == STATUS_BY_CODE.get(code, response.status_code), (code, response.status_code)
    assert response.headers["content-type"].startswith("application/json")


def test_every_domain_error_code_has_a_status() -> None:
    for code in errors.ERRORS_BY_CODE:
        assert code in STATUS_BY_CODE, code


def test_native_api_errors_share_the_shape(app_client: TestClient, access_key: tuple[str, str]) -> None:
    admin = admin_client(app_client, access_key)
    setup_flow(admin, workers=1)
    admin.start_loop("taken", flow="review", input={"a": 1})
    auth = basic_auth(*access_key)
    cases = [
        ("GET", "/api/v1/loops/nope", None, auth, "ResourceNotFound"),
        ("GET", "/api/v1/no-such-path", None, auth, "ResourceNotFound"),
        ("GET", "/api/v1/teams", None, {}, "UnauthorizedException"),
        ("GET", "/api/v1/teams", None, basic_auth("AKIDNOTREAL", "wrong"), "UnauthorizedException"),
        ("POST", "/api/v1/teams", b"{not json", auth, "ValidationException"),
        ("POST", "/api/v1/loops", {"name": "taken", "flow": "review", "input": {"a": 2}}, auth, "ConflictException"),
        ("DELETE", "/api/v1/teams/MyTeam", None, auth, "ResourceInUse"),
        ("PUT", "/api/v1/teams", None, auth, "MethodNotAllowed"),
    ]
    for method, path, body, headers, code in cases:
        kw: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = app_client.request(method, path, headers=headers, **kw)
        _assert_error_shape(response, code, details_always=True)


def test_console_json_and_store_errors_share_the_shape(services: Services) -> None:
    create_admin_account(services)
    console = AdminConsole(create_app(services=services, run_background=False)).sign_in()
    console.get("/admin/endpoints")
    response = console.fetch("/admin/endpoints/nope/try", b"not an image", status=404, content_type="image/jpeg")
    _assert_error_shape(response, "ResourceNotFound")
    stored = console.http.get("/store/bucket/key.json?expires=1&signature=bad")
    assert stored.status_code in (400, 403)
    _assert_error_shape(stored, stored.json()["error"]["code"])


def test_console_pages_answer_at_the_codes_status(services: Services, access_key: tuple[str, str]) -> None:
    app = create_app(services=services, run_background=False)
    create_admin_account(services)
    admin_page = AdminConsole(app).sign_in()
    admin_page.get("/admin/loops/no-such-loop", status=404)
    admin_page.get("/admin/endpoints/no-such-endpoint", status=404)

    with TestClient(app) as client:
        setup_flow(admin_client(client, access_key), workers=1)
    worker = Console(app).sign_in("worker0@myteam.example")
    worker.get("/worker/tasks/987654", status=404)
    worker.post("/worker/jobs/no-such-flow/start", status=404, csrf=worker.csrf())
