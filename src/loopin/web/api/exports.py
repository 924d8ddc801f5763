"""Native API routes for exports (create, status, list, download), datasets (named immutable
snapshots of a finished export) and the model-versus-human metrics, added to the
``/api/v1`` app by ``api.create_api``."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from loopin import datasets, exports, model_metrics, schemas
from loopin.clock import iso_ms, parse_iso
from loopin.errors import ValidationError
from loopin.exports import ExportSpec
from loopin.models import Dataset, ExportJob
from loopin.web.api.auth import Admin, Ctx


def export_info(job: ExportJob) -> schemas.ExportInfo:
    return schemas.ExportInfo(
        export_id=job.export_id,
        flow=job.flow_name,
        format=job.format,
        state=job.state,
        settings=json.loads(job.settings),
        total=job.total,
        done=job.done,
        items=job.items,
        annotations=job.annotations,
        skipped=job.skipped,
        progress=1.0 if job.state == "succeeded" else (min(1.0, job.done / job.total) if job.total else 0.0),
        location=job.location,
        size_bytes=job.size_bytes,
        content_sha256=job.content_sha256,
        loops_sha256=job.loops_sha256,
        error_code=job.error_code,
        error_message=job.error_message,
        created_at=iso_ms(job.created_at),
        started_at=iso_ms(job.started_at) if job.started_at else None,
        finished_at=iso_ms(job.finished_at) if job.finished_at else None,
    )


def dataset_info(row: Dataset) -> schemas.DatasetInfo:
    return schemas.DatasetInfo(
        name=row.name,
        description=row.description,
        export_id=row.export_id,
        flow=row.flow_name,
        format=row.format,
        settings=json.loads(row.settings),
        loops=row.loops,
        items=row.items,
        annotations=row.annotations,
        location=row.location,
        size_bytes=row.size_bytes,
        content_sha256=row.content_sha256,
        loops_sha256=row.loops_sha256,
        created_at=iso_ms(row.created_at),
    )


def spec_from(body: schemas.ExportCreate) -> ExportSpec:
    return ExportSpec(
        flow=body.flow,
        format=body.format,
        statuses=tuple(body.statuses),
        created_after_ms=_time(body.created_after, "created_after"),
        created_before_ms=_time(body.created_before, "created_before"),
        labels=tuple(body.labels) if body.labels is not None else None,
        changed_only=body.changed_only,
        answers=body.answers,
        images=body.images,
        target=body.target,
        location=body.location,
        label_attribute=body.label_attribute,
    )


def _time(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise ValidationError(f"{what} is not an ISO-8601 time: {value!r}") from exc


def _zip(path: str, filename: str) -> FileResponse:
    return FileResponse(path, media_type="application/zip", filename=filename)


def exports_routes(api: FastAPI) -> None:
    @api.post("/exports", status_code=202, response_model=schemas.ExportInfo, tags=["exports"])
    def create_export(body: schemas.ExportCreate, ctx: Ctx, _: Admin) -> schemas.ExportInfo:
        """Queue an export of a flow's finished loops; poll it, then download it."""
        job = exports.request_export(ctx, spec_from(body))
        with ctx.db.read() as s:
            return export_info(exports.get_export(s, job.export_id))

    @api.get("/exports", response_model=list[schemas.ExportInfo], tags=["exports"])
    def list_exports(
        ctx: Ctx, _: Admin, flow: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[schemas.ExportInfo]:
        with ctx.db.read() as s:
            return [export_info(j) for j in exports.list_exports(s, flow=flow, limit=limit)]

    @api.get("/exports/{export_id}", response_model=schemas.ExportInfo, tags=["exports"])
    def get_export(export_id: str, ctx: Ctx, _: Admin) -> schemas.ExportInfo:
        with ctx.db.read() as s:
            return export_info(exports.get_export(s, export_id))

    @api.get("/exports/{export_id}/download", tags=["exports"], response_class=FileResponse)
    def download_export(export_id: str, ctx: Ctx, _: Admin) -> FileResponse:
        with ctx.db.read() as s:
            job = exports.get_export(s, export_id)
        return _zip(str(exports.download_path(ctx, job)), f"{job.flow_name}-{job.format}-{export_id}.zip")

    @api.post("/datasets", status_code=201, response_model=schemas.DatasetInfo, tags=["exports"])
    def create_dataset(body: schemas.DatasetCreate, ctx: Ctx, _: Admin) -> schemas.DatasetInfo:
        return ctx.write(
            lambda s: dataset_info(
                datasets.create_dataset(
                    s,
                    name=body.name,
                    export_id=body.export_id,
                    description=body.description,
                    now_ms=ctx.clock.now_ms(),
                )
            )
        )

    @api.get("/datasets", response_model=list[schemas.DatasetInfo], tags=["exports"])
    def list_datasets(ctx: Ctx, _: Admin, flow: str | None = None) -> list[schemas.DatasetInfo]:
        with ctx.db.read() as s:
            return [dataset_info(d) for d in datasets.list_datasets(s, flow=flow)]

    @api.get("/datasets/{name}", response_model=schemas.DatasetInfo, tags=["exports"])
    def get_dataset(name: str, ctx: Ctx, _: Admin) -> schemas.DatasetInfo:
        with ctx.db.read() as s:
            return dataset_info(datasets.get_dataset(s, name))

    @api.get("/datasets/{name}/download", tags=["exports"], response_class=FileResponse)
    def download_dataset(name: str, ctx: Ctx, _: Admin) -> FileResponse:
        with ctx.db.read() as s:
            row = datasets.get_dataset(s, name)
        path = datasets.verified_path(row)
        return _zip(str(path), f"{row.name}.zip")

    @api.get("/model-metrics", response_model=schemas.ModelMetrics, tags=["exports"])
    async def metrics(
        ctx: Ctx,
        _: Admin,
        flow: str | None = None,
        format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
    ) -> Response:
        """The model's boxes against the people's final boxes, per class, flow, endpoint and week."""

        def compute() -> model_metrics.Report:
            with ctx.db.read() as s:
                return model_metrics.compare(s, ctx.store, flow=flow)

        report = await run_in_threadpool(compute)
        if format == "csv":
            return Response(
                model_metrics.to_csv(report),
                media_type="text/csv",
                headers={"Content-Disposition": 'attachment; filename="model-metrics.csv"'},
            )
        return Response(model_metrics.to_schema(report).model_dump_json(), media_type="application/json")
