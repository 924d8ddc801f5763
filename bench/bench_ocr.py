#!/usr/bin/env python
"""The built-in text reader (ppocrv4-document-text): images/s against raw onnxruntime and,
when it is installed somewhere, RapidOCR itself, in the same run.

    .venv/bin/python bench/bench_ocr.py [--rounds 5] [--rapidocr-python /path/to/venv/bin/python]

The documents are the test's invoice page (tests/test_document_text.py) and a denser page of
24 lines drawn the same way. Modes, each on one onnxruntime thread, one image at a time:

- ``loopin``: ``Detector.builtin("ppocrv4-document-text").detect(png_bytes)``: decoding,
  pre-processing, both networks, post-processing, key-value pairs.
- ``onnxruntime``: the same two ONNX sessions run on tensors prepared before timing (the
  detector on the page's input, the recogniser on the page's crops in batches of six):
  the networks alone, the floor any pipeline on these models pays.
- ``rapidocr`` (with ``--rapidocr-python``): ``RapidOCR()(png_bytes)`` of
  rapidocr-onnxruntime 1.4.4 (OpenCV pre- and post-processing, its angle classifier
  included as it runs by default) in a subprocess of that interpreter, set to one thread.
  Install it in a throw-away virtualenv: ``python -m venv /tmp/rvenv &&
  /tmp/rvenv/bin/pip install rapidocr-onnxruntime==1.4.4``.

Rounds alternate the modes so that background load on a shared machine hits them alike;
the figure per mode is images / wall seconds over all rounds, and ratios are against
``onnxruntime`` and ``rapidocr`` from this same run. The machine's load is printed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from loopin.inference import Detector  # noqa: E402
from tests.test_document_text import DOCUMENT  # noqa: E402

RAPID_SNIPPET = """
import sys, time, json
from rapidocr_onnxruntime import RapidOCR
engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
pages = [open(p, "rb").read() for p in sys.argv[2:]]
for page in pages:
    engine(page)  # warm-up
n = int(sys.argv[1])
start = time.perf_counter()
for _ in range(n):
    for page in pages:
        engine(page)
print(json.dumps({"seconds": time.perf_counter() - start, "images": n * len(pages)}))
"""


def dense_page() -> bytes:
    page = Image.new("RGB", (1240, 1754), "white")  # A4 at 150 dpi
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=26)
    for i in range(24):
        draw.text(
            (80, 80 + 66 * i),
            f"Item {i + 1:02d}: widget model {1000 + 37 * i} quantity {i % 7 + 1}",
            fill="black",
            font=font,
        )
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue()


def networks_only(reader: Detector, pages: list[bytes]):
    """Closures that run just the two sessions on inputs prepared now."""
    text_reader = reader._reader  # noqa: SLF001 - the bench measures the sessions inside
    assert text_reader is not None
    jobs = []
    for data in pages:
        bgr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[:, :, ::-1]
        h, w = bgr.shape[:2]
        scale = min(max(736 / min(h, w), 1.0), 2048 / max(h, w))
        det_in = np.zeros((1, 3, max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)), np.float32)
        boxes = text_reader.find_text(bgr)
        crops = [(box[3] - box[1], box[2] - box[0]) for box in boxes]
        batches = []
        for start in range(0, len(crops), 6):
            part = crops[start : start + 6]
            width = max(320, max(int(48 * cw / max(ch, 1)) + 1 for ch, cw in part))
            batches.append(np.zeros((len(part), 3, 48, width), np.float32))
        jobs.append((det_in, batches))

    def run() -> None:
        for det_in, batches in jobs:
            text_reader._run(text_reader.detector, det_in)  # noqa: SLF001
            for batch in batches:
                text_reader._run(text_reader.recogniser, batch)  # noqa: SLF001

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rapidocr-python", default=None)
    args = parser.parse_args()
    pages = [DOCUMENT, dense_page()]
    reader = Detector.builtin("ppocrv4-document-text")
    for page in pages:
        reader.detect(page)
    raw = networks_only(reader, pages)
    raw()
    paths = []
    for i, page in enumerate(pages):
        path = f"/tmp/loopin-bench-ocr-{i}.png"
        with open(path, "wb") as fh:
            fh.write(page)
        paths.append(path)
    totals = {"loopin": [0.0, 0], "onnxruntime": [0.0, 0], "rapidocr": [0.0, 0]}
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    for _ in range(args.rounds):
        start = time.perf_counter()
        for page in pages:
            reader.detect(page)
        totals["loopin"][0] += time.perf_counter() - start
        totals["loopin"][1] += len(pages)
        start = time.perf_counter()
        raw()
        totals["onnxruntime"][0] += time.perf_counter() - start
        totals["onnxruntime"][1] += len(pages)
        if args.rapidocr_python:
            out = subprocess.run(
                [args.rapidocr_python, "-c", RAPID_SNIPPET, "1", *paths],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            got = json.loads(out.stdout.strip().splitlines()[-1])
            totals["rapidocr"][0] += got["seconds"]
            totals["rapidocr"][1] += got["images"]
    rates = {mode: n / s for mode, (s, n) in totals.items() if n}
    print(json.dumps({"loadavg": os.getloadavg(), "images_per_s": {k: round(v, 3) for k, v in rates.items()}}))
    print(f"loopin / onnxruntime: {rates['loopin'] / rates['onnxruntime']:.2f}")
    if "rapidocr" in rates:
        print(f"loopin / rapidocr: {rates['loopin'] / rates['rapidocr']:.2f}")


if __name__ == "__main__":
    main()
