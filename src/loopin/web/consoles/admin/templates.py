"""Admin console section: task templates (A2I's human task UIs).

The editor previews a template as workers will see it: rendered by the worker console's
renderer (``render_task``) with its ``crowd-*`` element library, against a sample input,
in an ``<iframe sandbox>`` without ``allow-same-origin``. The page posts the template to
``/admin/templates/preview`` with a form whose target is that frame (the admin's session
cookie and CSRF field authorize it); the answer carries the task frame's CSP with its own
``sandbox`` directive, so the template's scripts run in an opaque origin and cannot act
as the admin. Errors come from ``/admin/templates/check`` (a page-script POST) with their
line. Task UIs are immutable by name, as in A2I: an edit is saved under a new name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import task_templates
from loopin.errors import LoopinError, ValidationError
from loopin.rendering import RenderError, render_task
from loopin.validation import has_lone_surrogate
from loopin.web.consoles.admin import gallery
from loopin.web.consoles.admin.base import STALE_FORM, AdminPages, SignedInAdmin, json_body, to_sign_in
from loopin.web.errors import error_status, json_error
from loopin.web.pages import (
    CROWD_BUNDLE,
    PREVIEW_SANDBOX,
    Form,
    frame_source,
    origin_of,
    read_form,
    redirect,
    task_frame_response,
)

# URL-encoding can triple a template's size.
# URL-encoding makes up to 9 bytes of one character (a 3-byte UTF-8 one, as %XX each).
_TEMPLATE_FORM_LIMIT = 9 * (task_templates.MAX_TEMPLATE_CHARS + 64 * 1024)

# The sample input shows this bundled photo (the demo's) without touching the store.
SAMPLE_IMAGE_URI = gallery.PHOTO
SAMPLE_INPUT = {
    "taskObject": SAMPLE_IMAGE_URI,
    "labels": ["person", "flag", "rocket"],
    "initialValue": [
        {"label": "person", "left": 130, "top": 20, "width": 290, "height": 492},
        {"label": "flag", "left": 0, "top": 0, "width": 140, "height": 300},
    ],
}
STARTER_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box
    name="annotatedResult"
    src="{{ task.input.taskObject | grant_read_access }}"
    header="Draw bounding boxes around all the objects in this image"
    labels="{{ task.input.labels }}"
    initial-value="{{ task.input.initialValue }}"
  >
    <full-instructions header="Bounding Box Instructions">
      <p>Draw a rectangle over each instance of the target; leave a 2 - 3 pixel margin.</p>
    </full-instructions>
    <short-instructions>
      Draw a box around each object. Fix or delete the boxes the model drew.
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""
NOTICES = {"created": "The template was saved.", "deleted": "The template was deleted."}


@dataclass(frozen=True)
class Problem:
    """Why a preview cannot be shown: ``where`` is "template" or "input"."""

    where: str
    message: str
    line: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"where": self.where, "message": self.message, "line": self.line}


def add_routes(pages: AdminPages) -> None:
    r = pages.router
    ctx = pages.ctx

    def load(s: Session, name: str) -> tuple[str, list[str]]:
        """A task UI's content and the flows that use it."""
        ui = task_templates.get_task_ui(s, name)
        return ui.content, task_templates.flows_using(s).get(ui.id, [])

    async def list_page(request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)

        def rows_of(s: Session) -> list[dict[str, Any]]:
            using = task_templates.flows_using(s)
            return [
                {"name": ui.name, "created": when(ui.created_at), "flows": using.get(ui.id, [])}
                for ui in task_templates.list_task_uis(s)
            ]

        rows = await pages.read(rows_of)
        return pages.page("admin/templates.html", me, section="templates", rows=rows, notice=NOTICES.get(notice))

    async def new_page(request: Request, start: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        starter = gallery.BY_KEY.get(start)
        if starter is None:
            return editor(me, content=STARTER_TEMPLATE)
        sample = json.dumps(starter.sample, indent=2)
        return editor(me, content=starter.content, sample=sample, new_name=starter.key, start=starter.key)

    async def edit_page(name: str, request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)

        content, flows = await pages.read(lambda s: load(s, name))
        return editor(me, existing=name, content=content, flows=flows, notice=NOTICES.get(notice))

    def editor(
        me: SignedInAdmin,
        status: int = 200,
        *,
        content: str,
        existing: str | None = None,
        flows: list[str] | None = None,
        sample: str | None = None,
        new_name: str = "",
        problem: Problem | None = None,
        notice: str | None = None,
        start: str = "",
    ) -> HTMLResponse:
        return pages.page(
            "admin/template_editor.html",
            me,
            status,
            section="templates",
            existing=existing,
            flows=flows or [],
            content=content,
            sample=sample if sample is not None else json.dumps(SAMPLE_INPUT, indent=2),
            new_name=new_name,
            problem=problem,
            notice=notice,
            warnings=task_templates.template_warnings(content),
            gallery=gallery.GALLERY if existing is None else [],
            start=start,
            frame_sandbox=PREVIEW_SANDBOX,
        )

    async def create(request: Request) -> Response:
        me, form, csrf_ok = await _template_form(pages, request)
        if me is None:
            return to_sign_in(request)
        if not csrf_ok:
            return pages.message(me, "Please try again", STALE_FORM, 403)
        name, content, existing = form.get("name").strip(), _text(form, "content"), form.get("existing") or None
        try:
            task_templates.check_template(content)
        except ValidationError as exc:
            problem, status = Problem("template", exc.message, exc.details.get("line")), 400
        else:
            try:
                await pages.write(
                    lambda s: task_templates.create_task_ui(s, name=name, content=content, now_ms=ctx.clock.now_ms())
                )
                return redirect(f"/admin/templates/{quote(name, safe='')}?notice=created")
            except LoopinError as exc:  # the content is valid: the name is not, or is taken
                problem, status = Problem("name", exc.message), error_status(exc)
        flows: list[str] = []
        if existing is not None:
            shown = existing
            try:
                flows = (await pages.read(lambda s: load(s, shown)))[1]
            except LoopinError:  # deleted meanwhile
                existing = None
        return editor(
            me,
            status,
            content=content,
            existing=existing,
            flows=flows,
            sample=_text(form, "input"),
            new_name=name,
            problem=problem,
        )

    def render_preview(template: str, input_text: str) -> tuple[str, set[str], set[str]]:
        """The task frame's HTML for the template and the sample input, and the origins of
        the URLs it was granted; raises ``PreviewProblem``."""
        try:
            task_templates.check_template(template)
        except ValidationError as exc:
            raise PreviewProblem(Problem("template", exc.message, exc.details.get("line"))) from exc
        try:
            task_input = json.loads(input_text)
        except json.JSONDecodeError as exc:
            message = f"The sample input is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}."
            raise PreviewProblem(Problem("input", message, exc.lineno)) from exc
        except RecursionError as exc:
            raise PreviewProblem(Problem("input", "The sample input is nested too deeply.", 1)) from exc
        if not isinstance(task_input, dict):
            message = "The sample input must be a JSON object, like a human loop's InputContent."
            raise PreviewProblem(Problem("input", message, 1))
        if has_lone_surrogate(task_input):
            message = "The sample input holds a lone UTF-16 surrogate (like \\ud800), which is not text."
            raise PreviewProblem(Problem("input", message, 1))
        now = ctx.clock.now_ms()
        origins: set[str] = set()
        frames: set[str] = set()

        def grant(uri: str) -> str:
            if gallery.is_sample(uri):
                return gallery.sample_data_url(uri)
            url = ctx.store.signed_url(uri, ttl_seconds=ctx.settings.signed_url_ttl_seconds, now_ms=now)
            origins.add(origin_of(url))
            frames.add(frame_source(url, ctx.settings.resolved_public_url))
            return url

        crowd_script = pages.assets.url(CROWD_BUNDLE)
        try:
            body = render_task(template, task_input, grant_read_access=grant, crowd_script_url=crowd_script)
        except RenderError as exc:
            raise PreviewProblem(Problem("template", exc.message, exc.details.get("line"))) from exc
        html = pages.templates.get_template("frame.html").render(body=body, crowd_script=crowd_script)
        return html, origins, frames

    async def preview(request: Request) -> Response:
        me, form, csrf_ok = await _template_form(pages, request)
        if me is None:
            return preview_message(401, Problem("session", "Your session has ended. Sign in again."))
        if not csrf_ok:
            return preview_message(403, Problem("session", STALE_FORM))
        try:
            html, origins, frames = await run_in_threadpool(
                render_preview, _text(form, "content"), _text(form, "input")
            )
        except PreviewProblem as exc:
            return preview_message(400, exc.problem)
        extra = ctx.settings.task_frame_origins
        return task_frame_response(html, 200, origins, sandbox=PREVIEW_SANDBOX, frames=frames, extra_origins=extra)

    def preview_message(status: int, problem: Problem) -> Response:
        html = pages.templates.get_template("admin/template_preview_message.html").render(problem=problem)
        return task_frame_response(html, status, set(), sandbox=PREVIEW_SANDBOX)

    async def check(request: Request) -> Response:
        posted = await pages.fetch_post(request, limit=_TEMPLATE_FORM_LIMIT)
        if isinstance(posted, Response):
            return posted
        _, body = posted
        try:
            data = json_body(body)
            if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("content", "input")):
                raise ValidationError('Send {"content": "<template>", "input": "<sample input JSON>"}.')
        except ValidationError as exc:
            return json_error(exc)
        warnings = task_templates.template_warnings(data["content"])
        try:
            await run_in_threadpool(render_preview, data["content"], data["input"])
        except PreviewProblem as exc:
            answer = {"problem": exc.problem.as_json(), "warnings": warnings}
            return JSONResponse(answer, headers={"Cache-Control": "no-store"})
        return JSONResponse({"problem": None, "warnings": warnings}, headers={"Cache-Control": "no-store"})

    r.add_api_route("/admin/templates", list_page, methods=["GET"])
    r.add_api_route("/admin/templates", create, methods=["POST"])
    r.add_api_route("/admin/templates/new", new_page, methods=["GET"])
    r.add_api_route("/admin/templates/preview", preview, methods=["POST"])
    r.add_api_route("/admin/templates/check", check, methods=["POST"])
    r.add_api_route("/admin/templates/{name}", edit_page, methods=["GET"])
    r.add_api_route(
        "/admin/templates/{name}/delete",
        pages.delete_action(task_templates.delete_task_ui, "/admin/templates?notice=deleted"),
        methods=["POST"],
    )


class PreviewProblem(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


async def _template_form(pages: AdminPages, request: Request) -> tuple[SignedInAdmin | None, Form, bool]:
    """Like ``pages.form_post`` for forms that carry a whole template (larger than other
    forms): who is signed in, the form, and whether its CSRF field is valid."""
    form = await read_form(request, _TEMPLATE_FORM_LIMIT, max_fields=10)
    me = await run_in_threadpool(pages.signed_in, request)
    return me, form, me is not None and pages.keys.check_csrf(me.sid, form.get("csrf"))


def _text(form: Form, field: str) -> str:
    """A text area's value with the line breaks browsers send (CRLF) as typed (LF)."""
    return form.get(field).replace("\r\n", "\n")


def when(ms: int) -> str:
    """A moment as admins read it in tables: UTC, to the minute."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
