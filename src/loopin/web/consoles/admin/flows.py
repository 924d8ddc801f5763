"""Admin console section: flow definitions. Create one whole; afterwards change only what
leaves running loops as they are (``flows.update_flow`` says which fields and why)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import activation, deadlines, flows, task_templates, workforce
from loopin.errors import LoopinError, NotFoundError, ResourceInUseError, ValidationError
from loopin.models import FlowDefinition, TaskUi, Workteam
from loopin.validation import loads_stored
from loopin.web.consoles.admin.base import AdminPages, SignedInAdmin, to_sign_in
from loopin.web.consoles.admin.loops import format_duration
from loopin.web.consoles.admin.templates import when
from loopin.web.errors import error_status
from loopin.web.pages import Form, redirect

NOTICES = {"created": "The flow was created.", "saved": "Your changes were saved.", "deleted": "The flow was deleted."}
EDITABLE = (
    "title",
    "description",
    "keywords",
    "task_count",
    "availability_lifetime_s",
    "time_limit_s",
    "consolidation",
    "consolidation_quorum",
    "frame_origins",
    "default_priority",
    "deadline_s",
    "fallback",
    "escalation_team",
    "escalation_s",
    "adaptive",
    "adaptive_model_agreement",
    "adaptive_worker_agreement",
)
_CONSOLIDATION = {"on": True, "off": False}  # anything else: automatic (None)
_WHOLE_NUMBER = re.compile(r"^-?\d{1,12}$")
_FRACTION = re.compile(r"^\d{0,3}(\.\d{1,6})?$")


def add_routes(pages: AdminPages) -> None:
    r = pages.router
    ctx = pages.ctx

    async def list_page(request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)

        def load(s: Session) -> list[dict[str, Any]]:
            teams = {t.id: t.name for t in workforce.list_teams(s)}
            uis = {u.id: u.name for u in task_templates.list_task_uis(s)}
            waiting = flows.tasks_waiting(s)
            return [
                {
                    "name": f.name,
                    "team": teams.get(f.team_id, ""),
                    "template": uis.get(f.task_ui_id, ""),
                    "task_count": f.task_count,
                    "waiting": waiting.get(f.id, 0),
                    "created": when(f.created_at),
                }
                for f in flows.list_flows(s)
            ]

        rows = await pages.read(load)
        return pages.page("admin/flows.html", me, section="flows", rows=rows, notice=NOTICES.get(notice))

    async def choices() -> tuple[list[str], list[str]]:
        def load(s: Session) -> tuple[list[str], list[str]]:
            return [t.name for t in workforce.list_teams(s)], [u.name for u in task_templates.list_task_uis(s)]

        return await pages.read(load)

    async def new_form(
        me: SignedInAdmin, status: int = 200, *, values: dict[str, str], errors: dict[str, str], error: str = ""
    ) -> HTMLResponse:
        teams, templates = await choices()
        return pages.page(
            "admin/flow_new.html",
            me,
            status,
            section="flows",
            teams=teams,
            templates=templates,
            v=values,
            errors=errors,
            error=error,
            limits=_FIELD_LIMITS,
        )

    async def new_page(request: Request, template: str = "", team: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        values = {
            "team": team,
            "task_ui": template,
            "task_count": "1",
            "availability_lifetime_s": str(flows.DEFAULT_AVAILABILITY_S),
            "time_limit_s": str(flows.DEFAULT_TIME_LIMIT_S),
            "default_priority": str(flows.DEFAULT_PRIORITY),
            "fallback": "fail",
        }
        return await new_form(me, values=values, errors={})

    async def create(request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        values = _values(form, ("name", "team", "task_ui", "output_path", *EDITABLE))
        name = values["name"]

        def run(s: Session) -> None:
            # The team and template come from lists; one gone meanwhile is that field's problem.
            missing: dict[str, str] = {}
            if values["team"] not in {t.name for t in workforce.list_teams(s)}:
                missing["team"] = "Choose one of the teams."
            if values["task_ui"] not in {u.name for u in task_templates.list_task_uis(s)}:
                missing["task_ui"] = "Choose one of the templates."
            try:
                flows.create_flow(
                    s,
                    name=name,
                    team=values["team"],
                    task_ui=values["task_ui"],
                    output_path=values["output_path"],
                    now_ms=ctx.clock.now_ms(),
                    **_settings(values),
                )
            except (ValidationError, NotFoundError) as exc:
                problems = {**_field_errors(exc), **missing}
                if not problems:
                    raise
                raise ValidationError(next(iter(problems.values())), details={"fields": problems}) from exc

        try:
            await pages.write(run)
        except LoopinError as exc:
            errors = {"name": exc.message} if isinstance(exc, ResourceInUseError) else _field_errors(exc)
            return await new_form(me, error_status(exc), values=values, errors=errors, error=_summary(exc, errors))
        return redirect(f"/admin/flows/{quote(name, safe='')}?notice=created")

    async def detail(
        me: SignedInAdmin,
        name: str,
        status: int = 200,
        *,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        error: str = "",
        notice: str | None = None,
    ) -> Response:
        def load(s: Session) -> dict[str, Any]:
            flow = flows.get_flow(s, name)
            return {
                "flow": flow,
                "teams": [t.name for t in workforce.list_teams(s)],
                "escalation_team": flows.escalation_team_name(s, flow),
                "team": s.get_one(Workteam, flow.team_id).name,
                "template": s.get_one(TaskUi, flow.task_ui_id).name,
                "waiting": flows.tasks_waiting(s).get(flow.id, 0),
                "service": deadlines.service_levels(s, flow.id, now_ms=pages.ctx.clock.now_ms()),
            }

        found = await pages.read(load)
        flow: FlowDefinition = found["flow"]
        return pages.page(
            "admin/flow.html",
            me,
            status,
            section="flows",
            flow=flow,
            teams=found["teams"],
            escalation_team=found["escalation_team"],
            team=found["team"],
            task_ui=found["template"],
            waiting=found["waiting"],
            service=found["service"],
            service_chart=_service_chart(found["service"].days, now_ms=pages.ctx.clock.now_ms()),
            median_answer=format_duration(int(found["service"].median_answer_ms))
            if found["service"].median_answer_ms is not None
            else None,
            created=when(flow.created_at),
            frame_origins=flows.frame_origins(flow),
            request_source=_request_source(flow),
            global_origins=ctx.settings.task_frame_origins,
            v=values if values is not None else _current(flow, found["escalation_team"]),
            errors=errors or {},
            error=error,
            notice=notice,
            limits=_FIELD_LIMITS,
        )

    async def flow_page(name: str, request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        return await detail(me, name, notice=NOTICES.get(notice))

    async def update(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        values = _values(form, EDITABLE)
        try:
            await pages.write(lambda s: flows.update_flow(s, name, **_settings(values)))
        except ValidationError as exc:
            errors = _field_errors(exc)
            return await detail(me, name, 400, values=values, errors=errors, error=_summary(exc, errors))
        except LoopinError as exc:
            return pages.error_page(me, exc)
        return redirect(f"/admin/flows/{quote(name, safe='')}?notice=saved")

    r.add_api_route("/admin/flows", list_page, methods=["GET"])
    r.add_api_route("/admin/flows", create, methods=["POST"])
    r.add_api_route("/admin/flows/new", new_page, methods=["GET"])
    r.add_api_route("/admin/flows/{name}", flow_page, methods=["GET"])
    r.add_api_route("/admin/flows/{name}", update, methods=["POST"])
    r.add_api_route(
        "/admin/flows/{name}/delete",
        pages.delete_action(flows.delete_flow, "/admin/flows?notice=deleted"),
        methods=["POST"],
    )


_LIMITS = {
    "task_count": (1, flows.MAX_TASK_COUNT),
    "availability_lifetime_s": (1, flows.MAX_AVAILABILITY_S),
    "time_limit_s": (flows.MIN_TIME_LIMIT_S, flows.MAX_TIME_LIMIT_S),
}
_FIELD_LIMITS = {**_LIMITS, "default_priority": (flows.MIN_PRIORITY, flows.MAX_PRIORITY)}  # shown in the form


def _values(form: Form, fields: tuple[str, ...]) -> dict[str, str]:
    """The form's fields as typed (trimmed), to validate and to show again."""
    return {field: form.get(field).strip() for field in fields}


def _settings(values: dict[str, str]) -> dict[str, Any]:
    """The editable fields as ``create_flow`` and ``update_flow`` take them."""
    return {
        "title": values["title"],
        "description": values["description"],
        "keywords": [k.strip() for k in values["keywords"].split(",") if k.strip()],
        "frame_origins": values["frame_origins"].replace(",", " ").split(),
        # Not a whole number: 0, which every range refuses with the field's own message.
        **{f: int(values[f]) if _WHOLE_NUMBER.fullmatch(values[f]) else 0 for f in _LIMITS},
        "consolidation": _CONSOLIDATION.get(values["consolidation"]),
        "consolidation_quorum": (
            None
            if not values["consolidation_quorum"]
            else int(values["consolidation_quorum"])
            if _WHOLE_NUMBER.fullmatch(values["consolidation_quorum"])
            else 0
        ),
        # Empty: the default priority, no deadline (0 removes one), the fallback 'fail', no
        # escalation ("" removes one); not a whole number: -1, which every range refuses
        # with the field's own message.
        "default_priority": _number(values["default_priority"], empty=flows.DEFAULT_PRIORITY),
        "deadline_s": _number(values["deadline_s"], empty=0),
        "fallback": values["fallback"] or "fail",
        "escalation_team": values["escalation_team"],
        "escalation_s": _number(values["escalation_s"], empty=None),
        "adaptive": values["adaptive"] == "on",
        # Empty: the default; not a number: -1, refused with the field's own message.
        "adaptive_model_agreement": _fraction(values["adaptive_model_agreement"]),
        "adaptive_worker_agreement": _fraction(values["adaptive_worker_agreement"]),
    }


def _fraction(value: str) -> float | None:
    if not value:
        return None
    return float(value) if value != "." and _FRACTION.fullmatch(value) else -1.0


def _number(value: str, *, empty: int | None) -> int | None:
    if not value:
        return empty
    return int(value) if _WHOLE_NUMBER.fullmatch(value) else -1


def _current(flow: FlowDefinition, escalation_team: str | None) -> dict[str, str]:
    return {
        "title": flow.title,
        "description": flow.description,
        "keywords": ", ".join(json.loads(flow.keywords)),
        "frame_origins": " ".join(flows.frame_origins(flow)),
        **{f: str(getattr(flow, f)) for f in _LIMITS},
        "consolidation": "auto" if flow.consolidation is None else "on" if flow.consolidation else "off",
        "consolidation_quorum": "" if flow.consolidation_quorum is None else str(flow.consolidation_quorum),
        "default_priority": str(flow.default_priority),
        "deadline_s": "" if flow.deadline_s is None else str(flow.deadline_s),
        "fallback": flow.fallback,
        "escalation_team": escalation_team or "",
        "escalation_s": "" if flow.escalation_s is None else str(flow.escalation_s),
        "adaptive": "on" if flow.adaptive else "off",
        "adaptive_model_agreement": _shown(flow.adaptive_model_agreement),
        "adaptive_worker_agreement": _shown(flow.adaptive_worker_agreement),
    }


def _request_source(flow: FlowDefinition) -> dict[str, str | None] | None:
    """A2I's built-in task type of a flow made through CreateFlowDefinition: its name for
    people, the source as AWS spells it and the activation conditions as indented JSON."""
    if flow.request_source is None:
        return None
    conditions = flow.activation_conditions
    return {
        "title": activation.SOURCE_TITLES.get(flow.request_source, flow.request_source),
        "source": flow.request_source,
        "conditions": json.dumps(loads_stored(conditions), indent=2, ensure_ascii=False) if conditions else None,
    }


def _shown(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _field_errors(exc: LoopinError) -> dict[str, str]:
    fields = exc.details.get("fields")
    return dict(fields) if isinstance(fields, dict) else {}


def _summary(exc: LoopinError, errors: dict[str, str]) -> str:
    if len(errors) > 1:
        return "Some fields need a change: see the messages below them."
    return "" if errors else exc.message


SERVICE_DAYS = 14
SERVICE_KINDS = ("people", "fallback", "failed")  # stacking order, bottom up; colours in flows.css
_W, _H, _LEFT, _BOTTOM, _TOP = 1000, 180, 48, 24, 8


def _service_chart(days: dict[int, dict[str, int]], *, now_ms: int) -> dict[str, Any]:
    """Stacked bars for the last ``SERVICE_DAYS`` UTC days: loops (of the sample) that
    ended that day, answered by people, by a fallback, or failed."""
    today = now_ms // deadlines.DAY_MS
    shown = {day: days.get(day, {}) for day in range(today - SERVICE_DAYS + 1, today + 1)}
    top = max([sum(v.values()) for v in shown.values()] + [1])
    step, scale = 1, 2
    while scale < top:  # the smallest 2, 4 or 10 x 10^k at least ``top``
        scale = next((m * step for m in (2, 4, 10) if m * step >= top), 0)
        step *= 10
    plot_h = _H - _TOP - _BOTTOM
    slot = (_W - _LEFT) / len(shown)
    bars = []
    for i, (day, counts) in enumerate(sorted(shown.items())):
        x = _LEFT + i * slot + slot * 0.15
        y: float = _H - _BOTTOM
        segments = []
        for kind in SERVICE_KINDS:
            n = counts.get(kind, 0)
            if n > 0:
                h = plot_h * n / scale
                y -= h
                segments.append({"kind": kind, "y": round(y, 2), "height": round(h, 2), "n": n})
        date = datetime.fromtimestamp(day * 86400, tz=UTC)
        bars.append(
            {
                "x": round(x, 2),
                "width": round(slot * 0.7, 2),
                "center": round(x + slot * 0.35, 2),
                "label": date.strftime("%d %b"),
                "date": date.strftime("%Y-%m-%d"),
                "total": sum(counts.values()),
                "segments": segments,
            }
        )
    ticks = [{"y": round(_H - _BOTTOM - plot_h * f, 2), "label": f"{round(scale * f):,}"} for f in (0, 0.5, 1)]
    return {"width": _W, "height": _H, "left": _LEFT, "bars": bars, "ticks": ticks, "kinds": SERVICE_KINDS}
