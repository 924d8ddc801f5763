"""The native REST API, ``/api/v1``: admin calls with access keys (HTTP Basic: key id and
secret), worker calls with a sign-in token (``Authorization: Bearer``). One JSON error
shape, ``{"error": {"code", "message", "details"}}``, rendered in ``_error_response`` only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopin import adaptive, deadlines, flows, gold_serving, loops, schemas, task_templates, tasks, workforce
from loopin.arns import arn
from loopin.clock import iso_ms, parse_iso
from loopin.errors import AuthenticationError, LoopinError, ThrottlingError, ValidationError
from loopin.models import FlowDefinition, HumanLoop, TaskUi, Worker, Workteam
from loopin.services import Services
from loopin.signing import sign_token
from loopin.validation import loads_stored
from loopin.web.api.auth import (
    NOT_ACTIVE,
    Admin,
    Ctx,
    SignedInToken,
    SignedInWorker,
    WorkerToken,
    precheck,
    worker_of,
    worker_token_key,
)
from loopin.web.api.batch import batch_routes
from loopin.web.api.docs import docs_routes
from loopin.web.api.events import events_routes
from loopin.web.api.exports import exports_routes
from loopin.web.api.hosting import hosting_routes
from loopin.web.api.limits import RequestLimits
from loopin.web.api.quality import quality_routes
from loopin.web.errors import error_response, error_status
from loopin.web.sessions import SignInLimiter

T = TypeVar("T")
log = logging.getLogger("loopin.api")


def _error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="loopin"'} if status == 401 else None
    return error_response(code, message, status=status, details=details or {}, headers=headers)


def create_api() -> FastAPI:
    api = FastAPI(
        docs_url=None,  # served from the package itself: see web/api/docs.py
        redoc_url=None,
        title="loopin API",
        version="1",
        description="Human review of machine-learning predictions: teams, task UIs, flow "
        "definitions, human loops and worker tasks.",
        responses={
            status: {"model": schemas.ErrorResponse, "description": description}
            for status, description in [
                (400, "Invalid request (ValidationException)"),
                (401, "Missing or wrong credentials (UnauthorizedException)"),
                (404, "No such resource (ResourceNotFound)"),
                (409, "Conflict with the current state"),
            ]
        },
    )

    @api.exception_handler(LoopinError)
    async def _domain_error(_: Request, exc: LoopinError) -> JSONResponse:
        response = _error_response(error_status(exc), exc.code, exc.message, exc.details)
        if isinstance(exc.details.get("retry_after_seconds"), int):
            response.headers["Retry-After"] = str(exc.details["retry_after_seconds"])
        return response

    @api.exception_handler(RequestValidationError)
    async def _request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"][1:]) or "body", "problem": err["msg"]} for err in exc.errors()
        ]
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return _error_response(400, "ValidationException", f"Invalid request: {message}", {"problems": problems})

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "UnauthorizedException", 404: "ResourceNotFound", 405: "MethodNotAllowed"}.get(
            exc.status_code, "HttpError"
        )
        message = {404: "No such API path.", 401: "The Authorization header is not valid."}.get(
            exc.status_code, str(exc.detail)
        )
        return _error_response(exc.status_code, code, message)

    @api.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error_response(500, "InternalServerException", "The server failed; see its log.")

    api.add_middleware(RequestLimits, error_response=_error_response, precheck=precheck)
    _team_routes(api)
    _worker_admin_routes(api)
    _template_and_flow_routes(api)
    _loop_routes(api)
    _worker_routes(api)
    hosting_routes(api)
    batch_routes(api)
    events_routes(api)
    docs_routes(api)
    exports_routes(api)
    quality_routes(api)
    return api


# -- conversions ---------------------------------------------------------------------


def _team(session: Session, ctx: Services, team: Workteam) -> schemas.Team:
    return schemas.Team(
        name=team.name,
        arn=ctx.settings.arn("workteam", f"private-crowd/{team.name}"),
        description=team.description,
        members=workforce.team_member_emails(session, team),
        worker_console_url=ctx.settings.resolved_public_url + "/worker",
        created_at=iso_ms(team.created_at),
        updated_at=iso_ms(team.updated_at),
    )


def _worker(session: Session, worker: Worker) -> schemas.Worker:
    return schemas.Worker(
        worker_id=worker.worker_id,
        email=worker.email,
        name=worker.name,
        status=worker.status,
        teams=workforce.worker_team_names(session, worker),
        created_at=iso_ms(worker.created_at),
        last_seen_at=iso_ms(worker.last_seen_at) if worker.last_seen_at else None,
    )


def _invitation(session: Session, ctx: Services, worker: Worker, token: str | None) -> schemas.Invitation:
    url = f"{ctx.settings.resolved_public_url}/worker/invitation/{token}" if token else None
    return schemas.Invitation(worker=_worker(session, worker), invitation_token=token, invitation_url=url)


def _task_ui(ctx: Services, ui: TaskUi) -> schemas.TaskUi:
    return schemas.TaskUi(
        name=ui.name,
        arn=ctx.settings.arn("human-task-ui", ui.name),
        template=ui.content,
        content_sha256=ui.content_sha256,
        created_at=iso_ms(ui.created_at),
        warnings=task_templates.template_warnings(ui.content),
    )


def _given(value: T | None, current: T) -> T:
    return current if value is None else value


def _flow(session: Session, ctx: Services, flow: FlowDefinition) -> schemas.Flow:
    consolidating, quorum = flows.consolidation_settings(flow)
    return schemas.Flow(
        name=flow.name,
        arn=ctx.settings.arn("flow-definition", flow.name),
        status="Active",
        team=session.get_one(Workteam, flow.team_id).name,
        task_ui=session.get_one(TaskUi, flow.task_ui_id).name,
        title=flow.title,
        description=flow.description,
        output_path=flow.output_path,
        task_count=flow.task_count,
        keywords=loads_stored(flow.keywords),
        availability_lifetime_seconds=flow.availability_lifetime_s,
        time_limit_seconds=flow.time_limit_s,
        role_arn=flow.role_arn,
        input_locations=flows.input_locations(flow),
        created_at=iso_ms(flow.created_at),
        consolidation=consolidating,
        consolidation_quorum=quorum,
        frame_origins=flows.frame_origins(flow),
        default_priority=flow.default_priority,
        deadline_seconds=flow.deadline_s,
        fallback=flow.fallback,
        escalation_team=flows.escalation_team_name(session, flow),
        escalation_seconds=flow.escalation_s,
        adaptive=flow.adaptive,
        adaptive_model_agreement=adaptive.limits(flow)[0] if flow.adaptive else None,
        adaptive_worker_agreement=adaptive.limits(flow)[1] if flow.adaptive else None,
        request_source=flow.request_source,
        activation_conditions=(
            loads_stored(flow.activation_conditions) if flow.activation_conditions is not None else None
        ),
    )


def _loop(ctx: Services, loop: HumanLoop, flow_name: str) -> schemas.Loop:
    s = ctx.settings
    return schemas.Loop(
        name=loop.name,
        arn=arn(s.region, s.account_id, "human-loop", loop.name),
        flow=flow_name,
        flow_arn=arn(s.region, s.account_id, "flow-definition", flow_name),
        status=loop.status,
        created_at=iso_ms(loop.created_at),
        failure_code=loop.failure_code,
        failure_reason=loop.failure_reason,
        output_uri=loop.output_uri if loop.output_state == "written" else None,
        priority=loop.priority,
        deadline=iso_ms(loop.deadline_at) if loop.deadline_at is not None else None,
        fallback=json.loads(loop.fallback_info) if loop.fallback_info else None,
        escalation=json.loads(loop.escalation_info) if loop.escalation_info else None,
    )


def _task(held: tasks.HeldTask) -> schemas.Task:
    return schemas.Task(
        task_id=held.slot.id,
        flow=held.flow.name,
        title=held.flow.title,
        description=held.flow.description,
        input=loads_stored(held.loop.input_content),
        accepted_at=iso_ms(held.slot.accepted_at or 0),
        lease_expires_at=iso_ms(held.slot.lease_expires_at or 0),
        time_limit_seconds=held.flow.time_limit_s,
    )


def _time(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise ValidationError(f"{what} '{value}' is not an ISO-8601 time.") from exc


# -- routes --------------------------------------------------------------------------


def _team_routes(api: FastAPI) -> None:
    @api.post("/teams", status_code=201, response_model=schemas.Team, tags=["teams"])
    def create_team(body: schemas.TeamCreate, ctx: Ctx, _: Admin) -> schemas.Team:
        def run(s: Session) -> schemas.Team:
            team = workforce.create_team(s, name=body.name, description=body.description, now_ms=ctx.clock.now_ms())
            return _team(s, ctx, team)

        return ctx.write(run)

    @api.get("/teams", response_model=list[schemas.Team], tags=["teams"])
    def list_teams(ctx: Ctx, _: Admin) -> list[schemas.Team]:
        with ctx.db.read() as s:
            return [_team(s, ctx, t) for t in workforce.list_teams(s)]

    @api.get("/teams/{name}", response_model=schemas.Team, tags=["teams"])
    def get_team(name: str, ctx: Ctx, _: Admin) -> schemas.Team:
        with ctx.db.read() as s:
            return _team(s, ctx, workforce.get_team(s, name))

    @api.patch("/teams/{name}", response_model=schemas.Team, tags=["teams"])
    def update_team(name: str, body: schemas.TeamUpdate, ctx: Ctx, _: Admin) -> schemas.Team:
        def run(s: Session) -> schemas.Team:
            team = workforce.update_team(s, name, description=body.description, now_ms=ctx.clock.now_ms())
            return _team(s, ctx, team)

        return ctx.write(run)

    @api.delete("/teams/{name}", status_code=204, tags=["teams"])
    def delete_team(name: str, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: workforce.delete_team(s, name))

    @api.post("/teams/{name}/members", response_model=schemas.Team, tags=["teams"])
    def add_member(name: str, body: schemas.MemberChange, ctx: Ctx, _: Admin) -> schemas.Team:
        def run(s: Session) -> schemas.Team:
            workforce.add_member(s, name, body.email)
            return _team(s, ctx, workforce.get_team(s, name))

        return ctx.write(run)

    @api.delete("/teams/{name}/members/{email}", response_model=schemas.Team, tags=["teams"])
    def remove_member(name: str, email: str, ctx: Ctx, _: Admin) -> schemas.Team:
        def run(s: Session) -> schemas.Team:
            tasks.remove_member(s, name, email, now_ms=ctx.clock.now_ms())
            return _team(s, ctx, workforce.get_team(s, name))

        return ctx.write(run)


def _worker_admin_routes(api: FastAPI) -> None:
    @api.post("/workers", status_code=201, response_model=schemas.Invitation, tags=["workers"])
    def create_worker(body: schemas.WorkerCreate, ctx: Ctx, _: Admin) -> schemas.Invitation:
        def run(s: Session) -> schemas.Invitation:
            worker, token = workforce.create_worker(
                s,
                email=body.email,
                name=body.name or body.email.split("@")[0],
                teams=body.teams,
                password=body.password,
                now_ms=ctx.clock.now_ms(),
            )
            return _invitation(s, ctx, worker, token)

        return ctx.write(run)

    @api.get("/workers", response_model=list[schemas.Worker], tags=["workers"])
    def list_workers(ctx: Ctx, _: Admin, team: str | None = None) -> list[schemas.Worker]:
        with ctx.db.read() as s:
            return [_worker(s, w) for w in workforce.list_workers(s, team=team)]

    @api.get("/workers/{email}", response_model=schemas.Worker, tags=["workers"])
    def get_worker(email: str, ctx: Ctx, _: Admin) -> schemas.Worker:
        with ctx.db.read() as s:
            return _worker(s, workforce.get_worker(s, email))

    @api.patch("/workers/{email}", response_model=schemas.Worker, tags=["workers"])
    def update_worker(email: str, body: schemas.WorkerUpdate, ctx: Ctx, _: Admin) -> schemas.Worker:
        def run(s: Session) -> schemas.Worker:
            return _worker(s, tasks.set_worker_status(s, email, body.status, now_ms=ctx.clock.now_ms()))

        return ctx.write(run)

    @api.post("/workers/{email}/invitation", response_model=schemas.Invitation, tags=["workers"])
    def reinvite(email: str, ctx: Ctx, _: Admin) -> schemas.Invitation:
        def run(s: Session) -> schemas.Invitation:
            worker, token = workforce.reissue_invitation(s, email, now_ms=ctx.clock.now_ms())
            return _invitation(s, ctx, worker, token)

        return ctx.write(run)

    @api.delete("/workers/{email}", status_code=204, tags=["workers"])
    def remove_worker(email: str, ctx: Ctx, _: Admin) -> None:
        def run(s: Session) -> None:
            tasks.remove_worker(s, email, now_ms=ctx.clock.now_ms())

        ctx.write(run)


def _template_and_flow_routes(api: FastAPI) -> None:
    @api.post("/task-uis", status_code=201, response_model=schemas.TaskUi, tags=["task UIs"])
    def create_task_ui(body: schemas.TaskUiCreate, ctx: Ctx, _: Admin) -> schemas.TaskUi:
        return ctx.write(
            lambda s: _task_ui(
                ctx,
                task_templates.create_task_ui(s, name=body.name, content=body.template, now_ms=ctx.clock.now_ms()),
            )
        )

    @api.get("/task-uis", response_model=list[schemas.TaskUi], tags=["task UIs"])
    def list_task_uis(ctx: Ctx, _: Admin) -> list[schemas.TaskUi]:
        with ctx.db.read() as s:
            return [_task_ui(ctx, ui) for ui in task_templates.list_task_uis(s)]

    @api.get("/task-uis/{name}", response_model=schemas.TaskUi, tags=["task UIs"])
    def get_task_ui(name: str, ctx: Ctx, _: Admin) -> schemas.TaskUi:
        with ctx.db.read() as s:
            return _task_ui(ctx, task_templates.get_task_ui(s, name))

    @api.delete("/task-uis/{name}", status_code=204, tags=["task UIs"])
    def delete_task_ui(name: str, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: task_templates.delete_task_ui(s, name))

    @api.post("/flows", status_code=201, response_model=schemas.Flow, tags=["flow definitions"])
    def create_flow(body: schemas.FlowCreate, ctx: Ctx, _: Admin) -> schemas.Flow:
        def run(s: Session) -> schemas.Flow:
            flow = flows.create_flow(
                s,
                name=body.name,
                team=body.team,
                task_ui=body.task_ui,
                title=body.title,
                description=body.description,
                output_path=body.output_path,
                task_count=body.task_count,
                keywords=body.keywords,
                availability_lifetime_s=body.availability_lifetime_seconds,
                time_limit_s=body.time_limit_seconds,
                role_arn=body.role_arn,
                consolidation=body.consolidation,
                consolidation_quorum=body.consolidation_quorum,
                input_locations=body.input_locations,
                frame_origins=body.frame_origins,
                default_priority=body.default_priority,
                deadline_s=body.deadline_seconds,
                fallback=body.fallback,
                escalation_team=body.escalation_team,
                escalation_s=body.escalation_seconds,
                adaptive=body.adaptive,
                adaptive_model_agreement=body.adaptive_model_agreement,
                adaptive_worker_agreement=body.adaptive_worker_agreement,
                now_ms=ctx.clock.now_ms(),
            )
            return _flow(s, ctx, flow)

        return ctx.write(run)

    @api.get("/flows", response_model=list[schemas.Flow], tags=["flow definitions"])
    def list_flows(ctx: Ctx, _: Admin) -> list[schemas.Flow]:
        with ctx.db.read() as s:
            return [_flow(s, ctx, f) for f in flows.list_flows(s)]

    @api.get("/flows/{name}", response_model=schemas.Flow, tags=["flow definitions"])
    def get_flow(name: str, ctx: Ctx, _: Admin) -> schemas.Flow:
        with ctx.db.read() as s:
            return _flow(s, ctx, flows.get_flow(s, name))

    @api.patch("/flows/{name}", response_model=schemas.Flow, tags=["flow definitions"])
    def update_flow(name: str, body: schemas.FlowUpdate, ctx: Ctx, _: Admin) -> schemas.Flow:
        def run(s: Session) -> schemas.Flow:
            flow = flows.get_flow(s, name)
            updated = flows.update_flow(
                s,
                name,
                title=_given(body.title, flow.title),
                description=_given(body.description, flow.description),
                keywords=_given(body.keywords, json.loads(flow.keywords)),
                task_count=_given(body.task_count, flow.task_count),
                availability_lifetime_s=_given(body.availability_lifetime_seconds, flow.availability_lifetime_s),
                time_limit_s=_given(body.time_limit_seconds, flow.time_limit_s),
                consolidation=body.consolidation if "consolidation" in body.model_fields_set else ...,
                consolidation_quorum=(
                    body.consolidation_quorum if "consolidation_quorum" in body.model_fields_set else ...
                ),
                frame_origins=body.frame_origins,
                default_priority=body.default_priority,
                deadline_s=body.deadline_seconds,
                fallback=body.fallback,
                escalation_team=body.escalation_team,
                escalation_s=body.escalation_seconds,
                adaptive=body.adaptive,
                adaptive_model_agreement=(
                    body.adaptive_model_agreement if "adaptive_model_agreement" in body.model_fields_set else ...
                ),
                adaptive_worker_agreement=(
                    body.adaptive_worker_agreement if "adaptive_worker_agreement" in body.model_fields_set else ...
                ),
            )
            return _flow(s, ctx, updated)

        return ctx.write(run)

    @api.delete("/flows/{name}", status_code=204, tags=["flow definitions"])
    def delete_flow(name: str, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: flows.delete_flow(s, name))


def _loop_routes(api: FastAPI) -> None:
    @api.post("/loops", response_model=schemas.LoopStarted, tags=["human loops"])
    async def start_loop(body: schemas.LoopStart, ctx: Ctx, _: Admin) -> schemas.LoopStarted:
        # On the event loop: the start itself runs in the group writer's thread, so a
        # thread of the pool would only wait for it.
        # The object form is serialised canonically, so a retry with the keys in another
        # order is still the same input.
        content = (
            body.input_content if body.input is None else json.dumps(body.input, sort_keys=True, separators=(",", ":"))
        )
        assert content is not None  # the schema guarantees exactly one of the two

        def run(s: Session) -> schemas.LoopStarted:
            loop, created = loops.start_loop(
                s,
                name=body.name,
                flow_name=body.flow,
                input_content=content,
                content_classifiers=body.content_classifiers,
                priority=body.priority,
                default_input_locations=ctx.default_input_locations,
                now_ms=ctx.clock.now_ms(),
            )
            s_ = ctx.settings
            return schemas.LoopStarted(
                name=loop.name,
                arn=arn(s_.region, s_.account_id, "human-loop", loop.name),
                created=created,
            )

        return await ctx.write_grouped_async(run)

    @api.get("/loops", response_model=schemas.LoopPage, tags=["human loops"])
    def list_loops(
        ctx: Ctx,
        _: Admin,
        flow: str | None = None,
        status: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        sort_order: str = "Descending",
        next_token: Annotated[str | None, Query(max_length=8192)] = None,
        max_results: int = 100,
    ) -> schemas.LoopPage:
        with ctx.db.read() as s:
            page = loops.list_loops(
                s,
                flow_name=flow,
                status=status,
                created_after_ms=_time(created_after, "created_after"),
                created_before_ms=_time(created_before, "created_before"),
                sort_order=sort_order,
                page_token=next_token,
                max_results=max_results,
            )
            return schemas.LoopPage(
                loops=[_loop(ctx, loop, fname) for loop, fname in page.loops],
                next_token=page.next_token,
            )

    @api.get("/loops/{name}", response_model=schemas.LoopDetail, tags=["human loops"])
    def describe_loop(name: str, ctx: Ctx, _: Admin) -> schemas.LoopDetail:
        with ctx.db.read() as s:
            loop = loops.get_loop(s, name)
            flow = s.get_one(FlowDefinition, loop.flow_id)
            return schemas.LoopDetail(
                **_loop(ctx, loop, flow.name).model_dump(),
                input=loads_stored(loop.input_content),
                answers_received=loops.answers_received(s, loop),
                task_count=loops.answers_wanted(s, loop),
                declined_by=[email for email, _ in deadlines.declined_by(s, loop)],
            )

    @api.post("/loops/{name}/stop", response_model=schemas.Loop, tags=["human loops"])
    def stop_loop(name: str, ctx: Ctx, _: Admin) -> schemas.Loop:
        ctx.write(lambda s: loops.stop_loop(s, name, now_ms=ctx.clock.now_ms()))
        with ctx.db.read() as s:  # as it is now: answers given before the stop may be written out already
            loop = loops.get_loop(s, name)
            return _loop(ctx, loop, s.get_one(FlowDefinition, loop.flow_id).name)

    @api.delete("/loops/{name}", status_code=204, tags=["human loops"])
    def delete_loop(name: str, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: loops.delete_loop(s, name))


def _worker_routes(api: FastAPI) -> None:
    @api.post("/worker/sign-in", response_model=schemas.WorkerSession, tags=["worker"])
    def sign_in(body: schemas.SignIn, request: Request, ctx: Ctx) -> schemas.WorkerSession:
        # The same limit as the consoles' sign-in, on the same counts (in the database).
        client = request.client.host if request.client else "unknown"
        limiter = SignInLimiter(db=ctx.db)
        wait = limiter.begin_attempt(email=body.email, client=client, now_ms=ctx.clock.now_ms())
        if wait:
            raise ThrottlingError(
                f"Too many failed sign-ins. Try again in {wait} seconds.", details={"retry_after_seconds": wait}
            )

        def run(s: Session) -> schemas.WorkerSession:
            worker = workforce.sign_in(s, body.email, body.password, now_ms=ctx.clock.now_ms())
            return _session(s, ctx, worker)

        session = ctx.write(run)
        limiter.record_success(email=body.email, client=client)
        return session

    @api.post("/worker/accept-invitation", response_model=schemas.WorkerSession, tags=["worker"])
    def accept(body: schemas.AcceptInvitation, ctx: Ctx) -> schemas.WorkerSession:
        def run(s: Session) -> schemas.WorkerSession:
            worker = workforce.accept_invitation(s, body.token, body.password, now_ms=ctx.clock.now_ms())
            return _session(s, ctx, worker)

        return ctx.write(run)

    @api.post("/worker/sign-out", status_code=204, tags=["worker"])
    def sign_out(ctx: Ctx, worker: SignedInWorker) -> None:
        """End every API token of this worker (also those on other devices); tasks they
        hold stay theirs until released or their time limit ends."""
        ctx.write(lambda s: workforce.end_api_tokens(s, worker.id))

    @api.get("/worker/jobs", response_model=list[schemas.Job], tags=["worker"])
    def jobs(ctx: Ctx, worker: SignedInWorker) -> list[schemas.Job]:
        with ctx.db.read() as s:
            return [
                schemas.Job(
                    flow=j.flow.name,
                    title=j.flow.title,
                    description=j.flow.description,
                    keywords=loads_stored(j.flow.keywords),
                    tasks_waiting=j.tasks_waiting,
                    escalated=j.escalated,
                )
                for j in tasks.list_jobs(s, worker)
            ]

    @api.post(
        "/worker/tasks/next",
        response_model=schemas.Task,
        responses={204: {"description": "No task is waiting."}},
        tags=["worker"],
    )
    async def next_task(ctx: Ctx, token: SignedInToken, body: schemas.NextTask | None = None) -> Any:
        flow = body.flow if body is not None else None
        held = await _as_worker(ctx, token, lambda s, worker: _claimed(s, ctx, worker, flow))
        if held is None:
            return Response(status_code=204)
        return held

    @api.get("/worker/tasks/{task_id}", response_model=schemas.Task, tags=["worker"])
    def get_task(task_id: int, ctx: Ctx, worker: SignedInWorker) -> schemas.Task:
        with ctx.db.read() as s:
            return _task(gold_serving.get_held_task(s, worker, task_id, now_ms=ctx.clock.now_ms()))

    @api.post("/worker/tasks/{task_id}/release", status_code=204, tags=["worker"])
    def release(task_id: int, ctx: Ctx, worker: SignedInWorker) -> None:
        ctx.write(lambda s: gold_serving.release(s, worker, task_id, now_ms=ctx.clock.now_ms()))

    @api.post("/worker/tasks/{task_id}/decline", status_code=204, tags=["worker"])
    def decline(task_id: int, ctx: Ctx, worker: SignedInWorker) -> None:
        ctx.write(lambda s: gold_serving.decline(s, worker, task_id, now_ms=ctx.clock.now_ms()))

    @api.post("/worker/tasks/{task_id}/submit", status_code=204, tags=["worker"])
    async def submit(task_id: int, body: schemas.TaskSubmit, ctx: Ctx, token: SignedInToken) -> None:
        def run(s: Session, worker: Worker) -> None:
            gold_serving.submit(s, worker, task_id, body.answer, now_ms=ctx.clock.now_ms())

        await _as_worker(ctx, token, run)


_NOT_ACTIVE = object()  # what ``_as_worker``'s write returns for a worker who may not act


async def _as_worker(ctx: Services, token: WorkerToken, fn: Callable[[Session, Worker], T]) -> T:
    """``fn`` as the token's worker, on the event loop, in the hot paths' group transaction
    (``Services.write_grouped_async``); the worker row is read and checked in that same
    transaction, so a claim or submit costs no read transaction of its own. A worker who
    may not act changes nothing and is answered after the commit, so a stale token does not
    fail the others' group."""

    def run(s: Session) -> T | object:
        worker = worker_of(s, token)
        return _NOT_ACTIVE if worker is None else fn(s, worker)

    result = await ctx.write_grouped_async(run)
    if result is _NOT_ACTIVE:
        raise AuthenticationError(NOT_ACTIVE)
    return cast(T, result)


def _claimed(s: Session, ctx: Services, worker: Worker, flow: str | None) -> schemas.Task | None:
    held = gold_serving.claim_next(s, worker, flow_name=flow, now_ms=ctx.clock.now_ms())
    return _task(held) if held else None


def _session(s: Session, ctx: Services, worker: Worker) -> schemas.WorkerSession:
    expires = ctx.clock.now_ms() + ctx.settings.worker_token_ttl_seconds * 1000
    payload = {"wid": worker.id, "sub": worker.sub, "gen": worker.token_generation}
    token = sign_token(worker_token_key(ctx), payload, expires_ms=expires)
    return schemas.WorkerSession(token=token, expires_at=iso_ms(expires), worker=_worker(s, worker))
