"""Invoking an endpoint: run the model, log the prediction, and start a human loop when
the routing rule fires. A retried call with the same idempotency key gets the first call's
answer back and starts nothing."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from loopin import document_review, flows, loop_stats, moderation_review
from loopin.activation import REKOGNITION_V3, TEXTRACT_SOURCE, Evaluation, is_rekognition
from loopin.endpoints import detect, get_endpoint, routing_rule
from loopin.errors import ValidationError
from loopin.inference import DetectionResult
from loopin.loops import start_loop
from loopin.models import Endpoint, Prediction
from loopin.routing import decide, loop_input, with_overrides
from loopin.schemas import RoutingRule
from loopin.services import Services
from loopin.store import join_uri

MAX_BODY_BYTES = 6_291_456  # SageMaker's InvokeEndpoint limit
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "application/x-image")
# ``endpoints.detect``'s signature: (ctx, endpoint, image, *, variant) -> (variant, result).
ModelRunner = Callable[..., tuple[str, DetectionResult]]
_PREDICTIONS = cast(Table, Prediction.__table__)
_INSERT_PREDICTION = insert(_PREDICTIONS).returning(_PREDICTIONS.c.id)
_IMAGE_SUFFIX = {b"\xff\xd8\xff": ("jpg", "image/jpeg"), b"\x89PNG": ("png", "image/png")}


def invocation_body(body: bytes | None) -> bytes:
    """An invocation's body as read with the ``MAX_BODY_BYTES`` cap (None: it was over)."""
    if body is None:
        raise ValidationError(f"The body is larger than {MAX_BODY_BYTES:,} bytes (6 MiB).")
    return body


def check_image_type(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media and media not in IMAGE_TYPES:
        raise ValidationError(f"Content-Type '{media}' is not an image type loopin reads ({', '.join(IMAGE_TYPES)}).")


@dataclass(frozen=True)
class Invocation:
    """The native answer (a JSON-ready dict) and whether it was replayed for a retried key."""

    body: dict[str, Any]
    replayed: bool

    def gluon(self) -> list[dict[str, Any]]:
        """The Marketplace GluonCV detector's format: ``[{id, score, left, top, right, bottom}]``."""
        return [
            {k: d[k] for k in ("score", "left", "top", "right", "bottom")} | {"id": d["label"]}
            for d in self.body["detections"]
        ]


def invoke(
    ctx: Services,
    endpoint_name: str,
    image: bytes,
    *,
    routing: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    variant: str | None = None,
    run_model: ModelRunner = detect,
) -> Invocation:
    """Detect objects on ``image``; ``routing`` changes the endpoint's rule for this call
    (keys of ``RoutingRule``). ``run_model`` runs the model (``endpoints.detect`` in this
    process; a batch job's executor may run it elsewhere): everything else is the same."""
    prepared = prepare(
        ctx,
        endpoint_name,
        image,
        routing=routing,
        idempotency_key=idempotency_key,
        variant=variant,
        run_model=run_model,
    )
    if isinstance(prepared, Invocation):
        return prepared
    # Grouped with the other hot-path writes of this process (concurrent invocations,
    # claims and submits): one commit for many.
    return ctx.write_grouped(prepared)


Record = Callable[[Session], Invocation]


def prepare(
    ctx: Services,
    endpoint_name: str,
    image: bytes,
    *,
    routing: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    variant: str | None = None,
    run_model: ModelRunner = detect,
) -> Invocation | Record:
    """``invoke`` up to its database write: the model run, the rule applied, a routed image
    stored. Returns the write still to make (the prediction row and the loop, in the
    caller's transaction: a batch job records several images in one), or the first call's
    answer when the idempotency key was seen before."""
    _check_request(image, idempotency_key)
    with ctx.db.read() as session:
        endpoint = get_endpoint(session, endpoint_name)
        if idempotency_key is not None and (done := _logged(session, endpoint_name, idempotency_key)):
            return _replay(done)
    return prepare_unlogged(
        ctx, endpoint, image, routing=routing, idempotency_key=idempotency_key, variant=variant, run_model=run_model
    )


def prepare_unlogged(
    ctx: Services,
    endpoint: Endpoint,
    image: bytes,
    *,
    routing: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    variant: str | None = None,
    run_model: ModelRunner = detect,
) -> Record:
    """``prepare`` on an endpoint row the caller has read, for an idempotency key it knows
    was not logged then (a batch job reads both for a page of images at once). A key logged
    meanwhile is still caught: the write replays the first answer."""
    _check_request(image, idempotency_key)
    endpoint_name = endpoint.name
    variant_name, result = run_model(ctx, endpoint, image, variant=variant)
    rule = with_overrides(routing_rule(endpoint), routing or {})
    digest = hashlib.sha256(image).hexdigest()
    review = _route(ctx, rule, result, digest) if rule else _Review(None)
    reason = review.reason
    image_uri = None
    if rule is not None and reason is not None:
        suffix, content_type = _image_type(image)
        image_uri = join_uri(ctx.settings.routing_image_location, endpoint_name, f"{digest}.{suffix}")
        ctx.store.put(image_uri, image, content_type=content_type)  # content-addressed: safe to repeat

    def record(session: Session) -> Invocation:
        if idempotency_key is not None and (done := _logged(session, endpoint_name, idempotency_key)):
            return _replay(done)
        loop = None
        if rule is not None and reason is not None and image_uri is not None:
            loop_name = derived_loop_name(endpoint_name, idempotency_key)
            started, _ = start_loop(
                session,
                name=loop_name,
                flow_name=rule.flow,
                input_content=json.dumps(_loop_input(rule, result, image_uri, review), sort_keys=True),
                default_input_locations=ctx.default_input_locations,
                now_ms=ctx.clock.now_ms(),
            )
            loop = {
                "name": started.name,
                "arn": ctx.settings.arn("human-loop", started.name),
                "status": started.status,
            }
        body = _native(result, variant_name, loop, reason, rule)
        # The answer is kept without its detections (they have their column) and without
        # its own id; a replay puts both back.
        rest = {k: v for k, v in body.items() if k != "detections"}
        # One INSERT ... RETURNING, without the ORM's unit of work (nothing reads the row
        # back); so the invocation counters are told by hand.
        created_at = ctx.clock.now_ms()
        row = {
            "endpoint_name": endpoint_name,
            "model_name": result.model_name,
            "image_sha256": digest,
            "image_width": result.image_width,
            "image_height": result.image_height,
            "detections": json.dumps(body["detections"]),
            "flow_name": rule.flow if rule else None,
            "threshold": rule.threshold if rule else None,
            "routed_reason": reason,
            "loop_name": loop["name"] if loop else None,
            "image_uri": image_uri,
            "idempotency_key": idempotency_key,
            "response": json.dumps(rest),
            "created_at": created_at,
        }
        body["prediction_id"] = session.connection().execute(_INSERT_PREDICTION, row).scalar_one()
        routed = reason is not None
        loop_stats.count_invocation(session, endpoint_name=endpoint_name, created_at=created_at, routed=routed)
        return Invocation(body, replayed=False)

    return record


def _check_request(image: bytes, idempotency_key: str | None) -> None:
    if not image:
        raise ValidationError("The request body is empty: send the image bytes.")
    if len(image) > MAX_BODY_BYTES:
        raise ValidationError(f"The body is larger than {MAX_BODY_BYTES:,} bytes.")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 256:
        raise ValidationError("The idempotency key must be 1 to 256 characters.")


@dataclass(frozen=True)
class _Review:
    """Why the image goes to a person (None: it does not) and, for A2I's built-in task types,
    the flow's request source, activation conditions and their evaluation."""

    reason: str | None
    source: str | None = None
    conditions: dict[str, Any] | None = None
    evaluation: Evaluation | None = None


def _route(ctx: Services, rule: RoutingRule, result: DetectionResult, digest: str) -> _Review:
    """A detector's result is routed by the rule. A text reader's or a moderation
    classifier's is routed by the flow's activation conditions when the flow has them for
    that task type (as A2I evaluates them for Textract and Rekognition), else by the rule."""
    if result.document is None and result.moderation is None:
        return _Review(decide(rule, result.detections, digest))
    with ctx.db.read() as session:
        source, conditions = flows.activation_conditions(session, rule.flow) or (None, None)
    if result.moderation is not None:
        applies = is_rekognition(source)
        used = conditions if applies else None
        reason, evaluation = moderation_review.decide(rule, result.moderation, digest, used)
        return _Review(reason, source if applies else None, used, evaluation)
    if source == TEXTRACT_SOURCE and conditions is not None and result.document is not None:
        evaluation = document_review.evaluate(conditions, result.document, digest)
        return _Review("conditions" if evaluation.fired else None, source, conditions, evaluation)
    return _Review(decide(rule, result.detections, digest))


def _loop_input(rule: RoutingRule, result: DetectionResult, image_uri: str, review: _Review) -> dict[str, Any]:
    """A text reader's result goes to review in A2I's Textract shape, a moderation
    classifier's in its Rekognition shape; a detector's as boxes."""
    if result.document is not None:
        return document_review.review_input(
            rule,
            result.document,
            image_uri=image_uri,
            width=result.image_width,
            height=result.image_height,
            conditions=review.conditions,
            evaluation=review.evaluation,
        )
    if (labels := result.moderation_labels()) is not None and result.moderation is not None:
        return moderation_review.review_input(
            rule,
            result.moderation,
            image_uri=image_uri,
            model_version=labels["ModerationModelVersion"],
            source=review.source or REKOGNITION_V3,
            evaluation=review.evaluation,
        )
    return loop_input(rule, result.detections, image_uri=image_uri, model_classes=result.class_names)


def _replay(done: Prediction) -> Invocation:
    """The first call's answer, as it was sent."""
    rest = json.loads(done.response)
    rest.pop("detections", None)  # rows logged before the answer was kept without them
    rest.pop("prediction_id", None)
    return Invocation({"detections": json.loads(done.detections), **rest, "prediction_id": done.id}, replayed=True)


def _logged(session: Session, endpoint_name: str, key: str) -> Prediction | None:
    return session.scalar(
        select(Prediction).where(Prediction.endpoint_name == endpoint_name, Prediction.idempotency_key == key)
    )


def derived_loop_name(endpoint_name: str, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    # Derived from the key, so two racing retries name the same loop and start it once.
    return hashlib.sha256(f"{endpoint_name}\n{idempotency_key}".encode()).hexdigest()[:32]


def _image_type(image: bytes) -> tuple[str, str]:
    for magic, kind in _IMAGE_SUFFIX.items():
        if image.startswith(magic):
            return kind
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "webp", "image/webp"
    return "bin", "application/octet-stream"


def _native(
    result: DetectionResult, variant: str, loop: dict[str, Any] | None, reason: str | None, rule: RoutingRule | None
) -> dict[str, Any]:
    return (
        {
            "detections": [d.to_dict() for d in result.detections],
            "model": {"name": result.model_name, "version": result.model_version, "variant": variant},
            "image": {"width": result.image_width, "height": result.image_height},
            "inference_ms": round(result.inference_ms, 3),
            "routing": {"reason": reason, "flow": rule.flow, "threshold": rule.threshold} if rule else None,
            "human_loop": loop,
        }
        | ({"document": result.document.to_dict()} if result.document is not None else {})
        | ({"moderation": result.moderation_labels()} if result.moderation is not None else {})
    )
