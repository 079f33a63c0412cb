#!/usr/bin/env bash
# Everything kiln checks on the GPU machine, in one go (one device call), from the repository
# root, with the folder packed by scripts/gpu_pack.sh. Each step writes its log under OUT as it
# goes, so a timeout still leaves the finished steps.
#   usage: tests/gpu/run_all.sh PACK OUT [STEPS]    STEPS: comma list of
#     tests,codegen,perlayer,torchvision,conformance,sanitize,tune (default: all); opt-in: gemv, fp32, dw, trpp, cl, hpp
set -uo pipefail
P=$(cd "$1" && pwd) OUT=$2 STEPS=${3:-tests,codegen,perlayer,torchvision,conformance,sanitize,tune}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$P${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
K=$P/plain/kiln
export KILN_AUTOTUNE=0 # the heuristic's tiles unless a step asks for --autotune (tuning every test model takes long)
has() { [[ ",$STEPS," == *",$1,"* ]]; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/card.txt"
[ -d /tmp/models ] || python3 tests/models/generate.py /tmp/models >/dev/null 2>&1
if has conformance; then  # in the background: NVRTC-bound, on 8 of the 16 cores
  mkdir -p /tmp/nd && tar xzf "$P/node.tgz" -C /tmp/nd
  (bash scripts/conformance_gpu_all.sh "$K" /tmp/nd/node "$OUT/conformance" 8 > "$OUT/conformance.txt" 2>&1
   rm -f "$OUT"/conformance/shard_*) &
fi
if has tests; then bash "$P/run_gpu_tests.sh" > "$OUT/gpu_tests.txt" 2>&1; tail -3 "$OUT/gpu_tests.txt"; fi
if has codegen; then
  bash tests/codegen/gpu_codegen.sh "$K" - . /tmp/models /tmp/gpu_codegen > "$OUT/gpu_codegen.txt" 2>&1
  echo "gpu_codegen: $(grep -c '^PASS' "$OUT/gpu_codegen.txt") passed, $(grep -c '^FAIL' "$OUT/gpu_codegen.txt") failed"
  grep '^FAIL' "$OUT/gpu_codegen.txt" | head
fi
if has perlayer; then
  bash tests/gpu_perlayer.sh "$K" "$P/plain/check_layers" . /tmp/gpu_perlayer /tmp/models --gpu > "$OUT/perlayer.txt" 2>&1
  echo "gpu_perlayer exit $?"; grep -E "^(FAIL|PASS)" "$OUT/perlayer.txt" | tail -12
fi
if has tune; then  # autotuning, the tuning cache, bench --profile (issue 5; docs/tuning.md)
  bash tests/codegen/cli_tune.sh "$K" examples/tiny_cnn.onnx /tmp/gpu_tune --gpu > "$OUT/tune.txt" 2>&1
  echo "gpu_tune exit $?"; grep -E "^(FAIL|PASS)" "$OUT/tune.txt"
  R=/tmp/models/resnet50_torchvision/model.onnx
  if [ -f "$R" ]; then  # ResNet-50 b32 fp16: cold and warm tuning-cache builds, then the per-kernel profile
    rm -f /tmp/r50_cache.txt
    for run in cold warm; do
      s=$(date +%s%N)
      SOURCE_DATE_EPOCH=1 "$K" build "$R" -o /tmp/r50.kiln --shape input=32x3x224x224 --precision fp16 \
        --autotune --tuning-cache /tmp/r50_cache.txt > "$OUT/r50_build_$run.txt" 2>&1
      rc=$? e=$(date +%s%N); cp /tmp/r50.kiln "/tmp/r50_$run.kiln" 2>/dev/null
      echo "resnet50 b32 fp16 build, $run tuning cache: exit $rc, $(( (e - s) / 1000000 )) ms"
      grep -E "^(autotune|tuning)" "$OUT/r50_build_$run.txt" | tail -3
    done
    cmp -s /tmp/r50_cold.kiln /tmp/r50_warm.kiln && echo "resnet50: warm bundle byte-identical" || echo "resnet50: FAIL warm bundle differs"
    cp /tmp/r50_cache.txt "$OUT/"
    "$K" bench /tmp/r50_warm.kiln --no-graph --iterations 50 --profile --profile-json "$OUT/r50_profile.json" \
      > "$OUT/r50_profile.txt" 2>&1
    echo "resnet50 bench --profile exit $?: $(grep '^profile: layers sum' "$OUT/r50_profile.txt")"
    timeout 300 "$K" compare "$R" /tmp/r50_warm.kiln --rel-l2 0.01 > "$OUT/r50_compare.txt" 2>&1  # CPU side: slow at b32
    echo "resnet50 autotuned fp16 vs CPU: exit $? $(grep -cE 'PASS' "$OUT/r50_compare.txt") PASS"
  fi
fi
if has gemv; then  # the small-M classifier Gemm (kernels/gemv.cuh): rows_w4 vs the mma tile it replaced, fp16
  R=/tmp/models/resnet50_torchvision/model.onnx
  for b in 1 32; do
    for v in heuristic mma; do
      t=(); [ $v = mma ] && t=(--tile 16x32x32/16x8)
      "$K" build "$R" -o /tmp/r50_gemv.kiln --shape input=${b}x3x224x224 --precision fp16 "${t[@]}" > "$OUT/gemv_build_${b}_$v.txt" 2>&1 &&
        "$K" bench /tmp/r50_gemv.kiln --no-graph --iterations 50 --profile > "$OUT/gemv_profile_${b}_$v.txt" 2>&1
      echo "resnet50 b$b fp16 $v: exit $? $(grep -E 'Gemm|gemm' "$OUT/gemv_profile_${b}_$v.txt" | head -2 | tr -s ' ')"
      [ $v = heuristic ] && [ $b = 1 ] && { timeout 300 "$K" compare "$R" /tmp/r50_gemv.kiln --rel-l2 0.01 > "$OUT/gemv_compare_$b.txt" 2>&1
        echo "  vs CPU: exit $? $(grep -c PASS "$OUT/gemv_compare_$b.txt") PASS"; }
    done
  done
fi
if has fp32; then  # the fp32 conv (kernels/conv_f32.cuh): per-shape check + timings, then whole models, heuristic tiles
  E=$P/plain/emu_conv_f32
  if [ -x "$E" ]; then
    "$E" . /tmp/conv_f32 --gpu > "$OUT/conv_f32.txt" 2>&1; echo "emu_conv_f32 --gpu exit $?: $(tail -1 "$OUT/conv_f32.txt")"
    grep '^FAIL' "$OUT/conv_f32.txt" | head
    bash tests/gpu/bench_conv_f32.sh "$K" /tmp/conv_f32 "$OUT/conv_f32.txt" | tee "$OUT/bench_conv_f32.txt"
  fi
  for m in resnet50_torchvision mobilenetv2; do
    R=/tmp/models/$m/model.onnx
    [ -f "$R" ] || { echo "FAIL: $R missing"; continue; }
    for b in 1 32; do
      "$K" build "$R" -o /tmp/f32_${m}_$b.kiln --shape input=${b}x3x224x224 --precision fp32 > "$OUT/f32_build_${m}_$b.txt" 2>&1 ||
        { echo "FAIL: $m b$b fp32 build"; tail -3 "$OUT/f32_build_${m}_$b.txt"; continue; }
      "$K" bench /tmp/f32_${m}_$b.kiln --iterations 50 > "$OUT/f32_bench_${m}_$b.txt" 2>&1
      echo "$m b$b fp32 (conv_f32, heuristic tiles): $(grep '^latency' "$OUT/f32_bench_${m}_$b.txt")"
      if [ $b = 1 ]; then  # the CPU side is slow at b32
        timeout 300 "$K" compare "$R" /tmp/f32_${m}_$b.kiln > "$OUT/f32_compare_${m}_$b.txt" 2>&1
        echo "  vs CPU (rtol 1e-4 atol 1e-5): exit $? $(grep -cE 'PASS' "$OUT/f32_compare_${m}_$b.txt") PASS $(grep -cE 'FAIL' "$OUT/f32_compare_${m}_$b.txt") FAIL"
      fi
    done
  done
fi
if has dw; then  # depthwise convs at MobileNetV2's b32 shapes (conv_dw.cuh): vs the CPU, and the layer's time vs conv2d_direct
  bash tests/gpu/conv_dw_check.sh "$K" /tmp/conv_dw > "$OUT/conv_dw.txt" 2>&1
  echo "conv_dw_check exit $?: $(grep -c '^PASS' "$OUT/conv_dw.txt") passed, $(grep -c '^FAIL' "$OUT/conv_dw.txt") failed"
  grep -E '^(PASS|FAIL|SKIP)' "$OUT/conv_dw.txt"
fi
if has trpp; then  # the opt-in persistent transposed-roles tiles (conv_tma_pp_f16 TR, KILN_WGMMA_TRPP=1)
  W=$P/plain/gpu_conv_wgmma
  KILN_WGMMA_BUNDLES=0 "$W" . /tmp/trpp --gpu tct,tpt > "$OUT/trpp.txt" 2>&1
  echo "gpu_conv_wgmma --gpu tct,tpt exit $?: $(grep -cE '^PASS' "$OUT/trpp.txt") PASS, $(grep -cE '^FAIL' "$OUT/trpp.txt") FAIL"
  grep '^FAIL' "$OUT/trpp.txt" | head
  for tool in memcheck racecheck; do
    KILN_WGMMA_BUNDLES=0 compute-sanitizer --tool $tool --error-exitcode 1 "$W" . /tmp/trpp_$tool --gpu tct > "$OUT/trpp_$tool.txt" 2>&1
    echo "compute-sanitizer $tool gpu_conv_wgmma --gpu tct: exit $?, $(grep -m1 'ERROR SUMMARY' "$OUT/trpp_$tool.txt")"
  done
  # ResNet-50 b32 fp16 with the tile forced where it is a candidate (the 64-channel convs) against the tuner's
  # usual stage-1 pick; conv / GEMM layers timed over 10 launches back to back
  R=/tmp/models/resnet50_torchvision/model.onnx
  for t in tc256x64x64s4g2k1 tct256x64x64s4g2k1 tpt128x64x64s6g2k1; do
    KILN_WGMMA_TRPP=1 "$K" build "$R" -o /tmp/trpp.kiln --precision fp16 --shape input=32x3x224x224 --no-autotune \
      --tile $t > "$OUT/trpp_build_$t.txt" 2>&1 &&
      "$K" bench /tmp/trpp.kiln --iterations 30 --warmup 5 --profile --profile-repeat 10 > "$OUT/trpp_prof_$t.txt" 2>&1
    echo "$t: exit $?; $(grep '^latency' "$OUT/trpp_prof_$t.txt")"
    grep -F "nhwc_f16:${t%%s[0-9]*}" "$OUT/trpp_prof_$t.txt" | cut -c1-100 | head -6  # (the tiles column is cut)
  done
fi
if has cl; then  # the opt-in 2-block cluster and overlapped-store tiles (conv_tma_pp_f16 CL / OV, KILN_WGMMA_CL=1 / _OV=1)
  W=$P/plain/gpu_conv_wgmma
  KILN_WGMMA_BUNDLES=0 "$W" . /tmp/cl --gpu tx,to > "$OUT/cl.txt" 2>&1
  echo "gpu_conv_wgmma --gpu tx,to exit $?: $(grep -cE '^PASS' "$OUT/cl.txt") PASS, $(grep -cE '^FAIL' "$OUT/cl.txt") FAIL"
  grep '^FAIL' "$OUT/cl.txt" | head
  KILN_WGMMA_BUNDLES=0 compute-sanitizer --tool memcheck --error-exitcode 1 "$W" . /tmp/cl_memcheck --gpu tx128x128x64s6g2k1 > "$OUT/cl_memcheck.txt" 2>&1
  echo "compute-sanitizer memcheck gpu_conv_wgmma --gpu tx128x128: exit $?, $(grep -m1 'ERROR SUMMARY' "$OUT/cl_memcheck.txt")"
  # ResNet-50 b32 fp16, each tx tile forced against its tc twin: the outputs must be bit-identical (the same
  # wgmma sequence per tile), the layers' times side by side
  R=/tmp/models/resnet50_torchvision/model.onnx
  for t in tc128x128x64s6g2k1 tx128x128x64s6g2k1 to128x128x64s6g2k1 tc256x128x64s4g2k1 tx256x128x64s4g2k1; do
    KILN_WGMMA_CL=1 KILN_WGMMA_OV=1 "$K" build "$R" -o /tmp/cl_$t.kiln --precision fp16 --shape input=32x3x224x224 --no-autotune \
      --tile $t > "$OUT/cl_build_$t.txt" 2>&1 &&
      "$K" bench /tmp/cl_$t.kiln --iterations 30 --warmup 5 --profile --profile-repeat 10 > "$OUT/cl_prof_$t.txt" 2>&1
    echo "$t: exit $?; $(grep '^latency' "$OUT/cl_prof_$t.txt")"
    mkdir -p /tmp/cl_out_$t && "$K" run /tmp/cl_$t.kiln --seed 1 --output-dir /tmp/cl_out_$t > /dev/null 2>&1
  done
  for t in tx128x128x64s6g2k1 to128x128x64s6g2k1 tx256x128x64s4g2k1; do
    cmp -s /tmp/cl_out_tc${t#t?}/*.npy /tmp/cl_out_$t/*.npy && echo "PASS: $t output identical to tc${t#t?}" ||
      echo "FAIL: $t output differs from tc${t#t?}"
  done
fi
if has hpp; then  # the halo tiles taking turns (conv_halo_pp_f16): all of them (KILN_WGMMA_HPP=1), 3 and 4 warpgroups
  W=$P/plain/gpu_conv_wgmma
  KILN_WGMMA_BUNDLES=0 "$W" . /tmp/hpp --gpu hp,hr,hq,s2d:hp,s2d:hr > "$OUT/hpp.txt" 2>&1
  echo "gpu_conv_wgmma --gpu hp,hr,hq,s2d:hp,s2d:hr exit $?: $(grep -cE '^PASS' "$OUT/hpp.txt") PASS, $(grep -cE '^FAIL' "$OUT/hpp.txt") FAIL"
  grep '^FAIL' "$OUT/hpp.txt" | head
  for tool in memcheck racecheck; do
    KILN_WGMMA_BUNDLES=0 compute-sanitizer --tool $tool --error-exitcode 1 "$W" . /tmp/hpp_$tool --gpu hq64x64x64s1g4k1,hp64x64x64s1g4k1,hp112x64x64s1g4k1 > "$OUT/hpp_$tool.txt" 2>&1
    echo "compute-sanitizer $tool gpu_conv_wgmma --gpu hq64 g4,hp64 g4,hp112 g4: exit $?, $(grep -m1 'SUMMARY' "$OUT/hpp_$tool.txt")"
  done
  # ResNet-50 b32 fp16 with one tile forced where it is a candidate: the stage-1 3x3 convs, then the stem
  R=/tmp/models/resnet50_torchvision/model.onnx
  for t in hq64x64x64s1g4k1 hq64x64x64s2g4k1 hp64x64x64s1g4k1 hp112x64x64s1g4k1 s2d:hp112x64x64s1g4k1 s2d:hr112x64x64s2g2k1; do
    f=${t/:/_}
    KILN_WGMMA_HPP=1 "$K" build "$R" -o /tmp/hpp.kiln --precision fp16 --shape input=32x3x224x224 --no-autotune \
      --tile "$t" > "$OUT/hpp_build_$f.txt" 2>&1 &&
      "$K" bench /tmp/hpp.kiln --iterations 20 --warmup 5 --profile --profile-repeat 10 > "$OUT/hpp_prof_$f.txt" 2>&1
    echo "$t: exit $?; $(grep '^latency' "$OUT/hpp_prof_$f.txt")"
    grep -F "nhwc_f16:${t%%x64x64*}" "$OUT/hpp_prof_$f.txt" | cut -c1-100 | head -3
  done
  # ncu of the stage-1 3x3 alone (32x64x56x56 -> 64, ReLU) per tile: is a turn bound by its wgmma chain or by
  # the loads / staging / stores around it (docs/codegen.md)
  python3 tests/gpu/conv_model.py /tmp/hpp_c3.onnx 32 64 56 56 64 3 > /dev/null 2>&1
  for t in tc256x64x64s4g2k1 hp64x64x64s1g4k1 hq64x64x64s1g4k1 hq112x64x64s1g4k1; do
    KILN_WGMMA_HPP=1 "$K" build /tmp/hpp_c3.onnx -o /tmp/hpp_c3.kiln --precision fp16 --no-autotune --tile "$t" > /dev/null 2>&1 &&
      timeout 120 ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats \
        --section MemoryWorkloadAnalysis -k regex:conv_nhwc -c 1 "$K" bench /tmp/hpp_c3.kiln --no-graph --iterations 1 \
        --warmup 0 > "$OUT/hpp_ncu_$t.txt" 2>&1
    echo "ncu $t: exit $?"
    grep -E "^ +(Duration|Compute \(SM\) Throughput|L2 Cache Throughput|DRAM Throughput|Achieved Occupancy|Warp Cycles Per Issued)" \
      "$OUT/hpp_ncu_$t.txt" | head -6
  done
fi
if has torchvision; then
  python3 tests/gpu/torchvision_check.py "$K" /tmp/tv --memcheck resnet50:fp32,resnet50:fp16 2>&1 |
    grep -E '^(PASS|FAIL)|^torchvision' > "$OUT/torchvision.txt"
  cp /tmp/tv/torchvision.md "$OUT/" 2>/dev/null; cat "$OUT/torchvision.txt"
fi
wait
if has conformance; then head -3 "$OUT/conformance.txt"; fi
if has sanitize; then  # compute-sanitizer over every kernel family (issue 6)
  mkdir -p /tmp/nd && [ -d /tmp/nd/node ] || tar xzf "$P/node.tgz" -C /tmp/nd
  cases=$(grep -v '^#' tests/conformance_gpu_cases.txt | grep . | sed 's|^|/tmp/nd/node/|')
  for tool in memcheck racecheck initcheck; do
    # shellcheck disable=SC2086
    compute-sanitizer --tool $tool --error-exitcode 1 "$K" conformance --gpu --no-fork --quiet $cases \
      > "$OUT/sanitize_$tool.txt" 2>&1
    echo "compute-sanitizer $tool on $(echo "$cases" | wc -l) conformance cases: exit $?, $(grep -m1 'ERROR SUMMARY' "$OUT/sanitize_$tool.txt"), $(tail -n 1 "$OUT/sanitize_$tool.txt")"
    for m in /tmp/tv/mobilenet_v2-fp16.kiln /tmp/tv/densenet121-fp32.kiln; do
      [ -f "$m" ] || continue
      compute-sanitizer --tool $tool --error-exitcode 1 "$K" run "$m" > "$OUT/sanitize_${tool}_$(basename "$m").txt" 2>&1
      echo "compute-sanitizer $tool kiln run $(basename "$m"): exit $?, $(grep -m1 'ERROR SUMMARY' "$OUT/sanitize_${tool}_$(basename "$m").txt")"
    done
  done
fi
