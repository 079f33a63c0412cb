#!/usr/bin/env bash
# Packs the GPU tests for the GPU machine, which cannot build kiln (no protobuf-c, no Check):
# the test binaries of a plain build (and optionally an ASan build), the shared libraries they
# need that the GPU machine lacks, the test scripts, and run_gpu_tests.sh, which runs them all
# there and exits nonzero if any fails.
#   usage: scripts/gpu_pack.sh BUILD_DIR [ASAN_BUILD_DIR] OUT_DIR
#   then, on the GPU machine, from the folder above OUT_DIR: bash OUT_DIR/run_gpu_tests.sh
# (OUT_DIR under the repository root and named build-* is git-ignored, so the device tool can
# carry it.)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 2 ]; then plain=$1 asan= out=$2
elif [ $# -eq 3 ]; then plain=$1 asan=$2 out=$3
else echo "usage: $0 BUILD_DIR [ASAN_BUILD_DIR] OUT_DIR" >&2; exit 2; fi
rm -rf "$out"
mkdir -p "$out/plain"
libs() { ldd "$@" | awk '/=> \// {print $3}' | grep -E 'protobuf-c|subunit|check|asan|ubsan' | sort -u; }
cp "$plain/kiln" "$plain/tests/check_runtime" "$plain/tests/gpu_smoke" "$plain/tests/check_cuda_driver" "$out/plain/"
for l in $(libs "$plain/kiln" "$plain/tests/check_runtime"); do cp -L "$l" "$out/"; done
[ -x "$plain/tests/check_layers" ] && cp "$plain/tests/check_layers" "$out/plain/"
[ -x "$plain/tests/emu_conv_nhwc" ] && cp "$plain/tests/emu_conv_nhwc" "$out/plain/"
[ -x "$plain/tests/gpu_conv_wgmma" ] && cp "$plain/tests/gpu_conv_wgmma" "$out/plain/"
[ -x "$plain/tests/emu_conv_f32" ] && cp "$plain/tests/emu_conv_f32" "$out/plain/"
if [ -n "$asan" ]; then
  mkdir -p "$out/asan"
  cp "$asan/kiln" "$asan/tests/check_runtime" "$asan/tests/gpu_smoke" "$out/asan/"
  [ -x "$asan/tests/check_layers" ] && cp "$asan/tests/check_layers" "$out/asan/"
  [ -x "$asan/tests/emu_conv_nhwc" ] && cp "$asan/tests/emu_conv_nhwc" "$out/asan/"
  for l in $(libs "$asan/kiln" "$asan/tests/check_runtime"); do cp -L "$l" "$out/"; done
fi
cp tests/cli_bundle.sh tests/gpu_perlayer.sh tests/lsan_cuda.supp "$out/"
# Bundles built here, on a machine without a GPU or driver, for sm_90 only: the GPU machine runs
# them unchanged (issue 4: a bundle is portable from a GPU-less build machine).
mkdir -p "$out/bundles"
"$plain/kiln" build examples/tiny_cnn.onnx -o "$out/bundles/tiny_cnn_sm90.kiln" --arch sm_90 --shape image=2x3x32x32 >/dev/null
cp examples/tiny_cnn.onnx "$out/bundles/"
cat > "$out/run_gpu_tests.sh" <<'RUN'
#!/usr/bin/env bash
# Runs kiln's GPU tests with the packed binaries; prints one PASS/FAIL line per test.
set -uo pipefail
P=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH=$P${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} CK_FORK=no
fails=0
t() { # NAME CMD...
  local name=$1; shift
  "$@" >"$P/$name.log" 2>&1; local rc=$?
  if [ $rc -eq 0 ]; then echo "PASS $name"
  elif [ $rc -eq 77 ]; then echo "FAIL $name: skipped, $(grep -m1 SKIP "$P/$name.log")"; fails=$((fails + 1))
  else echo "FAIL $name (exit $rc; log $P/$name.log)"; tail -20 "$P/$name.log"; fails=$((fails + 1)); fi
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
for v in plain asan; do
  [ -d "$P/$v" ] || continue
  if [ $v = asan ]; then export ASAN_OPTIONS=protect_shadow_gap=0 LSAN_OPTIONS=suppressions=$P/lsan_cuda.supp; fi
  B=$P/$v
  t "$v-gpu_smoke" "$B/gpu_smoke"
  t "$v-check_runtime_gpu" "$B/check_runtime" --gpu
  t "$v-check_runtime" "$B/check_runtime"
  t "$v-cli_bundle_gpu" bash "$P/cli_bundle.sh" "$B/kiln" "$B/check_runtime" --gpu
  t "$v-cli_bundle" bash "$P/cli_bundle.sh" "$B/kiln" "$B/check_runtime"
  [ -x "$B/check_cuda_driver" ] && t "$v-check_cuda_driver" "$B/check_cuda_driver"
  # per-layer compare and multi-stream runs (needs the repository above the packed folder)
  [ -x "$B/check_layers" ] && [ -f "$P/../examples/tiny_cnn.onnx" ] &&
    t "$v-gpu_perlayer" bash "$P/gpu_perlayer.sh" "$B/kiln" "$B/check_layers" "$P/.." "$P/$v-gpu_perlayer.work" --gpu
  # the fp16 NHWC convolution (cg_conv_nhwc.c) through the runtime against the CPU evaluator
  [ -x "$B/emu_conv_nhwc" ] && t "$v-gpu_conv_nhwc" "$B/emu_conv_nhwc" "$P/.." "$P/$v-gpu_conv_nhwc.work" --gpu
  [ $v = plain ] && [ "${KILN_KERNEL_BENCH:-0}" = 1 ] && [ -x "$B/emu_conv_nhwc" ] && [ -f "$P/../tests/gpu/bench_conv_nhwc.sh" ] &&
    bash "$P/../tests/gpu/bench_conv_nhwc.sh" "$B/kiln" "$P/$v-gpu_conv_nhwc.work" "$P/$v-gpu_conv_nhwc.log" | tee "$P/bench_conv_nhwc.txt"
  # the fp32 NCHW convolution (kernels/conv_f32.cuh): every candidate + ResNet-50 shapes vs the CPU
  # evaluator, then conv_f32 vs the generic fp32 path per ResNet-50 shape (kiln bench)
  if [ $v = plain ] && [ -x "$B/emu_conv_f32" ]; then
    t "$v-gpu_conv_f32" "$B/emu_conv_f32" "$P/.." "$P/$v-gpu_conv_f32.work" --gpu
    grep -E "^FAIL|cases failed" "$P/$v-gpu_conv_f32.log"
    [ -f "$P/../tests/gpu/bench_conv_f32.sh" ] &&
      bash "$P/../tests/gpu/bench_conv_f32.sh" "$B/kiln" "$P/$v-gpu_conv_f32.work" "$P/$v-gpu_conv_f32.log" | tee "$P/bench_conv_f32.txt"
  fi
  # the wgmma (sm_90a) tiles: every tile x shape vs the CPU evaluator, then wgmma vs mma.sync timings
  if [ $v = plain ] && [ -x "$B/gpu_conv_wgmma" ]; then
    # (the timing bundles only when they will be timed: minutes of NVRTC)
    KILN_WGMMA_BUNDLES=${KILN_KERNEL_BENCH:-0} t "$v-gpu_conv_wgmma" "$B/gpu_conv_wgmma" "$P/.." "$P/$v-gpu_conv_wgmma.work" --gpu wg
    grep -E "^FAIL|image loaded|cases failed" "$P/$v-gpu_conv_wgmma.log"
    # the warp-specialized "ws" tiles (mbarrier pipeline, unverified until this runs): a hang is a FAIL
    KILN_WGMMA_BUNDLES=${KILN_KERNEL_BENCH:-0} t "$v-gpu_conv_wgmma_ws" timeout 900 "$B/gpu_conv_wgmma" "$P/.." "$P/$v-gpu_conv_wgmma_ws.work" --gpu ws
    grep -E "^FAIL|image loaded|cases failed" "$P/$v-gpu_conv_wgmma_ws.log"
    "$B/gpu_conv_wgmma" "$P/.." "$P/wgmma_nvrtc" --nvrtc > "$P/wgmma_nvrtc.log" 2>&1
    for c in "$P"/wgmma_nvrtc/*.sm_90a.cubin; do # HGMMA in the SASS (cuobjdump on the GPU machine)
      [ -f "$c" ] && command -v cuobjdump >/dev/null && echo "SASS $(basename "$c"): $(cuobjdump --dump-sass "$c" | grep -c HGMMA) HGMMA"
    done | head -4
    if [ "${KILN_KERNEL_BENCH:-0}" = 1 ]; then # several minutes: per-shape wgmma vs mma.sync timings
      bash "$P/../tests/gpu/bench_conv_wgmma.sh" "$B/kiln" "$P/$v-gpu_conv_wgmma.work,$P/$v-gpu_conv_wgmma_ws.work" "$P/wgmma_nvrtc" > "$P/bench_conv_wgmma.txt" 2>&1
      grep -E "^(BEST|SASS)" "$P/bench_conv_wgmma.txt"
    fi
  fi
done
unset ASAN_OPTIONS LSAN_OPTIONS
# built without a GPU for sm_90 (scripts/gpu_pack.sh): runs here unchanged and matches the CPU evaluator
t portable-bundle "$P/plain/kiln" compare "$P/bundles/tiny_cnn.onnx" "$P/bundles/tiny_cnn_sm90.kiln" --rtol 1e-3 --atol 1e-4
if command -v compute-sanitizer >/dev/null; then
  t memcheck-check_runtime_gpu compute-sanitizer --tool memcheck --error-exitcode 1 "$P/plain/check_runtime" --gpu
  t racecheck-check_runtime_gpu compute-sanitizer --tool racecheck --error-exitcode 1 "$P/plain/check_runtime" --gpu
  if [ -x "$P/plain/emu_conv_nhwc" ]; then # the cp.async / ldmatrix pipeline: out-of-bounds and shared-memory races
    t memcheck-gpu_conv_nhwc compute-sanitizer --tool memcheck --error-exitcode 1 "$P/plain/emu_conv_nhwc" "$P/.." "$P/mc-conv_nhwc.work" --gpu
    t racecheck-gpu_conv_nhwc compute-sanitizer --tool racecheck --error-exitcode 1 "$P/plain/emu_conv_nhwc" "$P/.." "$P/rc-conv_nhwc.work" --gpu
  fi
  if [ -x "$P/plain/emu_conv_f32" ]; then # the fp32 conv's two shared stages and split-K: the small cases
    t memcheck-gpu_conv_f32 env EMU_CONV_F32_SMALL=1 compute-sanitizer --tool memcheck --error-exitcode 1 "$P/plain/emu_conv_f32" "$P/.." "$P/mc-conv_f32.work" --gpu
    t racecheck-gpu_conv_f32 env EMU_CONV_F32_SMALL=1 compute-sanitizer --tool racecheck --error-exitcode 1 "$P/plain/emu_conv_f32" "$P/.." "$P/rc-conv_f32.work" --gpu
  fi
fi
echo "$fails failure(s)"
exit $((fails > 0))
RUN
chmod +x "$out/run_gpu_tests.sh"
du -sh "$out"
