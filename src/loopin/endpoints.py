"""Models, endpoint configs and endpoints, with SageMaker hosting's lifecycle:
Creating -> InService (or Failed with a reason when a model cannot load); Updating (the old
config keeps serving until the new one is loaded) -> InService; delete.

Loading happens in ``deploy_pending`` (a periodic job in every server process), never in the
request that created the endpoint.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loopin.errors import LoopinError, ModelError, NotFoundError, ResourceInUseError, ValidationError
from loopin.flows import get_flow
from loopin.inference import BUILTIN_MODELS, DetectionResult, ModelSpec, builtin_model
from loopin.model_host import ModelDefinition, ModelHost, Served, Variant, builtin_definition
from loopin.models import Endpoint, EndpointConfig, Model, Prediction
from loopin.schemas import RoutingRule
from loopin.services import Services

log = logging.getLogger("loopin.endpoints")
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
CALLABLE_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
MAX_INSTANCES = 16


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 63 or not SAGEMAKER_NAME.fullmatch(name):
        raise ValidationError(
            f"{what} '{name}' is not valid: use 1 to 63 letters, digits and hyphens, "
            "starting and ending with a letter or digit."
        )
    return name


# -- models --------------------------------------------------------------------------


def register_model(
    session: Session,
    *,
    name: str,
    builtin: str | None = None,
    onnx_uri: str | None = None,
    callable_target: str | None = None,
    spec: dict[str, Any] | None = None,
    aws_definition: dict[str, Any] | None = None,
    now_ms: int,
) -> Model:
    """Register a model: a built-in one under another name, an ONNX file (file:// or s3://)
    with its spec, or a ``module:function`` Python callable. Nothing is loaded yet."""
    _check_name(name, "Model name")
    if builtin_model(name) is not None:
        raise ResourceInUseError(f"'{name}' is the name of a built-in model; choose another name.")
    if sum(x is not None for x in (builtin, onnx_uri, callable_target)) != 1:
        raise ValidationError("Give exactly one of: a built-in model, an ONNX file URI, or a Python callable.")
    if session.scalar(select(Model.id).where(Model.name == name)) is not None:
        raise ResourceInUseError(f"A model named '{name}' exists already.")
    row = Model(name=name, created_at=now_ms, aws_definition=json.dumps(aws_definition) if aws_definition else None)
    if builtin is not None:
        if builtin_model(builtin) is None:
            raise NotFoundError(f"No built-in model '{builtin}'; available: {', '.join(sorted(BUILTIN_MODELS))}.")
        row.kind, row.builtin_name = "builtin", builtin
    elif onnx_uri is not None:
        if not (onnx_uri.startswith(("file:///", "s3://"))) or len(onnx_uri) > 1024:
            raise ValidationError("The ONNX file must be a file:///absolute/path or s3://bucket/key URI.")
        if spec is None:
            raise ValidationError("An ONNX model needs a spec (input size, layout, normalisation, head, class names).")
        row.kind, row.artifact_uri = "onnx", onnx_uri
        row.spec = ModelSpec.from_dict(spec).model_dump_json()
    else:
        assert callable_target is not None
        if not CALLABLE_TARGET.fullmatch(callable_target):
            raise ValidationError("A callable model is given as 'module:function'.")
        row.kind, row.callable_target = "callable", callable_target
        if spec is not None:
            row.spec = ModelSpec.from_dict(spec).model_dump_json()
    session.add(row)
    session.flush()
    return row


def model_definition(session: Session, name: str) -> ModelDefinition:
    row = session.scalar(select(Model).where(Model.name == name))
    if row is None:
        builtin = builtin_definition(name)
        if builtin is None:
            raise NotFoundError(f"No model named '{name}' (and no built-in model of that name).")
        return builtin
    return ModelDefinition(
        name=row.name,
        kind=row.kind,
        builtin_name=row.builtin_name,
        artifact_uri=row.artifact_uri,
        spec=ModelSpec.model_validate_json(row.spec) if row.spec else None,
        callable_target=row.callable_target,
    )


def get_model(session: Session, name: str) -> Model:
    row = session.scalar(select(Model).where(Model.name == name))
    if row is None:
        raise NotFoundError(f"No registered model named '{name}'.")
    return row


def list_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).order_by(Model.name)))


def delete_model(session: Session, name: str) -> None:
    """Refused while an endpoint serves (or is being updated to) a config that uses it."""
    if builtin_model(name) is not None:
        raise ValidationError(f"'{name}' is a built-in model; it cannot be deleted.")
    row = get_model(session, name)
    for endpoint in list_endpoints(session):
        for config_name in filter(None, (endpoint.config_name, endpoint.pending_config_name)):
            config = session.scalar(select(EndpointConfig).where(EndpointConfig.name == config_name))
            if config is not None and name in config_models(config):
                raise ResourceInUseError(
                    f"Model '{name}' is used by endpoint '{endpoint.name}' (config '{config_name}'); "
                    "delete the endpoint or update it to another config first."
                )
    session.delete(row)


# -- endpoint configs ----------------------------------------------------------------


def create_config(session: Session, *, name: str, variants: Sequence[dict[str, Any]], now_ms: int) -> EndpointConfig:
    """``variants``: 1-10 of ``{variant_name, model, instance_count=1, weight=1.0}``."""
    _check_name(name, "Endpoint config name")
    if not 1 <= len(variants) <= 10:
        raise ValidationError("An endpoint config has 1 to 10 production variants.")
    clean = []
    for v in variants:
        variant_name = _check_name(str(v.get("variant_name", "")), "Variant name")
        model_definition(session, str(v.get("model", "")))  # must exist
        count, weight = v.get("instance_count", 1), v.get("weight", 1.0)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_INSTANCES:
            raise ValidationError(f"instance_count of variant '{variant_name}' must be 1 to {MAX_INSTANCES}.")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ValidationError(f"weight of variant '{variant_name}' must be a number >= 0.")
        clean.append({"variant_name": variant_name, "model": v["model"], "instance_count": count, "weight": weight})
    if len({v["variant_name"] for v in clean}) != len(clean):
        raise ValidationError("Variant names must be unique within a config.")
    if session.scalar(select(EndpointConfig.id).where(EndpointConfig.name == name)) is not None:
        raise ResourceInUseError(f"An endpoint config named '{name}' exists already.")
    row = EndpointConfig(name=name, variants=json.dumps(clean), created_at=now_ms)
    session.add(row)
    session.flush()
    return row


def get_config(session: Session, name: str) -> EndpointConfig:
    row = session.scalar(select(EndpointConfig).where(EndpointConfig.name == name))
    if row is None:
        raise NotFoundError(f"No endpoint config named '{name}'.")
    return row


def list_configs(session: Session) -> list[EndpointConfig]:
    return list(session.scalars(select(EndpointConfig).order_by(EndpointConfig.name)))


def config_models(config: EndpointConfig) -> list[str]:
    """The models of a config's variants, in order, without repeats."""
    return list(dict.fromkeys(v["model"] for v in json.loads(config.variants)))


def delete_config(session: Session, name: str) -> None:
    """Refused while an endpoint serves it or is being updated to it."""
    row = get_config(session, name)
    user = session.scalar(
        select(Endpoint.name).where((Endpoint.config_name == name) | (Endpoint.pending_config_name == name)).limit(1)
    )
    if user is not None:
        raise ResourceInUseError(
            f"Endpoint config '{name}' is used by endpoint '{user}'; "
            "delete the endpoint or update it to another config first."
        )
    session.delete(row)


# -- endpoints -----------------------------------------------------------------------


def create_endpoint(
    session: Session, *, name: str, config_name: str, routing: RoutingRule | None = None, now_ms: int
) -> Endpoint:
    _check_name(name, "Endpoint name")
    get_config(session, config_name)
    if routing is not None:
        get_flow(session, routing.flow)
    if session.scalar(select(Endpoint.id).where(Endpoint.name == name)) is not None:
        raise ResourceInUseError(f"An endpoint named '{name}' exists already.")
    row = Endpoint(
        name=name,
        config_name=config_name,
        status="Creating",
        generation=1,
        routing=routing.model_dump_json() if routing else None,
        created_at=now_ms,
        last_modified_at=now_ms,
    )
    session.add(row)
    session.flush()
    return row


def get_endpoint(session: Session, name: str) -> Endpoint:
    row = session.scalar(select(Endpoint).where(Endpoint.name == name))
    if row is None:
        raise NotFoundError(f"No endpoint named '{name}'.")
    return row


def list_endpoints(session: Session) -> list[Endpoint]:
    return list(session.scalars(select(Endpoint).order_by(Endpoint.name)))


def routing_rule(endpoint: Endpoint) -> RoutingRule | None:
    return RoutingRule.model_validate_json(endpoint.routing) if endpoint.routing else None


def update_endpoint(
    session: Session,
    name: str,
    *,
    config_name: str | None = None,
    routing: RoutingRule | None = None,
    clear_routing: bool = False,
    now_ms: int,
) -> Endpoint:
    """A new config is loaded in the background (Updating); routing changes apply at once."""
    row = get_endpoint(session, name)
    if config_name is not None:
        if row.status not in ("InService", "Failed"):
            raise ValidationError(f"Endpoint '{name}' is {row.status}; wait until it is InService to update it.")
        get_config(session, config_name)
        row.pending_config_name = config_name
        row.status = "Updating" if row.status == "InService" else "Creating"
        row.failure_reason = None
    if routing is not None:
        get_flow(session, routing.flow)
        row.routing = routing.model_dump_json()
    elif clear_routing:
        row.routing = None
    row.last_modified_at = now_ms
    return row


def own_config_name(endpoint_name: str) -> str:
    """The config that ``deploy`` (and ``loopin endpoints create``) makes for an endpoint."""
    return f"{endpoint_name}-config"


def deploy(
    session: Session,
    *,
    name: str,
    model: str,
    instance_count: int = 1,
    routing: RoutingRule | None = None,
    now_ms: int,
) -> Endpoint:
    """An endpoint serving one model, with its own config ``NAME-config`` (one variant,
    ``AllTraffic``), made in one step. Loading happens later, in ``deploy_pending``."""
    _check_name(name, "Endpoint name")
    if len(own_config_name(name)) > 63:
        raise ValidationError(f"Endpoint name '{name}' is too long: use at most {63 - len('-config')} characters.")
    if session.scalar(select(Endpoint.id).where(Endpoint.name == name)) is not None:
        raise ResourceInUseError(f"An endpoint named '{name}' exists already.")
    variant = {"variant_name": "AllTraffic", "model": model, "instance_count": instance_count}
    create_config(session, name=own_config_name(name), variants=[variant], now_ms=now_ms)
    return create_endpoint(session, name=name, config_name=own_config_name(name), routing=routing, now_ms=now_ms)


def delete_endpoint(session: Session, name: str, *, with_own_config: bool = False) -> None:
    """Delete the endpoint; with ``with_own_config``, its config too when it is the one
    ``deploy`` made (``NAME-config``) and no other endpoint uses it, so that the same name
    can be deployed again. SageMaker's DeleteEndpoint keeps every config."""
    row = get_endpoint(session, name)
    own = own_config_name(name)
    session.delete(row)
    session.flush()
    if with_own_config and own in (row.config_name, row.pending_config_name):
        config = session.scalar(select(EndpointConfig).where(EndpointConfig.name == own))
        in_use = session.scalar(
            select(Endpoint.id).where((Endpoint.config_name == own) | (Endpoint.pending_config_name == own)).limit(1)
        )
        if config is not None and in_use is None:
            session.delete(config)


def last_invoked_ms(session: Session, name: str) -> int | None:
    """When the endpoint last answered (from the prediction log's index; no count)."""
    return session.scalar(
        select(Prediction.created_at)
        .where(Prediction.endpoint_name == name)
        .order_by(Prediction.created_at.desc())
        .limit(1)
    )


# -- serving -------------------------------------------------------------------------


def _build_variants(session: Session, host: ModelHost, config_name: str) -> tuple[Variant, ...]:
    config = get_config(session, config_name)
    variants = []
    for v in json.loads(config.variants):
        detector = host.load(model_definition(session, v["model"]))
        variants.append(
            Variant(v["variant_name"], detector, float(v["weight"]), threading.BoundedSemaphore(v["instance_count"]))
        )
    return tuple(variants)


def served(ctx: Services, endpoint: Endpoint) -> Served:
    """The loaded models for an endpoint that is InService (or Updating: old config)."""

    def build() -> tuple[Variant, ...]:
        with ctx.db.read() as session:
            return _build_variants(session, ctx.models, endpoint.config_name)

    return ctx.models.serve(endpoint.name, endpoint.generation, build)


def not_in_service(endpoint: Endpoint) -> ValidationError:
    """The error of a call to an endpoint that is not serving (details.reason
    ``EndpointNotInService``, a stable code callers such as batch jobs test)."""
    return ValidationError(
        f"Endpoint '{endpoint.name}' is {endpoint.status}, not InService.",
        details={"reason": "EndpointNotInService", "status": endpoint.status},
    )


def detect(
    ctx: Services, endpoint: Endpoint, image: bytes, *, variant: str | None = None
) -> tuple[str, DetectionResult]:
    """Run the endpoint's model on ``image`` and nothing else: no prediction log, no routing
    (the admin console's "Try it", and the first step of an invocation). Returns the variant
    that answered and the result."""
    if not image:
        raise ValidationError("The image is empty.")
    if endpoint.status not in ("InService", "Updating"):
        raise not_in_service(endpoint)
    chosen = served(ctx, endpoint).pick(variant)
    decoded = ctx.models.decode(image)
    with chosen.slots:
        try:
            return chosen.name, chosen.detector.detect_image(decoded)
        except ValidationError:
            raise
        except Exception as exc:  # the model itself failed
            raise ModelError(f"The model failed on this input: {exc}") from exc


def deploy_pending(ctx: Services) -> int:
    """Load the models of endpoints being created or updated, then put them InService
    (or Failed with the reason). Idempotent; several processes may do it at once."""
    with ctx.db.read() as session:
        pending = [
            (e.id, e.name, e.status, e.generation, e.pending_config_name or e.config_name)
            for e in session.scalars(select(Endpoint).where(Endpoint.status.in_(("Creating", "Updating"))))
        ]
    done = 0
    for endpoint_id, name, status, generation, config_name in pending:
        try:
            with ctx.db.read() as session:
                variants = _build_variants(session, ctx.models, config_name)
        except LoopinError as exc:
            log.warning("endpoint %s cannot load its models: %s", name, exc.message)
            _finish_deploy(ctx, endpoint_id, generation, status, config_name, error=exc.message)
            continue
        except Exception as exc:  # a broken model file can fail in many ways
            log.exception("endpoint %s failed to load", name)
            _finish_deploy(ctx, endpoint_id, generation, status, config_name, error=f"The model failed to load: {exc}")
            continue
        if _finish_deploy(ctx, endpoint_id, generation, status, config_name, error=None):
            ctx.models.install(name, Served(generation + 1, variants))
            done += 1
    return done


def _finish_deploy(
    ctx: Services, endpoint_id: int, generation: int, status: str, config_name: str, *, error: str | None
) -> bool:
    now = ctx.clock.now_ms()
    guard = (Endpoint.id == endpoint_id, Endpoint.generation == generation, Endpoint.status == status)
    if error is None:
        values: dict[str, Any] = {
            "status": "InService",
            "config_name": config_name,
            "pending_config_name": None,
            "failure_reason": None,
            "generation": generation + 1,
        }
    elif status == "Updating":  # the old config keeps serving
        values = {"status": "InService", "pending_config_name": None, "failure_reason": error[:1024]}
    else:
        values = {"status": "Failed", "failure_reason": error[:1024]}
    with ctx.db.write() as session:
        changed = session.execute(update(Endpoint).where(*guard).values(last_modified_at=now, **values)).rowcount  # type: ignore[attr-defined]
    return bool(changed) and error is None
