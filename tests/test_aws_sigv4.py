"""SigV4 verification against loopin access keys: wrong or missing signatures, unknown and
revoked keys, a replayed stale request, the signed host and port, a tampered body, and
the development mode that must be switched on explicitly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from loopin.access_keys import revoke_key
from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.services import Services, build_services
from tests import aws_support
from tests.aws_support import REGION, client, error_code, serve_in_thread
from tests.conftest import _free_port

DESCRIBE = "/human-loops/nope"

# The AWS tests' server: real port, clock at the real time (see aws_support).
clock = aws_support.clock
settings = aws_support.settings
url = aws_support.url


def prepared(
    method: str, url: str, key: tuple[str, str], *, body: bytes = b"", service: str = "sagemaker"
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(Credentials(*key), service, REGION).add_auth(request)
    return request


def send(request: AWSRequest, *, to: str | None = None, body: bytes | None = None) -> httpx.Response:
    return httpx.request(
        request.method,
        to or request.url,
        content=request.body if body is None else body,
        headers=dict(request.headers.items()),
    )


def wire_error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.headers.get("x-amzn-errortype") or response.json().get("__type")


def test_a_correctly_signed_request_is_served(url, access_key) -> None:
    response = send(prepared("GET", url + DESCRIBE, access_key))
    assert wire_error(response) == (404, "ResourceNotFoundException")  # past authentication


def test_a_wrong_secret_gets_invalid_signature(url, access_key) -> None:
    a2i = client("sagemaker-a2i-runtime", url, (access_key[0], "not-the-secret"))
    with pytest.raises(a2i.exceptions.ClientError) as caught:
        a2i.describe_human_loop(HumanLoopName="nope")
    assert error_code(caught.value) == (403, "InvalidSignatureException")
    assert "signature we calculated does not match" in caught.value.response["Error"]["Message"]


def test_unknown_and_revoked_keys_are_unrecognized(url, access_key, services: Services) -> None:
    for key in (("LKIAUNKNOWN000000000", "x"), access_key):
        if key == access_key:
            with services.db.write() as session:
                revoke_key(session, access_key[0], now_ms=1)
        a2i = client("sagemaker-a2i-runtime", url, key)
        with pytest.raises(a2i.exceptions.ClientError) as caught:
            a2i.describe_human_loop(HumanLoopName="nope")
        assert error_code(caught.value) == (403, "UnrecognizedClientException")


def test_unsigned_and_malformed_requests_are_refused_in_the_protocols_shape(url) -> None:
    assert wire_error(httpx.get(url + DESCRIBE)) == (403, "MissingAuthenticationTokenException")
    control = httpx.post(url + "/", headers={"X-Amz-Target": "SageMaker.ListModels"}, content=b"{}")
    assert wire_error(control) == (403, "MissingAuthenticationTokenException")
    assert control.headers["content-type"] == "application/x-amz-json-1.1"
    runtime = httpx.post(url + "/endpoints/e/invocations", content=b"\xff\xd8\xff")
    assert wire_error(runtime) == (403, "MissingAuthenticationTokenException")
    malformed = httpx.get(url + DESCRIBE, headers={"Authorization": "AWS4-HMAC-SHA256 Credential=nonsense"})
    assert wire_error(malformed) == (400, "IncompleteSignatureException")


def test_a_replayed_request_older_than_15_minutes_is_refused(url, access_key, clock: ManualClock) -> None:
    request = prepared("GET", url + DESCRIBE, access_key)
    assert send(request).status_code == 404
    set_clock(clock, minutes_from_now=14)
    assert send(request).status_code == 404  # within the allowed skew
    set_clock(clock, minutes_from_now=16)
    stale = send(request)
    assert wire_error(stale) == (403, "InvalidSignatureException")
    assert stale.json()["message"].startswith("Signature expired:")
    # boto3 signs with the real time, which the server now sees as 16 minutes old.
    a2i = client("sagemaker-a2i-runtime", url, access_key)
    with pytest.raises(a2i.exceptions.ClientError) as caught:
        a2i.describe_human_loop(HumanLoopName="nope")
    assert error_code(caught.value) == (403, "InvalidSignatureException")


def set_clock(clock: ManualClock, *, minutes_from_now: float) -> None:
    clock.advance((time.time_ns() // 1_000_000 - clock.now_ms()) / 1000 + minutes_from_now * 60)


def test_a_request_signed_too_far_in_the_future_is_refused(url, access_key, clock: ManualClock) -> None:
    clock.advance(-16 * 60)
    response = send(prepared("GET", url + DESCRIBE, access_key))
    assert wire_error(response) == (403, "InvalidSignatureException")
    assert "not yet current" in response.json()["message"]


def test_the_signature_covers_the_host_and_port_received(url, access_key) -> None:
    port = int(url.rsplit(":", 1)[1])
    other_port = prepared("GET", f"http://127.0.0.1:{port + 1}{DESCRIBE}", access_key)
    assert wire_error(send(other_port, to=url + DESCRIBE)) == (403, "InvalidSignatureException")
    # A client that reaches the server by another name signs that name, which is fine.
    localhost = client("sagemaker-a2i-runtime", f"http://localhost:{port}", access_key)
    with pytest.raises(localhost.exceptions.ResourceNotFoundException):
        localhost.describe_human_loop(HumanLoopName="nope")


def test_a_tampered_body_or_path_is_refused(url, access_key) -> None:
    body = b'{"HumanLoopName": "nope"}'
    request = prepared("POST", url + "/human-loops/stop", access_key, body=body)
    assert wire_error(send(request)) == (404, "ResourceNotFoundException")
    assert wire_error(send(request, body=b'{"HumanLoopName": "other"}')) == (403, "InvalidSignatureException")
    assert wire_error(send(request, to=url + "/human-loops")) == (403, "InvalidSignatureException")


def test_a_signature_for_another_service_is_refused(url, access_key) -> None:
    response = send(prepared("GET", url + DESCRIBE, access_key, service="execute-api"))
    assert wire_error(response) == (403, "InvalidSignatureException")
    assert "sagemaker" in response.json()["message"]


@pytest.fixture
def dev_url(settings: Settings, clock: ManualClock) -> Iterator[str]:
    port = _free_port()
    dev = settings.model_copy(
        update={"port": port, "public_url": f"http://127.0.0.1:{port}", "aws_allow_unsigned": True}
    )
    services = build_services(dev, clock=clock)
    try:
        with serve_in_thread(services) as base:
            yield base
    finally:
        services.db.dispose()


def test_unsigned_requests_pass_only_in_the_explicit_development_mode(dev_url, url) -> None:
    assert wire_error(httpx.get(url + DESCRIBE)) == (403, "MissingAuthenticationTokenException")
    assert wire_error(httpx.get(dev_url + DESCRIBE)) == (404, "ResourceNotFoundException")
    anyone: Any = client("sagemaker-a2i-runtime", dev_url, ("made-up", "keys"))
    with pytest.raises(anyone.exceptions.ResourceNotFoundException):
        anyone.describe_human_loop(HumanLoopName="nope")
