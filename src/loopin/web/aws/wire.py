"""What the SageMaker JSON protocols share: a sub-app whose every error leaves in the
protocol's own shape, a capped body, its signature check, and the request id."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from loopin.errors import LoopinError, ValidationError
from loopin.services import Services
from loopin.web.aws.errors import WireError, json_auth_error, new_request_id
from loopin.web.aws.sigv4 import AuthFailure, Received, authenticate, precheck
from loopin.web.bodies import read_capped

log = logging.getLogger("loopin.aws")

SIGNING_NAME = "sagemaker"  # the credential scope of all three SageMaker APIs
MAX_JSON_BODY = 16 * 1024 * 1024  # a 3 MiB InputContent, JSON-escaped, fits

Render = Callable[[WireError, str], Response]


def request_id(request: Request) -> str:
    """One id per request, sent on the answer whatever it is (``ResponseMetadata.RequestId``)."""
    if not hasattr(request.state, "request_id"):
        request.state.request_id = new_request_id()
    rid: str = request.state.request_id
    return rid


async def read_body(request: Request, *, limit: int) -> bytes:
    body = await read_capped(request, limit)
    if body is None:
        raise ValidationError(f"The request body is larger than {limit:,} bytes.")
    return body


async def precheck_signature(ctx: Services, request: Request) -> None:
    """Before the body is read: see ``sigv4.precheck``."""
    await run_in_threadpool(precheck, ctx, Received.from_scope(request.scope), service=SIGNING_NAME)


def check_signature(ctx: Services, request: Request, body: bytes) -> str | None:
    """The signing key id (None in development mode); blocking, run it in a thread."""
    return authenticate(ctx, Received.from_scope(request.scope), service=SIGNING_NAME, body=body)


def protocol_app(
    routes: Sequence[BaseRoute],
    *,
    render: Render,
    domain_error: Callable[[LoopinError], WireError],
    internal_code: str,
) -> Starlette:
    """A Starlette app for one protocol: domain errors, signature failures, unknown paths
    and crashes are all rendered by ``render``."""

    def answer(request: Request, error: WireError) -> Response:
        return render(error, request_id(request))

    async def on_wire(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WireError)
        return answer(request, exc)

    async def on_auth(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthFailure)
        return answer(request, json_auth_error(exc))

    async def on_domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoopinError)
        return answer(request, domain_error(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = f"loopin serves no operation at {request.method} {request.url.path}."
        return answer(request, WireError(exc.status_code, "UnknownOperationException", message))

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
        return answer(request, WireError(500, internal_code, "The server failed; see its log."))

    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        WireError: on_wire,
        AuthFailure: on_auth,
        LoopinError: on_domain,
        HTTPException: on_http,
        Exception: on_crash,
    }
    return Starlette(routes=list(routes), exception_handlers=handlers)
