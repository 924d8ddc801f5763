"""Human loops: the list (filters by flow, status and creation time; keyset pages), a
loop's page (input, answers, output, the image with the model's and the humans' boxes),
stop and delete."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from loopin import deadlines, loop_stats, loops, tasks
from loopin.clock import parse_iso
from loopin.errors import LoopinError, ValidationError
from loopin.models import FlowDefinition, HumanLoop
from loopin.schemas import DEFAULT_MIN_SCORE
from loopin.validation import loads_stored
from loopin.web.consoles.admin.base import AdminPages, to_sign_in
from loopin.web.pages import origin_of, redirect

PAGE_SIZE = 50
_NOTICES = {"deleted": "The human loop was deleted.", "stopped": "The human loop was stopped."}


def add_routes(pages: AdminPages) -> None:
    r = pages.router

    def list_page(
        request: Request,
        flow: str = "",
        status: str = "",
        created_from: str = "",
        created_to: str = "",
        after: str = "",
        notice: str = "",
    ) -> Response:
        me = pages.signed_in(request)
        if me is None:
            return to_sign_in(request)
        filters = {"flow": flow, "status": status, "created_from": created_from, "created_to": created_to}
        values: dict[str, Any] = {"filters": filters, "statuses": loops.STATUSES, "notice": _NOTICES.get(notice)}
        with pages.ctx.db.read() as s:
            flows = list(s.scalars(select(FlowDefinition.name).order_by(FlowDefinition.name)))
            values.update(flows=flows, counts={}, rows=[], next_url=None)
            try:
                page = loops.list_loops(
                    s,
                    flow_name=flow or None,
                    status=status or None,
                    created_after_ms=_parse_time(created_from, "From"),
                    created_before_ms=_parse_time(created_to, "To"),
                    page_token=after or None,
                    max_results=PAGE_SIZE,
                )
            except LoopinError as exc:
                return pages.page("admin/loops.html", me, 400, section="loops", error=exc.message, **values)
            flow_id = s.scalar(select(FlowDefinition.id).where(FlowDefinition.name == flow)) if flow else None
            values["counts"] = loop_stats.status_counts(s, flow_id=flow_id)
        values["rows"] = [_row(loop, flow_name) for loop, flow_name in page.loops]
        if page.next_token:
            kept = {k: v for k, v in filters.items() if v}
            values["next_url"] = "/admin/loops?" + urlencode({**kept, "after": page.next_token})
        values["first_url"] = "/admin/loops?" + urlencode({k: v for k, v in filters.items() if v}) if after else None
        return pages.page("admin/loops.html", me, section="loops", **values)

    def loop_page(name: str, request: Request, notice: str = "") -> Response:
        me = pages.signed_in(request)
        if me is None:
            return to_sign_in(request)
        with pages.ctx.db.read() as s:
            values = _loop_values(pages, s, name)
        origins = values.pop("origins")
        return pages.page(
            "admin/loop.html", me, section="loops", img_origins=origins, notice=_NOTICES.get(notice), **values
        )

    async def stop(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, _ = posted
        now = pages.ctx.clock.now_ms
        await pages.write(lambda s: loops.stop_loop(s, name, now_ms=now()))
        return redirect(f"{_loop_path(name)}?notice=stopped")

    r.add_api_route("/admin/loops", list_page, methods=["GET"])
    r.add_api_route("/admin/loops/{name}", loop_page, methods=["GET"])
    r.add_api_route("/admin/loops/{name}/stop", stop, methods=["POST"])
    r.add_api_route(
        "/admin/loops/{name}/delete",
        pages.delete_action(loops.delete_loop, "/admin/loops?notice=deleted"),
        methods=["POST"],
    )


def _loop_values(pages: AdminPages, s: Session, name: str) -> dict[str, Any]:
    loop = loops.get_loop(s, name)
    flow = s.get_one(FlowDefinition, loop.flow_id)
    slots = tasks.slots_of_loop(s, loop)
    ctx = pages.ctx
    origins: set[str] = set()

    def signed(uri: str) -> str | None:
        try:
            url = ctx.store.signed_url(uri, ttl_seconds=ctx.settings.signed_url_ttl_seconds, now_ms=ctx.clock.now_ms())
        except LoopinError:
            return None
        return url

    task_input = loads_stored(loop.input_content)
    image_url = None
    task_object = task_input.get("taskObject")
    if isinstance(task_object, str) and task_object.startswith("s3://"):
        image_url = signed(task_object)
        if image_url:
            origins.add(origin_of(image_url))
    model = _model_boxes(task_input)
    answers: list[dict[str, Any]] = []
    for slot, worker in slots:
        answer = loads_stored(slot.answer) if slot.answer else None
        answers.append(
            {
                "index": slot.slot_index,
                "status": slot.status,
                "worker": worker.email if worker else None,
                "accepted": format_time(slot.accepted_at),
                "submitted": format_time(slot.submitted_at),
                "spent": format_duration(slot.submitted_at - slot.accepted_at)
                if slot.submitted_at and slot.accepted_at
                else None,
                "answer": json.dumps(answer, indent=2, ensure_ascii=False) if answer is not None else None,
                "boxes": _human_boxes(answer) if isinstance(answer, dict) else None,
            }
        )
    figures = [
        {
            "caption": f"The model's boxes and {a['worker'] or 'a worker'}'s answer",
            "boxes": json.dumps(model + a["boxes"]),
        }
        for a in answers
        if a["boxes"] is not None
    ]
    if not figures:
        figures = [{"caption": "The model's boxes", "boxes": json.dumps(model)}]
    consolidated = _consolidated(pages, loop, {w.worker_id: w.email for _, w in slots if w is not None})
    drawn = sum(1 for a in answers if a["boxes"] is not None)
    if consolidated is not None and consolidated["boxes"] is not None and drawn > 1:  # one answer: its own figure
        caption = f"The model's boxes and the consolidated answer (agreement {consolidated['agreement_text']})"
        figures.insert(0, {"caption": caption, "boxes": json.dumps(model + consolidated["boxes"])})
    output_url = signed(loop.output_uri) if loop.output_state == "written" and loop.output_uri else None
    fallback = json.loads(loop.fallback_info) if loop.fallback_info else None
    escalation = None
    if loop.escalation_info:
        info = json.loads(loop.escalation_info)
        escalation = {
            "team": info["team"],
            "reason": info["reason"],
            "at": format_time(parse_iso(info["time"])),
            "until": format_time(loop.escalation_ends_at),
        }
    return {
        "escalation": escalation,
        "adaptive": json.loads(loop.adaptive_info) if loop.adaptive_info else None,
        "declines": [{"worker": email, "at": format_time(at)} for email, at in deadlines.declined_by(s, loop)],
        "fallback": fallback,
        "deadline": format_time(loop.deadline_at),
        "loop": loop,
        "flow": flow.name,
        "created": format_time(loop.created_at),
        "ended": format_time(loop.ended_at),
        "expires": format_time(loop.expires_at),
        "duration": format_duration(loop.ended_at - loop.created_at) if loop.ended_at else None,
        "state": "writing its output" if loop.output_state == "pending" else None,
        "input": json.dumps(task_input, indent=2, ensure_ascii=False),
        "answers": answers,
        "consolidated": consolidated,
        "image_url": image_url,
        "figures": figures,
        "output_url": output_url,
        "min_score": DEFAULT_MIN_SCORE,
        "can_stop": loop.status == "InProgress" and loop.output_state == "none",
        "can_delete": loop.status not in loops.ACTIVE and loop.output_state != "pending",
        "path": _loop_path(loop.name),
        "origins": origins,
    }


def _consolidated(pages: AdminPages, loop: HumanLoop, emails: dict[str, str]) -> dict[str, Any] | None:
    """The written output's ``consolidatedAnswer``: its agreement, its boxes (as a worker's,
    to draw) and each object's agreement and workers (by e-mail); None when there is none
    or the output cannot be read now."""
    if loop.output_state != "written" or not loop.output_uri:
        return None
    try:
        document = json.loads(pages.ctx.store.get(loop.output_uri))
    except (LoopinError, ValueError):
        return None
    found = document.get("consolidatedAnswer") if isinstance(document, dict) else None
    if not isinstance(found, dict):
        return None
    content = found.get("answerContent")
    agreement = found.get("agreement")
    objects = [
        {
            "field": name,
            "label": obj.get("label", ""),
            "agreement": obj.get("agreement"),
            "workers": ", ".join(emails.get(str(w), str(w)) for w in obj.get("workers", [])),
        }
        for name, field in sorted((found.get("perField") or {}).items())
        if isinstance(field, dict)
        for obj in field.get("objects", [])
        if isinstance(obj, dict)
    ]
    return {
        "agreement": agreement,
        "agreement_text": "–" if not isinstance(agreement, int | float) else f"{100 * agreement:.0f} %",
        "boxes": _human_boxes(content) if isinstance(content, dict) else None,
        "objects": objects,
        "workers": ", ".join(emails.get(str(w), str(w)) for w in found.get("workers", [])),
        "not_consolidated": found.get("notConsolidated") or {},
    }


def _model_boxes(task_input: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's boxes: the predictions routed with the loop (with their scores) down to
    the routing rules' default noise floor (``DEFAULT_MIN_SCORE``: a detector's long tail of
    unlikely boxes would hide the image), else the pre-filled ``initialValue``."""
    predictions = task_input.get("predictions")
    if isinstance(predictions, list):
        return [
            {
                "left": p["left"],
                "top": p["top"],
                "width": p["right"] - p["left"],
                "height": p["bottom"] - p["top"],
                "label": str(p.get("label", "")),
                "score": p.get("score"),
                "kind": "model",
            }
            for p in predictions
            if isinstance(p, dict)
            and _numbers(p, "left", "top", "right", "bottom")
            and not (_numbers(p, "score") and p["score"] < DEFAULT_MIN_SCORE)
        ]
    initial = task_input.get("initialValue")
    return _boxes(initial, "model") if isinstance(initial, list) else []


def _human_boxes(answer: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The boxes of a ``crowd-bounding-box`` answer (``{name: {boundingBoxes: [...]}}``)."""
    for value in answer.values():
        if isinstance(value, dict) and isinstance(value.get("boundingBoxes"), list):
            return _boxes(value["boundingBoxes"], "human")
    return None


def _boxes(items: list[Any], kind: str) -> list[dict[str, Any]]:
    return [
        {
            "left": b["left"],
            "top": b["top"],
            "width": b["width"],
            "height": b["height"],
            "label": str(b.get("label", "")),
            "kind": kind,
        }
        for b in items
        if isinstance(b, dict) and _numbers(b, "left", "top", "width", "height")
    ]


def _numbers(item: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(item.get(k), int | float) and not isinstance(item.get(k), bool) for k in keys)


def _row(loop: HumanLoop, flow_name: str) -> dict[str, Any]:
    return {
        "name": loop.name,
        "path": _loop_path(loop.name),
        "flow": flow_name,
        "status": loop.status,
        "created": format_time(loop.created_at),
        "ended": format_time(loop.ended_at),
        "duration": format_duration(loop.ended_at - loop.created_at) if loop.ended_at else None,
    }


def _loop_path(name: str) -> str:
    return "/admin/loops/" + quote(name, safe="")


def _parse_time(value: str, what: str) -> int | None:
    """A ``datetime-local`` field's value, read as UTC, in epoch ms."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(f"{what} is not a date and time (YYYY-MM-DDThh:mm).") from exc
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1000)


def format_time(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
