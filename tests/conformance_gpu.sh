#!/usr/bin/env bash
# ctest driver for `kiln conformance --gpu` on a fixed list of onnx 1.22.0 node cases that
# covers every GPU kernel family (tests/conformance_gpu_cases.txt, one case folder a line).
# usage: conformance_gpu.sh KILN CASES_FILE [--codegen-only]
#   without --codegen-only (ctest label gpu): runs every case on this machine's GPU; fails on
#     any FAIL and on any listed case that is not PASS. No GPU: SKIP (exit 77).
#   with --codegen-only (label codegen): builds every case (codegen + NVRTC for sm_90) without
#     running it; fails when a listed case does not build. Needs no GPU.
# The node cases are found in KILN_ONNX_NODE_DIR, else in the installed onnx wheel; exit 77
# (ctest SKIP) with a visible reason when neither has them (the GPU machine's onnx 1.23.1 wheel
# ships no node data: unpack a copy and set KILN_ONNX_NODE_DIR).
set -uo pipefail
kiln=$1 list=$2
shift 2
data=${KILN_ONNX_NODE_DIR:-$(python3 -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node"))' 2>/dev/null)}
if [ -z "$data" ] || [ ! -d "$data" ]; then
  echo "SKIP: the ONNX backend test data is not installed (run scripts/install-deps.sh --test for onnx==1.22.0)"
  exit 77
fi
dirs=()
while read -r c; do
  case "$c" in ''|'#'*) continue ;; esac
  [ -d "$data/$c" ] || { echo "FAIL: listed case $c is not in $data"; exit 1; }
  dirs+=("$data/$c")
done < "$list"
out=$("$kiln" conformance --gpu --no-summary "$@" "${dirs[@]}")
rc=$?
echo "$out"
if [ $rc -eq 77 ]; then exit 77; fi
last=$(echo "$out" | tail -n 1)
if ! [[ "$last" =~ ^conformance:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ unsupported$ ]]; then
  echo "FAIL: the runner did not print its summary line"
  exit 1
fi
passed=${BASH_REMATCH[1]} failed=${BASH_REMATCH[2]} unsupported=${BASH_REMATCH[3]}
if [ "$failed" -ne 0 ] || [ "$unsupported" -ne 0 ] || [ "$passed" -ne "${#dirs[@]}" ]; then
  echo "FAIL: $passed of ${#dirs[@]} listed cases passed ($failed failed, $unsupported unsupported)"
  exit 1
fi
echo "all ${#dirs[@]} listed cases passed"
