"""Reading text from document images: PP-OCRv4's text detector and recogniser (ONNX), and
key-value pairs found among the lines by a layout rule.

The pipeline is PaddleOCR's, as RapidOCR runs it, written here on NumPy and Pillow only
(no OpenCV): the detector's probability map is thresholded, dilated and cut into connected
regions; each region's box is widened (DB's "unclip") and cropped from the image; the
recogniser reads each crop and CTC decoding gives the text and a confidence. Boxes are
axis-aligned: loopin reads upright documents (photos are turned upright from their EXIF
orientation first); rotated text is not read.

Key-value pairs (``pair_lines``), in reading order:

1. a line ``"Key: value"`` (a colon followed by text) is split there: the key is the text
   before the colon, the value the text after it, each with its share of the line's box;
2. a line ending in a colon is a key; its value is the nearest line to its right on the same
   row (their vertical extents overlap by at least half the smaller height), else the next
   line below it (starting within one and a half key heights under it and overlapping it
   horizontally, or starting within a key height of its left edge) that is not a key itself;
   else it has no value.

A pair's confidence is the lower of its key's and its value's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from PIL import Image

from loopin.inference.results import ModelOutputError

DET_THRESHOLD = 0.3  # a pixel belongs to text when the detector's probability is above it
BOX_THRESHOLD = 0.5  # a region is kept when its mean probability is at least this
UNCLIP_RATIO = 1.6  # DB's unclip: a region grows by area * ratio / perimeter on every side
DET_MIN_SIDE = 736  # the detector sees the image with its short side scaled to this...
DET_MAX_SIDE = 2048  # ...its long side at most this (bounds the memory of a tall page)
REC_HEIGHT = 48
REC_MIN_WIDTH = 320
REC_BATCH = 6
MIN_TEXT_CONFIDENCE = 0.5  # RapidOCR's text_score: lines read with less are dropped
MAX_LINES = 1000


@dataclass(frozen=True, slots=True)
class TextLine:
    """A line of text; its box in pixels of the upright image, confidence 0..1."""

    text: str
    confidence: float
    left: float
    top: float
    right: float
    bottom: float

    def to_dict(self) -> dict[str, float | str]:
        return {
            "text": self.text,
            "confidence": self.confidence,
            "left": self.left,
            "top": self.top,
            "right": self.right,
            "bottom": self.bottom,
        }


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: TextLine  # the key's text without its colon
    value: TextLine | None  # None: no value was found for the key

    @property
    def confidence(self) -> float:
        return min(self.key.confidence, self.value.confidence) if self.value else self.key.confidence

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key.to_dict(),
            "value": self.value.to_dict() if self.value else None,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class Document:
    lines: tuple[TextLine, ...]  # in reading order: top to bottom, then left to right
    key_values: tuple[KeyValue, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "lines": [line.to_dict() for line in self.lines],
            "key_values": [kv.to_dict() for kv in self.key_values],
        }


# --------------------------------------------------------------------------- reading


class TextReader:
    """PP-OCRv4 detector + recogniser sessions; ``read`` may be called from many threads."""

    def __init__(self, detector: ort.InferenceSession, recogniser: ort.InferenceSession) -> None:
        self.detector = detector
        self.recogniser = recogniser
        characters = recogniser.get_modelmeta().custom_metadata_map.get("character")
        if not characters:
            raise ModelOutputError("The text recogniser carries no character list.")
        # CTC: index 0 is the blank; the model's last class is a space.
        self.alphabet = ["", *characters.splitlines(), " "]

    def read(self, image: Image.Image) -> Document:
        bgr = np.asarray(image.convert("RGB"))[:, :, ::-1]
        boxes = self.find_text(bgr)
        texts = self.recognise([bgr[round(y0) : round(y1), round(x0) : round(x1)] for x0, y0, x1, y1 in boxes])
        lines = [
            TextLine(text, round(conf, 6), *(round(v, 2) for v in box))
            for box, (text, conf) in zip(boxes, texts, strict=True)
            if text.strip() and conf >= MIN_TEXT_CONFIDENCE
        ]
        lines = reading_order(lines)
        return Document(tuple(lines), tuple(pair_lines(lines)))

    def find_text(self, bgr: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Boxes (left, top, right, bottom) of the text regions, in image pixels."""
        height, width = bgr.shape[:2]
        scale = max(DET_MIN_SIDE / min(height, width), 1.0)
        scale = min(scale, DET_MAX_SIDE / max(height, width))
        in_h = max(32, round(height * scale / 32) * 32)
        in_w = max(32, round(width * scale / 32) * 32)
        resized = np.asarray(Image.fromarray(np.ascontiguousarray(bgr)).resize((in_w, in_h), Image.Resampling.BILINEAR))
        tensor = ((resized.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        prob = self._run(self.detector, tensor)[0, 0]
        mask = prob > DET_THRESHOLD
        mask[1:, :] |= mask[:-1, :]  # DB's 2x2 dilation
        mask[:, 1:] |= mask[:, :-1]
        found = []
        for x0, y0, x1, y1 in _regions(mask)[:MAX_LINES]:
            w, h = x1 - x0, y1 - y0
            if min(w, h) < 3 or prob[y0:y1, x0:x1].mean() < BOX_THRESHOLD:
                continue
            grow = w * h * UNCLIP_RATIO / (2 * (w + h))
            if min(w, h) + 2 * grow < 5:
                continue
            sx, sy = width / in_w, height / in_h
            found.append(
                (
                    min(max((x0 - grow) * sx, 0.0), width),
                    min(max((y0 - grow) * sy, 0.0), height),
                    min(max((x1 + grow) * sx, 0.0), width),
                    min(max((y1 + grow) * sy, 0.0), height),
                )
            )
        return [b for b in found if b[2] - b[0] > 3 and b[3] - b[1] > 3]

    def recognise(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Text and confidence of each crop (BGR), batched by similar width like RapidOCR."""
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / max(crops[i].shape[0], 1))
        for start in range(0, len(order), REC_BATCH):
            batch = order[start : start + REC_BATCH]
            ratios = [crops[i].shape[1] / max(crops[i].shape[0], 1) for i in batch]
            in_w = max(REC_MIN_WIDTH, math.ceil(REC_HEIGHT * max(ratios)))
            tensor = np.zeros((len(batch), 3, REC_HEIGHT, in_w), dtype=np.float32)
            for row, (i, ratio) in enumerate(zip(batch, ratios, strict=True)):
                width = min(in_w, max(1, math.ceil(REC_HEIGHT * ratio)))
                crop = Image.fromarray(np.ascontiguousarray(crops[i]))
                crop = crop.resize((width, REC_HEIGHT), Image.Resampling.BILINEAR)
                tensor[row, :, :, :width] = (np.asarray(crop, dtype=np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
            probs = self._run(self.recogniser, tensor)
            for row, i in enumerate(batch):
                results[i] = self._decode(probs[row])
        return results

    def _decode(self, probs: np.ndarray) -> tuple[str, float]:
        best = probs.argmax(axis=1)
        keep = best != 0
        keep[1:] &= best[1:] != best[:-1]  # CTC: repeats collapse, blanks go
        if not keep.any():
            return "", 0.0
        text = "".join(self.alphabet[i] if i < len(self.alphabet) else "" for i in best[keep])
        return text, float(probs.max(axis=1)[keep].mean())

    @staticmethod
    def _run(session: ort.InferenceSession, tensor: np.ndarray) -> np.ndarray:
        try:
            (out,) = session.run(None, {session.get_inputs()[0].name: tensor})
        except Exception as exc:  # onnxruntime raises its own types for runtime failures
            raise ModelOutputError(f"The text model failed to run: {exc}") from exc
        return np.asarray(out)


def _regions(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x0, y0, x1, y1; ends exclusive) of the 8-connected regions of a mask.

    Runs of set pixels are found per row with NumPy, then runs that touch a run of the row
    above are joined (union-find): the work grows with the number of runs, not of pixels.
    """
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_start = np.searchsorted(rows, np.arange(mask.shape[0] + 1))
    for r in range(1, mask.shape[0]):
        above, here = range(row_start[r - 1], row_start[r]), range(row_start[r], row_start[r + 1])
        a = above.start
        for h in here:
            while a < above.stop and ends[a] < starts[h]:  # ends[a] exclusive: touching diagonally is < +1
                a += 1
            b = a
            while b < above.stop and starts[b] <= ends[h]:
                parent[root(h)] = root(b)
                b += 1
    boxes: dict[int, list[int]] = {}
    for i in range(len(rows)):
        r, box = root(i), boxes.get(root(i))
        if box is None:
            boxes[r] = [int(starts[i]), int(rows[i]), int(ends[i]), int(rows[i]) + 1]
        else:
            box[0], box[1] = min(box[0], int(starts[i])), min(box[1], int(rows[i]))
            box[2], box[3] = max(box[2], int(ends[i])), max(box[3], int(rows[i]) + 1)
    return [(b[0], b[1], b[2], b[3]) for b in boxes.values()]


# --------------------------------------------------------------------------- layout


def reading_order(lines: Sequence[TextLine]) -> list[TextLine]:
    """Top to bottom; lines whose vertical centres lie within half a line height of each
    other count as one row, read left to right."""
    ordered = sorted(lines, key=lambda line: (line.top, line.left))
    rows: list[list[TextLine]] = []
    for line in ordered:
        centre = (line.top + line.bottom) / 2
        if rows:
            first = rows[-1][0]
            if abs(centre - (first.top + first.bottom) / 2) <= (first.bottom - first.top) / 2:
                rows[-1].append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda line: line.left)]


_INLINE_PAIR = re.compile(r"^(?P<key>[^:]*\S)\s*:\s*(?P<value>\S.*)$")


def _share(line: TextLine, text: str, start: int, end: int) -> TextLine:
    """The part ``line.text[start:end]`` as a line of its own, its box cut by character count."""
    per_char = (line.right - line.left) / max(len(line.text), 1)
    return TextLine(
        text,
        line.confidence,
        round(line.left + per_char * start, 2),
        line.top,
        round(line.left + per_char * end, 2),
        line.bottom,
    )


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def pair_lines(lines: Sequence[TextLine]) -> list[KeyValue]:
    """Key-value pairs by the layout rule in this module's docstring; ``lines`` in reading order."""
    pairs: list[KeyValue] = []
    used: set[int] = set()
    keys = {i for i, line in enumerate(lines) if line.text.rstrip().endswith(":")}
    for i, line in enumerate(lines):
        if i in used:
            continue
        text = line.text.strip()
        inline = _INLINE_PAIR.match(text)
        if i not in keys and inline and "://" not in text:
            key_text, value_text = inline.group("key"), inline.group("value")
            offset = line.text.find(text)
            value_at = offset + inline.start("value")
            pairs.append(
                KeyValue(
                    _share(line, key_text, offset, offset + len(key_text)),
                    _share(line, value_text, value_at, value_at + len(value_text)),
                )
            )
            continue
        if i not in keys:
            continue
        key = TextLine(text[:-1].rstrip(), line.confidence, line.left, line.top, line.right, line.bottom)
        found = _value_of(lines, i, keys | used)
        if found is not None:
            used.add(found)
        pairs.append(KeyValue(key, lines[found] if found is not None else None))
    return [p for p in pairs if p.key.text]


def _value_of(lines: Sequence[TextLine], k: int, taken: set[int]) -> int | None:
    key = lines[k]
    height = key.bottom - key.top
    right = [
        i
        for i, line in enumerate(lines)
        if i not in taken
        and i != k
        and line.left >= key.right - height / 2
        and _overlap(key.top, key.bottom, line.top, line.bottom) >= min(height, line.bottom - line.top) / 2
    ]
    if right:
        return min(right, key=lambda i: lines[i].left)
    below = [
        i
        for i, line in enumerate(lines)
        if i not in taken
        and i != k
        and key.bottom - height / 2 <= line.top <= key.bottom + 1.5 * height
        and (_overlap(key.left, key.right, line.left, line.right) > 0 or abs(line.left - key.left) <= height)
    ]
    return min(below, key=lambda i: lines[i].top) if below else None
