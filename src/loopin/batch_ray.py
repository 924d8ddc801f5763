"""The Ray executor of batch jobs: the model runs as Ray tasks on a cluster, one task per
image; everything else (reading the images, the routing rule, loop starts, checkpoints)
stays in the server process that holds the job's lease, on the same path as the local
executor, so the answers and the loops are the same.

The driver ships each variant's model to the cluster once per endpoint generation (the
built-in model's name, an uploaded ONNX file's bytes with its spec, or a callable's
``module:function``) as a Ray object; a Ray worker process loads it on first use and keeps
it. The Ray workers need loopin installed (``pip install 'loopin[server,ray]'``).

Ray is optional (``pip install 'loopin[ray]'``): it is imported only when a job uses it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import random
import socket
import threading
from dataclasses import dataclass
from typing import Any

from loopin.endpoints import get_config, model_definition, not_in_service
from loopin.errors import ModelError, ValidationError
from loopin.inference import DetectionResult, Detector, ModelSpec, decode_image
from loopin.models import Endpoint
from loopin.services import Services

CONNECT_TIMEOUT_SECONDS = 3.0
TASK_RETRIES = 2  # a task whose worker process died runs again elsewhere


class ClusterUnavailable(Exception):
    """The Ray cluster cannot be reached or lost the job's tasks: the job fails with this reason."""


def installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def check_address(address: str) -> str:
    """Refuse at job creation a Ray executor that cannot run: Ray not installed, an address
    of another form, or nothing listening there. The address, normalised."""
    if not installed():
        raise ValidationError(
            "The Ray executor needs Ray on the server: pip install 'loopin[ray]'.",
            details={"reason": "RayNotInstalled"},
        )
    address = address.strip() or "auto"
    host_port = _bootstrap(address)
    if host_port is None:
        raise ValidationError(
            "No Ray cluster was found for address 'auto': start one (ray start --head) on the server's host, "
            "set RAY_ADDRESS, or give its address (host:port or ray://host:port).",
            details={"reason": "RayUnreachable", "address": address},
        )
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except (OSError, ValueError) as exc:
        raise ValidationError(
            f"The Ray cluster at '{address}' cannot be reached ({host_port}: {exc}); nothing was started.",
            details={"reason": "RayUnreachable", "address": address},
        ) from exc
    return address


def _bootstrap(address: str) -> str | None:
    """The host:port to reach for ``address`` (None: 'auto' found no cluster)."""
    if address.startswith("ray://"):
        rest = address[len("ray://") :].split("/", 1)[0]
        return rest if ":" in rest else f"{rest}:10001"
    if address == "auto":
        from ray._private import services as ray_services  # Ray's own lookup: RAY_ADDRESS, then the running cluster

        try:
            found = ray_services.canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError):
            return None
        return found if found and ":" in found else None
    if ":" not in address:
        raise ValidationError(
            f"The Ray address '{address}' is not 'auto', 'host:port' or 'ray://host:port'.",
            details={"reason": "RayUnreachable", "address": address},
        )
    return address


# -- the driver side (the server process) ----------------------------------------------

_connect_lock = threading.Lock()
_connected: list[str] = []  # the address this process is connected to ([] before ray.init)


def connect(address: str) -> None:
    """Connect this process to the cluster (once; again when a job names another cluster).
    A Ray session started by the embedding program (ray.init in a test or a notebook) is used
    as it is."""
    import ray

    with _connect_lock:
        if ray.is_initialized() and (not _connected or _connected[0] == address):
            return
        if ray.is_initialized():
            ray.shutdown()
        _connected.clear()
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except Exception as exc:  # ConnectionError, a timeout, a version mismatch...
            raise ClusterUnavailable(f"The Ray cluster at '{address}' cannot be reached: {exc}") from exc
        _connected.append(address)


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class _ShippedVariant:
    name: str
    weight: float
    recipe: Any  # a Ray ObjectRef of the recipe dict


class RayModelRunner:
    """``detect`` for one job: runs the endpoint's model on the cluster. Called from the
    runner's threads at once; ``ray.get`` is safe from several threads."""

    def __init__(self, ctx: Services) -> None:
        import ray

        self._ctx = ctx
        self._ray = ray
        self._task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(detect_on_worker)
        self._lock = threading.Lock()
        self._shipped: dict[tuple[str, int, str], tuple[_ShippedVariant, ...]] = {}

    def __call__(
        self, ctx: Services, endpoint: Endpoint, image: bytes, *, variant: str | None = None
    ) -> tuple[str, DetectionResult]:
        if not image:
            raise ValidationError("The image is empty.")
        if endpoint.status not in ("InService", "Updating"):
            raise not_in_service(endpoint)
        chosen = _pick(self._variants(endpoint), variant)
        try:
            answer = self._ray.get(self._task.remote(chosen.recipe, image))
        except self._ray.exceptions.RayError as exc:
            raise ClusterUnavailable(f"The Ray cluster lost a task: {exc}") from exc
        if answer[0] == "validation":
            raise ValidationError(answer[1])
        if answer[0] == "model":
            raise ModelError(answer[1])
        result: DetectionResult = answer[1]
        return chosen.name, result

    def _variants(self, endpoint: Endpoint) -> tuple[_ShippedVariant, ...]:
        key = (endpoint.name, endpoint.generation, endpoint.config_name)
        with self._lock:
            if key not in self._shipped:
                self._shipped = {key: self._ship(endpoint.config_name)}  # an older generation is not needed again
            return self._shipped[key]

    def _ship(self, config_name: str) -> tuple[_ShippedVariant, ...]:
        import json

        shipped = []
        with self._ctx.db.read() as session:
            config = get_config(session, config_name)
            for v in json.loads(config.variants):
                recipe = _recipe(self._ctx, model_definition(session, v["model"]))
                shipped.append(_ShippedVariant(v["variant_name"], float(v["weight"]), self._ray.put(recipe)))
        return tuple(shipped)


def _pick(variants: tuple[_ShippedVariant, ...], name: str | None) -> _ShippedVariant:
    """As ``Served.pick``: the named variant, or one drawn by weight."""
    if name is not None:
        for variant in variants:
            if variant.name == name:
                return variant
        raise ValidationError(f"The endpoint has no production variant named '{name}'.")
    weights = [v.weight for v in variants]
    if len(variants) == 1 or sum(weights) <= 0:
        return variants[0]
    return random.choices(variants, weights=weights)[0]


def _recipe(ctx: Services, model: Any) -> dict[str, Any]:
    """What a Ray worker needs to load the model, with a digest naming it."""
    recipe: dict[str, Any] = {
        "kind": model.kind,
        "name": model.name,
        "builtin_name": model.builtin_name,
        "callable_target": model.callable_target,
        "spec": model.spec.model_dump(mode="json") if model.spec is not None else None,
        "max_pixels": ctx.models.max_image_pixels,
        "onnx": ctx.models.read_artifact(model.artifact_uri) if model.kind == "onnx" and model.artifact_uri else None,
    }
    digest = hashlib.sha256()
    for field in ("kind", "name", "builtin_name", "callable_target", "spec", "max_pixels"):
        digest.update(repr(recipe[field]).encode())
    digest.update(recipe["onnx"] or b"")
    recipe["digest"] = digest.hexdigest()
    return recipe


# -- the worker side (a Ray worker process) --------------------------------------------

_loaded: dict[str, Detector] = {}
_load_lock = threading.Lock()


def detect_on_worker(recipe: dict[str, Any], image: bytes) -> tuple[str, Any]:
    """Decode and detect, as ``endpoints.detect`` does: ("ok", DetectionResult), or
    ("validation" | "model", message) for a bad image or a failing model (sent back as
    data: an exception would arrive wrapped in Ray's own)."""
    try:
        detector = _detector(recipe)
        decoded = decode_image(image, max_pixels=recipe["max_pixels"])
        return "ok", detector.detect_image(decoded)
    except ValidationError as exc:
        return "validation", exc.message
    except Exception as exc:  # the model itself failed
        return "model", f"The model failed on this input: {exc}"


def _detector(recipe: dict[str, Any]) -> Detector:
    with _load_lock:
        found = _loaded.get(recipe["digest"])
        if found is None:
            found = _loaded[recipe["digest"]] = _load(recipe)
        return found


def _load(recipe: dict[str, Any]) -> Detector:
    spec = ModelSpec.from_dict(recipe["spec"]) if recipe["spec"] is not None else None
    if recipe["kind"] == "builtin":
        return Detector.builtin(recipe["builtin_name"] or recipe["name"], max_pixels=recipe["max_pixels"])
    if recipe["kind"] == "onnx" and recipe["onnx"] is not None and spec is not None:
        return Detector.from_onnx(recipe["onnx"], spec, name=recipe["name"], max_pixels=recipe["max_pixels"])
    if recipe["kind"] == "callable" and recipe["callable_target"]:
        names = list(spec.class_names) if spec is not None and spec.class_names else None
        return Detector.from_callable(
            recipe["callable_target"], name=recipe["name"], class_names=names, max_pixels=recipe["max_pixels"]
        )
    raise ValidationError(f"Model '{recipe['name']}' cannot be loaded on a Ray worker.")
