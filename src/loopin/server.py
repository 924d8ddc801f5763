"""``create_app(settings)``: the ASGI application that ``loopin serve`` runs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from loopin import __version__
from loopin.access_keys import SecretCache
from loopin.admin_console import admin_router
from loopin.api import create_api
from loopin.aws import mount_aws
from loopin.aws.runtime import runtime_router
from loopin.clock import Clock, SystemClock
from loopin.config import Settings
from loopin.console import console_router
from loopin.context import Services
from loopin.db import Database
from loopin.jobs import JobRunner
from loopin.model_host import ModelHost
from loopin.store import LocalStore, open_store
from loopin.web_pages import StaticAssets
from loopin.web_store import store_router

log = logging.getLogger("loopin.server")


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Open the database (migrated) and the object store for these settings."""
    settings = settings.ensure_secret_key()
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    db.upgrade()
    store = open_store(settings)
    clock = clock or SystemClock()
    return Services(
        db=db,
        store=store,
        settings=settings,
        clock=clock,
        models=ModelHost(store, inference_threads=settings.inference_threads),
        secrets=SecretCache(db, settings.secret_key, clock),
    )


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    run_jobs: bool = True,
) -> FastAPI:
    """The whole server. Tests pass ready ``services`` (with a manual clock) and drive the
    jobs themselves with ``run_jobs=False``."""
    ctx = services or build_services(settings or Settings.load())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner = JobRunner(ctx) if run_jobs else None
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
