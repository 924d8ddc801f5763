"""What every admin page shares: who is signed in, CSRF checks for forms and for the
pages' own ``fetch`` calls, rendering with the admin layout, and errors as pages or JSON.

Admins sign in with their own accounts (``admins.py``); their session cookie is signed with
keys derived for the admin console only and sent only under ``/admin``, so a worker's
cookie or token never opens an admin page.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin.errors import AuthenticationError, LoopinError, ValidationError
from loopin.models import Admin
from loopin.services import Services
from loopin.validation import refuse_lone_surrogates
from loopin.web.bodies import read_capped
from loopin.web.errors import console_route_class, error_status, json_error
from loopin.web.pages import (
    PAGE_CSP,
    ConsoleCookies,
    Form,
    StaticAssets,
    page_environment,
    page_headers,
    read_form,
    redirect,
)
from loopin.web.sessions import SessionKeys, SignInLimiter

T = TypeVar("T")

ADMIN_COOKIE = "loopin_admin"
COOKIE_PATH = "/admin"
CSRF_HEADER = "X-CSRF-Token"
FORM_LIMIT = 256 * 1024  # a task template fits
JSON_LIMIT = 1024 * 1024

STALE_FORM_TITLE = "Please try again"
STALE_FORM = "This page was open for too long or came from another site. Reload it and try again."

# The sections of the console, in the order of the navigation bar.
NAVIGATION = [
    ("overview", "Overview", "/admin/overview"),
    ("loops", "Human loops", "/admin/loops"),
    ("flows", "Flows", "/admin/flows"),
    ("templates", "Templates", "/admin/templates"),
    ("teams", "Teams", "/admin/teams"),
    ("endpoints", "Models & endpoints", "/admin/endpoints"),
    ("batch", "Batch jobs", "/admin/batch"),
    ("keys", "Access keys", "/admin/keys"),
]


@dataclass(frozen=True)
class SignedInAdmin:
    admin: Admin
    sid: str  # the session's id, which its CSRF token is bound to


class AdminPages:
    """One per app: the router every section adds its routes to, and the tools they use."""

    def __init__(self, ctx: Services, assets: StaticAssets) -> None:
        self.ctx = ctx
        self.assets = assets
        self.keys = SessionKeys(
            ctx.settings.secret_key, ttl_seconds=ctx.settings.admin_session_ttl_seconds, purpose="admin"
        )
        self.limiter = SignInLimiter(db=ctx.db)
        self.cookies = ConsoleCookies(
            self.keys,
            name=ADMIN_COOKIE,
            path=COOKIE_PATH,
            secure=ctx.settings.resolved_public_url.startswith("https://"),
        )
        self.templates = page_environment(assets)
        self.router = APIRouter(include_in_schema=False, route_class=console_route_class(self._error_for))

    # -- who is asking ----------------------------------------------------------------

    def signed_in(self, request: Request) -> SignedInAdmin | None:
        session = self.cookies.session(request, now_ms=self.ctx.clock.now_ms())
        if session is None:
            return None
        with self.ctx.db.read() as s:
            admin = s.get(Admin, session.account_id)
            if admin is not None:
                s.expunge(admin)
        if (
            admin is None
            or admin.status != "active"
            or admin.sub != session.sub
            or admin.session_generation != session.gen
        ):
            return None
        return SignedInAdmin(admin, session.sid)

    async def form_post(
        self, request: Request, *, max_fields: int = 60, limit: int = FORM_LIMIT
    ) -> tuple[SignedInAdmin, Form] | Response:
        """The signed-in admin and the form of a POST with a valid CSRF field, or the
        response that refuses it (sign-in page, or a 403 page)."""
        form = await read_form(request, limit, max_fields=max_fields)
        me = await run_in_threadpool(self.signed_in, request)
        if me is None:
            return to_sign_in(request)
        if not self.keys.check_csrf(me.sid, form.get("csrf")):
            return self.message(me, STALE_FORM_TITLE, STALE_FORM, 403)
        return me, form

    async def fetch_post(self, request: Request, *, limit: int = JSON_LIMIT) -> tuple[SignedInAdmin, bytes] | Response:
        """The signed-in admin and the raw body of a page script's POST carrying the CSRF
        token in the ``X-CSRF-Token`` header, or a JSON error response."""
        me = await run_in_threadpool(self.signed_in, request)
        if me is None:
            return json_error(AuthenticationError("Your session has ended. Sign in again."))
        if not self.keys.check_csrf(me.sid, request.headers.get(CSRF_HEADER)):
            return json_error(AuthenticationError(STALE_FORM), status=403)
        body = await read_capped(request, limit)
        if body is None:
            return json_error(ValidationError(f"The request is larger than {limit // 1024} KiB."), status=413)
        return me, body

    # -- running domain work ----------------------------------------------------------

    async def write(self, fn: Callable[[Session], T]) -> T:
        return await run_in_threadpool(self.ctx.write, fn)

    async def read(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.ctx.db.read() as s:
                return fn(s)

        return await run_in_threadpool(run)

    def delete_action(
        self, remove: Callable[[Session, str], object], done_url: str
    ) -> Callable[[str, Request], Awaitable[Response]]:
        """A form POST route that deletes the named thing with ``remove``, then goes to
        ``done_url``; a refusal (in use, not found) is shown as a page."""

        async def handler(name: str, request: Request) -> Response:
            posted = await self.form_post(request)
            if isinstance(posted, Response):
                return posted
            me, _ = posted
            await self.write(lambda s: remove(s, name))
            return redirect(done_url)

        return handler

    # -- pages ------------------------------------------------------------------------

    def page(
        self,
        template: str,
        me: SignedInAdmin | None,
        status: int = 200,
        *,
        section: str = "",
        img_origins: Iterable[str] = (),
        **values: Any,
    ) -> HTMLResponse:
        """An admin page. ``section`` highlights the navigation; ``img_origins`` are extra
        origins the page may show images from (signed URLs of an external store)."""
        if me is not None:
            values.update(admin_email=me.admin.email, csrf=self.keys.csrf_token(me.sid))
        html = self.templates.get_template(template).render(navigation=NAVIGATION, section=section, **values)
        csp = PAGE_CSP
        extra = " ".join(sorted(set(img_origins) - {"'self'"}))
        if extra:
            csp = csp.replace("img-src 'self' data: blob:", f"img-src 'self' data: blob: {extra}")
        return HTMLResponse(html, status_code=status, headers=page_headers(csp))

    def message(self, me: SignedInAdmin | None, title: str, text: str, status: int) -> HTMLResponse:
        return self.page("admin/message.html", me, status, title=title, text=text)

    async def _error_for(self, request: Request, exc: LoopinError) -> Response:
        """A domain error that escaped a route: JSON for the pages' own fetch calls, else a page."""
        if CSRF_HEADER.lower() in request.headers:
            return json_error(exc)
        me = await run_in_threadpool(self.signed_in, request)
        return self.error_page(me, exc) if me is not None else to_sign_in(request)

    def error_page(self, me: SignedInAdmin, exc: LoopinError) -> Response:
        titles = {400: "That did not work", 404: "Not found", 409: "Not possible right now"}
        status = error_status(exc)
        return self.message(me, titles.get(status, "Something went wrong"), exc.message, status)

    def anonymous_form(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        """A form shown before sign-in, with a CSRF token bound to a pre-session cookie."""
        pre, csrf = self.cookies.pre_session(request)
        return self.cookies.keep_pre_session(self.page(template, None, status, csrf=csrf, **values), pre)

    def start_session(self, admin: Admin, next_url: str = "/admin") -> Response:
        now = self.ctx.clock.now_ms()
        return self.cookies.start(
            redirect(next_url), account_id=admin.id, sub=admin.sub, gen=admin.session_generation, now_ms=now
        )


def to_sign_in(request: Request | None = None) -> Response:
    """To the sign-in page, coming back to the page asked for (GET only) afterwards."""
    if request is not None and request.method == "GET" and request.url.path.startswith("/admin/"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect("/admin/sign-in?next=" + quote(target, safe=""))
    return redirect("/admin/sign-in")


def json_body(body: bytes) -> Any:
    """A fetch body parsed as JSON, or a ValidationError a person can act on."""
    try:
        value = json.loads(body or b"null")
    except ValueError as exc:
        raise ValidationError(f"The request body is not valid JSON: {exc}") from exc
    refuse_lone_surrogates(value, what="The request body")
    return value


def safe_next(url: str) -> str:
    """Only a path inside the admin console may be a redirect target after sign-in."""
    if url.startswith("/admin/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/admin"
