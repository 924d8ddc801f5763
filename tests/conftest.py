"""Shared fixtures. Every database test runs twice: on a SQLite file and on a fresh
PostgreSQL database (127.0.0.1:5432, created and dropped per test module)."""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, sync_playwright

from loopin.access_keys import create_key
from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.db import Database
from loopin.services import Services, build_services
from loopin.web.server import create_app
from tests.admin_support import AdminConsole, create_admin_account
from tests.browser import chromium_available, launch, open_page

PG_ADMIN_DSN = os.environ.get("LOOPIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what a test needs, so ``-m`` can select: PostgreSQL, Chromium."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "pg_database" in names or "pg_template" in names or params.get("database_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)
        if "browser" in names:
            item.add_marker(pytest.mark.browser)


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_ok() -> bool:
    ok = _pg_available()
    if not ok and os.environ.get("CI"):
        pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432; .ci/run must start it")
    return ok


@pytest.fixture(scope="session")
def pg_template(pg_ok: bool) -> Iterator[str]:
    """A migrated PostgreSQL database that each test's database is copied from."""
    if not pg_ok:
        pytest.skip("PostgreSQL not available")
    name = f"loopin_tpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", pool_size=1)
    db.upgrade()
    db.dispose()
    yield name
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "loopin.db"
    db = Database(f"sqlite:///{path}", pool_size=1)
    db.upgrade()
    db.dispose()
    return path


@pytest.fixture
def pg_database(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database; yields its URL and drops it afterwards."""
    name = f"loopin_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "loopin.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="http://testserver",
        secret_key="test-secret-" + uuid.uuid4().hex,
    )


@pytest.fixture
def services(settings: Settings, clock: ManualClock) -> Iterator[Services]:
    ctx = build_services(settings, clock=clock)
    yield ctx
    ctx.db.dispose()


@pytest.fixture
def app_client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services, run_background=False)) as client:
        yield client


@pytest.fixture
def access_key(services: Services) -> tuple[str, str]:
    with services.db.write() as session:
        key = create_key(session, secret_key=services.settings.secret_key, description="tests", now_ms=0)
    return key.access_key_id, key.secret_access_key


def basic_auth(key_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode()}


@pytest.fixture
def admin_headers(access_key: tuple[str, str]) -> dict[str, str]:
    return basic_auth(*access_key)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's stand-alone S3 server over HTTP, for the whole test session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)


@pytest.fixture
def admin_console(services: Services) -> AdminConsole:
    """A signed-in admin's view of the admin console (an account is created for it)."""
    create_admin_account(services)
    return AdminConsole(create_app(services=services, run_background=False)).sign_in()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright (one per test module)."""
    if not chromium_available():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: run scripts/install-browser.sh")
        pytest.skip("Chromium is not installed (scripts/install-browser.sh)")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (see ``tests.browser.open_page``); the test fails if it met a script
    error or a CSP violation."""
    context, page = open_page(browser)
    yield page
    context.close()
    assert page.errors == []  # type: ignore[attr-defined]
