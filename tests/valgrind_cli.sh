#!/usr/bin/env bash
# The CLI under valgrind memcheck on every example model: inspect, run --cpu, optimize, build (when
# this kiln has NVRTC), inspect and run of the bundle (no GPU here: the run is refused, cleanly),
# and a few refusals (truncated model, garbage .npy). Any memcheck error or leak (definite,
# indirect or possible) fails the test.
#   tests/valgrind_cli.sh KILN_CLI EXAMPLES_DIR WORKDIR
# Exit 77 (ctest SKIP) with a visible reason when valgrind is not installed.
set -uo pipefail
kiln=$1 examples=$2 work=$3
if ! command -v valgrind >/dev/null; then
  echo "SKIP: valgrind is not installed (scripts/install-deps.sh --test installs it)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
    --show-leak-kinds=definite,indirect,possible --track-fds=no --log-file="$work/vg.%p.log")
failures=0 runs=0
# check NAME WANT_RC CMD...: run under memcheck; WANT_RC is the exit status the command must give
check() {
  local name=$1 want=$2; shift 2
  rm -f "$work"/vg.*.log
  "${vg[@]}" "$@" >"$work/$name.out" 2>&1
  local rc=$?
  runs=$((runs + 1))
  if [ "$rc" -eq 99 ] || [ -s "$(ls "$work"/vg.*.log 2>/dev/null | head -1)" ]; then
    echo "FAIL $name: memcheck errors:"; cat "$work"/vg.*.log "$work/$name.out" | head -60
    failures=$((failures + 1))
  elif [ "$rc" -ne "$want" ]; then
    echo "FAIL $name: exit status $rc, expected $want:"; head -20 "$work/$name.out"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}
for model in "$examples"/*.onnx; do
  m=$(basename "$model" .onnx)
  check "${m}_inspect" 0 "$kiln" inspect "$model"
  check "${m}_run_cpu" 0 "$kiln" run --cpu "$model" --output-dir "$work/${m}_out"
  check "${m}_optimize" 0 "$kiln" optimize "$model"
  # static shapes for build: every dynamic dim of every input becomes 1
  shapes=()
  while read -r name dims; do
    shapes+=(--shape "$name=$(echo "$dims" | tr ',' '\n' | sed 's/^[^0-9].*$/1/' | paste -sd,)")
  done < <("$kiln" inspect "$model" | sed -n 's/^ *input *\([^:]*\): [a-z0-9]*\[\(.*\)\]$/\1 \2/p')
  if ! "$kiln" build "$model" "${shapes[@]}" -o "$work/probe.kiln" >"$work/probe.out" 2>&1; then
    echo "skip ${m}_build: this kiln cannot build bundles: $(head -c 200 "$work/probe.out")"
    continue
  fi
  check "${m}_build" 0 "$kiln" build "$model" "${shapes[@]}" -o "$work/$m.kiln"
  if [ -f "$work/$m.kiln" ]; then
    check "${m}_inspect_bundle" 0 "$kiln" inspect "$work/$m.kiln"
    # without a GPU the run is refused (exit 1) after the bundle was read and validated
    if ! command -v nvidia-smi >/dev/null || ! nvidia-smi >/dev/null 2>&1; then
      check "${m}_run_bundle_no_gpu" 1 "$kiln" run "$work/$m.kiln"
    fi
  fi
done
model=$(ls "$examples"/*.onnx | head -1)
head -c 3000 "$model" > "$work/truncated.onnx"
head -c 200 /dev/urandom > "$work/garbage.npy"
check truncated_model 1 "$kiln" inspect "$work/truncated.onnx"
input=$("$kiln" inspect "$model" | sed -n 's/^ *input *\([^:]*\):.*/\1/p' | head -1)
check garbage_npy 1 "$kiln" run --cpu "$model" --input "$input=$work/garbage.npy"
check limit_refusal 1 "$kiln" --limit nodes=2 inspect "$model"
echo "$runs runs under memcheck, $failures failed"
[ "$failures" -eq 0 ]
