"""``sagemaker-a2i-runtime`` (rest-json, 2019-11-07): the human-loop data plane.

Routes: ``POST /human-loops`` (start), ``GET /human-loops`` (list),
``POST /human-loops/stop`` (stop, name in the body), ``GET|DELETE /human-loops/{name}``
(describe, delete). A loop literally named ``stop`` is still described by its GET: only
the method tells the two apart. Timestamps are ISO 8601 strings; a list's last page has no
``NextToken`` key at all, which is how boto3's paginator knows to stop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopin import flows, loops
from loopin.arns import name_from_arn
from loopin.clock import iso_ms, parse_iso
from loopin.errors import ValidationError
from loopin.models import FlowDefinition, HumanLoop
from loopin.services import Services
from loopin.web.aws.errors import a2i_error, rest_json_response
from loopin.web.aws.fields import Fields, parse_object
from loopin.web.aws.wire import (
    MAX_JSON_BODY,
    check_signature,
    precheck_signature,
    protocol_app,
    read_body,
    request_id,
)

Handler = Callable[[Request, Fields], dict[str, Any]]


def a2i_runtime_app(ctx: Services) -> Starlette:
    api = _A2iRuntime(ctx)
    return protocol_app(
        [
            Route("/human-loops", api.route(api.start), methods=["POST"]),
            Route("/human-loops", api.route(api.list), methods=["GET"]),
            Route("/human-loops/stop", api.route(api.stop), methods=["POST"]),
            Route("/human-loops/{name}", api.route(api.describe), methods=["GET"]),
            Route("/human-loops/{name}", api.route(api.delete), methods=["DELETE"]),
        ],
        render=rest_json_response,
        domain_error=a2i_error,
        internal_code="InternalServerException",
    )


class _A2iRuntime:
    def __init__(self, ctx: Services) -> None:
        self.ctx = ctx

    def route(self, handler: Handler) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            await precheck_signature(self.ctx, request)  # before the body is read
            body = await read_body(request, limit=MAX_JSON_BODY)

            def call() -> dict[str, Any]:
                check_signature(self.ctx, request, body)
                return handler(request, parse_object(body))

            result = await run_in_threadpool(call)
            return Response(
                json.dumps(result),
                media_type="application/json",
                headers={"x-amzn-RequestId": request_id(request)},
            )

        return run

    def _arn(self, kind: str, name: str) -> str:
        return self.ctx.settings.arn(kind, name)

    def start(self, _: Request, body: Fields) -> dict[str, Any]:
        name = body.text("HumanLoopName", max_len=63)
        flow_name = name_from_arn(body.text("FlowDefinitionArn"), "flow-definition")
        content = body.obj("HumanLoopInput").text("InputContent", max_len=loops.MAX_INPUT_CHARS)
        attributes = body.opt_obj("DataAttributes")
        classifiers = attributes.opt_list("ContentClassifiers", max_items=256) if attributes else None
        # loopin's extension (boto3 has no such member and cannot send it; raw requests can).
        priority = body.opt_int("LoopinPriority", low=flows.MIN_PRIORITY, high=flows.MAX_PRIORITY)

        def run(session: Session) -> str:
            loop, _created = loops.start_loop(
                session,
                name=name,
                flow_name=flow_name,
                input_content=content,
                content_classifiers=classifiers,
                priority=priority,
                default_input_locations=self.ctx.default_input_locations,
                now_ms=self.ctx.clock.now_ms(),
            )
            return loop.name

        # Same name and input again (a retry): 200 with the same ARN, nothing new.
        return {"HumanLoopArn": self._arn("human-loop", self.ctx.write_grouped(run))}

    def describe(self, request: Request, _: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as session:
            loop = loops.get_loop(session, request.path_params["name"])
            flow = session.get_one(FlowDefinition, loop.flow_id)
            answer = self._summary(loop, flow.name) | {"HumanLoopArn": self._arn("human-loop", loop.name)}
        if loop.failure_code:
            answer["FailureCode"] = loop.failure_code
        if loop.output_state == "written" and loop.output_uri:
            answer["HumanLoopOutput"] = {"OutputS3Uri": loop.output_uri}
        return answer

    def list(self, request: Request, _: Fields) -> dict[str, Any]:
        query = request.query_params
        flow_arn = query.get("FlowDefinitionArn")
        if not flow_arn:
            raise ValidationError("FlowDefinitionArn is required.")
        with self.ctx.db.read() as session:
            page = loops.list_loops(
                session,
                flow_name=name_from_arn(flow_arn, "flow-definition"),
                created_after_ms=_query_time(query.get("CreationTimeAfter"), "CreationTimeAfter"),
                created_before_ms=_query_time(query.get("CreationTimeBefore"), "CreationTimeBefore"),
                sort_order=query.get("SortOrder", "Descending"),
                page_token=query.get("NextToken"),
                max_results=_query_int(query.get("MaxResults"), "MaxResults", default=loops.MAX_PAGE_SIZE),
            )
        answer: dict[str, Any] = {"HumanLoopSummaries": [self._summary(loop, flow) for loop, flow in page.loops]}
        if page.next_token:
            answer["NextToken"] = page.next_token
        return answer

    def stop(self, _: Request, body: Fields) -> dict[str, Any]:
        name = body.text("HumanLoopName", max_len=63)
        self.ctx.write(lambda session: loops.stop_loop(session, name, now_ms=self.ctx.clock.now_ms()))
        return {}

    def delete(self, request: Request, _: Fields) -> dict[str, Any]:
        self.ctx.write(lambda session: loops.delete_loop(session, request.path_params["name"]))
        return {}

    def _summary(self, loop: HumanLoop, flow_name: str) -> dict[str, Any]:
        summary = {
            "HumanLoopName": loop.name,
            "HumanLoopStatus": loop.status,
            "CreationTime": iso_ms(loop.created_at),
            "FlowDefinitionArn": self._arn("flow-definition", flow_name),
        }
        if loop.failure_reason:
            summary["FailureReason"] = loop.failure_reason
        return summary


MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _query_time(value: str | None, what: str) -> int | None:
    """boto3 sends ISO 8601 in the query; epoch seconds are accepted too."""
    if value is None:
        return None
    try:
        ms = int(float(value) * 1000) if value.replace(".", "", 1).isdigit() else parse_iso(value)
    except (ValueError, OverflowError) as exc:
        raise ValidationError(f"{what} '{value}' is not an ISO 8601 time.") from exc
    if not 0 <= ms <= MAX_TIME_MS:
        raise ValidationError(f"{what} '{value}' is out of range (1970 to 9999).")
    return ms


def _query_int(value: str | None, what: str, *, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise ValidationError(f"{what} must be a whole number.")
    return int(value)
