#!/usr/bin/env bash
# kiln's main job on the example model: install, build, load the model, infer shapes, run
# it on the CPU reference evaluator and print its outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target kiln_cli
build/kiln inspect examples/tiny_cnn.onnx
build/kiln run --cpu examples/tiny_cnn.onnx --seed 1 --output-dir build/demo-out
