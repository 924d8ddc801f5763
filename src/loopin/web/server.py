"""``create_app(settings)``: the ASGI application that ``loopin serve`` runs."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopin import __version__
from loopin.background import BackgroundRunner
from loopin.config import Settings
from loopin.services import Services, build_services
from loopin.store import LocalStore
from loopin.web.api import create_api
from loopin.web.aws import mount_aws
from loopin.web.aws.runtime import runtime_router
from loopin.web.consoles.admin import admin_router
from loopin.web.consoles.worker import console_router
from loopin.web.errors import error_response
from loopin.web.pages import StaticAssets
from loopin.web.store_urls import store_router

log = logging.getLogger("loopin.server")


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    run_background: bool = True,
) -> FastAPI:
    """The whole server. Tests pass ready ``services`` (with a manual clock) and drive the
    periodic work themselves with ``run_background=False``."""
    ctx = services or build_services(settings or Settings.load())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner = BackgroundRunner(ctx) if run_background else None
        if runner:
            runner.start()
        try:
            yield
        finally:
            if runner:
                runner.stop()

    app = FastAPI(title="loopin", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.services = ctx

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    api = create_api()
    api.state.services = ctx
    app.mount("/api/v1", api)

    @app.exception_handler(StarletteHTTPException)
    async def _not_routed(request: Request, exc: StarletteHTTPException) -> Response:
        # A path under /api/v1 that the mount does not take (a line break in it): still
        # the API's error shape.
        if request.url.path.startswith("/api/v1/") or request.url.path == "/api/v1":
            return error_response(
                "ResourceNotFound" if exc.status_code == 404 else "HttpError",
                "No such API path." if exc.status_code == 404 else str(exc.detail),
                status=exc.status_code,
                details={},
            )
        return await http_exception_handler(request, exc)

    app.include_router(runtime_router(ctx))
    assets = StaticAssets()
    app.include_router(assets.router())
    app.include_router(console_router(ctx, assets))
    app.include_router(admin_router(ctx, assets))
    mount_aws(app, ctx)
    if isinstance(ctx.store, LocalStore):
        app.include_router(store_router(ctx.store, ctx.clock))
    app.add_middleware(AnsweredErrors)  # outermost
    return app


class AnsweredErrors:
    """Each surface answers an unexpected error itself (a 500 in its own error shape), and
    Starlette then raises the error again for the server to log. Raised that far, uvicorn
    would drop the connection after the answer, without ``Connection: close``, and a
    keep-alive client's next request on it would fail. So an error that comes after a
    complete answer is logged here and goes no further; one before any answer becomes a
    plain 500 that closes the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False, "complete": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                state["complete"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if state["complete"]:
                log.exception("unhandled error (answered)")
                return
            if state["started"]:
                raise  # half an answer: only closing the connection can end it
            log.exception("unhandled error")
            response = JSONResponse(
                {"error": {"code": "InternalServerException", "message": "The server failed; see its log."}},
                status_code=500,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory`` (several worker processes): settings from the
    environment."""
    app = create_app(Settings.load())
    tune_gc()
    return app


# Python's defaults (700, 10, 10) collect every 700 allocations and fully every 100
# collections; a loaded server made that often enough for the pauses to be its latency's
# tail (BENCHMARKS.md, issue 14: StartHumanLoop's p99 on SQLite at 32 clients 141 → 66 ms).
GC_THRESHOLDS = (20_000, 50, 1000)


def tune_gc() -> None:
    """For a server process, once it is set up: what it made while starting (modules, the
    ORM's mappers, templates, the models) is moved out of the collector's sight for good,
    and collections run less often. Only cyclic garbage waits longer; everything else is
    freed when its last reference goes, as always."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
