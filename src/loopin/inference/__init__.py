"""Object detection behind loopin's model endpoints: image decoding, ONNX detectors and
Python callables, each returning the same ``DetectionResult``.

- ``decode_image`` turns untrusted request bytes into an upright RGB ``PIL.Image`` or raises
  ``ValidationError`` (empty, not an image, unsupported format, truncated, too many pixels).
- ``ModelSpec`` describes a user's ONNX detector: pre-processing and the output head
  (``nanodet`` or ``yolov8``). The built-in model's spec is in ``BUILTIN_MODELS``.
- ``Detector`` runs a model: ``Detector.builtin(...)``, ``Detector.from_onnx(...)`` or
  ``Detector.from_callable("module:function")``; ``detect(image_bytes)`` is thread-safe.

Boxes are floats in the pixels of the upright original image (x right, y down, the image
spans ``[0, width] x [0, height]``), clipped to it. Nothing here unpickles anything: ONNX
files are protobuf, and callables are imported by name from trusted configuration only.
"""

from loopin.inference.detector import (
    BUILTIN_ALIASES,
    BUILTIN_MODELS,
    DEFAULT_BUILTIN,
    BuiltinModel,
    Detector,
    builtin_aliases,
    builtin_model,
)
from loopin.inference.images import DEFAULT_MAX_PIXELS, decode_image
from loopin.inference.moderation import ModerationLabel
from loopin.inference.ocr import Document, KeyValue, TextLine
from loopin.inference.results import Detection, DetectionResult, ModelOutputError
from loopin.inference.spec import ModelSpec, ModerationLabelMap

__all__ = [
    "BUILTIN_ALIASES",
    "BUILTIN_MODELS",
    "DEFAULT_BUILTIN",
    "DEFAULT_MAX_PIXELS",
    "BuiltinModel",
    "Detection",
    "DetectionResult",
    "Detector",
    "ModelOutputError",
    "ModelSpec",
    "ModerationLabel",
    "ModerationLabelMap",
    "Document",
    "KeyValue",
    "TextLine",
    "builtin_aliases",
    "builtin_model",
    "decode_image",
]
