#!/usr/bin/env bash
# ctest driver: one generated test model (tests/models/generate.py) through
# `kiln conformance --cpu --optimize`, i.e. kiln's CPU evaluator against onnxruntime's output
# and the optimized graph against the unoptimized one (relative L2 <= 1e-5).
# usage: conformance_model.sh KILN MODEL_DIR [extra kiln flags...]
# Exit 77 (ctest SKIP) with the reason when the model was not generated.
set -uo pipefail
kiln=$1 dir=$2
shift 2
if [ ! -f "$dir/model.onnx" ] || [ ! -f "$dir/test_data_set_0/output_0.pb" ]; then
  echo "SKIP: $dir is not generated (the models_generate test needs python3 with onnx, numpy, onnxruntime)"
  exit 77
fi
out=$("$kiln" conformance --cpu --optimize --no-summary "$@" "$dir")
rc=$?
echo "$out"
last=$(echo "$out" | tail -n 1)
if [ $rc -ne 0 ] || ! [[ "$last" =~ ^conformance:\ 1\ passed,\ 0\ failed,\ 0\ unsupported$ ]]; then
  echo "FAIL: $(basename "$dir") did not pass (exit $rc)"
  exit 1
fi
echo "OK: $(basename "$dir") matches onnxruntime, optimized and unoptimized"
