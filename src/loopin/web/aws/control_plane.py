"""The SageMaker control plane (json 1.1, 2017-07-24): ``POST /`` with
``X-Amz-Target: SageMaker.<Operation>`` and the whole input as a JSON body. Timestamps are
epoch seconds. Operations loopin does not serve answer ``UnknownOperationException``
naming the operation.

The operations themselves live in ``control_review`` (work teams, task UIs, flow
definitions) and ``control_hosting`` (models, endpoint configs, endpoints).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopin.errors import LoopinError
from loopin.services import Services
from loopin.web.aws.control_hosting import hosting_operations
from loopin.web.aws.control_review import review_operations
from loopin.web.aws.errors import JSON11, WireError, control_plane_error, json11_response
from loopin.web.aws.fields import parse_object
from loopin.web.aws.wire import (
    MAX_JSON_BODY,
    check_signature,
    precheck_signature,
    protocol_app,
    read_body,
    request_id,
)


def control_plane_app(ctx: Services) -> Starlette:
    operations = review_operations(ctx) | hosting_operations(ctx)

    async def dispatch(request: Request) -> Response:
        service, _, name = request.headers.get("x-amz-target", "").partition(".")
        await precheck_signature(ctx, request)  # before the body is read
        body = await read_body(request, limit=MAX_JSON_BODY)

        def call() -> dict[str, Any]:
            check_signature(ctx, request, body)
            operation = operations.get(name) if service == "SageMaker" else None
            if operation is None:
                raise WireError(400, "UnknownOperationException", f"loopin does not support the operation '{name}'.")
            try:
                return operation.run(parse_object(body))
            except LoopinError as exc:
                raise control_plane_error(exc, not_found=operation.not_found) from exc

        result = await run_in_threadpool(call)
        return Response(json.dumps(result), media_type=JSON11, headers={"x-amzn-RequestId": request_id(request)})

    return protocol_app(
        [Route("/", dispatch, methods=["POST"])],
        render=json11_response,
        domain_error=lambda exc: control_plane_error(exc, not_found="ResourceNotFound"),
        internal_code="InternalFailure",
    )
