#!/usr/bin/env bash
# ctest driver for the ONNX conformance runs.
# usage: conformance.sh KILN node|pytorch|light BASELINE_FILE [extra kiln flags...]
#   node     onnx 1.22.0's backend node cases: 0 failed and at least the recorded number passed
#   pytorch  pytorch-converted and pytorch-operator cases: 0 failed
#   light    the 9 light models: all pass
# Exit 77 (ctest SKIP) with a visible reason when the onnx test data is not installed.
set -uo pipefail
kiln=$1 which=$2 baseline=$3
shift 3
data=$(python3 -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data"))' 2>/dev/null)
if [ -z "$data" ] || [ ! -d "$data/node" ]; then
  echo "SKIP: the ONNX backend test data is not installed (run scripts/install-deps.sh --test for onnx==1.22.0)"
  exit 77
fi
case "$which" in
  node) dirs=("$data/node") ;;
  pytorch) dirs=("$data/pytorch-converted" "$data/pytorch-operator") ;;
  light) dirs=("$data/light") ;;
  *) echo "unknown suite $which"; exit 2 ;;
esac
out=$("$kiln" conformance --cpu --quiet --no-summary "$@" "${dirs[@]}")
echo "$out" | tail -n 60
last=$(echo "$out" | tail -n 1)
if ! [[ "$last" =~ ^conformance:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ unsupported$ ]]; then
  echo "FAIL: the runner did not print its summary line"
  exit 1
fi
passed=${BASH_REMATCH[1]} failed=${BASH_REMATCH[2]} unsupported=${BASH_REMATCH[3]}
if [ "$failed" -ne 0 ]; then
  echo "FAIL: $failed case(s) failed"
  exit 1
fi
want=$(awk -v k="$which" '$1 == k {print $2}' "$baseline")
if [ -n "$want" ] && [ "$passed" -lt "$want" ]; then
  echo "FAIL: $passed passed, fewer than the $want recorded in $(basename "$baseline")"
  exit 1
fi
if [ "$which" = light ] && [ "$unsupported" -ne 0 ]; then
  echo "FAIL: $unsupported light model(s) unsupported"
  exit 1
fi
echo "OK: $passed passed, 0 failed, $unsupported unsupported (recorded minimum: ${want:-none})"
