"""``POST /endpoints/{name}/invocations``: SageMaker runtime's InvokeEndpoint.

Errors use SageMaker's wire shape: the code in ``X-Amzn-ErrorType`` (``ValidationError``,
not ``ValidationException``; ``ModelError`` with 424) and ``{"message": ...}`` in the body.
Callers authenticate with a loopin access key (HTTP Basic) until SigV4 is served.
"""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic
from starlette.concurrency import run_in_threadpool

from loopin import access_keys
from loopin.api_hosting import check_image_type, read_body_capped
from loopin.context import Services
from loopin.errors import AuthenticationError, LoopinError, NotFoundError, ValidationError
from loopin.invocations import invoke

NATIVE_ACCEPT = "application/vnd.loopin.detections+json"
_basic = HTTPBasic(auto_error=False)


def _aws_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"message": message},
        status_code=status,
        headers={"X-Amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def runtime_error(exc: LoopinError, account_id: str) -> JSONResponse:
    if isinstance(exc, AuthenticationError):
        return _aws_error(403, "UnrecognizedClientException", exc.message)
    if isinstance(exc, NotFoundError):
        return _aws_error(400, "ValidationError", f"{exc.message.rstrip('.')} in account {account_id}.")
    if isinstance(exc, ValidationError):
        return _aws_error(400, "ValidationError", exc.message)
    if exc.code == "ModelError":
        return _aws_error(424, "ModelError", exc.message)
    if exc.code == "ServiceUnavailable":
        return _aws_error(503, "ServiceUnavailable", exc.message)
    return _aws_error(500, "InternalFailure", exc.message)


def runtime_router(ctx: Services) -> APIRouter:
    router = APIRouter()

    @router.post("/endpoints/{name}/invocations", include_in_schema=False)
    async def invocations(name: str, request: Request) -> Response:
        try:
            credentials = await _basic(request)
            if credentials is None:
                raise AuthenticationError("The request carries no loopin access key.")
            with ctx.db.read() as session:
                access_keys.authenticate(
                    session, credentials.username, credentials.password, secret_key=ctx.settings.secret_key
                )
            check_image_type(request.headers.get("content-type"))
            image = await read_body_capped(request)
            result = await run_in_threadpool(
                invoke,
                ctx,
                name,
                image,
                idempotency_key=request.headers.get("idempotency-key"),
                variant=request.headers.get("x-amzn-sagemaker-target-variant"),
            )
        except LoopinError as exc:
            return runtime_error(exc, ctx.settings.account_id)
        headers = {"x-Amzn-Invoked-Production-Variant": result.body["model"]["variant"]}
        loop = result.body["human_loop"]
        if loop is not None:
            headers["X-Loopin-Human-Loop-Name"] = loop["name"]
            headers["X-Loopin-Human-Loop-Arn"] = loop["arn"]
        accept = request.headers.get("accept", "")
        if NATIVE_ACCEPT in accept:
            return Response(json.dumps(result.body), media_type=NATIVE_ACCEPT, headers=headers)
        # Default, and for "json" / "application/json": the GluonCV Marketplace format.
        return Response(json.dumps(result.gluon()), media_type="application/json", headers=headers)

    return router
