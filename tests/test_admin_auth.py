"""Admin accounts and the admin console's doors, on SQLite and PostgreSQL: the first-start
setup link, sign-in and its limits, sessions and cookies, and the separation of roles: a
worker reaches no admin page and no admin API, and no admin form works without its token.

The last two tests walk every route the admin console has, so each section added later is
covered too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from loopin import admins
from loopin.errors import AuthenticationError
from loopin.models import Admin, AdminSetupLink, Base
from loopin.services import Services
from loopin.web.server import create_app
from tests.admin_support import ADMIN_EMAIL, ADMIN_PASSWORD, AdminConsole, create_admin_account
from tests.helpers import PASSWORD, admin_client, setup_flow
from tests.servers import loopin_env, run_cli


@pytest.fixture
def app(services: Services) -> FastAPI:
    return create_app(services=services, run_background=False)


def _issue_setup_link(services: Services) -> str | None:
    with services.db.write() as session:
        return admins.issue_setup_link(session, now_ms=services.clock.now_ms())


def _admin_count(services: Services) -> int:
    with services.db.read() as session:
        return session.scalar(select(func.count()).select_from(Admin)) or 0


# -- first start ---------------------------------------------------------------------


def test_the_setup_link_creates_the_first_admin_once_and_signs_them_in(app, services):
    token = _issue_setup_link(services)
    assert token
    console = AdminConsole(app)
    console.get(f"/admin/setup/{token}")
    response = console.post(
        f"/admin/setup/{token}",
        email="Owner@Example.com",
        name="Owner",
        password="a-long-password",
        confirm="a-long-password",
    )
    assert response.headers["location"] == "/admin/overview"
    assert "owner@example.com" in console.get("/admin/overview")
    # Spent: the same link, or any other issued before, opens nothing now.
    assert "not valid" in AdminConsole(app).get(f"/admin/setup/{token}", 404)
    assert _issue_setup_link(services) is None
    with services.db.read() as session:
        assert session.scalar(select(func.count()).select_from(AdminSetupLink)) == 0


def test_a_setup_form_with_bad_input_says_why_and_creates_nobody(app, services):
    token = _issue_setup_link(services)
    console = AdminConsole(app)
    console.get(f"/admin/setup/{token}")
    page = console.post(
        f"/admin/setup/{token}", 400, email="owner@example.com", password="a-long-password", confirm="other-password"
    ).text
    assert "The two passwords are not the same" in page
    page = console.post(f"/admin/setup/{token}", 400, email="not-an-email", password="short", confirm="short").text
    assert "is not an e-mail address" in page
    page = console.post(f"/admin/setup/{token}", 400, email="owner@example.com", password="short", confirm="short").text
    assert "at least 10 characters" in page
    assert _admin_count(services) == 0
    # The link still works after the mistakes.
    console.post(
        f"/admin/setup/{token}", email="owner@example.com", password="a-long-password", confirm="a-long-password"
    )
    assert _admin_count(services) == 1


def test_an_unknown_or_expired_setup_link_is_refused(app, services, clock):
    assert "not valid" in AdminConsole(app).get("/admin/setup/made-up-token", 404)
    token = _issue_setup_link(services)
    clock.advance(admins.SETUP_LINK_TTL_MS / 1000 + 1)
    assert "not valid" in AdminConsole(app).get(f"/admin/setup/{token}", 404)


def test_no_setup_link_is_issued_once_an_admin_exists(services):
    create_admin_account(services)
    assert _issue_setup_link(services) is None


# -- sign-in and sessions ------------------------------------------------------------


def test_sign_in_sets_an_httponly_lax_cookie_for_admin_pages_only(app, services):
    create_admin_account(services)
    console = AdminConsole(app)
    console.get("/admin/sign-in")
    response = console.post("/admin/sign-in", email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("loopin_admin="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "path=/admin" in lowered
    page = console.http.get("/admin/overview")
    assert page.status_code == 200 and ADMIN_EMAIL in page.text
    assert page.headers["cache-control"] == "no-store"


def test_sign_in_pages_send_the_security_headers(app):
    response = TestClient(app).get("/admin/sign-in")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_wrong_password_is_refused_and_repeated_failures_are_slowed_down(app, services):
    create_admin_account(services)
    console = AdminConsole(app)
    console.get("/admin/sign-in")
    for _ in range(5):
        page = console.post("/admin/sign-in", 401, email=ADMIN_EMAIL, password="wrong-password").text
        assert "The e-mail address or password is wrong." in page
    response = console.post("/admin/sign-in", 429, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
    assert "Too many failed sign-ins" in response.text and int(response.headers["retry-after"]) > 0


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(app, services):
    create_admin_account(services)
    console = AdminConsole(app)
    assert console.http.get("/admin/loops?status=Failed").headers["location"] == (
        "/admin/sign-in?next=%2Fadmin%2Floops%3Fstatus%3DFailed"
    )
    console.get("/admin/sign-in", next="/admin/loops?status=Failed")
    response = console.post(
        "/admin/sign-in", email=ADMIN_EMAIL, password=ADMIN_PASSWORD, next="/admin/loops?status=Failed"
    )
    assert response.headers["location"] == "/admin/loops?status=Failed"
    for target in ("https://evil.example/", "//evil.example/admin/", "/worker/jobs", "/admin/\\evil"):
        other = AdminConsole(app)
        other.get("/admin/sign-in")
        response = other.post("/admin/sign-in", email=ADMIN_EMAIL, password=ADMIN_PASSWORD, next=target)
        assert response.headers["location"] == "/admin", target


def test_sign_out_ends_the_session(admin_console):
    admin_console.get("/admin/overview")
    admin_console.post("/admin/sign-out")
    assert admin_console.http.get("/admin/overview").headers["location"].startswith("/admin/sign-in")


def test_disabling_an_admin_or_changing_the_password_ends_their_sessions(app, services):
    create_admin_account(services)
    create_admin_account(services, email="second@example.com")
    first = AdminConsole(app).sign_in()
    second = AdminConsole(app).sign_in("second@example.com")
    with services.db.write() as session:
        admins.set_status(session, "second@example.com", "disabled")
        admins.set_password(session, ADMIN_EMAIL, "a-new-long-password")
    for console in (first, second):
        assert console.http.get("/admin/overview").headers["location"].startswith("/admin/sign-in")
    AdminConsole(app).sign_in(ADMIN_EMAIL, "a-new-long-password")
    with services.db.write() as session, pytest.raises(Exception, match="last active admin"):
        admins.set_status(session, ADMIN_EMAIL, "disabled")


# -- roles ---------------------------------------------------------------------------


def test_a_worker_reaches_no_admin_page_and_no_admin_api(app, services, access_key):
    with TestClient(app) as http:
        emails = setup_flow(admin_client(http, access_key), team="Team", workers=1, flow="review")
        signed_in = http.post("/api/v1/worker/sign-in", json={"email": emails[0], "password": PASSWORD})
        token = signed_in.json()["token"]
    create_admin_account(services)

    # The worker console's session cookie, even when sent under the admin cookie's name.
    worker = TestClient(app, follow_redirects=False)
    worker.get("/worker/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', worker.get("/worker/sign-in").text)
    assert csrf
    worker.post("/worker/sign-in", data={"email": emails[0], "password": PASSWORD, "csrf": csrf.group(1)})
    session_cookie = worker.cookies.get("loopin_session")
    assert session_cookie
    for cookies in ({"loopin_session": session_cookie}, {"loopin_admin": session_cookie}):
        response = TestClient(app, follow_redirects=False, cookies=cookies).get("/admin/overview")
        assert response.status_code == 303 and response.headers["location"].startswith("/admin/sign-in")

    # The worker's API token, and the worker's e-mail and password, on the admin API.
    http = TestClient(app)
    bearer = {"Authorization": f"Bearer {token}"}
    for path in ("/api/v1/flows", "/api/v1/teams", "/api/v1/loops", "/api/v1/endpoints"):
        assert http.get(path, headers=bearer).status_code == 401, path
        assert http.get(path, auth=(emails[0], PASSWORD)).status_code == 401, path
    assert http.post("/api/v1/teams", headers=bearer, json={"name": "x", "description": "x"}).status_code == 401

    # A worker's password does not open the admin console, nor an admin's the worker console.
    console = AdminConsole(app)
    console.get("/admin/sign-in")
    console.post("/admin/sign-in", 401, email=emails[0], password=PASSWORD)
    console = AdminConsole(app)
    console.get("/worker/sign-in")
    console.post("/worker/sign-in", 401, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)


def _routes(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers (no prefixes here)
        yield from _routes(included.routes) if included is not None else [route]


def _admin_routes(app: FastAPI) -> list[APIRoute]:
    return [
        route
        for route in _routes(app.routes)
        if isinstance(route, APIRoute)
        and route.path.startswith("/admin")
        and not route.path.startswith(("/admin/sign-in", "/admin/setup"))
    ]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_admin_page_sends_a_visitor_without_an_admin_session_to_sign_in(app):
    routes = [r for r in _admin_routes(app) if "GET" in r.methods and r.path != "/admin"]
    assert len(routes) >= 1
    anonymous = TestClient(app, follow_redirects=False)
    for route in routes:
        response = anonymous.get(_concrete(route.path))
        assert response.status_code in (303, 401), (route.path, response.status_code)
        if response.status_code == 303:
            assert response.headers["location"].startswith("/admin/sign-in"), route.path
        else:
            assert response.json()["error"]["code"] == "UnauthorizedException", route.path


def test_every_admin_post_without_its_csrf_token_is_refused_and_changes_nothing(app, admin_console, services):
    routes = [r for r in _admin_routes(app) if "POST" in r.methods]
    assert routes, "the admin console has forms"
    before = _table_counts(services)
    for route in routes:
        path = _concrete(route.path)
        for attempt in (
            {"data": {"csrf": "forged"}},
            {"data": {}},
            {"content": b"{}", "headers": {"Content-Type": "application/json", "X-CSRF-Token": "forged"}},
        ):
            response = admin_console.http.post(path, **attempt)
            assert response.status_code == 403, (route.path, attempt, response.status_code, response.text[:300])
    assert _table_counts(services) == before
    # The admin is still signed in: the refusals ended nothing.
    assert admin_console.http.get("/admin").headers["location"] == "/admin/overview"


def _table_counts(services: Services) -> dict[str, int]:
    with services.db.read() as session:
        return {
            name: session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
        }


# -- the command line ----------------------------------------------------------------


@pytest.mark.slow
def test_admin_commands_create_list_reset_and_the_setup_link(tmp_path: Path, database_url: str, services):
    """The commands act on the server's database (here the test's own)."""
    env = loopin_env(tmp_path / "cli-data", database_url)
    link = run_cli(env, "admin", "setup-link").stdout.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:8321/admin/setup/[A-Za-z0-9_-]{40,}", link)
    run_cli(env, "admin", "create", "ops@example.com", "--name", "Ops", "--password-stdin", input="ops-password-1\n")
    result = run_cli(env, "admin", "setup-link", check=False)
    assert result.returncode == 1 and "An admin exists already" in result.stderr
    refused = run_cli(
        env, "admin", "create", "ops@example.com", "--password-stdin", input="ops-password-1\n", check=False
    )
    assert refused.returncode == 1 and "exists already" in refused.stderr
    short = run_cli(env, "admin", "create", "b@example.com", "--password-stdin", input="short\n", check=False)
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    listed = run_cli(env, "admin", "list", "--json").stdout
    assert '"email": "ops@example.com"' in listed and '"status": "active"' in listed
    run_cli(env, "admin", "set-password", "ops@example.com", "--password-stdin", input="new-password-22\n")
    refused = run_cli(env, "admin", "disable", "ops@example.com", check=False)
    assert refused.returncode == 1 and "last active admin" in refused.stderr
    with services.db.read() as session:
        admin = admins.get_admin(session, "ops@example.com")
        assert admin.name == "Ops" and admins.sign_in(session, "ops@example.com", "new-password-22", now_ms=1)


def test_a_garbled_cookie_or_token_is_refused_not_a_server_error(app, services):
    create_admin_account(services)
    client = TestClient(app, follow_redirects=False)
    for cookie in ("abc.\u00e9\u00e9", "\u00e9", "x.y.z"):
        raw = {"cookie": f"loopin_admin={cookie}; loopin_session={cookie}".encode()}
        assert client.get("/admin/sign-in", headers=raw).status_code == 200
        assert client.get("/admin/overview", headers=raw).headers["location"].startswith("/admin/sign-in")
        assert client.get("/worker/sign-in", headers=raw).status_code == 200
    console = AdminConsole(app).sign_in()
    console.get("/admin/overview")
    response = console.http.post("/admin/sign-out", data={"csrf": "\u00e9t\u00e9"})
    assert response.status_code == 403


def test_an_unknown_admin_page_is_a_page_that_says_so(admin_console, app):
    page = admin_console.get("/admin/no-such-section/x", 404)
    assert "Page not found" in page and ADMIN_EMAIL in page
    anonymous = TestClient(app, follow_redirects=False).get("/admin/no-such-section")
    assert anonymous.headers["location"].startswith("/admin/sign-in")


def test_two_setup_links_used_at_once_make_one_first_admin(services):
    tokens = [_issue_setup_link(services) for _ in range(2)]

    def use(i: int) -> bool:
        def run(session):
            return admins.create_first_admin(
                session, tokens[i], email=f"owner{i}@example.com", name="", password="a-long-password", now_ms=1
            )

        try:
            services.write(run)
            return True
        except AuthenticationError:
            return False

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(use, range(2)))
    assert sorted(outcomes) == [False, True]
    assert _admin_count(services) == 1
