"""Signing in and out of the admin console, and the first-start setup link."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from loopin import admins
from loopin.errors import AuthenticationError, LoopinError
from loopin.web.consoles.admin.base import STALE_FORM, AdminPages, safe_next
from loopin.web.pages import read_form, redirect

_FORM_LIMIT = 16 * 1024


def add_routes(pages: AdminPages) -> None:
    r = pages.router

    def home(request: Request) -> Response:
        return redirect("/admin/overview" if pages.signed_in(request) else "/admin/sign-in")

    def sign_in_page(request: Request, next: str = "", notice: str = "") -> Response:
        if pages.signed_in(request):
            return redirect(safe_next(next))
        text = "You signed out." if notice == "signed-out" else None
        return pages.anonymous_form(request, "admin/sign_in.html", next=safe_next(next), notice=text)

    async def sign_in(request: Request) -> Response:
        form = await read_form(request, _FORM_LIMIT)
        email, next_url = form.get("email")[:254], safe_next(form.get("next"))
        if not pages.cookies.pre_session_ok(request, form):
            return pages.anonymous_form(
                request, "admin/sign_in.html", 403, email=email, next=next_url, error=STALE_FORM
            )
        client = request.client.host if request.client else "unknown"
        now = pages.ctx.clock.now_ms()
        wait = await run_in_threadpool(lambda: pages.limiter.begin_attempt(email=email, client=client, now_ms=now))
        if wait:
            error = f"Too many failed sign-ins. Try again in {-(-wait // 60)} min."
            response = pages.anonymous_form(request, "admin/sign_in.html", 429, email=email, next=next_url, error=error)
            response.headers["Retry-After"] = str(wait)
            return response
        password = form.get("password")[:1024]
        try:
            admin = await pages.write(lambda s: admins.sign_in(s, email, password, now_ms=pages.ctx.clock.now_ms()))
        except AuthenticationError as exc:
            return pages.anonymous_form(
                request, "admin/sign_in.html", 401, email=email, next=next_url, error=exc.message
            )
        await run_in_threadpool(lambda: pages.limiter.record_success(email=email, client=client))
        return pages.start_session(admin, next_url)

    async def sign_out(request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        admin_id = posted[0].admin.id
        await pages.write(lambda s: admins.end_sessions(s, admin_id))  # every copy of the cookie
        return pages.cookies.end(redirect("/admin/sign-in?notice=signed-out"))

    async def setup_page(token: str, request: Request) -> Response:
        valid = await pages.read(lambda s: admins.setup_link_valid(s, token, now_ms=pages.ctx.clock.now_ms()))
        if not valid:
            return pages.message(None, "This setup link is not valid", _SPENT, 404)
        return pages.anonymous_form(request, "admin/setup.html", action=_setup_path(token))

    async def setup(token: str, request: Request) -> Response:
        form = await read_form(request, _FORM_LIMIT)
        action = _setup_path(token)
        values = {"action": action, "email": form.get("email")[:254], "name": form.get("name")[:128]}
        if not pages.cookies.pre_session_ok(request, form):
            return pages.anonymous_form(request, "admin/setup.html", 403, error=STALE_FORM, **values)
        if form.get("password") != form.get("confirm"):
            error = "The two passwords are not the same. Type them again."
            return pages.anonymous_form(request, "admin/setup.html", 400, error=error, **values)
        try:
            admin = await pages.write(
                lambda s: admins.create_first_admin(
                    s,
                    token,
                    email=form.get("email"),
                    name=form.get("name").strip(),
                    password=form.get("password"),
                    now_ms=pages.ctx.clock.now_ms(),
                )
            )
        except AuthenticationError:
            return pages.message(None, "This setup link is not valid", _SPENT, 404)
        except LoopinError as exc:
            return pages.anonymous_form(request, "admin/setup.html", 400, error=exc.message, **values)
        return pages.start_session(admin, "/admin/overview")

    r.add_api_route("/admin", home, methods=["GET"])
    r.add_api_route("/admin/sign-in", sign_in_page, methods=["GET"])
    r.add_api_route("/admin/sign-in", sign_in, methods=["POST"])
    r.add_api_route("/admin/sign-out", sign_out, methods=["POST"])
    r.add_api_route("/admin/setup/{token}", setup_page, methods=["GET"])
    r.add_api_route("/admin/setup/{token}", setup, methods=["POST"])


_SPENT = (
    "It was used already, has expired, or an admin exists now. Sign in, restart the server for a "
    "new link, or run `loopin admin create` on the server machine."
)


def _setup_path(token: str) -> str:
    return f"/admin/setup/{quote(token, safe='')}"
