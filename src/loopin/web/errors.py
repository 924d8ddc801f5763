"""Errors over HTTP for every surface except the AWS protocols (which keep their own wire
shapes in ``web/aws/errors.py``): one status per stable error code, one JSON body, and a
route class that turns a domain error escaping a console page into that console's error page.

The JSON body is ``{"error": {"code", "message", "details"}}`` (``details`` always in the
native API, which documents it as ``schemas.ErrorResponse``; in the consoles and the store
only when there are any).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.requests import Request

from loopin.errors import LoopinError

STATUS_BY_CODE = {
    "ValidationException": 400,
    "UnauthorizedException": 401,
    "ServiceQuotaExceededException": 402,
    "AccessDeniedException": 403,
    "ResourceNotFound": 404,
    "ConflictException": 409,
    "ResourceInUse": 409,
    "TaskStateException": 409,
    "PayloadTooLarge": 413,
    "ModelError": 424,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ServiceUnavailable": 503,
}


def error_status(exc: LoopinError) -> int:
    return STATUS_BY_CODE.get(exc.code, 500)


def error_response(
    code: str,
    message: str,
    *,
    status: int,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON error body; ``details`` is left out when None (the consoles' own scripts get
    it only when there are any, the native API always)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def json_error(exc: LoopinError, *, status: int | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """A domain error as the JSON error body, at its code's status unless told otherwise."""
    return error_response(
        exc.code, exc.message, status=status or error_status(exc), details=exc.details or None, headers=headers
    )


ErrorPage = Callable[[Request, LoopinError], Awaitable[Response]]


def console_route_class(render: ErrorPage) -> type[APIRoute]:
    """A route class for a console's router: a ``LoopinError`` that escapes a route is shown
    by ``render`` (that console's error page), so routes need no ``try`` of their own unless
    they show the error in place (a form with its fields kept)."""

    class ConsoleRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def run(request: Request) -> Response:
                try:
                    return await handler(request)
                except LoopinError as exc:
                    return await render(request, exc)

            return run

    return ConsoleRoute
