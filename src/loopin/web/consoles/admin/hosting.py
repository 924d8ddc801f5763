"""Admin console section: models and endpoints. The catalogue of models (built-in and
registered), deploying one as an endpoint in one step, each endpoint's status, config and
routing rule, and "Try it": an uploaded image's detections drawn over it.

A try runs the model only (nothing is logged, nobody is asked) unless the admin ticks
"apply routing": then it is a real invocation, logged and routed as the API's.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import endpoints
from loopin.errors import LoopinError, NotFoundError, ValidationError
from loopin.flows import list_flows
from loopin.inference import BUILTIN_MODELS, Detection, builtin_aliases, builtin_model
from loopin.invocations import MAX_BODY_BYTES, invoke
from loopin.routing import considered, decide, with_overrides
from loopin.schemas import DEFAULT_MIN_SCORE, RoutingRule
from loopin.web.consoles.admin.base import AdminPages, SignedInAdmin, to_sign_in
from loopin.web.errors import json_error
from loopin.web.pages import Form, redirect

NOTICES = {
    "routing": "The routing rule is saved; it applies to the next invocation.",
    "routing-off": "The endpoint no longer routes images to people.",
    "deleted": "The endpoint is deleted.",
    "model-deleted": "The model is deleted.",
}
# After "Deploy": what the endpoint's status is now (the page reloads itself while it loads).
CREATED_NOTICES = {
    "Creating": "The endpoint is Creating: its model loads in the background.",
    "Updating": "The endpoint is Updating: its new config loads in the background.",
    "InService": "The endpoint is InService: it answers invocations.",
}


def add_routes(pages: AdminPages) -> None:
    r = pages.router

    async def endpoints_page(request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        values = await pages.read(_overview)
        return pages.page("admin/endpoints.html", me, section="endpoints", notice=NOTICES.get(notice), **values)

    async def model_page(name: str, request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        return await _model_page(me, name, notice=NOTICES.get(notice))

    async def _model_page(
        me: SignedInAdmin, name: str, status: int = 200, *, error: str | None = None, **values: Any
    ) -> Response:
        model = await pages.read(lambda s: _model_values(s, name))
        flows = await pages.read(lambda s: [f.name for f in list_flows(s)])
        values.setdefault(
            "form",
            {"name": _suggest_name(name), "instances": "1", "threshold": "0.5", "min_score": f"{DEFAULT_MIN_SCORE:g}"},
        )
        return pages.page(
            "admin/model.html", me, status, section="endpoints", model=model, flows=flows, error=error, **values
        )

    async def deploy(request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        model = form.get("model")
        try:
            instances = _integer(form.get("instances", "1"), "The instance count")
            rule = _rule_from(form)
            row = await pages.write(
                lambda s: endpoints.deploy(
                    s,
                    name=form.get("name").strip(),
                    model=model,
                    instance_count=instances,
                    routing=rule,
                    now_ms=pages.ctx.clock.now_ms(),
                )
            )
        except NotFoundError as exc:
            return pages.error_page(me, exc)
        except LoopinError as exc:
            values = {
                k: form.get(k)
                for k in ("name", "instances", "flow", "threshold", "min_score", "classes", "sample_percent")
            }
            return await _model_page(me, model, 400, error=exc.message, form=values)
        return redirect(f"{_endpoint_path(row.name)}?notice=created")

    async def endpoint_page(name: str, request: Request, notice: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        return await _endpoint_page(me, name, notice=NOTICES.get(notice), created=notice == "created")

    async def _endpoint_page(
        me: SignedInAdmin,
        name: str,
        status: int = 200,
        *,
        error: str | None = None,
        created: bool = False,
        **values: Any,
    ) -> Response:
        endpoint = await pages.read(lambda s: _endpoint_values(s, name))
        if created:  # the notice says what the endpoint is now, as its badge does
            values["notice"] = CREATED_NOTICES.get(endpoint["status"])
        flows = await pages.read(lambda s: [f.name for f in list_flows(s)])
        rule = endpoint["routing"]
        values.setdefault(
            "form",
            {
                "flow": rule.flow if rule else "",
                "threshold": f"{rule.threshold:g}" if rule else "0.5",
                "min_score": f"{rule.min_score:g}" if rule else f"{DEFAULT_MIN_SCORE:g}",
                "classes": ", ".join(rule.classes or ()) if rule else "",
                "sample_percent": f"{rule.sample_percent:g}" if rule else "0",
            },
        )
        return pages.page(
            "admin/endpoint.html",
            me,
            status,
            section="endpoints",
            endpoint=endpoint,
            flows=flows,
            error=error,
            max_upload=MAX_BODY_BYTES,
            **values,
        )

    async def save_routing(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted

        def change(s: Session) -> RoutingRule | None:
            rule = _rule_from(form, endpoints.routing_rule(endpoints.get_endpoint(s, name)))
            endpoints.update_endpoint(
                s, name, routing=rule, clear_routing=rule is None, now_ms=pages.ctx.clock.now_ms()
            )
            return rule

        try:
            rule = await pages.write(change)
        except NotFoundError as exc:
            return pages.error_page(me, exc)
        except LoopinError as exc:
            values = {k: form.get(k) for k in ("flow", "threshold", "min_score", "classes", "sample_percent")}
            return await _endpoint_page(me, name, 400, error=exc.message, form=values)
        return redirect(f"{_endpoint_path(name)}?notice={'routing' if rule else 'routing-off'}")

    async def delete_endpoint(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, _ = posted
        await pages.write(lambda s: endpoints.delete_endpoint(s, name, with_own_config=True))
        pages.ctx.models.forget(name)
        return redirect("/admin/endpoints?notice=deleted")

    async def try_endpoint(name: str, request: Request, route: bool = False) -> Response:
        posted = await pages.fetch_post(request, limit=MAX_BODY_BYTES)
        if isinstance(posted, Response):
            return posted
        _, image = posted
        try:
            answer = await run_in_threadpool(_try, pages, name, image, route)
        except LoopinError as exc:
            return json_error(exc)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    r.add_api_route("/admin/endpoints", endpoints_page, methods=["GET"])
    r.add_api_route("/admin/endpoints", deploy, methods=["POST"])
    r.add_api_route("/admin/models/{name}", model_page, methods=["GET"])
    r.add_api_route(
        "/admin/models/{name}/delete",
        pages.delete_action(endpoints.delete_model, "/admin/endpoints?notice=model-deleted"),
        methods=["POST"],
    )
    r.add_api_route("/admin/endpoints/{name}", endpoint_page, methods=["GET"])
    r.add_api_route("/admin/endpoints/{name}/routing", save_routing, methods=["POST"])
    r.add_api_route("/admin/endpoints/{name}/delete", delete_endpoint, methods=["POST"])
    r.add_api_route("/admin/endpoints/{name}/try", try_endpoint, methods=["POST"])


# -- reading ----------------------------------------------------------------------------


def _overview(s: Session) -> dict[str, Any]:
    registered = endpoints.list_models(s)
    models = [_builtin_summary(name) for name in sorted(BUILTIN_MODELS)] + [
        {
            "name": m.name,
            "kind": m.kind,
            "source": m.builtin_name or m.artifact_uri or m.callable_target,
            "description": None,
            "classes": _spec_classes(m.spec),
            "licence": None,
        }
        for m in registered
    ]
    rows = []
    for e in endpoints.list_endpoints(s):
        config = _config_or_none(s, e.config_name)
        rows.append(
            {
                "name": e.name,
                "status": e.status,
                "failure_reason": e.failure_reason,
                "models": endpoints.config_models(config) if config else [],
                "routing": endpoints.routing_rule(e),
                "last_invoked": _when(endpoints.last_invoked_ms(s, e.name)),
                "created": _when(e.created_at),
            }
        )
    return {"models": models, "endpoints": rows}


def _builtin_summary(name: str) -> dict[str, Any]:
    m = BUILTIN_MODELS[name]  # a canonical name
    return {
        "name": m.name,
        "kind": "built-in",
        "source": m.source,
        "description": m.description,
        "classes": list(m.classes),
        "licence": m.licence,
    }


def _model_values(s: Session, name: str) -> dict[str, Any]:
    builtin = builtin_model(name)
    names = {name}
    if builtin is not None:
        m = builtin
        names |= {m.name, *builtin_aliases(m.name)}  # endpoints naming it by a former name use it too
        values = _builtin_summary(m.name) | {"version": m.version, "input_size": m.input_size, "spec": None}
    else:
        row = endpoints.get_model(s, name)
        values = {
            "name": row.name,
            "kind": row.kind,
            "source": row.builtin_name or row.artifact_uri or row.callable_target,
            "description": None,
            "classes": _spec_classes(row.spec),
            "licence": None,
            "version": None,
            "input_size": json.loads(row.spec)["input_size"] if row.spec else None,
            "spec": json.dumps(json.loads(row.spec), indent=2) if row.spec else None,
        }
    users = []
    for e in endpoints.list_endpoints(s):
        config = _config_or_none(s, e.config_name)
        if config is not None and names & set(endpoints.config_models(config)):
            users.append({"name": e.name, "status": e.status})
    return values | {"endpoints": users, "builtin": builtin is not None}


def _endpoint_values(s: Session, name: str) -> dict[str, Any]:
    e = endpoints.get_endpoint(s, name)
    config = _config_or_none(s, e.config_name)
    return {
        "name": e.name,
        "status": e.status,
        "failure_reason": e.failure_reason,
        "config": e.config_name,
        "pending_config": e.pending_config_name,
        "variants": json.loads(config.variants) if config else [],
        "routing": endpoints.routing_rule(e),
        "created": _when(e.created_at),
        "modified": _when(e.last_modified_at),
        "last_invoked": _when(endpoints.last_invoked_ms(s, e.name)),
    }


def _config_or_none(s: Session, name: str) -> Any:
    try:
        return endpoints.get_config(s, name)
    except NotFoundError:  # deleted through the AWS API before this version refused it
        return None


def _spec_classes(spec: str | None) -> list[str]:
    return list(json.loads(spec)["class_names"]) if spec else []


def _when(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _suggest_name(model: str) -> str:
    return model[:47].rstrip("-") + "-endpoint"


def _endpoint_path(name: str) -> str:
    return f"/admin/endpoints/{quote(name, safe='')}"


# -- forms ------------------------------------------------------------------------------


def _integer(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValidationError(f"{what} must be a whole number.") from None


def _number(form: Form, field: str, what: str) -> float | None:
    text = form.get(field).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValidationError(f"{what} must be a number, such as 0.5.") from None


def _rule_from(form: Form, current: RoutingRule | None = None) -> RoutingRule | None:
    """The routing rule of a form, or None when no flow is chosen (no routing). What the form
    does not show (per-class lower bounds, the label set) is kept from the ``current`` rule."""
    flow = form.get("flow").strip()
    if not flow:
        return None
    classes = tuple(c.strip() for c in form.get("classes").split(",") if c.strip())
    threshold = _number(form, "threshold", "The threshold")
    kept_floors = {
        label: floor
        for label, floor in ((current.class_min_scores or {}) if current else {}).items()
        if floor < (threshold if threshold is not None else RoutingRule.model_fields["threshold"].default)
    }
    return with_overrides(
        None,
        {
            "flow": flow,
            "threshold": threshold,
            "min_score": _number(form, "min_score", "The noise floor"),
            "class_min_scores": kept_floors or None,
            "classes": classes or None,
            "labels": current.labels if current else None,
            "sample_percent": _number(form, "sample_percent", "The audit sample"),
        },
    )


# -- trying an endpoint -----------------------------------------------------------------


def _try(pages: AdminPages, name: str, image: bytes, route: bool) -> dict[str, Any]:
    """The detections on ``image`` and what the routing rule makes of them. With ``route``
    it is a real invocation (logged; it may start a human loop)."""
    ctx = pages.ctx
    with ctx.db.read() as s:
        endpoint = endpoints.get_endpoint(s, name)
    rule = endpoints.routing_rule(endpoint)
    if route:
        if rule is None:
            raise ValidationError("This endpoint has no routing rule: set one to route a try to people.")
        body = invoke(ctx, name, image).body
        detections = [Detection(**d) for d in body["detections"]]
        reason = body["routing"]["reason"] if body["routing"] else None
        answer = {k: body[k] for k in ("detections", "model", "image", "inference_ms", "human_loop")}
    else:
        variant, result = endpoints.detect(ctx, endpoint, image)
        detections = list(result.detections)
        reason = decide(rule, detections, hashlib.sha256(image).hexdigest()) if rule else None
        answer = {
            "detections": [d.to_dict() for d in detections],
            "model": {"name": result.model_name, "version": result.model_version, "variant": variant},
            "image": {"width": result.image_width, "height": result.image_height},
            "inference_ms": round(result.inference_ms, 3),
            "human_loop": None,
        }
    counted = {id(d) for d in considered(rule, detections)} if rule else set()
    answer["doubtful"] = [rule is not None and id(d) in counted and d.score < rule.threshold for d in detections]
    answer["routing"] = (
        {
            "flow": rule.flow,
            "threshold": rule.threshold,
            "min_score": rule.min_score,
            "classes": rule.classes,
            "reason": reason,
        }
        if rule
        else None
    )
    return answer
