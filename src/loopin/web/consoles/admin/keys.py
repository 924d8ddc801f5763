"""Admin console section: access keys, for programs (the REST API, the SDK, the CLI, boto3)
that act as an admin. A new key's secret is shown once, on the page that answers its
creation; only the key id and its description are shown after that."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from loopin import access_keys
from loopin.errors import LoopinError
from loopin.web.consoles.admin.base import AdminPages, SignedInAdmin, to_sign_in
from loopin.web.errors import error_status
from loopin.web.pages import redirect

NOTICES = {"revoked": "The key is revoked: requests signed with it are refused within 5 seconds."}


def add_routes(pages: AdminPages) -> None:
    ctx = pages.ctx

    async def page(me: SignedInAdmin, status: int = 200, **values: Any) -> Response:
        rows = await pages.read(lambda s: [_row(k) for k in access_keys.list_keys(s)])
        return pages.page(
            "admin/keys.html", me, status, section="keys", keys=rows, url=ctx.settings.resolved_public_url, **values
        )

    async def list_page(request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        return await page(me, notice=NOTICES.get(notice))

    async def create(request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        description = form.get("description").strip()
        try:
            key = await pages.write(
                lambda s: access_keys.create_key(
                    s, secret_key=ctx.settings.secret_key, description=description, now_ms=ctx.clock.now_ms()
                )
            )
        except LoopinError as exc:
            return await page(me, error_status(exc), error=exc.message, description=description)
        return await page(me, created=key)  # the secret, this once

    async def revoke(key_id: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, _ = posted
        await pages.write(lambda s: access_keys.revoke_key(s, key_id, now_ms=ctx.clock.now_ms()))
        return redirect("/admin/keys?notice=revoked")

    pages.router.add_api_route("/admin/keys", list_page, methods=["GET"])
    pages.router.add_api_route("/admin/keys", create, methods=["POST"])
    pages.router.add_api_route("/admin/keys/{key_id}/revoke", revoke, methods=["POST"])


def _row(key: Any) -> dict[str, Any]:
    return {
        "id": key.key_id,
        "revoke": f"/admin/keys/{quote(key.key_id, safe='')}/revoke",
        "description": key.description,
        "created": _when(key.created_at),
        "revoked": _when(key.revoked_at) if key.revoked_at else None,
    }


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
