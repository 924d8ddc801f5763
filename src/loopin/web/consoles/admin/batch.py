"""Admin console section: batch jobs (the list with progress, the form that starts one, a
job's page with live progress, its bad images and a cancel button)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import batch
from loopin.clock import iso_ms
from loopin.endpoints import list_endpoints
from loopin.errors import LoopinError
from loopin.models import BatchJob
from loopin.web.consoles.admin.base import AdminPages, SignedInAdmin, to_sign_in
from loopin.web.errors import error_status
from loopin.web.pages import redirect

FIELDS = ("endpoint", "source_kind", "source", "output", "executor", "address", "name")
FAILURES_SHOWN = 200


def status_of(session: Session, job: BatchJob) -> dict[str, Any]:
    done = batch.progress(session, job)
    finished = done.done + done.failed
    return {
        "name": job.name,
        "endpoint": job.endpoint_name,
        "status": job.status,
        "executor": job.executor if job.executor == "local" else f"{job.executor} ({job.executor_address})",
        "source": job.source_uri,
        "output": job.output_uri,
        "total": done.total,
        "done": done.done,
        "failed": done.failed,
        "routed": done.routed,
        "pending": done.pending,
        "percent": int(100 * finished / done.total) if done.total else 100,
        "reason": job.failure_reason,
        "created": iso_ms(job.created_at)[:19].replace("T", " "),
        "open": job.status in batch.ACTIVE,
    }


def add_routes(pages: AdminPages) -> None:
    r = pages.router
    ctx = pages.ctx

    async def list_page(
        me: SignedInAdmin, status: int = 200, *, values: dict[str, str] | None = None, error: str = ""
    ) -> Response:
        def load(s: Session) -> dict[str, Any]:
            return {
                "rows": [status_of(s, job) for job in batch.list_jobs(s, limit=50)],
                "endpoints": [e.name for e in list_endpoints(s)],
            }

        found = await pages.read(load)
        return pages.page(
            "admin/batch_jobs.html",
            me,
            status,
            section="batch",
            v=values or {"source_kind": "source", "executor": "local"},
            error=error,
            **found,
        )

    async def show_list(request: Request) -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        return await list_page(me)

    async def create(request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        v = {k: form.get(k).strip() for k in FIELDS}
        where = v["source"] or None
        try:
            job = await run_in_threadpool(
                lambda: batch.create_job(
                    ctx,
                    endpoint_name=v["endpoint"],
                    output=v["output"],
                    source=where if v["source_kind"] != "manifest" else None,
                    manifest=where if v["source_kind"] == "manifest" else None,
                    name=v["name"] or None,
                    executor=v["executor"] or "local",
                    address=(v["address"] or None) if v["executor"] == "ray" else None,
                )
            )
        except LoopinError as exc:
            return await list_page(me, error_status(exc), values=v, error=exc.message)
        return redirect(f"/admin/batch/{quote(job.name, safe='')}")

    async def show_job(name: str, request: Request) -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)

        def load(s: Session) -> dict[str, Any]:
            job = batch.get_job(s, name)
            bad = [
                {"uri": i.uri, "key": i.key, "reason": i.reason} for i in batch.failures(s, job, limit=FAILURES_SHOWN)
            ]
            return {"job": status_of(s, job), "failures": bad}

        found = await pages.read(load)
        return pages.page("admin/batch_job.html", me, section="batch", shown=FAILURES_SHOWN, **found)

    async def status(name: str, request: Request) -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return JSONResponse({"error": {"code": "UnauthorizedException", "message": "Sign in again."}}, 401)
        job = await pages.read(lambda s: status_of(s, batch.get_job(s, name)))
        return JSONResponse(job, headers={"Cache-Control": "no-store"})

    async def cancel(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, _ = posted
        try:
            await pages.write(lambda s: batch.cancel_job(s, name, now_ms=ctx.clock.now_ms()))
        except LoopinError as exc:
            return pages.error_page(me, exc)
        return redirect(f"/admin/batch/{quote(name, safe='')}")

    r.add_api_route("/admin/batch", show_list, methods=["GET"])
    r.add_api_route("/admin/batch", create, methods=["POST"])
    r.add_api_route("/admin/batch/{name}", show_job, methods=["GET"])
    r.add_api_route("/admin/batch/{name}/status", status, methods=["GET"])
    r.add_api_route("/admin/batch/{name}/cancel", cancel, methods=["POST"])
