"""``POST /endpoints/{name}/invocations``: SageMaker runtime's InvokeEndpoint.

Callers sign with SigV4 (service ``sagemaker``) using a loopin access key. Errors use
SageMaker runtime's wire shape: the code in ``X-Amzn-ErrorType`` (``ValidationError``, not
``ValidationException``; ``ModelError`` with 424) and ``{"message": ...}`` in the body.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from loopin.errors import LoopinError
from loopin.invocations import MAX_BODY_BYTES, check_image_type, invocation_body, invoke
from loopin.services import Services
from loopin.web.aws.errors import json_auth_error, new_request_id, rest_json_response, runtime_error
from loopin.web.aws.sigv4 import AuthFailure, Received, authenticate, precheck
from loopin.web.aws.wire import SIGNING_NAME
from loopin.web.bodies import read_capped

NATIVE_ACCEPT = "application/vnd.loopin.detections+json"


def runtime_router(ctx: Services) -> APIRouter:
    router = APIRouter()

    @router.post("/endpoints/{name}/invocations", include_in_schema=False)
    async def invocations(name: str, request: Request) -> Response:
        request_id = new_request_id()
        try:
            received = Received.from_scope(request.scope)
            await run_in_threadpool(precheck, ctx, received, service=SIGNING_NAME)  # before the body is read
            image = invocation_body(await read_capped(request, MAX_BODY_BYTES))
            await run_in_threadpool(authenticate, ctx, received, service=SIGNING_NAME, body=image)
            check_image_type(request.headers.get("content-type"))
            result = await run_in_threadpool(
                invoke,
                ctx,
                name,
                image,
                idempotency_key=request.headers.get("idempotency-key"),
                variant=request.headers.get("x-amzn-sagemaker-target-variant"),
            )
        except AuthFailure as exc:
            return rest_json_response(json_auth_error(exc), request_id)
        except LoopinError as exc:
            return rest_json_response(runtime_error(exc, ctx.settings.account_id), request_id)
        headers = {
            "x-Amzn-Invoked-Production-Variant": result.body["model"]["variant"],
            "x-amzn-RequestId": request_id,
        }
        loop = result.body["human_loop"]
        if loop is not None:
            headers["X-Loopin-Human-Loop-Name"] = loop["name"]
            headers["X-Loopin-Human-Loop-Arn"] = loop["arn"]
        accept = request.headers.get("accept", "")
        # A text reader and a moderation classifier answer natively (boxes would say nothing).
        if NATIVE_ACCEPT in accept or "document" in result.body or "moderation" in result.body:
            return Response(json.dumps(result.body), media_type=NATIVE_ACCEPT, headers=headers)
        # Default, and for "json" / "application/json": the GluonCV Marketplace format.
        return Response(json.dumps(result.gluon()), media_type="application/json", headers=headers)

    return router
