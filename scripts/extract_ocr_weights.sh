#!/usr/bin/env bash
# Re-extract src/loopin/weights/ppocrv4-det.onnx and ppocrv4-rec.onnx, the built-in text
# reader's models (PaddleOCR PP-OCRv4 mobile, Apache-2.0), from the PyPI wheel
# rapidocr-onnxruntime 1.4.4 (Apache-2.0), where they are shipped as ONNX. They are copied
# unchanged. loopin does not depend on the package itself: it requires opencv-python (the
# GUI build) and Python < 3.13, and loopin runs the models on NumPy and Pillow alone.
#
# Needs: network access to PyPI, pip, unzip, sha256sum.
# Usage: scripts/extract_ocr_weights.sh [OUTPUT_DIR]   (default: src/loopin/weights)
# Exit status 0 when both files match the packaged hashes.
set -euo pipefail

readonly WHEEL_SHA256="971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
readonly DET_SHA256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
readonly REC_SHA256="48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"

output="$(realpath -m "${1:-src/loopin/weights}")"
python="${PYTHON:-python3}"
work="$(mktemp -d -t loopin-ocr-XXXXXX)"
trap 'rm -rf "$work"' EXIT

"$python" -m pip download --no-deps --only-binary=:all: -d "$work" "rapidocr-onnxruntime==1.4.4"
wheel="$work/rapidocr_onnxruntime-1.4.4-py3-none-any.whl"
echo "$WHEEL_SHA256  $wheel" | sha256sum -c -
unzip -q -o "$wheel" 'rapidocr_onnxruntime/models/*' -d "$work"
mkdir -p "$output"
cp "$work/rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx" "$output/ppocrv4-det.onnx"
cp "$work/rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx" "$output/ppocrv4-rec.onnx"
(cd "$output" && printf '%s  ppocrv4-det.onnx\n%s  ppocrv4-rec.onnx\n' "$DET_SHA256" "$REC_SHA256" | sha256sum -c -)
