#!/usr/bin/env bash
# Rebuild src/loopin/weights/nsfwjs-mobilenet-v2-mid.onnx, the built-in image moderation
# classifier, from its public source.
#
#   nsfwjs 4.4.0 on npm (MIT, Infinite Red): dist/models/mobilenet_v2_mid/, a TF.js graph
#   model (MobileNetV2 trained by the nsfw_model project, classes Drawing, Hentai, Neutral,
#   Porn, Sexy; weights quantised to uint8) shipped as JavaScript modules: model.min.js
#   exports the model.json object, each group1-shardNofM.min.js the shard's bytes in base64.
#   Node writes them back as model.json and binary shards; tf2onnx 1.17.0 on
#   tensorflow-cpu 2.21.0 (a throw-away virtualenv) converts them to ONNX opset 17 (the
#   uint8 weights are dequantised to float32 on the way), and the folded constants get
#   canonical names so that every run gives the same bytes.
#
# Needs: network access (npm registry, about 30 MB; PyPI, several hundred MB), npm, node,
# tar, sha256sum and a python3 with venv for which tensorflow-cpu 2.21.0 has wheels.
# Nothing outside the work folder and OUTPUT is written.
#
# Usage: scripts/reproduce_nsfw_onnx.sh [OUTPUT.onnx]
#   OUTPUT defaults to ./nsfwjs-mobilenet-v2-mid.onnx. Set WORK_DIR to keep the downloads,
#   PYTHON to choose the interpreter. Exit status 0 if the sha256 matches the packaged
#   file, 2 if the file was built but differs.
set -euo pipefail

readonly NPM_PACKAGE="nsfwjs@4.4.0"
readonly TF_VERSION="2.21.0"
readonly TF2ONNX_VERSION="1.17.0"
readonly OPSET="17"
readonly EXPECTED_SHA256="bd90be487d7c5583c2667829ccb381614170496ce054aa3575830d2a8ba0fe17"

output="$(realpath -m "${1:-nsfwjs-mobilenet-v2-mid.onnx}")"
python="${PYTHON:-python3}"

for tool in npm node tar "$python" sha256sum; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

if [[ -n "${WORK_DIR:-}" ]]; then
    work="$(realpath -m "$WORK_DIR")"
    mkdir -p "$work"
else
    work="$(mktemp -d -t loopin-nsfw-XXXXXX)"
    trap 'rm -rf "$work"' EXIT
fi
echo "work folder: $work"

# 1. The TF.js graph model from the npm tarball, written back as model.json + binary shards.
echo "== npm pack $NPM_PACKAGE"
tarball="$(cd "$work" && npm pack --silent "$NPM_PACKAGE" | tail -n 1)"
tar -xzf "$work/$tarball" -C "$work" package/dist/models/mobilenet_v2_mid
models="$work/package/dist/models/mobilenet_v2_mid"
mkdir -p "$work/tfjs"
node - "$models" "$work/tfjs" <<'JS'
const fs = require("fs");
const path = require("path");
const [from, to] = process.argv.slice(2).map((p) => path.resolve(p));
const model = require(path.join(from, "model.min.js"));
// TF.js converter 1.7.4 wrote _FusedConv2D without the TArgs attribute that TensorFlow
// 2.21's op registry requires (one type per extra argument): add it.
for (const node of model.modelTopology.node) {
  if (node.op === "_FusedConv2D" && !node.attr.TArgs) {
    const count = Number(node.attr.num_args.i);
    node.attr.TArgs = { list: { type: Array(count).fill("DT_FLOAT") } };
  }
}
fs.writeFileSync(path.join(to, "model.json"), JSON.stringify(model));
for (const group of model.weightsManifest) {
  for (const shard of group.paths) {
    const base64 = require(path.join(from, shard + ".min.js"));
    fs.writeFileSync(path.join(to, shard), Buffer.from(base64, "base64"));
  }
}
JS
(cd "$work/tfjs" && sha256sum model.json group1-shard*)

# 2. A throw-away virtualenv with the pinned converter.
echo "== virtualenv with tensorflow-cpu==$TF_VERSION tf2onnx==$TF2ONNX_VERSION"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet \
    "tensorflow-cpu==$TF_VERSION" "tf2onnx==$TF2ONNX_VERSION"

# 3. Convert. tf2onnx 1.17 still calls numpy.product, which NumPy 2 removed: alias it first.
echo "== tf2onnx --tfjs model.json --opset $OPSET"
"$work/venv/bin/python" - "$work/tfjs/model.json" "$output" "$OPSET" <<'PY'
import sys

import numpy

if not hasattr(numpy, "product"):
    numpy.product = numpy.prod

import tf2onnx.convert

tfjs_json, onnx_out, opset = sys.argv[1:4]
sys.argv = ["tf2onnx.convert", "--tfjs", tfjs_json, "--output", onnx_out, "--opset", opset]
tf2onnx.convert.main()
PY

# 4. Canonical constants. tf2onnx names the constants it folds, and picks one of several
# equal ones, in an order that changes from run to run: the graphs are equivalent, the bytes
# are not. Each constant is named by a hash of its type, shape and value (equal ones become
# one), sorted by name; the nodes are unchanged. Then every run gives the same file.
echo "== canonical constant names"
"$work/venv/bin/python" - "$output" <<'PY'
import hashlib
import sys

import onnx
from onnx import numpy_helper

path = sys.argv[1]
model = onnx.load(path)
graph = model.graph
rename, kept = {}, {}
for init in graph.initializer:
    key = f"{init.data_type}:{list(init.dims)}:".encode() + numpy_helper.to_array(init).tobytes()
    rename[init.name] = "const_" + hashlib.sha256(key).hexdigest()[:16]
    if rename[init.name] not in kept:
        init.name = rename[init.name]
        kept[init.name] = init
del graph.initializer[:]
graph.initializer.extend(sorted(kept.values(), key=lambda init: init.name))
for node in graph.node:
    for k, name in enumerate(node.input):
        if name in rename:
            node.input[k] = rename[name]
onnx.checker.check_model(model)
onnx.save(model, path)
PY

# 5. Compare with the file shipped in loopin.
actual="$(sha256sum "$output" | cut -d ' ' -f 1)"
echo "sha256 $actual  $output"
if [[ "$actual" == "$EXPECTED_SHA256" ]]; then
    echo "OK: identical to src/loopin/weights/nsfwjs-mobilenet-v2-mid.onnx"
else
    echo "DIFFERENT: expected $EXPECTED_SHA256" >&2
    exit 2
fi
