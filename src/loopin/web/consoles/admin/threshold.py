"""Admin console section: the threshold picture of a flow. Over the confidence threshold,
how many logged images would go to people and how many of the people's corrections would
have been missed (``threshold.threshold_curve``), drawn as a server-rendered SVG, read out
in words at a chosen threshold, and applied to an endpoint's routing rule from there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import endpoints
from loopin.errors import LoopinError, ValidationError
from loopin.flows import get_flow
from loopin.routing import with_overrides
from loopin.threshold import DEFAULT_THRESHOLDS, Curve, Point, threshold_curve
from loopin.web.consoles.admin.base import AdminPages, SignedInAdmin, to_sign_in
from loopin.web.pages import redirect

# The plot's geometry, in SVG user units.
WIDTH, HEIGHT = 760, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 20, 16, 46
DEFAULT_AT = 0.5


@dataclass(frozen=True)
class Router:
    """An endpoint whose routing rule names this flow."""

    name: str
    threshold: float


def add_routes(pages: AdminPages) -> None:
    r = pages.router

    async def threshold_page(name: str, request: Request, at: str = "", notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        try:
            chosen = _threshold(at) if at else None
        except ValidationError as exc:
            return pages.error_page(me, exc)
        return await _page(me, name, chosen, notice="The threshold is applied." if notice == "applied" else None)

    async def _page(
        me: SignedInAdmin,
        name: str,
        at: float | None,
        status: int = 200,
        *,
        notice: str | None = None,
        error: str | None = None,
    ) -> Response:
        values = await pages.read(lambda s: _values(s, name, at))
        return pages.page("admin/threshold.html", me, status, section="flows", notice=notice, error=error, **values)

    async def apply(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        endpoint = form.get("endpoint")
        try:
            value = _threshold(form.get("threshold"))
            await pages.write(lambda s: _apply(s, name, endpoint, value, now_ms=pages.ctx.clock.now_ms()))
        except ValidationError as exc:
            return await _page(me, name, None, 400, error=exc.message)
        except LoopinError as exc:
            return pages.error_page(me, exc)
        return redirect(f"/admin/flows/{quote(name, safe='')}/threshold?at={value:g}&notice=applied")

    r.add_api_route("/admin/flows/{name}/threshold", threshold_page, methods=["GET"])
    r.add_api_route("/admin/flows/{name}/threshold", apply, methods=["POST"])


def _threshold(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ValidationError("The threshold must be a number from 0 to 1, such as 0.5.")
    return round(value, 4)


def _routers(s: Session, flow: str) -> list[Router]:
    found = []
    for e in endpoints.list_endpoints(s):
        rule = endpoints.routing_rule(e)
        if rule is not None and rule.flow == flow:
            found.append(Router(e.name, rule.threshold))
    return found


def _apply(s: Session, flow: str, endpoint_name: str, value: float, *, now_ms: int) -> None:
    get_flow(s, flow)
    endpoint = endpoints.get_endpoint(s, endpoint_name)
    rule = endpoints.routing_rule(endpoint)
    if rule is None or rule.flow != flow:
        raise ValidationError(f"Endpoint '{endpoint_name}' does not route to the flow '{flow}'.")
    endpoints.update_endpoint(s, endpoint_name, routing=with_overrides(rule, {"threshold": value}), now_ms=now_ms)


def _values(s: Session, flow: str, at: float | None) -> dict[str, Any]:
    get_flow(s, flow)  # a 404 page for an unknown flow
    routers = _routers(s, flow)
    if at is None:
        at = routers[0].threshold if routers else DEFAULT_AT
    thresholds = sorted({*DEFAULT_THRESHOLDS, at, *(e.threshold for e in routers)})
    curve = threshold_curve(s, flow, thresholds)
    reading = next(p for p in curve.points if p.threshold == at)
    return {
        "flow": flow,
        "curve": curve,
        "at": at,
        "reading": reading,
        "routers": routers,
        "plot": _plot(curve, at, routers) if curve.images else None,
    }


def _x(t: float) -> float:
    return round(LEFT + t * (WIDTH - LEFT - RIGHT), 1)


def _y(share: float) -> float:
    return round(TOP + (1 - share) * (HEIGHT - TOP - BOTTOM), 1)


def _plot(curve: Curve, at: float, routers: list[Router]) -> dict[str, Any]:
    """Everything the template draws: two lines of shares (0-1) over the threshold."""

    def routed(p: Point) -> float:
        return p.routed / curve.images

    def missed(p: Point) -> float:
        return p.missed / curve.reviewed if curve.reviewed else 0.0

    def series(share: Any) -> dict[str, Any]:
        return {
            "line": " ".join(f"{_x(p.threshold)},{_y(share(p))}" for p in curve.points),
            "dots": [
                {"x": _x(p.threshold), "y": _y(share(p)), "t": p.threshold, "point": p}
                for p in curve.points
                if p.threshold in DEFAULT_THRESHOLDS or p.threshold == at
            ],
        }

    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "y_ticks": [{"y": _y(v / 100), "label": f"{v} %"} for v in (0, 25, 50, 75, 100)],
        "x_ticks": [{"x": _x(i / 10), "label": f"{i / 10:.1f}"} for i in range(11)],
        "routed": series(routed),
        "missed": series(missed) if curve.reviewed else None,
        "at": {"x": _x(at), "label": f"{at:.2f}"},
        "routers": [{"x": _x(e.threshold), "name": e.name, "threshold": e.threshold} for e in routers],
    }
