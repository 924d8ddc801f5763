"""Control-plane operations for hosting: Model -> EndpointConfig -> Endpoint, mapped onto
loopin's models, endpoint configs and endpoints. A missing resource answers
``ValidationException``, as on SageMaker: boto3's ``endpoint_deleted`` waiter takes it as
"deleted" and ``endpoint_in_service`` as a failure.

What a model's container means to loopin (it runs ONNX detectors, not containers):

* ``ModelPackageName`` naming AWS Marketplace's GluonCV SSD detector
  (``…:model-package/gluoncv-ssd-resnet50…`` in any region, or that name alone): the
  built-in COCO detector, which answers in the same format;
* ``Environment.LOOPIN_BUILTIN_MODEL``: any built-in detector by name;
* ``ModelDataUrl`` pointing at an ``.onnx`` file (``s3://`` or ``file:///``), with the
  model's spec (input size, layout, head, class names...) as JSON in
  ``Environment.LOOPIN_MODEL_SPEC``: a user model.

``Image`` and the other container fields are stored and echoed, not used.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy.orm import Session

from loopin import endpoints
from loopin.errors import NotFoundError, ValidationError
from loopin.models import Endpoint, EndpointConfig, Model
from loopin.services import Services
from loopin.web.aws.control_common import Operation, epoch, paginate, with_token
from loopin.web.aws.fields import Fields

NOT_FOUND = "ValidationException"
GLUONCV_PACKAGE = re.compile(r"(?:^|/)gluoncv-ssd-resnet50")
GLUONCV_BUILTIN = "nanodet-g-416-coco"
BUILTIN_ENV = "LOOPIN_BUILTIN_MODEL"
SPEC_ENV = "LOOPIN_MODEL_SPEC"
MAX_INSTANCES = 16


def hosting_operations(ctx: Services) -> dict[str, Operation]:
    ops = _Hosting(ctx)
    return {
        name: Operation(getattr(ops, name), NOT_FOUND)
        for name in (
            "CreateModel",
            "DescribeModel",
            "ListModels",
            "DeleteModel",
            "CreateEndpointConfig",
            "DescribeEndpointConfig",
            "ListEndpointConfigs",
            "DeleteEndpointConfig",
            "CreateEndpoint",
            "DescribeEndpoint",
            "ListEndpoints",
            "UpdateEndpoint",
            "DeleteEndpoint",
        )
    }


def model_source(container: Fields) -> dict[str, Any]:
    """``register_model``'s arguments for a SageMaker container definition."""
    package = container.opt_text("ModelPackageName", max_len=2048)
    environment = container.opt_obj("Environment")
    env = environment.data if environment else {}
    if package is not None:
        if GLUONCV_PACKAGE.search(package):
            return {"builtin": GLUONCV_BUILTIN}
        raise ValidationError(
            f"loopin does not serve the model package '{package}'. It maps AWS Marketplace's GluonCV SSD "
            f"detector (model-package/gluoncv-ssd-resnet50...) to its built-in detector; for other models "
            f"give ModelDataUrl (an ONNX file) with its spec in Environment.{SPEC_ENV}."
        )
    if BUILTIN_ENV in env:
        return {"builtin": str(env[BUILTIN_ENV])}
    data_url = container.opt_text("ModelDataUrl")
    if data_url is None:
        raise ValidationError(
            "The container needs ModelPackageName (the GluonCV SSD Marketplace package), ModelDataUrl "
            f"(an ONNX file) or Environment.{BUILTIN_ENV}."
        )
    if not data_url.lower().endswith(".onnx"):
        raise ValidationError(
            f"ModelDataUrl '{data_url}' is not an .onnx file: loopin runs ONNX detectors, not model.tar.gz containers."
        )
    try:
        spec = json.loads(env[SPEC_ENV])
    except (KeyError, TypeError, ValueError):
        raise ValidationError(
            f"An ONNX model needs its spec as a JSON object in Environment.{SPEC_ENV} "
            "(head, class_names, input_size, ...; see loopin's docs)."
        ) from None
    if not isinstance(spec, dict):
        raise ValidationError(f"Environment.{SPEC_ENV} must hold a JSON object.")
    return {"onnx_uri": data_url, "spec": spec}


class _Hosting:
    def __init__(self, ctx: Services) -> None:
        self.ctx = ctx

    def _arn(self, kind: str, name: str) -> str:
        return self.ctx.settings.arn(kind, name)

    def _now(self) -> int:
        return self.ctx.clock.now_ms()

    # -- models ----------------------------------------------------------------------------

    def CreateModel(self, body: Fields) -> dict[str, Any]:
        name = body.text("ModelName", max_len=63)
        primary = body.opt_obj("PrimaryContainer")
        containers = body.objects("Containers", min_items=0, max_items=15)
        if primary is None and len(containers) != 1:
            raise ValidationError(
                "loopin serves one container per model: give PrimaryContainer (or one of Containers)."
            )
        container = primary or containers[0]
        source = model_source(container)
        echoed: dict[str, Any] = {
            k: body.data[k]
            for k in ("PrimaryContainer", "Containers", "ExecutionRoleArn", "EnableNetworkIsolation")
            if k in body.data
        }
        self.ctx.write(
            lambda s: endpoints.register_model(s, name=name, aws_definition=echoed, now_ms=self._now(), **source)
        )
        return {"ModelArn": self._arn("model", name)}

    def DescribeModel(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            model = endpoints.get_model(s, body.text("ModelName", max_len=63))
        definition = (
            json.loads(model.aws_definition) if model.aws_definition else {"PrimaryContainer": _container(model)}
        )
        return {
            "ModelName": model.name,
            "ModelArn": self._arn("model", model.name),
            "CreationTime": epoch(model.created_at),
        } | definition

    def ListModels(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            rows = endpoints.list_models(s)
        page, token = paginate(
            body,
            rows,
            name=lambda m: m.name,
            created_ms=lambda m: m.created_at,
            sort_keys={"Name": lambda m: m.name, "CreationTime": lambda m: m.created_at},
            default_sort="CreationTime",
        )
        models = [
            {"ModelName": m.name, "ModelArn": self._arn("model", m.name), "CreationTime": epoch(m.created_at)}
            for m in page
        ]
        return with_token({"Models": models}, token)

    def DeleteModel(self, body: Fields) -> dict[str, Any]:
        name = body.text("ModelName", max_len=63)
        self.ctx.write(lambda s: endpoints.delete_model(s, name))
        return {}

    # -- endpoint configs ------------------------------------------------------------------

    def CreateEndpointConfig(self, body: Fields) -> dict[str, Any]:
        name = body.text("EndpointConfigName", max_len=63)
        variants = []
        for v in body.objects("ProductionVariants", min_items=1, max_items=10):
            serverless = v.opt_obj("ServerlessConfig")
            count = v.opt_int("InitialInstanceCount", low=1, high=MAX_INSTANCES)
            if count is None and serverless is not None:  # concurrency, as instances of the model
                count = min(serverless.opt_int("MaxConcurrency", low=1, high=200) or 1, MAX_INSTANCES)
            weight = v.opt_number("InitialVariantWeight", low=0)
            variants.append(
                {
                    "variant_name": v.text("VariantName", max_len=63),
                    "model": v.text("ModelName", max_len=63),
                    "instance_count": count or 1,
                    "weight": 1.0 if weight is None else weight,
                }
            )
        self.ctx.write(lambda s: endpoints.create_config(s, name=name, variants=variants, now_ms=self._now()))
        return {"EndpointConfigArn": self._arn("endpoint-config", name)}

    def DescribeEndpointConfig(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            config = endpoints.get_config(s, body.text("EndpointConfigName", max_len=63))
        variants = [
            {
                "VariantName": v["variant_name"],
                "ModelName": v["model"],
                "InitialInstanceCount": v["instance_count"],
                "InitialVariantWeight": v["weight"],
            }
            for v in json.loads(config.variants)
        ]
        return self._config_summary(config) | {"ProductionVariants": variants}

    def ListEndpointConfigs(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            rows = endpoints.list_configs(s)
        page, token = paginate(
            body,
            rows,
            name=lambda c: c.name,
            created_ms=lambda c: c.created_at,
            sort_keys={"Name": lambda c: c.name, "CreationTime": lambda c: c.created_at},
            default_sort="CreationTime",
        )
        return with_token({"EndpointConfigs": [self._config_summary(c) for c in page]}, token)

    def DeleteEndpointConfig(self, body: Fields) -> dict[str, Any]:
        name = body.text("EndpointConfigName", max_len=63)
        self.ctx.write(lambda s: endpoints.delete_config(s, name))
        return {}

    def _config_summary(self, config: EndpointConfig) -> dict[str, Any]:
        return {
            "EndpointConfigName": config.name,
            "EndpointConfigArn": self._arn("endpoint-config", config.name),
            "CreationTime": epoch(config.created_at),
        }

    # -- endpoints -------------------------------------------------------------------------

    def CreateEndpoint(self, body: Fields) -> dict[str, Any]:
        name = body.text("EndpointName", max_len=63)
        config = body.text("EndpointConfigName", max_len=63)
        self.ctx.write(lambda s: endpoints.create_endpoint(s, name=name, config_name=config, now_ms=self._now()))
        return {"EndpointArn": self._arn("endpoint", name)}

    def DescribeEndpoint(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            endpoint = endpoints.get_endpoint(s, body.text("EndpointName", max_len=63))
            answer = self._endpoint_summary(endpoint) | {"EndpointConfigName": endpoint.config_name}
            if endpoint.status in ("InService", "Updating"):
                answer["ProductionVariants"] = _deployed_variants(s, endpoint.config_name)
        if endpoint.failure_reason:
            answer["FailureReason"] = endpoint.failure_reason
        if endpoint.pending_config_name:
            answer["PendingDeploymentSummary"] = {"EndpointConfigName": endpoint.pending_config_name}
        return answer

    def ListEndpoints(self, body: Fields) -> dict[str, Any]:
        status = body.opt_text("StatusEquals", max_len=32)
        modified_after = body.opt_time_ms("LastModifiedTimeAfter")
        modified_before = body.opt_time_ms("LastModifiedTimeBefore")
        with self.ctx.db.read() as s:
            rows = [
                e
                for e in endpoints.list_endpoints(s)
                if (status is None or e.status == status)
                and (modified_after is None or e.last_modified_at >= modified_after)
                and (modified_before is None or e.last_modified_at <= modified_before)
            ]
        page, token = paginate(
            body,
            rows,
            name=lambda e: e.name,
            created_ms=lambda e: e.created_at,
            sort_keys={"Name": lambda e: e.name, "CreationTime": lambda e: e.created_at, "Status": lambda e: e.status},
            default_sort="CreationTime",
        )
        return with_token({"Endpoints": [self._endpoint_summary(e) for e in page]}, token)

    def UpdateEndpoint(self, body: Fields) -> dict[str, Any]:
        name = body.text("EndpointName", max_len=63)
        config = body.text("EndpointConfigName", max_len=63)
        self.ctx.write(lambda s: endpoints.update_endpoint(s, name, config_name=config, now_ms=self._now()))
        return {"EndpointArn": self._arn("endpoint", name)}

    def DeleteEndpoint(self, body: Fields) -> dict[str, Any]:
        name = body.text("EndpointName", max_len=63)
        self.ctx.write(lambda s: endpoints.delete_endpoint(s, name))
        self.ctx.models.forget(name)
        return {}

    def _endpoint_summary(self, endpoint: Endpoint) -> dict[str, Any]:
        return {
            "EndpointName": endpoint.name,
            "EndpointArn": self._arn("endpoint", endpoint.name),
            "EndpointStatus": endpoint.status,
            "CreationTime": epoch(endpoint.created_at),
            "LastModifiedTime": epoch(endpoint.last_modified_at),
        }


def _deployed_variants(s: Session, config_name: str) -> list[dict[str, Any]]:
    try:
        config = endpoints.get_config(s, config_name)
    except NotFoundError:  # the config was deleted; the endpoint keeps serving what it loaded
        return []
    return [
        {
            "VariantName": v["variant_name"],
            "CurrentWeight": v["weight"],
            "DesiredWeight": v["weight"],
            "CurrentInstanceCount": v["instance_count"],
            "DesiredInstanceCount": v["instance_count"],
        }
        for v in json.loads(config.variants)
    ]


def _container(model: Model) -> dict[str, Any]:
    """A container definition for a model registered through loopin's own API."""
    if model.kind == "builtin":
        return {"Environment": {BUILTIN_ENV: model.builtin_name}}
    if model.kind == "onnx":
        return {"ModelDataUrl": model.artifact_uri, "Environment": {SPEC_ENV: model.spec}}
    return {"Environment": {"LOOPIN_MODEL_CALLABLE": model.callable_target}}
