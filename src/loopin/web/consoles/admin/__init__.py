"""The admin console under ``/admin``: one module per section, each adding its routes to
the shared ``AdminPages``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from loopin.services import Services
from loopin.web.consoles.admin import (
    auth,
    batch,
    exports,
    flows,
    hosting,
    keys,
    loops,
    overview,
    quality,
    teams,
    templates,
    threshold,
)
from loopin.web.consoles.admin.base import AdminPages, to_sign_in
from loopin.web.pages import StaticAssets

SECTIONS = [auth, overview, loops, flows, threshold, exports, quality, templates, teams, hosting, batch, keys]


def admin_router(services: Services, assets: StaticAssets) -> APIRouter:
    pages = AdminPages(services, assets)
    for section in SECTIONS:
        section.add_routes(pages)

    async def not_found(path: str, request: Request) -> Response:  # last: only what no section has
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        text = "There is no such page in the admin console. It may have been a link to something deleted."
        return pages.message(me, "Page not found", text, 404)

    pages.router.add_api_route("/admin/{path:path}", not_found, methods=["GET"])
    return pages.router
