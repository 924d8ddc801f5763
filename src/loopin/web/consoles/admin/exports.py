"""Admin console section: a flow's exports (the form, the list with live progress, downloads,
saving one as a dataset) and the model-versus-human page (a table, per-class bars and the
weekly trend, drawn server-side as SVG)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import datasets, exports, model_metrics, schemas
from loopin.clock import iso_ms, parse_iso
from loopin.errors import LoopinError, ValidationError
from loopin.exports import ExportSpec
from loopin.flows import get_flow
from loopin.models import ExportJob
from loopin.web.consoles.admin.base import AdminPages, SignedInAdmin, to_sign_in
from loopin.web.errors import error_status
from loopin.web.pages import Form, redirect

NOTICES = {"queued": "The export is queued; it starts within a few seconds.", "dataset": "The dataset was saved."}
FORMAT_NAMES = {
    "coco": "COCO detection JSON",
    "yolo": "YOLO (labels + data.yaml)",
    "voc": "Pascal VOC XML",
    "manifest": "SageMaker Ground Truth manifest",
    "csv": "CSV",
}
# The metrics pictures' geometry, in SVG user units.
WIDTH, BAR_H, LEFT = 760, 22, 120
TREND_H, TREND_TOP, TREND_BOTTOM = 220, 16, 40


def status_of(job: ExportJob) -> dict[str, Any]:
    settings = json.loads(job.settings)
    return {
        "export_id": job.export_id,
        "format": job.format,
        "state": job.state,
        "done": job.done,
        "total": job.total,
        "items": job.items,
        "annotations": job.annotations,
        "percent": 100 if job.state == "succeeded" else (int(100 * job.done / job.total) if job.total else 0),
        "target": settings.get("target"),
        "location": job.location,
        "error": job.error_message,
        "created": iso_ms(job.created_at)[:19].replace("T", " "),
        "downloadable": job.state == "succeeded" and settings.get("target") == "zip",
    }


def add_routes(pages: AdminPages) -> None:
    r = pages.router
    ctx = pages.ctx

    async def exports_page(
        me: SignedInAdmin,
        name: str,
        status: int = 200,
        *,
        values: dict[str, str] | None = None,
        error: str = "",
        notice: str | None = None,
    ) -> Response:
        def load(s: Session) -> dict[str, Any]:
            get_flow(s, name)
            return {
                "rows": [status_of(j) for j in exports.list_exports(s, flow=name, limit=20)],
                "datasets": [
                    {"name": d.name, "export_id": d.export_id, "sha": d.content_sha256[:12], "items": d.items}
                    for d in datasets.list_datasets(s, flow=name)
                ],
            }

        found = await pages.read(load)
        return pages.page(
            "admin/exports.html",
            me,
            status,
            section="flows",
            flow=name,
            formats=FORMAT_NAMES,
            v=values or {"format": "coco", "target": "zip"},
            error=error,
            notice=notice,
            **found,
        )

    async def show(name: str, request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        return await exports_page(me, name, notice=NOTICES.get(notice))

    async def create(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        values = {k: form.get(k) for k in ("format", "target", "location", "created_after", "created_before", "labels")}
        values |= {k: form.get(k) for k in ("changed_only", "per_worker", "copy_images", "stopped")}
        try:
            spec = _spec(name, values)
            await run_in_threadpool(exports.request_export, ctx, spec)
        except ValidationError as exc:
            return await exports_page(me, name, 400, values=values, error=exc.message)
        except LoopinError as exc:
            return pages.error_page(me, exc)
        return redirect(f"/admin/flows/{quote(name, safe='')}/exports?notice=queued")

    async def status(export_id: str, request: Request) -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return JSONResponse({"error": {"code": "UnauthorizedException", "message": "Sign in again."}}, 401)
        job = await pages.read(lambda s: status_of(exports.get_export(s, export_id)))
        return JSONResponse(job, headers={"Cache-Control": "no-store"})

    async def download(export_id: str, request: Request) -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        job = await pages.read(lambda s: exports.get_export(s, export_id))
        path = exports.download_path(ctx, job)
        filename = f"{job.flow_name}-{job.format}-{job.export_id}.zip"
        return FileResponse(path, media_type="application/zip", filename=filename)

    async def save_dataset(export_id: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        job = await pages.read(lambda s: exports.get_export(s, export_id))
        try:
            await pages.write(
                lambda s: datasets.create_dataset(
                    s, name=form.get("name").strip(), export_id=export_id, now_ms=ctx.clock.now_ms()
                )
            )
        except LoopinError as exc:
            return await exports_page(me, job.flow_name, error_status(exc), error=exc.message)
        return redirect(f"/admin/flows/{quote(job.flow_name, safe='')}/exports?notice=dataset")

    async def metrics_page(name: str, request: Request) -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)

        def load(s: Session) -> schemas.ModelMetrics:
            return model_metrics.to_schema(model_metrics.compare(s, ctx.store, flow=name))

        report = await pages.read(load)
        return pages.page(
            "admin/metrics.html",
            me,
            section="flows",
            flow=name,
            report=report,
            bars=_bars(report.per_class),
            trend=_trend(report.per_week),
        )

    async def metrics_csv(name: str, request: Request) -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        text = await pages.read(lambda s: model_metrics.to_csv(model_metrics.compare(s, ctx.store, flow=name)))
        headers = {"Content-Disposition": f'attachment; filename="{name}-model-metrics.csv"'}
        return Response(text, media_type="text/csv", headers=headers)

    r.add_api_route("/admin/flows/{name}/exports", show, methods=["GET"])
    r.add_api_route("/admin/flows/{name}/exports", create, methods=["POST"])
    r.add_api_route("/admin/exports/{export_id}/status", status, methods=["GET"])
    r.add_api_route("/admin/exports/{export_id}/download", download, methods=["GET"])
    r.add_api_route("/admin/exports/{export_id}/dataset", save_dataset, methods=["POST"])
    r.add_api_route("/admin/flows/{name}/metrics", metrics_page, methods=["GET"])
    r.add_api_route("/admin/flows/{name}/metrics.csv", metrics_csv, methods=["GET"])


def _spec(flow: str, v: Form | dict[str, str]) -> ExportSpec:
    def when(key: str) -> int | None:
        text = v.get(key, "").strip()
        if not text:
            return None
        try:
            return parse_iso(text)
        except ValueError as exc:
            raise ValidationError(f"'{text}' is not a date or time (2026-12-01 or 2026-12-01T08:00).") from exc

    labels = tuple(x.strip() for x in v.get("labels", "").split(",") if x.strip()) or None
    return ExportSpec(
        flow=flow,
        format=v.get("format") or "coco",
        statuses=("Completed", "Stopped") if v.get("stopped") else ("Completed",),
        created_after_ms=when("created_after"),
        created_before_ms=when("created_before"),
        labels=labels,
        changed_only=bool(v.get("changed_only")),
        answers="per-worker" if v.get("per_worker") else "consolidated",
        images="copy" if v.get("copy_images") else "reference",
        target=v.get("target") or "zip",
        location=v.get("location", "").strip() or None,
    )


def _bars(rows: list[schemas.MetricsRow]) -> dict[str, Any]:
    """Per class: precision and recall as two bars each (0-100 %)."""
    span = WIDTH - LEFT - 60
    items = []
    for i, row in enumerate(rows):
        y = 10 + i * (2 * BAR_H + 12)
        items.append(
            {
                "key": row.key,
                "y": y,
                "label_y": y + BAR_H + 4,
                "precision": row.precision,
                "recall": row.recall,
                "pw": round(span * (row.precision or 0.0), 1),
                "rw": round(span * (row.recall or 0.0), 1),
                "p_text": "–" if row.precision is None else f"{100 * row.precision:.0f} %",
                "r_text": "–" if row.recall is None else f"{100 * row.recall:.0f} %",
            }
        )
    return {"width": WIDTH, "height": 20 + len(rows) * (2 * BAR_H + 12), "left": LEFT, "bar": BAR_H, "items": items}


def _trend(rows: list[schemas.MetricsRow]) -> dict[str, Any] | None:
    """Per week: precision, recall and AP@0.5 as lines (0-100 %)."""
    if not rows:
        return None
    span_x = WIDTH - LEFT - 60  # room for the last week's label
    step = span_x / max(1, len(rows) - 1)

    def x(i: int) -> float:
        return round(LEFT + (i * step if len(rows) > 1 else span_x / 2), 1)

    def y(value: float) -> float:
        return round(TREND_TOP + (1 - value) * (TREND_H - TREND_TOP - TREND_BOTTOM), 1)

    def series(values: list[float | None]) -> dict[str, Any]:
        points = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
        return {"line": " ".join(f"{px},{py}" for px, py in points), "dots": points}

    return {
        "width": WIDTH,
        "height": TREND_H,
        "left": LEFT,
        "right": WIDTH - 60,
        "bottom": TREND_H - TREND_BOTTOM,
        "y_ticks": [{"y": y(v / 100), "label": f"{v} %"} for v in (0, 50, 100)],
        "x_ticks": [{"x": x(i), "label": row.key} for i, row in enumerate(rows)],
        "precision": series([row.precision for row in rows]),
        "recall": series([row.recall for row in rows]),
        "ap50": series([row.ap50 for row in rows]),
    }
