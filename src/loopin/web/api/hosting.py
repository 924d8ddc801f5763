"""Native API routes for models, endpoint configs and endpoints, and invocation, added to
the ``/api/v1`` app by ``api.create_api``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import endpoints, schemas
from loopin.clock import iso_ms
from loopin.inference import BUILTIN_MODELS, builtin_aliases
from loopin.invocations import IMAGE_TYPES, MAX_BODY_BYTES, check_image_type, invocation_body, invoke
from loopin.models import Endpoint, EndpointConfig, Model
from loopin.services import Services
from loopin.threshold import threshold_curve
from loopin.web.api.auth import Admin, Ctx
from loopin.web.bodies import read_capped


def _model(ctx: Services, row: Model) -> schemas.ModelInfo:
    return schemas.ModelInfo(
        name=row.name,
        arn=ctx.settings.arn("model", row.name),
        kind=row.kind,
        builtin_name=row.builtin_name,
        onnx_uri=row.artifact_uri,
        callable=row.callable_target,
        spec=json.loads(row.spec) if row.spec else None,
        created_at=iso_ms(row.created_at),
    )


def _config(ctx: Services, row: EndpointConfig) -> schemas.EndpointConfigInfo:
    return schemas.EndpointConfigInfo(
        name=row.name,
        arn=ctx.settings.arn("endpoint-config", row.name),
        variants=json.loads(row.variants),
        created_at=iso_ms(row.created_at),
    )


def _endpoint(ctx: Services, row: Endpoint) -> schemas.EndpointInfo:
    return schemas.EndpointInfo(
        name=row.name,
        arn=ctx.settings.arn("endpoint", row.name),
        config=row.config_name,
        status=row.status,
        failure_reason=row.failure_reason,
        routing=endpoints.routing_rule(row),
        created_at=iso_ms(row.created_at),
        last_modified_at=iso_ms(row.last_modified_at),
    )


def hosting_routes(api: FastAPI) -> None:
    @api.get("/model-catalog", response_model=list[schemas.BuiltinModelInfo], tags=["models"])
    def catalog(_: Admin) -> list[schemas.BuiltinModelInfo]:
        return [
            schemas.BuiltinModelInfo(
                name=m.name,
                description=m.description,
                licence=m.licence,
                source=m.source,
                version=m.version,
                input_size=m.input_size,
                classes=list(m.classes),
                aliases=builtin_aliases(m.name),
            )
            for m in BUILTIN_MODELS.values()
        ]

    @api.post("/models", status_code=201, response_model=schemas.ModelInfo, tags=["models"])
    def register(body: schemas.ModelCreate, ctx: Ctx, _: Admin) -> schemas.ModelInfo:
        def run(s: Session) -> schemas.ModelInfo:
            row = endpoints.register_model(
                s,
                name=body.name,
                builtin=body.builtin,
                onnx_uri=body.onnx_uri,
                callable_target=body.callable,
                spec=body.spec,
                now_ms=ctx.clock.now_ms(),
            )
            return _model(ctx, row)

        return ctx.write(run)

    @api.get("/models", response_model=list[schemas.ModelInfo], tags=["models"])
    def list_models(ctx: Ctx, _: Admin) -> list[schemas.ModelInfo]:
        with ctx.db.read() as s:
            return [_model(ctx, m) for m in endpoints.list_models(s)]

    @api.get("/models/{name}", response_model=schemas.ModelInfo, tags=["models"])
    def get_model(name: str, ctx: Ctx, _: Admin) -> schemas.ModelInfo:
        with ctx.db.read() as s:
            return _model(ctx, endpoints.get_model(s, name))

    @api.delete("/models/{name}", status_code=204, tags=["models"])
    def delete_model(name: str, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: endpoints.delete_model(s, name))

    @api.post("/endpoint-configs", status_code=201, response_model=schemas.EndpointConfigInfo, tags=["endpoints"])
    def create_config(body: schemas.EndpointConfigCreate, ctx: Ctx, _: Admin) -> schemas.EndpointConfigInfo:
        variants = [v.model_dump() for v in body.variants]
        return ctx.write(
            lambda s: _config(
                ctx, endpoints.create_config(s, name=body.name, variants=variants, now_ms=ctx.clock.now_ms())
            )
        )

    @api.get("/endpoint-configs", response_model=list[schemas.EndpointConfigInfo], tags=["endpoints"])
    def list_configs(ctx: Ctx, _: Admin) -> list[schemas.EndpointConfigInfo]:
        with ctx.db.read() as s:
            return [_config(ctx, c) for c in endpoints.list_configs(s)]

    @api.get("/endpoint-configs/{name}", response_model=schemas.EndpointConfigInfo, tags=["endpoints"])
    def get_config(name: str, ctx: Ctx, _: Admin) -> schemas.EndpointConfigInfo:
        with ctx.db.read() as s:
            return _config(ctx, endpoints.get_config(s, name))

    @api.delete("/endpoint-configs/{name}", status_code=204, tags=["endpoints"])
    def delete_config(name: str, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: endpoints.delete_config(s, name))

    @api.post("/endpoints", status_code=201, response_model=schemas.EndpointInfo, tags=["endpoints"])
    def create_endpoint(body: schemas.EndpointCreate, ctx: Ctx, _: Admin) -> schemas.EndpointInfo:
        def run(s: Session) -> schemas.EndpointInfo:
            row = endpoints.create_endpoint(
                s, name=body.name, config_name=body.config, routing=body.routing, now_ms=ctx.clock.now_ms()
            )
            return _endpoint(ctx, row)

        return ctx.write(run)

    @api.get("/endpoints", response_model=list[schemas.EndpointInfo], tags=["endpoints"])
    def list_endpoints(ctx: Ctx, _: Admin) -> list[schemas.EndpointInfo]:
        with ctx.db.read() as s:
            return [_endpoint(ctx, e) for e in endpoints.list_endpoints(s)]

    @api.get("/endpoints/{name}", response_model=schemas.EndpointInfo, tags=["endpoints"])
    def get_endpoint(name: str, ctx: Ctx, _: Admin) -> schemas.EndpointInfo:
        with ctx.db.read() as s:
            return _endpoint(ctx, endpoints.get_endpoint(s, name))

    @api.patch("/endpoints/{name}", response_model=schemas.EndpointInfo, tags=["endpoints"])
    def update_endpoint(name: str, body: schemas.EndpointUpdate, ctx: Ctx, _: Admin) -> schemas.EndpointInfo:
        def run(s: Session) -> schemas.EndpointInfo:
            row = endpoints.update_endpoint(
                s,
                name,
                config_name=body.config,
                routing=body.routing,
                clear_routing=body.clear_routing,
                now_ms=ctx.clock.now_ms(),
            )
            return _endpoint(ctx, row)

        return ctx.write(run)

    @api.delete("/endpoints/{name}", status_code=204, tags=["endpoints"])
    def delete_endpoint(name: str, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: endpoints.delete_endpoint(s, name, with_own_config=True))
        ctx.models.forget(name)

    @api.get("/flows/{name}/threshold-curve", response_model=schemas.ThresholdCurve, tags=["endpoints"])
    def curve(name: str, ctx: Ctx, _: Admin) -> schemas.ThresholdCurve:
        """Replay thresholds 0.00-1.00 against the prediction log and the people's answers."""
        with ctx.db.read() as s:
            result = threshold_curve(s, name)
        return schemas.ThresholdCurve(
            flow=result.flow,
            images=result.images,
            reviewed=result.reviewed,
            points=[
                schemas.ThresholdPoint(threshold=p.threshold, routed=p.routed, missed=p.missed) for p in result.points
            ],
        )

    @api.post(
        "/endpoints/{name}/invoke",
        response_model=schemas.InvocationResult,
        tags=["endpoints"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES},
            }
        },
    )
    async def invoke_endpoint(
        name: str,
        request: Request,
        ctx: Ctx,
        _: Admin,
        flow: Annotated[str | None, Query(description="Route to this flow (this call only).")] = None,
        threshold: Annotated[float | None, Query(description="Confidence threshold (this call only).")] = None,
        classes: Annotated[str | None, Query(description="Comma-separated class labels that count.")] = None,
        sample_percent: Annotated[float | None, Query(description="Audit sampling percentage.")] = None,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        check_image_type(request.headers.get("content-type"))
        image = invocation_body(await read_capped(request, MAX_BODY_BYTES))
        routing = {
            "flow": flow,
            "threshold": threshold,
            "classes": tuple(c.strip() for c in classes.split(",") if c.strip()) if classes else None,
            "sample_percent": sample_percent,
        }
        result = await run_in_threadpool(invoke, ctx, name, image, routing=routing, idempotency_key=idempotency_key)
        return result.body
