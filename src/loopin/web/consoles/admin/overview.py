"""The overview: loops by status (totals and the last days, drawn as an SVG on the
server), the share of invocations routed to people, the median time to a human answer
and active workers. Every figure comes from ``loop_stats``: pre-aggregated counts, a
bounded sample and the small workers table; nothing counts over the loops."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from loopin import loop_stats
from loopin.web.consoles.admin.base import AdminPages, to_sign_in
from loopin.web.consoles.admin.loops import format_duration

CHART_DAYS = 14
# Stacking order, bottom up; the colours are in admin/overview.css.
CHART_STATUSES = ("Completed", "Stopped", "Failed", "Stopping", "InProgress")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 1000, 220, 48, 24, 8


def add_routes(pages: AdminPages) -> None:
    def overview(request: Request) -> Response:
        me = pages.signed_in(request)
        if me is None:
            return to_sign_in(request)
        now = pages.ctx.clock.now_ms()
        today = now // loop_stats.DAY_MS
        with pages.ctx.db.read() as s:
            counts = loop_stats.status_counts(s)
            days = loop_stats.loops_per_day(s, first_day=today - CHART_DAYS + 1, last_day=today)
            day_invocations = loop_stats.invocations_since(s, now - loop_stats.DAY_MS)
            week_invocations = loop_stats.invocations_since(s, now - 7 * loop_stats.DAY_MS)
            answers = loop_stats.answer_times(s, now_ms=now)
            active_15m = loop_stats.active_workers(s, since_ms=now - 15 * 60_000)
            active_24h = loop_stats.active_workers(s, since_ms=now - loop_stats.DAY_MS)
        return pages.page(
            "admin/overview.html",
            me,
            section="overview",
            counts=counts,
            in_progress=counts.get("InProgress", 0) + counts.get("Stopping", 0),
            day_invocations=day_invocations,
            week_invocations=week_invocations,
            day_share=_share(day_invocations),
            week_share=_share(week_invocations),
            answers=answers,
            median_wait=format_duration(int(answers.median_wait_ms)) if answers.median_wait_ms is not None else None,
            median_work=format_duration(int(answers.median_work_ms)) if answers.median_work_ms is not None else None,
            active_15m=active_15m,
            active_24h=active_24h,
            chart=_chart(days),
            statuses=CHART_STATUSES,
        )

    pages.router.add_api_route("/admin/overview", overview, methods=["GET"])


def _share(invocations: loop_stats.Invocations) -> str | None:
    if not invocations.total:
        return None
    return f"{100 * invocations.routed / invocations.total:.1f} %"


def _chart(days: dict[int, dict[str, int]]) -> dict[str, Any]:
    """Stacked bars, one per day: the loops created that day by their status now."""
    top = max([sum(by_status.values()) for by_status in days.values()] + [1])
    scale_max = _nice(top)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / len(days)
    bars = []
    for i, (day, by_status) in enumerate(sorted(days.items())):
        x = LEFT + i * slot + slot * 0.15
        y: float = HEIGHT - BOTTOM
        date = datetime.fromtimestamp(day * 86400, tz=UTC)
        segments = []
        for status in CHART_STATUSES:
            n = by_status.get(status, 0)
            if n <= 0:
                continue
            h = plot_h * n / scale_max
            y -= h
            segments.append({"status": status, "y": round(y, 2), "height": round(h, 2), "n": n})
        bars.append(
            {
                "x": round(x, 2),
                "width": round(slot * 0.7, 2),
                "center": round(x + slot * 0.35, 2),
                "label": date.strftime("%d %b"),
                "date": date.strftime("%Y-%m-%d"),
                "total": sum(by_status.values()),
                "segments": segments,
            }
        )
    ticks = [{"y": round(HEIGHT - BOTTOM - plot_h * f, 2), "label": f"{round(scale_max * f):,}"} for f in (0, 0.5, 1)]
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "base": HEIGHT - BOTTOM, "bars": bars, "ticks": ticks}


def _nice(n: int) -> int:
    """The smallest 2, 4 or 10 × 10^k at least ``n`` (even, so the middle tick is whole)."""
    step = 1
    while True:
        for m in (2, 4, 10):
            if m * step >= n:
                return m * step
        step *= 10
