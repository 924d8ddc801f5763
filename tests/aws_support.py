"""Shared by the ``test_aws_*`` files: loopin served over real HTTP in a thread (boto3 needs a
socket), boto3 clients pointed at it, and raw signed requests for checking wire bytes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import httpx
import pytest
import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.services import Services
from loopin.web.server import create_app
from tests.conftest import _free_port

REGION = "us-east-1"


# Fixtures that replace conftest's for the AWS tests (import them into the test module):
# SigV4 allows 15 minutes of skew, so the server's clock starts at the real time, and the
# server listens on a real port that its public URL names.


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_ms=time.time_ns() // 1_000_000)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return server_settings(tmp_path, database_url)


def server_settings(tmp_path: Path, database_url: str, **changes: Any) -> Settings:
    port = _free_port()
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        secret_key="test-secret-" + uuid.uuid4().hex,
        job_interval_seconds=0.1,
        **changes,
    )


@pytest.fixture
def url(services: Services) -> Iterator[str]:
    with serve_in_thread(services) as base:
        yield base


@contextmanager
def serve_in_thread(services: Services, *, run_background: bool = True) -> Iterator[str]:
    """``create_app(services)`` on ``services.settings.port``; yields its URL."""
    app = create_app(services=services, run_background=run_background)
    port = services.settings.port
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def client(service: str, url: str, key: tuple[str, str], **config: Any) -> Any:
    """A boto3 client as a user writes it: only ``endpoint_url`` points at loopin."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}, **config),
    )


def signed_headers(
    method: str,
    url: str,
    key: tuple[str, str],
    *,
    service: str = "sagemaker",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    at_ms: int | None = None,
) -> dict[str, str]:
    """The headers of a request signed by botocore's signer, at ``at_ms`` (a test clock's
    time) or now."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    when = datetime.fromtimestamp(at_ms / 1000, tz=UTC) if at_ms is not None else datetime.now(UTC)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4Auth(Credentials(*key), service, REGION).add_auth(request)
    return dict(request.headers.items())


def signed(
    method: str,
    url: str,
    key: tuple[str, str],
    *,
    service: str = "sagemaker",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Send a request signed by botocore's signer, to look at the raw answer."""
    sent = signed_headers(method, url, key, service=service, body=body, headers=headers)
    return httpx.request(method, url, content=body, headers=sent)


def error_code(exc: Any) -> tuple[int, str]:
    """(HTTP status, error code) of a botocore ClientError."""
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]
