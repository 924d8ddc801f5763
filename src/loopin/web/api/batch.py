"""Native API routes for batch jobs (create, describe, list, cancel, the images that could
not be read), added to the ``/api/v1`` app by ``api.create_api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query
from sqlalchemy.orm import Session

from loopin import batch, schemas
from loopin.clock import iso_ms
from loopin.models import BatchJob
from loopin.services import Services
from loopin.store import join_uri
from loopin.web.api.auth import Admin, Ctx


def job_info(ctx: Services, session: Session, job: BatchJob) -> schemas.BatchJobInfo:
    done = batch.progress(session, job)
    return schemas.BatchJobInfo(
        name=job.name,
        endpoint=job.endpoint_name,
        status=job.status,
        source_kind=job.source_kind,
        source=job.source_uri,
        output=job.output_uri,
        total=done.total,
        done=done.done,
        failed=done.failed,
        pending=done.pending,
        routed=done.routed,
        executor=job.executor,
        address=job.executor_address,
        failure_reason=job.failure_reason,
        created_at=iso_ms(job.created_at),
        started_at=iso_ms(job.started_at) if job.started_at is not None else None,
        finished_at=iso_ms(job.finished_at) if job.finished_at is not None else None,
        predictions_uri=join_uri(job.output_uri, batch.PREDICTIONS),
    )


def batch_routes(api: FastAPI) -> None:
    @api.post("/batch-jobs", status_code=201, response_model=schemas.BatchJobInfo, tags=["batch"])
    def create(body: schemas.BatchJobCreate, ctx: Ctx, _: Admin) -> schemas.BatchJobInfo:
        job = batch.create_job(
            ctx,
            endpoint_name=body.endpoint,
            output=body.output,
            source=body.source,
            manifest=body.manifest,
            name=body.name,
            executor=body.executor,
            address=body.address,
        )
        with ctx.db.read() as s:
            return job_info(ctx, s, batch.get_job(s, job.name))

    @api.get("/batch-jobs", response_model=list[schemas.BatchJobInfo], tags=["batch"])
    def list_jobs(
        ctx: Ctx,
        _: Admin,
        status: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[schemas.BatchJobInfo]:
        with ctx.db.read() as s:
            return [job_info(ctx, s, job) for job in batch.list_jobs(s, status=status, limit=limit)]

    @api.get("/batch-jobs/{name}", response_model=schemas.BatchJobInfo, tags=["batch"])
    def describe(name: str, ctx: Ctx, _: Admin) -> schemas.BatchJobInfo:
        with ctx.db.read() as s:
            return job_info(ctx, s, batch.get_job(s, name))

    @api.get("/batch-jobs/{name}/failures", response_model=list[schemas.BatchFailure], tags=["batch"])
    def failures(
        name: str, ctx: Ctx, _: Admin, limit: Annotated[int, Query(ge=1, le=10000)] = 1000
    ) -> list[schemas.BatchFailure]:
        with ctx.db.read() as s:
            job = batch.get_job(s, name)
            return [
                schemas.BatchFailure(uri=i.uri, key=i.key, reason=i.reason or "")
                for i in batch.failures(s, job, limit=limit)
            ]

    @api.post("/batch-jobs/{name}/cancel", response_model=schemas.BatchJobInfo, tags=["batch"])
    def cancel(name: str, ctx: Ctx, _: Admin) -> schemas.BatchJobInfo:
        ctx.write(lambda s: batch.cancel_job(s, name, now_ms=ctx.clock.now_ms()))
        with ctx.db.read() as s:
            return job_info(ctx, s, batch.get_job(s, name))
