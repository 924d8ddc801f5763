"""The worker console: sign-in, invitations, the jobs page and the task page, under
``/worker``; its static files (CSS, scripts, the ``crowd-*`` element library) under
``/static``. Mount it with ``app.include_router(console_router(services, assets))``.

Isolation: console pages run only loopin's own scripts under an enforced
Content-Security-Policy. The task itself (the flow's template, which may carry inline
scripts, with the untrusted input printed into it) is served from its own route into an
``<iframe sandbox>`` without ``allow-same-origin``: its origin is opaque, so it can read
no cookie and call nothing on loopin as the worker, and its own CSP allows no network
access except the images and media the template was granted. The task's ``crowd-form``
hands its answer to the console page with ``postMessage``; the console page posts it with
the CSRF token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import flows, gold_serving, tasks, workforce
from loopin.errors import (
    AccessDeniedError,
    AuthenticationError,
    LoopinError,
    NotFoundError,
    TaskStateError,
    ValidationError,
)
from loopin.models import FlowDefinition, HumanLoop, TaskSlot, TaskUi, Worker
from loopin.rendering import RenderError, render_task
from loopin.services import Services
from loopin.validation import loads_stored
from loopin.web.errors import console_route_class, error_status
from loopin.web.pages import (
    CROWD_BUNDLE,
    FRAME_SANDBOX,
    PAGE_CSP,
    ConsoleCookies,
    Form,
    StaticAssets,
    frame_source,
    origin_of,
    page_environment,
    page_headers,
    read_form,
    redirect,
    task_frame_response,
)
from loopin.web.sessions import SESSION_COOKIE, SessionKeys, SignInLimiter

log = logging.getLogger("loopin.console")

COOKIE_PATH = "/worker"
_FORM_LIMIT = 64 * 1024
_ANSWER_FORM_LIMIT = 9 * tasks.MAX_ANSWER_CHARS  # URL-encoding: up to 9 bytes a character

NOTICES = {
    "signed-out": "You signed out.",
    "released": "You released the task. It went back to the queue for your team.",
    "declined": "You declined the task. It will not be offered to you again.",
    "no-tasks": "No tasks are waiting in this job right now. Check back later.",
    "done": "Thank you! Your answer was saved. No more tasks are waiting in this job right now.",
}


@dataclass(frozen=True)
class _SignedIn:
    worker: Worker
    sid: str  # the session's id, which its CSRF token is bound to


def console_router(services: Services, assets: StaticAssets) -> APIRouter:
    """The worker console's routes, bound to ``services``."""
    return _Console(services, assets).router


class _Console:
    def __init__(self, ctx: Services, assets: StaticAssets) -> None:
        self.ctx = ctx
        self.keys = SessionKeys(ctx.settings.secret_key, ttl_seconds=ctx.settings.worker_token_ttl_seconds)
        self.cookies = ConsoleCookies(
            self.keys,
            name=SESSION_COOKIE,
            path=COOKIE_PATH,
            secure=ctx.settings.resolved_public_url.startswith("https://"),
        )
        self.limiter = SignInLimiter(db=ctx.db)
        self.assets = assets
        self.pages = page_environment(assets)
        self.router = APIRouter(include_in_schema=False, route_class=console_route_class(self._error_for))
        self._routes()

    # -- routes ---------------------------------------------------------------------------

    def _routes(self) -> None:
        r = self.router
        r.add_api_route("/worker", self.home, methods=["GET"])
        r.add_api_route("/worker/sign-in", self.sign_in_page, methods=["GET"])
        r.add_api_route("/worker/sign-in", self.sign_in, methods=["POST"])
        r.add_api_route("/worker/sign-out", self.sign_out, methods=["POST"])
        r.add_api_route("/worker/invitation/{token}", self.invitation_page, methods=["GET"])
        r.add_api_route("/worker/invitation/{token}", self.accept_invitation, methods=["POST"])
        r.add_api_route("/worker/jobs", self.jobs, methods=["GET"])
        r.add_api_route("/worker/jobs/{flow}/start", self.start, methods=["POST"])
        r.add_api_route("/worker/tasks/{task_id}", self.task, methods=["GET"])
        r.add_api_route("/worker/tasks/{task_id}/frame", self.frame, methods=["GET"])
        r.add_api_route("/worker/tasks/{task_id}/submit", self.submit, methods=["POST"])
        r.add_api_route("/worker/tasks/{task_id}/release", self.release, methods=["POST"])
        r.add_api_route("/worker/tasks/{task_id}/decline", self.decline, methods=["POST"])

    def home(self, request: Request) -> Response:
        return redirect("/worker/jobs" if self._signed_in(request) else "/worker/sign-in")

    def sign_in_page(self, request: Request, notice: str = "") -> Response:
        if self._signed_in(request):
            return redirect("/worker/jobs")
        return self._anonymous_form(request, "sign_in.html", notice=NOTICES.get(notice))

    async def sign_in(self, request: Request) -> Response:
        form = await read_form(request, _FORM_LIMIT)
        email = form.get("email", "")[:254]
        if not self.cookies.pre_session_ok(request, form):
            return self._anonymous_form(request, "sign_in.html", 403, email=email, error=_STALE_FORM)
        client = request.client.host if request.client else "unknown"
        now = self.ctx.clock.now_ms()
        wait = await run_in_threadpool(lambda: self.limiter.begin_attempt(email=email, client=client, now_ms=now))
        if wait:
            minutes = -(-wait // 60)
            error = f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
            response = self._anonymous_form(request, "sign_in.html", 429, email=email, error=error)
            response.headers["Retry-After"] = str(wait)
            return response
        password = form.get("password", "")[:1024]
        try:
            worker = await run_in_threadpool(
                self.ctx.write, lambda s: workforce.sign_in(s, email, password, now_ms=self.ctx.clock.now_ms())
            )
        except AuthenticationError as exc:
            return self._anonymous_form(request, "sign_in.html", 401, email=email, error=exc.message)
        await run_in_threadpool(lambda: self.limiter.record_success(email=email, client=client))
        return self._start_session(worker)

    async def sign_out(self, request: Request) -> Response:
        form = await read_form(request, _FORM_LIMIT)
        signed_in = await run_in_threadpool(self._signed_in, request)
        if signed_in and not self.keys.check_csrf(signed_in.sid, form.get("csrf")):
            return self._message(_STALE_FORM_TITLE, _STALE_FORM, 403, signed_in)
        if signed_in:  # the cookie (and any copy of it) stops working on the server too
            worker_id = signed_in.worker.id
            await run_in_threadpool(self.ctx.write, lambda s: workforce.end_sessions(s, worker_id))
        return self.cookies.end(redirect("/worker/sign-in?notice=signed-out"))

    def invitation_page(self, token: str, request: Request) -> Response:
        return self._anonymous_form(request, "invitation.html", action=_invitation_path(token))

    async def accept_invitation(self, token: str, request: Request) -> Response:
        form = await read_form(request, _FORM_LIMIT)
        action = _invitation_path(token)
        if not self.cookies.pre_session_ok(request, form):
            return self._anonymous_form(request, "invitation.html", 403, action=action, error=_STALE_FORM)
        password = form.get("password", "")
        if password != form.get("confirm", ""):
            error = "The two passwords are not the same. Type them again."
            return self._anonymous_form(request, "invitation.html", 400, action=action, error=error)
        try:
            worker = await run_in_threadpool(
                self.ctx.write,
                lambda s: workforce.accept_invitation(s, token, password, now_ms=self.ctx.clock.now_ms()),
            )
        except (AuthenticationError, ValidationError) as exc:
            status = 401 if isinstance(exc, AuthenticationError) else 400
            return self._anonymous_form(request, "invitation.html", status, action=action, error=exc.message)
        return self._start_session(worker)

    def jobs(self, request: Request, notice: str = "") -> Response:
        me = self._signed_in(request)
        if me is None:
            return _to_sign_in()
        now = self.ctx.clock.now_ms()
        with self.ctx.db.read() as s:
            jobs = tasks.list_jobs(s, me.worker)
            held = _held_flow_ids(s, me.worker, now_ms=now)
        rows = [
            {
                "name": job.flow.name,
                "title": job.flow.title,
                "description": job.flow.description,
                "waiting": job.tasks_waiting,
                "in_progress": job.flow.id in held,
                "escalated": job.escalated,
                "start": f"/worker/jobs/{quote(job.flow.name, safe='')}/start",
            }
            for job in jobs
        ]
        return self._page("jobs.html", me, jobs=rows, notice=NOTICES.get(notice))

    async def start(self, flow: str, request: Request) -> Response:
        posted = await self._post_as_worker(request, _FORM_LIMIT)
        if isinstance(posted, Response):
            return posted
        me, _ = posted
        task_id = await self._claim(me, flow)
        return redirect(f"/worker/tasks/{task_id}" if task_id else "/worker/jobs?notice=no-tasks")

    def task(self, task_id: int, request: Request) -> Response:
        me = self._signed_in(request)
        if me is None:
            return _to_sign_in()
        now = self.ctx.clock.now_ms()
        with self.ctx.db.read() as s:
            held = gold_serving.get_held_task(s, me.worker, task_id, now_ms=now)
        if held.slot.status == "submitted":
            return self._message(_SUBMITTED, "Your answer was saved; it cannot be changed now.", 200, me)
        return self._page(
            "task.html",
            me,
            task_id=task_id,
            draft_key=f"{me.worker.id}.{task_id}",
            title=held.flow.title,
            description=held.flow.description,
            seconds_left=max(0, ((held.slot.lease_expires_at or now) - now) // 1000),
            frame_sandbox=FRAME_SANDBOX,
        )

    def frame(self, task_id: int, request: Request) -> Response:
        me = self._signed_in(request)
        if me is None:
            return self._frame_message(401, "Your session has ended. Sign in again.")
        now = self.ctx.clock.now_ms()
        try:
            with self.ctx.db.read() as s:
                held = gold_serving.get_held_task(s, me.worker, task_id, now_ms=now)
                template = s.get_one(TaskUi, held.flow.task_ui_id).content
        except LoopinError as exc:
            return self._frame_message(error_status(exc), exc.message)
        if held.slot.status == "submitted":
            return self._frame_message(409, _SUBMITTED + ".")
        origins: set[str] = set()
        frames: set[str] = set()
        settings = self.ctx.settings

        def grant(uri: str) -> str:
            with self.ctx.db.read() as s:
                if not flows.may_grant(s, held.flow, uri, default_locations=self.ctx.default_input_locations):
                    raise ValidationError(f"This task may not show {uri}.")
            url = self.ctx.store.signed_url(uri, ttl_seconds=settings.signed_url_ttl_seconds, now_ms=now)
            origins.add(origin_of(url))
            frames.add(frame_source(url, settings.resolved_public_url))
            return url

        try:
            body = render_task(
                template,
                loads_stored(held.loop.input_content),
                grant_read_access=grant,
                crowd_script_url=self.assets.url(CROWD_BUNDLE),
            )
        except RenderError as exc:
            log.warning(
                "task %s of flow %s (loop %s) cannot be shown: %s", task_id, held.flow.name, held.loop.name, exc
            )
            return self._frame_message(200, _CANNOT_SHOW, exc.message)
        except Exception:  # whatever went wrong, the worker gets words and can release the task
            log.exception("task %s of flow %s (loop %s) failed to render", task_id, held.flow.name, held.loop.name)
            return self._frame_message(500, _CANNOT_SHOW)
        html = self.pages.get_template("frame.html").render(body=body, crowd_script=self.assets.url(CROWD_BUNDLE))
        extra = [*settings.task_frame_origins, *flows.frame_origins(held.flow)]
        return task_frame_response(html, 200, origins, frames=frames, extra_origins=extra)

    async def submit(self, task_id: int, request: Request) -> Response:
        posted = await self._post_as_worker(request, _ANSWER_FORM_LIMIT)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        try:
            answer = json.loads(form.get("answer", ""))
        except ValueError:
            return self._error(ValidationError("The answer could not be read. Submit it again."), me)

        def run(s: Session) -> str:
            loop = gold_serving.submit(s, me.worker, task_id, answer, now_ms=self.ctx.clock.now_ms())
            return s.get_one(FlowDefinition, loop.flow_id).name

        flow = await run_in_threadpool(self.ctx.write, run)
        try:
            next_id = await self._claim(me, flow)
        except LoopinError:  # the job went away meanwhile: the answer is in, go to the jobs page
            next_id = None
        return redirect(f"/worker/tasks/{next_id}" if next_id else "/worker/jobs?notice=done")

    async def release(self, task_id: int, request: Request) -> Response:
        return await self._give_back(task_id, request, gold_serving.release, "released")

    async def decline(self, task_id: int, request: Request) -> Response:
        return await self._give_back(task_id, request, gold_serving.decline, "declined")

    async def _claim(self, me: _SignedIn, flow: str) -> int | None:
        """The task the worker holds in this job, else the next one waiting; None if none."""

        def claim(s: Session) -> int | None:
            held = gold_serving.claim_next(s, me.worker, flow_name=flow, now_ms=self.ctx.clock.now_ms())
            return held.slot.id if held else None

        return await run_in_threadpool(self.ctx.write, claim)

    async def _give_back(
        self, task_id: int, request: Request, action: Callable[..., HumanLoop], notice: str
    ) -> Response:
        posted = await self._post_as_worker(request, _FORM_LIMIT)
        if isinstance(posted, Response):
            return posted
        me, _ = posted
        await run_in_threadpool(self.ctx.write, lambda s: action(s, me.worker, task_id, now_ms=self.ctx.clock.now_ms()))
        return redirect(f"/worker/jobs?notice={notice}")

    # -- sessions -------------------------------------------------------------------------

    def _signed_in(self, request: Request) -> _SignedIn | None:
        session = self.cookies.session(request, now_ms=self.ctx.clock.now_ms())
        if session is None:
            return None
        with self.ctx.db.read() as s:
            worker = s.get(Worker, session.account_id)
        if (
            worker is None
            or worker.status != "active"
            or worker.sub != session.sub
            or worker.session_generation != session.gen
        ):
            return None
        return _SignedIn(worker, session.sid)

    async def _post_as_worker(self, request: Request, limit: int) -> tuple[_SignedIn, Form] | Response:
        """The signed-in worker and the form of a POST, or the response that refuses it."""
        form = await read_form(request, limit)
        me = await run_in_threadpool(self._signed_in, request)
        if me is None:
            return _to_sign_in()
        if not self.keys.check_csrf(me.sid, form.get("csrf")):
            return self._message(_STALE_FORM_TITLE, _STALE_FORM, 403, me)
        return me, form

    def _start_session(self, worker: Worker) -> Response:
        now = self.ctx.clock.now_ms()
        return self.cookies.start(
            redirect("/worker/jobs"), account_id=worker.id, sub=worker.sub, gen=worker.session_generation, now_ms=now
        )

    # -- pages ----------------------------------------------------------------------------

    def _anonymous_form(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        """A form shown before sign-in, with a CSRF token bound to a pre-session cookie."""
        pre, csrf = self.cookies.pre_session(request)
        return self.cookies.keep_pre_session(self._page(template, None, status, csrf=csrf, **values), pre)

    def _page(self, template: str, me: _SignedIn | None, status: int = 200, **values: Any) -> HTMLResponse:
        if me is not None:
            values.update(worker_email=me.worker.email, csrf=self.keys.csrf_token(me.sid))
        html = self.pages.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status, headers=page_headers(PAGE_CSP))

    def _message(self, title: str, text: str, status: int, me: _SignedIn | None) -> HTMLResponse:
        return self._page("message.html", me, status, title=title, text=text)

    async def _error_for(self, request: Request, exc: LoopinError) -> Response:
        """A domain error that escaped a route, as a page."""
        me = await run_in_threadpool(self._signed_in, request)
        return self._error(exc, me) if me is not None else _to_sign_in()

    def _error(self, exc: LoopinError, me: _SignedIn) -> Response:
        if isinstance(exc, AuthenticationError):
            return _to_sign_in()
        title = {
            NotFoundError: "This task is not yours any more",
            TaskStateError: "This task cannot be changed now",
            AccessDeniedError: "Not allowed",
        }.get(type(exc), "That did not work")
        return self._message(title, exc.message, error_status(exc), me)

    def _frame_message(self, status: int, message: str, detail: str | None = None) -> Response:
        html = self.pages.get_template("frame_message.html").render(message=message, detail=detail)
        return self._frame_response(html, status, set())

    def _frame_response(self, html: str, status: int, origins: set[str]) -> Response:
        return task_frame_response(html, status, origins)


_SUBMITTED = "You already submitted this task"
_CANNOT_SHOW = "This task cannot be shown. Please tell your admin, then release or decline it."
_STALE_FORM_TITLE = "Please try again"
_STALE_FORM = "This page was open for too long or came from another site. Reload it and try again."


def _to_sign_in() -> Response:
    return redirect("/worker/sign-in")


def _invitation_path(token: str) -> str:
    return f"/worker/invitation/{quote(token, safe='')}"


def _held_flow_ids(s: Session, worker: Worker, *, now_ms: int) -> set[int]:
    """The jobs in which the worker holds a task right now (Start working resumes it)."""
    return gold_serving.held_flow_ids(s, worker, now_ms=now_ms) | set(
        s.scalars(
            select(TaskSlot.flow_id).where(
                TaskSlot.worker_id == worker.id, TaskSlot.status == "held", TaskSlot.lease_expires_at > now_ms
            )
        )
    )
