"""An admin's commands against a server's API for hosting models: models, endpoints (deploy,
invoke, routing, the threshold picture), webhooks and their deliveries; same credentials as
``loopin.cli.resources``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError as PydanticValidationError

from loopin.cli.output import (
    JsonFlag,
    UrlOption,
    api_client,
    emit,
    err,
    json_object,
    new_table,
    out,
    print_table,
    read_arg,
    with_progress,
)
from loopin.errors import ValidationError
from loopin.schemas import RoutingRule

models_app = typer.Typer(
    help="Models: the built-in catalogue and your own ONNX or Python models.", no_args_is_help=True
)
endpoints_app = typer.Typer(
    help="Inference endpoints: deploy a model, invoke it, route doubts to people.", no_args_is_help=True
)
webhooks_app = typer.Typer(help="Webhooks for loop status changes.", no_args_is_help=True)
deliveries_app = typer.Typer(help="Webhook deliveries: the dead-letter list and replay.", no_args_is_help=True)
GROUPS = [
    (models_app, "models"),
    (endpoints_app, "endpoints"),
    (webhooks_app, "webhooks"),
    (deliveries_app, "deliveries"),
]


# -- models and endpoints ------------------------------------------------------------


@models_app.command("catalog")
def models_catalog(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """The built-in models, deployable by name."""
    emit(api_client(url).model_catalog(), as_json, ["name", "version", "licence", "input_size"])


@models_app.command("register")
def models_register(
    name: str,
    onnx: Annotated[str | None, typer.Option(help="file:///path or s3://bucket/key of an ONNX detector.")] = None,
    spec: Annotated[str | None, typer.Option(help="The ONNX model's spec: JSON, @file or -.")] = None,
    python: Annotated[str | None, typer.Option("--callable", help="A Python model, 'module:function'.")] = None,
    builtin: Annotated[str | None, typer.Option(help="A built-in model, under another name.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a model. An ONNX detector needs a spec: input_size, layout, channel_order,
    scale/mean/std, head (nanodet or yolov8) and class_names."""
    spec_value = json_object(read_arg(spec), "spec") if spec else None
    model = api_client(url).register_model(name, builtin=builtin, onnx_uri=onnx, callable=python, spec=spec_value)
    emit(model, as_json)


@models_app.command("list")
def models_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """Registered models (the built-in ones are in `loopin models catalog`)."""
    emit(api_client(url).list_models(), as_json, ["name", "kind", "builtin_name", "onnx_uri", "callable", "created_at"])


@models_app.command("delete")
def models_delete(name: str, url: UrlOption = None) -> None:
    api_client(url).delete_model(name)
    out.print(f"deleted model {name}")


def _routing(
    flow: str | None,
    threshold: float | None,
    classes: list[str] | None,
    sample: float | None,
    min_score: float | None = None,
    class_min_scores: list[str] | None = None,
    labels: list[str] | None = None,
) -> Any:
    if flow is None:
        if (
            threshold is not None
            or classes
            or sample is not None
            or min_score is not None
            or class_min_scores
            or labels
        ):
            raise ValidationError("Routing options need --flow: the flow definition that reviews the images.")
        return None
    rule: dict[str, Any] = {"flow": flow, "classes": classes or None, "labels": labels or None}
    if class_min_scores:
        rule["class_min_scores"] = dict(_label_value(item) for item in class_min_scores)
    if threshold is not None:
        rule["threshold"] = threshold
    if sample is not None:
        rule["sample_percent"] = sample
    if min_score is not None:
        rule["min_score"] = min_score
    try:
        return RoutingRule.model_validate(rule)
    except PydanticValidationError as exc:
        raise ValidationError("Invalid routing: " + "; ".join(e["msg"] for e in exc.errors())) from exc


def _label_value(item: str) -> tuple[str, float]:
    label, sep, value = item.rpartition("=")
    try:
        if sep and label.strip():
            return label.strip(), float(value)
    except ValueError:
        pass
    raise ValidationError(f"--class-min-score takes LABEL=SCORE, such as cup=0.2 (got {item!r}).")


FlowOption = Annotated[str | None, typer.Option(help="Flow definition that reviews doubtful images.")]
ThresholdOption = Annotated[float | None, typer.Option(help="Detections below it go to people (default 0.9).")]
ClassOption = Annotated[list[str] | None, typer.Option("--class", help="Only this class counts (repeatable).")]
SampleOption = Annotated[float | None, typer.Option(help="Percent of confident images sent for an audit.")]
MinScoreOption = Annotated[
    float | None,
    typer.Option(
        help="The lower bound of 'uncertain': detections below it are noise (default 0.3, below the threshold)."
    ),
]
ClassMinScoreOption = Annotated[
    list[str] | None,
    typer.Option("--class-min-score", help="A class's own lower bound, LABEL=SCORE such as cup=0.2 (repeatable)."),
]
LabelOption = Annotated[
    list[str] | None,
    typer.Option("--label", help="A label offered to the reviewer (repeatable; default: every class of the model)."),
]


@endpoints_app.command("create")
def endpoints_create(
    name: str,
    model: Annotated[str, typer.Option(help="A built-in or registered model.")],
    instances: Annotated[int, typer.Option(help="Inferences at once per server process.")] = 1,
    flow: FlowOption = None,
    threshold: ThresholdOption = None,
    classes: ClassOption = None,
    sample_percent: SampleOption = None,
    min_score: MinScoreOption = None,
    class_min_score: ClassMinScoreOption = None,
    label: LabelOption = None,
    wait: Annotated[bool, typer.Option(help="Wait until the endpoint is InService.")] = True,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Deploy a model as an endpoint (with an endpoint config named NAME-config)."""
    from loopin.schemas import VariantSpec

    client = api_client(url)
    routing = _routing(flow, threshold, classes, sample_percent, min_score, class_min_score, label)
    client.create_endpoint_config(f"{name}-config", variants=[VariantSpec(model=model, instance_count=instances)])
    endpoint = client.create_endpoint(name, config=f"{name}-config", routing=routing)
    if wait:
        with err.status(f"deploying {name}"):
            endpoint = client.wait_for_endpoint(name)
    emit(endpoint, as_json)
    if endpoint.status == "Failed":
        raise typer.Exit(1)


@endpoints_app.command("list")
def endpoints_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).list_endpoints(), as_json, ["name", "status", "config", "routing", "last_modified_at"])


@endpoints_app.command("describe")
def endpoints_describe(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).describe_endpoint(name), as_json)


@endpoints_app.command("update")
def endpoints_update(
    name: str,
    config: Annotated[str | None, typer.Option(help="Serve this endpoint config (loaded in the background).")] = None,
    flow: FlowOption = None,
    threshold: ThresholdOption = None,
    classes: ClassOption = None,
    sample_percent: SampleOption = None,
    min_score: MinScoreOption = None,
    class_min_score: ClassMinScoreOption = None,
    label: LabelOption = None,
    no_routing: Annotated[bool, typer.Option(help="Stop routing to people.")] = False,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an endpoint's config or its routing rule."""
    routing = _routing(flow, threshold, classes, sample_percent, min_score, class_min_score, label)
    emit(api_client(url).update_endpoint(name, config=config, routing=routing, clear_routing=no_routing), as_json)


@endpoints_app.command("delete")
def endpoints_delete(name: str, url: UrlOption = None) -> None:
    api_client(url).delete_endpoint(name)
    out.print(f"deleted endpoint {name}")


@endpoints_app.command("invoke")
def endpoints_invoke(
    name: str,
    images: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Image files.")],
    flow: FlowOption = None,
    threshold: ThresholdOption = None,
    classes: ClassOption = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Detect objects on images; doubtful ones go to people when the endpoint (or --flow) routes.

    Each image is sent with an idempotency key made from its content and the routing
    options, so running the same command again starts no second review."""
    client = api_client(url)

    def one(path: Path) -> Any:
        data = path.read_bytes()
        kind = {".png": "image/png", ".webp": "image/webp"}.get(path.suffix.lower(), "image/jpeg")
        options = json.dumps([flow, threshold, sorted(classes or [])]).encode()
        key = "cli-" + hashlib.sha256(data + b"\0" + options).hexdigest()
        result = client.invoke_endpoint(
            name, data, content_type=kind, flow=flow, threshold=threshold, classes=classes, idempotency_key=key
        )
        return path, result

    results = with_progress(images, "invoking", one)
    if as_json:
        out.print_json(json.dumps([{"file": str(p), **r.model_dump(mode="json")} for p, r in results]))
        return
    table = new_table("image", "detections", "best", "human loop")
    for path, result in results:
        best = max(result.detections, key=lambda d: d.score, default=None)
        table.add_row(
            str(path),
            str(len(result.detections)),
            f"{best.label} {best.score:.2f}" if best else "",
            result.human_loop.name if result.human_loop else "",
        )
    print_table(table)
    routed = sum(1 for _, r in results if r.human_loop)
    out.print(f"{routed} of {len(results)} images went to people")


# -- webhooks and deliveries ---------------------------------------------------------


@webhooks_app.command("create")
def webhooks_create(
    name: str,
    url_: Annotated[str, typer.Option("--to", help="The receiver's URL.")],
    flow: Annotated[str | None, typer.Option(help="Only this flow's events (default: every flow).")] = None,
    allow_private_network: Annotated[
        bool, typer.Option(help="Let it reach loopback or private addresses (off by default: SSRF guard).")
    ] = False,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Send every loop status change to a URL, signed (Standard Webhooks). The secret is shown once."""
    client = api_client(url)
    emit(client.create_webhook(name, url=url_, flow=flow, allow_private_network=allow_private_network), as_json)


@webhooks_app.command("list")
def webhooks_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).list_webhooks(), as_json, ["name", "url", "flow", "allow_private_network", "created_at"])


@webhooks_app.command("delete")
def webhooks_delete(name: str, url: UrlOption = None) -> None:
    api_client(url).delete_webhook(name)
    out.print(f"deleted webhook {name}")


@deliveries_app.command("list")
def deliveries_list(
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead (the dead-letter list).")] = None,
    webhook: Annotated[str | None, typer.Option(help="Only this webhook.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    rows = api_client(url).list_deliveries(status=status, webhook=webhook, limit=limit)
    emit(rows, as_json, ["id", "webhook", "loop", "loop_status", "status", "attempts", "last_error"])


@deliveries_app.command("replay")
def deliveries_replay(
    ids: Annotated[list[int], typer.Argument(help="Delivery ids.")], url: UrlOption = None, as_json: JsonFlag = False
) -> None:
    """Send dead-lettered deliveries again, with a fresh retry budget."""
    client = api_client(url)
    emit([client.replay_delivery(i) for i in ids], as_json, ["id", "webhook", "loop", "status"])
