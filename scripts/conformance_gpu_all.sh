#!/usr/bin/env bash
# Runs `kiln conformance --gpu` (and --cpu, for the comparison) on every case under NODE_DIR in
# JOBS parallel shards (one GPU is shared; each case builds with NVRTC, which is CPU-bound),
# then writes OUT/gpu.log, OUT/cpu.log and OUT/exceptions.md (scripts/conformance_report.py:
# the cases the CPU evaluator passes and the GPU does not, grouped by op and reason).
#   usage: scripts/conformance_gpu_all.sh KILN NODE_DIR OUT [JOBS]
# KILN_CONF_EXTRA adds flags to the --gpu runs (e.g. --codegen-only, to try this without a GPU).
# Exit status: 1 when any case FAILed on the GPU (a wrong result or a crash), else 0.
set -uo pipefail
kiln=$1 node=$2 out=$3 jobs=${4:-8}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
ls -d "$node"/test_* > "$out/all.txt" || exit 2
rm -f "$out"/shard_*
split -n "r/$jobs" "$out/all.txt" "$out/shard_"
for s in "$out"/shard_??; do
  # shellcheck disable=SC2046
  "$kiln" conformance --gpu --no-summary --timeout 300 ${KILN_CONF_EXTRA:-} $(cat "$s") > "$s.gpu" 2>&1 &
done
wait
if grep -h '^SKIP' "$out"/shard_??.gpu | head -1; then exit 77; fi
cat "$out"/shard_??.gpu | grep -E '^(PASS|FAIL|UNSUPPORTED) ' | sort -k2 > "$out/gpu.log"
"$kiln" conformance --cpu --no-summary "$node" > "$out/cpu.log" 2>&1
python3 "$here/conformance_report.py" --gpu "$out/gpu.log" --cpu "$out/cpu.log" --markdown > "$out/exceptions.md"
rc=$?
echo "gpu: $(grep -c '^PASS' "$out/gpu.log") passed, $(grep -c '^FAIL' "$out/gpu.log") failed, $(grep -c '^UNSUPPORTED' "$out/gpu.log") unsupported"
tail -n 1 "$out/cpu.log"
grep '^FAIL' "$out/gpu.log" | head -50
exit $rc
