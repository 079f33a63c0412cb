#!/usr/bin/env bash
# Fuzz smoke runs (docs/reliability.md): builds the libFuzzer targets with clang in build-fuzz,
# generates their seed corpora (fuzz/make_corpus.sh, from the example, the ONNX node cases and a
# built bundle) and runs each target for SECONDS (default 60) under the limits the campaigns use.
# Any crash, leak, sanitizer report, timeout or out-of-memory fails (exit 1); the input that did
# it is left in build-fuzz/findings/<target>/ (add it to tests/fuzz_regressions/<target>/ with the
# fix). Exit 77 with a visible SKIP when clang or its libFuzzer runtime is missing.
#   scripts/fuzz_smoke.sh [SECONDS] [PLAIN_BUILD_DIR (for kiln and check_runtime; default build)]
# FUZZ_BUILD_DIR overrides build-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60} plain=${2:-build} bf=${FUZZ_BUILD_DIR:-build-fuzz}
if ! command -v clang >/dev/null; then
  echo "SKIP: fuzz smoke runs need clang (scripts/install-deps.sh --test installs it)"; exit 77
fi
printf 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }\n' > /tmp/kiln_fuzz_probe.$$.c
if ! clang -fsanitize=fuzzer /tmp/kiln_fuzz_probe.$$.c -o /tmp/kiln_fuzz_probe.$$ 2>/dev/null; then
  rm -f /tmp/kiln_fuzz_probe.$$*
  echo "SKIP: clang has no libFuzzer runtime (install libclang-rt-<version>-dev)"; exit 77
fi
rm -f /tmp/kiln_fuzz_probe.$$*
# No -Werror here: this build is for finding bugs; the gcc builds police warnings.
CC=clang cmake -S . -B "$bf" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_FUZZ=ON -DKILN_CUDA=OFF \
  -DKILN_TESTS=OFF -DKILN_WERROR=OFF >/dev/null
if ! cmake --build "$bf" -j"$(nproc)" --target fuzz_onnx fuzz_bundle fuzz_npy >"$bf/build.log" 2>&1; then
  tail -40 "$bf/build.log"; echo "FAIL: building the fuzz targets"; exit 1
fi
corpus=$bf/corpus
rm -rf "$corpus" && fuzz/make_corpus.sh "$corpus" "$plain/kiln" "$plain/tests/check_runtime" "$plain/tests/models"
failed=0
for t in onnx bundle npy; do
  mkdir -p "$bf/findings/$t" "$bf/work/$t"
  cp -r "$corpus/$t/." "$bf/work/$t/"
  # the regression inputs join the corpus: they are the interesting corners
  cp -r "tests/fuzz_regressions/$t/." "$bf/work/$t/" 2>/dev/null || true
  log=$bf/findings/$t.log
  if "$bf/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=25 \
      -max_len=262144 -print_final_stats=1 -artifact_prefix="$bf/findings/$t/" "$bf/work/$t" >"$log" 2>&1; then
    echo "fuzz_$t: $(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}') executions in ${secs}s, no crash"
  else
    echo "FAIL fuzz_$t: a finding in $bf/findings/$t/:"; grep -A30 -m1 'ERROR\|runtime error\|==ERROR' "$log" | head -40
    failed=1
  fi
done
exit $failed
