"""Request bodies of the native API: a size limit per route, enforced while the body
arrives; the caller's credentials checked before a body is read at all; no lone UTF-16
surrogates (``\\ud800``) anywhere in a JSON body (FastAPI reads
and parses a body before it runs a route's dependencies, so without this an anonymous
caller could make the server hold any amount). A pure ASGI middleware on the ``/api/v1``
sub-app; errors in the API's own shape (``error_response``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopin.errors import LoopinError
from loopin.invocations import MAX_BODY_BYTES
from loopin.loops import MAX_INPUT_CHARS
from loopin.tasks import MAX_ANSWER_CHARS
from loopin.validation import has_lone_surrogate

DEFAULT_LIMIT = 1024 * 1024  # teams, workers, task UIs (128,000 characters, JSON-escaped), flows, ...
ANONYMOUS_LIMIT = 64 * 1024  # sign-in and accepting an invitation
# A loop input or answer of 3 MiB characters (the domain's limit), each JSON-escaped as \uXXXX.
LARGE_JSON_LIMIT = 6 * max(MAX_INPUT_CHARS, MAX_ANSWER_CHARS) + 64 * 1024

# (method, path pattern relative to /api/v1, limit): the first match wins.
ROUTE_LIMITS: list[tuple[str, re.Pattern[str], int]] = [
    ("POST", re.compile(r"/loops"), LARGE_JSON_LIMIT),
    ("POST", re.compile(r"/worker/tasks/[^/]+/submit"), LARGE_JSON_LIMIT),
    ("POST", re.compile(r"/flows/[^/]+/gold/items(/batch)?"), LARGE_JSON_LIMIT),
    ("POST", re.compile(r"/endpoints/[^/]+/invoke"), MAX_BODY_BYTES + 64 * 1024),
    ("POST", re.compile(r"/worker/(sign-in|accept-invitation)"), ANONYMOUS_LIMIT),
]
_SURROGATE_ESCAPE = re.compile(rb"\\[uU]([dD][89a-fA-F]|0000)")  # a JSON escape of a surrogate (maybe a pair)
ANONYMOUS_PATHS = re.compile(r"/worker/(sign-in|accept-invitation)|/openapi\.json|/docs.*")

ErrorResponse = Callable[[int, str, str], Response]
Precheck = Callable[[Any, str], Any]  # (services, Authorization header) -> awaitable, raises LoopinError


class BodyTooLarge(Exception):
    pass


class RequestLimits:
    def __init__(self, app: ASGIApp, *, error_response: ErrorResponse, precheck: Precheck) -> None:
        self.app = app
        self.error_response = error_response
        self.precheck = precheck

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        headers = {k.lower(): v for k, v in scope["headers"]}
        length_header = headers.get(b"content-length")
        has_body = b"transfer-encoding" in headers or (length_header not in (None, b"0"))
        if not has_body:
            await self.app(scope, receive, send)
            return
        limit = route_limit(scope["method"], path)
        if length_header is not None:
            try:
                declared = int(length_header)
            except ValueError:
                await self._error(scope, receive, send, 400, "ValidationException", "Content-Length is not a number.")
                return
            if declared > limit:
                await self._too_large(scope, receive, send, limit)
                return
        if not ANONYMOUS_PATHS.fullmatch(path):
            try:
                await self.precheck(scope["app"].state.services, headers.get(b"authorization", b"").decode("latin-1"))
            except LoopinError as exc:
                await self._error(scope, receive, send, 401, exc.code, exc.message)
                return
        # The body is read here, up to the limit, and handed on whole.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > limit:
                await self._too_large(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break
        if _SURROGATE_ESCAPE.search(body) and _holds_lone_surrogate(bytes(body)):
            problem = "The request body holds a NUL character or a lone UTF-16 surrogate (like \\ud800)."
            await self._error(scope, receive, send, 400, "ValidationException", problem, close=False)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        message = f"The request body is larger than this call accepts ({limit:,} bytes)."
        await self._error(scope, receive, send, 413, "PayloadTooLarge", message, close=True)

    async def _error(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str, *, close: bool = True
    ) -> None:
        response = self.error_response(status, code, message)
        if close:  # the rest of the body is not read: the connection cannot carry another request
            response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _holds_lone_surrogate(body: bytes) -> bool:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return False  # not JSON: the route refuses it
    return has_lone_surrogate(value)


def route_limit(method: str, path: str) -> int:
    for route_method, pattern, limit in ROUTE_LIMITS:
        if method == route_method and pattern.fullmatch(path):
            return limit
    return DEFAULT_LIMIT
