"""``create_app(settings)``: the ASGI application that ``loopin serve`` runs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

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
    app.include_router(runtime_router(ctx))
    assets = StaticAssets()
    app.include_router(assets.router())
    app.include_router(console_router(ctx, assets))
    app.include_router(admin_router(ctx, assets))
    mount_aws(app, ctx)
    if isinstance(ctx.store, LocalStore):
        app.include_router(store_router(ctx.store, ctx.clock))
    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory`` (several worker processes): settings from the
    environment."""
    return create_app(Settings.load())
