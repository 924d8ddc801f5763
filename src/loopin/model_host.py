"""The models this process serves: detectors loaded once per endpoint generation, with a
bound on concurrent inferences per variant (its instance count). Every server process has
its own host and serves every InService endpoint."""

from __future__ import annotations

import hashlib
import os
import random
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image

from loopin.errors import NotFoundError, ValidationError
from loopin.inference import DEFAULT_MAX_PIXELS, Detector, ModelSpec, builtin_model, decode_image
from loopin.inference.load_check import check_model_loads
from loopin.store import ObjectStore

DEFAULT_MAX_MODEL_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class ModelDefinition:
    """What is needed to load a model, as stored (or built in)."""

    name: str
    kind: str  # builtin | onnx | callable
    builtin_name: str | None = None
    artifact_uri: str | None = None
    spec: ModelSpec | None = None
    callable_target: str | None = None


@dataclass(frozen=True)
class Variant:
    name: str
    detector: Detector
    weight: float
    slots: threading.BoundedSemaphore  # instance count: inferences that may run at once


@dataclass(frozen=True)
class Served:
    generation: int
    variants: tuple[Variant, ...]

    def pick(self, variant_name: str | None = None) -> Variant:
        if variant_name is not None:
            for variant in self.variants:
                if variant.name == variant_name:
                    return variant
            raise ValidationError(f"The endpoint has no production variant named '{variant_name}'.")
        weights = [v.weight for v in self.variants]
        if len(self.variants) == 1 or sum(weights) <= 0:
            return self.variants[0]
        return random.choices(self.variants, weights=weights)[0]


class ModelHost:
    def __init__(
        self,
        store: ObjectStore,
        *,
        inference_threads: int = 1,
        max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
        model_load_timeout_s: float = 120.0,
        model_load_memory_bytes: int = 4 * 1024**3,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        concurrent_decodes: int = 2,
    ) -> None:
        self._store = store
        self.max_image_pixels = max_image_pixels
        # A decoded image takes 3 bytes a pixel (more while it is converted): this bounds
        # the memory that images being decoded take in this process at once.
        self._decode_slots = threading.BoundedSemaphore(concurrent_decodes)
        self._max_bytes = max_model_bytes
        self._load_timeout_s = model_load_timeout_s
        self._load_memory_bytes = model_load_memory_bytes
        self._checked: set[tuple[str, str]] = set()  # (model digest, spec) that passed the load check
        self._threads = inference_threads
        self._lock = threading.Lock()
        self._served: dict[str, Served] = {}
        self._builtins: dict[str, Detector] = {}  # one session per built-in model, shared

    def load(self, model: ModelDefinition) -> Detector:
        """Load a model (slow: reads and initialises it). Raises a LoopinError when it cannot."""
        if model.kind == "builtin":
            found = builtin_model(model.builtin_name or model.name)
            name = found.name if found else model.builtin_name or model.name  # one session for a name and its alias
            with self._lock:
                if name not in self._builtins:
                    self._builtins[name] = Detector.builtin(name, intra_op_num_threads=self._threads)
                return self._builtins[name]
        if model.kind == "onnx":
            if model.spec is None or model.artifact_uri is None:
                raise ValidationError(f"Model '{model.name}' needs an ONNX file and a spec.")
            data = self.read_artifact(model.artifact_uri)
            checked = (hashlib.sha256(data).hexdigest(), model.spec.model_dump_json())
            if checked not in self._checked:
                check_model_loads(
                    data, model.spec, timeout_s=self._load_timeout_s, memory_bytes=self._load_memory_bytes
                )
                self._checked.add(checked)
            return Detector.from_onnx(
                data,
                model.spec,
                name=model.name,
                intra_op_num_threads=self._threads,
            )
        if model.kind == "callable" and model.callable_target:
            class_names = list(model.spec.class_names) if model.spec else None
            return Detector.from_callable(model.callable_target, name=model.name, class_names=class_names)
        raise ValidationError(f"Model '{model.name}' has an unknown kind '{model.kind}'.")

    def decode(self, image: bytes) -> Image.Image:
        """Decode request bytes, at most ``max_image_pixels`` of them, and at most
        ``concurrent_decodes`` images at once in this process."""
        with self._decode_slots:
            return decode_image(image, max_pixels=self.max_image_pixels)

    def serve(self, endpoint: str, generation: int, build: Callable[[], tuple[Variant, ...]]) -> Served:
        """The endpoint's loaded variants for this generation, loading them on first use."""
        served = self._served.get(endpoint)
        if served is not None and served.generation == generation:
            return served
        served = Served(generation, build())
        self.install(endpoint, served)
        return served

    def install(self, endpoint: str, served: Served) -> None:
        """Serve these loaded variants (unless a newer generation is already served)."""
        with self._lock:
            current = self._served.get(endpoint)
            if current is None or current.generation <= served.generation:
                self._served[endpoint] = served

    def forget(self, endpoint: str) -> None:
        with self._lock:
            self._served.pop(endpoint, None)

    def read_artifact(self, uri: str) -> bytes:
        """The model file: a regular file or a stored object of at most ``max_model_bytes``,
        never a device, a pipe or anything else that could be read without end."""
        limit = self._max_bytes
        too_big = "The model file {} is {:,} bytes; the limit (setting max_model_bytes) is {:,}."
        if uri.startswith("s3://") or uri.startswith("https://s3.amazonaws.com/"):
            size = self._store.head(uri).size
            if size > limit:
                raise ValidationError(too_big.format(uri, size, limit))
            data = self._store.get(uri)
            if len(data) > limit:
                raise ValidationError(too_big.format(uri, len(data), limit))
            return data
        if uri.startswith("file://"):
            path = Path(unquote(urlparse(uri).path))
            try:
                # Non-blocking, so that opening a FIFO does not wait for a writer.
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            except OSError as exc:
                raise NotFoundError(f"Cannot read the model file {path}: {exc.strerror}.") from exc
            with os.fdopen(fd, "rb") as fh:
                info = os.fstat(fh.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise ValidationError(f"The model file {path} is not a regular file.")
                if info.st_size > limit:
                    raise ValidationError(too_big.format(path, info.st_size, limit))
                data = fh.read(limit + 1)  # the file may have grown since
            if len(data) > limit:
                raise ValidationError(too_big.format(path, len(data), limit))
            return data
        raise ValidationError(f"Model location '{uri}' must be a file:// or s3:// URI.")


def builtin_definition(name: str) -> ModelDefinition | None:
    if builtin_model(name) is None:
        return None
    return ModelDefinition(name=name, kind="builtin", builtin_name=name)
