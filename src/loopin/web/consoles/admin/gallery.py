"""loopin's starting templates, one per common task type, offered by the admin console's
"new template" page: each a Liquid template (``ui/gallery/<key>.liquid.html``, written for
loopin) and a sample input for its preview. Sample inputs point at ``s3://loopin-sample/…``
objects that the preview serves itself (a photo, a document, a short sound), so a template
can be tried before anything is uploaded."""

from __future__ import annotations

import base64
import io
import math
import wave
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

SAMPLE_PREFIX = "s3://loopin-sample/"
PHOTO = SAMPLE_PREFIX + "astronaut.jpg"
DOCUMENT = SAMPLE_PREFIX + "document.png"
SOUND = SAMPLE_PREFIX + "tone.wav"
VIDEO = SAMPLE_PREFIX + "clip.webm"  # no sample video ships: the player shows its poster


@dataclass(frozen=True)
class Starter:
    key: str
    title: str
    description: str
    sample: dict[str, Any]

    @property
    def content(self) -> str:
        return resources.files("loopin").joinpath("ui", "gallery", f"{self.key}.liquid.html").read_text()


GALLERY = [
    Starter(
        "bounding-boxes",
        "Bounding boxes",
        "Check and fix the boxes a detector drew.",
        {
            "taskObject": PHOTO,
            "labels": ["person", "flag", "rocket"],
            "initialValue": [{"label": "person", "left": 130, "top": 20, "width": 290, "height": 492}],
        },
    ),
    Starter(
        "image-classification",
        "Image classification",
        "Choose one category for an image.",
        {"taskObject": PHOTO, "categories": ["Person", "Animal", "Vehicle", "Landscape"]},
    ),
    Starter(
        "keypoints",
        "Key points",
        "Mark named points on an image.",
        {"taskObject": PHOTO, "labels": ["left eye", "right eye", "nose"], "initialValue": []},
    ),
    Starter(
        "polygons",
        "Polygons",
        "Outline objects with polygons.",
        {"taskObject": PHOTO, "labels": ["person", "flag"], "initialValue": []},
    ),
    Starter(
        "segmentation",
        "Semantic segmentation",
        "Paint the pixels of each label.",
        {"taskObject": PHOTO, "labels": ["person", "sky", "ground"]},
    ),
    Starter(
        "text-classification",
        "Text classification",
        "Choose a category for a text (here: its tone).",
        {
            "text": "The delivery came two days early and the box was in perfect shape.",
            "categories": ["Positive", "Neutral", "Negative"],
        },
    ),
    Starter(
        "entities",
        "Named entities",
        "Highlight and label names in a text.",
        {
            "text": "Ada Lovelace met Charles Babbage in London in 1833.",
            "labels": [
                {"label": "person", "shortDisplayName": "per", "fullDisplayName": "Person"},
                {"label": "place", "shortDisplayName": "pla", "fullDisplayName": "Place"},
            ],
            "initialValue": [{"label": "person", "startOffset": 0, "endOffset": 12}],
        },
    ),
    Starter(
        "document-review",
        "Document review",
        "Check the fields a model read from a document.",
        {
            "document": DOCUMENT,
            "fields": [
                {"key": "invoiceNumber", "label": "Invoice number", "value": "INV-0042"},
                {"key": "total", "label": "Total", "value": "128.50"},
                {"key": "dueDate", "label": "Due date", "value": "2026-12-31"},
            ],
        },
    ),
    Starter(
        "moderation",
        "Content moderation",
        "Flag what an image shows from a list of categories.",
        {"taskObject": PHOTO, "categories": ["Violence", "Nudity", "Drugs", "Hate symbols", "Weapons"]},
    ),
    Starter(
        "textract-forms",
        "Form fields (A2I Textract input)",
        "Check the key-value pairs the built-in text reader (or Textract) found in a document.",
        {
            "aiServiceRequest": {"document": {"s3Object": {"bucket": "loopin-sample", "name": "document.png"}}},
            "selectedAiServiceResponse": {
                "blocks": [
                    {
                        "blockType": "KEY_VALUE_SET",
                        "id": "key-0",
                        "entityTypes": ["KEY"],
                        "text": "Invoice number:",
                        "confidence": 71.5,
                        "relationships": [{"type": "VALUE", "ids": ["value-0"]}],
                    },
                    {
                        "blockType": "KEY_VALUE_SET",
                        "id": "value-0",
                        "entityTypes": ["VALUE"],
                        "text": "INV-0042",
                        "confidence": 71.5,
                    },
                ]
            },
            "humanLoopContext": {"importantFormKeys": []},
        },
    ),
    Starter(
        "rekognition-moderation",
        "Moderation labels (A2I Rekognition input)",
        "Confirm the moderation labels the built-in classifier (or Rekognition) was not sure of.",
        {
            "aiServiceRequest": {"image": {"s3Object": {"bucket": "loopin-sample", "name": "astronaut.jpg"}}},
            "selectedAiServiceResponse": {
                "moderationLabels": [
                    {"confidence": 61.3, "name": "Suggestive", "parentName": ""},
                    {"confidence": 12.4, "name": "Explicit Nudity", "parentName": ""},
                ]
            },
        },
    ),
    Starter(
        "audio-classification",
        "Audio classification",
        "Listen to a recording and choose a category.",
        {"taskObject": SOUND, "categories": ["Speech", "Music", "Noise", "Silence"]},
    ),
    Starter(
        "video-classification",
        "Video classification",
        "Watch a video and choose the activity it shows.",
        {"taskObject": VIDEO, "poster": PHOTO, "categories": ["Walking", "Running", "Sitting", "Other"]},
    ),
]
BY_KEY = {starter.key: starter for starter in GALLERY}


def is_sample(uri: str) -> bool:
    return uri in (PHOTO, DOCUMENT, SOUND, VIDEO)


@cache
def sample_data_url(uri: str) -> str:
    """A ``data:`` URL with the sample object at ``uri`` (see ``is_sample``)."""
    if uri == PHOTO:
        body, media_type = resources.files("loopin").joinpath("demo_data", "astronaut.jpg").read_bytes(), "image/jpeg"
    elif uri == DOCUMENT:
        body, media_type = _document(), "image/png"
    elif uri == SOUND:
        body, media_type = _tone(), "audio/wav"
    else:
        body, media_type = b"", "video/webm"
    return f"data:{media_type};base64," + base64.b64encode(body).decode()


def _document() -> bytes:
    """A plain invoice-like page, drawn here (nothing to ship)."""
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (480, 320), "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, 479, 319), outline="#9aa5b1")
    lines = ["INVOICE", "", "Invoice number:  INV-0042", "Due date:        2026-12-31", "", "Total:           128.50"]
    for i, text in enumerate(lines):
        draw.text((32, 32 + 36 * i), text, fill="#1f2933")
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue()


def _tone(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """One second of a soft 440 Hz tone as 8-bit mono WAV."""
    frames = bytes(int(128 + 40 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(rate * seconds)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()
