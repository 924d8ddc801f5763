"""Admin console section: a flow's gold items and worker quality (``/admin/flows/{name}/quality``):
the gold settings, the workers' table with their pauses (and un-pause buttons), each
worker's gold accuracy per day drawn server-side as SVG, the gold items with a form to add
one and a JSON Lines upload (``gold.js`` posts the file)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import gold, worker_quality
from loopin.clock import iso_ms
from loopin.errors import LoopinError, ValidationError
from loopin.flows import get_flow
from loopin.validation import loads_stored
from loopin.web.consoles.admin.base import AdminPages, SignedInAdmin, to_sign_in
from loopin.web.errors import json_error
from loopin.web.pages import redirect

NOTICES = {
    "settings": "The gold settings were saved.",
    "added": "The gold item was added.",
    "uploaded": "The gold items of the file were added.",
    "deleted": "The gold item was deleted.",
    "unpaused": "The worker may work on this flow again.",
}
# The accuracy picture's geometry, in SVG user units.
WIDTH, HEIGHT, LEFT, TOP, BOTTOM, RIGHT = 760, 240, 60, 16, 40, 150
UPLOAD_LIMIT = 8 * 1024 * 1024


def add_routes(pages: AdminPages) -> None:
    r = pages.router
    ctx = pages.ctx

    async def quality_page(
        me: SignedInAdmin,
        name: str,
        status: int = 200,
        *,
        error: str = "",
        values: dict[str, str] | None = None,
        notice: str | None = None,
    ) -> Response:
        now = ctx.clock.now_ms()

        def load(s: Session) -> dict[str, Any]:
            flow = get_flow(s, name)
            counts = gold.served_counts(s, flow)
            settings = gold.get_settings(s, flow)
            return {
                "settings": settings,
                "workers": worker_quality.quality(s, name),
                "days": worker_quality.accuracy_by_day(s, name, now_ms=now),
                "items": [
                    {
                        "id": item.id,
                        "note": item.note,
                        "input": _short(item.input_content),
                        "answer": _short(item.answer),
                        "answered": counts.get(item.id, (0, None))[0],
                        "mean": counts.get(item.id, (0, None))[1],
                        "created": iso_ms(item.created_at)[:19].replace("T", " "),
                    }
                    for item in gold.list_items(s, name)
                ],
            }

        found = await pages.read(load)
        settings = found["settings"]
        v = values or {
            "rate": f"{settings.rate:g}",
            "min_accuracy": "" if settings.min_accuracy is None else f"{settings.min_accuracy:g}",
            "min_scored": str(settings.min_scored),
        }
        return pages.page(
            "admin/quality.html",
            me,
            status,
            section="flows",
            flow=name,
            v=v,
            error=error,
            notice=notice,
            workers=found["workers"],
            items=found["items"],
            chart=_chart(found["days"], found["workers"]),
            iso=lambda ms: iso_ms(ms)[:16].replace("T", " "),
        )

    async def show(name: str, request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        return await quality_page(me, name, notice=NOTICES.get(notice))

    async def save_settings(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        values = {k: form.get(k).strip() for k in ("rate", "min_accuracy", "min_scored")}
        try:
            rate = _number(values["rate"], "The gold rate")
            limit = _number(values["min_accuracy"], "The pause limit") if values["min_accuracy"] else None
            scored = values["min_scored"]
            if not scored.isdigit():
                raise ValidationError("The gold tasks before the limit applies must be a whole number.")
            await pages.write(
                lambda s: gold.set_settings(s, name, rate=rate, min_accuracy=limit, min_scored=int(scored))
            )
        except ValidationError as exc:
            return await quality_page(me, name, 400, error=exc.message, values=values)
        except LoopinError as exc:
            return pages.error_page(me, exc)
        return redirect(f"/admin/flows/{quote(name, safe='')}/quality?notice=settings")

    async def add_item(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        try:
            answer = _json_object(form.get("answer"), "The answer")
            await pages.write(
                lambda s: gold.add_item(
                    s,
                    name,
                    input_content=form.get("input").strip(),
                    answer=answer,
                    note=form.get("note").strip(),
                    now_ms=ctx.clock.now_ms(),
                )
            )
        except ValidationError as exc:
            return await quality_page(me, name, 400, error=exc.message)
        except LoopinError as exc:
            return pages.error_page(me, exc)
        return redirect(f"/admin/flows/{quote(name, safe='')}/quality?notice=added")

    async def upload(name: str, request: Request) -> Response:
        posted = await pages.fetch_post(request, limit=UPLOAD_LIMIT)
        if isinstance(posted, Response):
            return posted
        _, body = posted
        try:
            lines = gold.parse_lines(body.decode("utf-8"))
            added = await pages.write(lambda s: gold.add_items(s, name, lines, now_ms=ctx.clock.now_ms()))
        except UnicodeDecodeError:
            return json_error(ValidationError("The file is not UTF-8 text."))
        except LoopinError as exc:
            return json_error(exc)
        return JSONResponse({"added": len(added)})

    async def delete_item(name: str, item_id: str, request: Request) -> Response:
        posted = await pages.form_post(request)  # the CSRF check first, whatever the path says
        if isinstance(posted, Response):
            return posted
        number = int(item_id) if item_id.isascii() and item_id.isdigit() else -1
        await pages.write(lambda s: gold.delete_item(s, name, number))
        return redirect(f"/admin/flows/{quote(name, safe='')}/quality?notice=deleted")

    async def unpause(name: str, email: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        await pages.write(lambda s: worker_quality.unpause(s, name, email, now_ms=ctx.clock.now_ms()))
        return redirect(f"/admin/flows/{quote(name, safe='')}/quality?notice=unpaused")

    r.add_api_route("/admin/flows/{name}/quality", show, methods=["GET"])
    r.add_api_route("/admin/flows/{name}/gold/settings", save_settings, methods=["POST"])
    r.add_api_route("/admin/flows/{name}/gold/items", add_item, methods=["POST"])
    r.add_api_route("/admin/flows/{name}/gold/upload", upload, methods=["POST"])
    r.add_api_route("/admin/flows/{name}/gold/items/{item_id}/delete", delete_item, methods=["POST"])
    r.add_api_route("/admin/flows/{name}/workers/{email}/unpause", unpause, methods=["POST"])


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise ValidationError(f"{what} must be a number from 0 to 1.") from exc


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a JSON object ({{...}}).")
    return value


def _short(stored: str, limit: int = 160) -> str:
    text = json.dumps(loads_stored(stored), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chart(
    days: list[worker_quality.DayAccuracy], workers: list[worker_quality.WorkerQuality]
) -> dict[str, Any] | None:
    """Each worker's gold accuracy per day as a line (0-100 %), one colour class per worker."""
    if not days:
        return None
    starts = sorted({d.day_ms for d in days})
    span = WIDTH - LEFT - RIGHT
    step = span / max(1, len(starts) - 1)
    emails = {w.worker.worker_id: w.worker.email for w in workers}

    def x(day: int) -> float:
        i = starts.index(day)
        return round(LEFT + (i * step if len(starts) > 1 else span / 2), 1)

    def y(value: float) -> float:
        return round(TOP + (1 - value) * (HEIGHT - TOP - BOTTOM), 1)

    series = []
    for n, worker_id in enumerate(sorted({d.worker_id for d in days}, key=lambda w: emails.get(w, w))):
        points = [(x(d.day_ms), y(d.accuracy), d) for d in days if d.worker_id == worker_id]
        series.append(
            {
                "name": emails.get(worker_id, worker_id),
                "colour": n % 6,
                "line": " ".join(f"{px},{py}" for px, py, _ in points),
                "dots": [
                    {"x": px, "y": py, "title": f"{iso_ms(d.day_ms)[:10]}: {100 * d.accuracy:.0f} % of {d.scored}"}
                    for px, py, d in points
                ],
                "label_y": points[-1][1],
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "bottom": HEIGHT - BOTTOM,
        "y_ticks": [{"y": y(v / 100), "label": f"{v} %"} for v in (0, 50, 100)],
        "x_ticks": [{"x": x(d), "label": iso_ms(d)[5:10]} for d in starts],
        "series": series,
    }
