"""The admin console under ``/admin``: one module per section, each adding its routes to
the shared ``AdminPages``."""

from __future__ import annotations

from fastapi import APIRouter

from loopin.admin_console import auth, flows, hosting, loops, overview, teams, templates, threshold
from loopin.admin_console.base import AdminPages
from loopin.context import Services
from loopin.web_pages import StaticAssets

SECTIONS = [auth, overview, loops, flows, threshold, templates, teams, hosting]


def admin_router(services: Services, assets: StaticAssets) -> APIRouter:
    pages = AdminPages(services, assets)
    for section in SECTIONS:
        section.add_routes(pages)
    return pages.router
