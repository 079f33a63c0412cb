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
# The GPU path: compile the model into a bundle (CUDA C -> NVRTC cubins + PTX). Where a GPU is
# present, run it and compare with the CPU evaluator; without one it is built for sm_90.
build/kiln build examples/tiny_cnn.onnx -o build/demo-out/tiny_cnn.kiln --shape image=1x3x32x32 \
    --emit-cuda build/demo-out/cuda
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 &&
    build/kiln compare --help >/dev/null 2>&1; then
    build/kiln compare examples/tiny_cnn.onnx build/demo-out/tiny_cnn.kiln
else
    echo "no GPU on this machine: built build/demo-out/tiny_cnn.kiln for sm_90 (generated CUDA in" \
        "build/demo-out/cuda); it cannot run here — on a GPU machine: kiln compare examples/tiny_cnn.onnx" \
        "build/demo-out/tiny_cnn.kiln"
fi
