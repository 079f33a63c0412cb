#!/usr/bin/env bash
# The bundle commands of the kiln CLI (run, bench, inspect, compare) on the hand-built bundle of
# check_runtime (`check_runtime --write-files DIR`: m.kiln, its ONNX twin m.onnx, x.npy and
# x_wrong.npy). Bad input must give a message on stderr naming the problem, exit status 1 or 2
# (never a signal), and leave no output file.
#
# usage: cli_bundle.sh KILN CHECK_RUNTIME [--gpu]
#   without --gpu: what needs no GPU (inspect, refusals); `kiln run` must either work (GPU
#     machine) or say "no CUDA" and write nothing.
#   with --gpu: run / compare / bench on the GPU; SKIP (77) without one.
set -uo pipefail
kiln=$1 writer=$2 gpu=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

expect_fail() { # NAME NEEDLE CMD...: nonzero exit below 128, stderr contains NEEDLE
  local name=$1 needle=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then
    echo "FAIL $name: exit status $rc"; cat "$tmp/err"; failures=$((failures + 1)); return
  fi
  if ! grep -qF -- "$needle" "$tmp/err"; then
    echo "FAIL $name: stderr lacks '$needle':"; cat "$tmp/err"; failures=$((failures + 1)); return
  fi
  echo "ok   $name: $(head -c 300 "$tmp/err" | tr '\n' ' ')"
}
expect_ok() { # NAME NEEDLE CMD...: exit 0, stdout contains NEEDLE
  local name=$1 needle=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne 0 ] || ! grep -qF -- "$needle" "$tmp/out"; then
    echo "FAIL $name: exit status $rc, stdout lacks '$needle'?"; cat "$tmp/out" "$tmp/err"
    failures=$((failures + 1)); return
  fi
  echo "ok   $name"
}
no_outputs() { # NAME DIR: DIR absent or empty
  if [ -n "$(ls -A "$2" 2>/dev/null)" ]; then
    echo "FAIL $1: left files in $2: $(ls -A "$2")"; failures=$((failures + 1))
  fi
}

if ! "$writer" --write-files "$tmp" >"$tmp/writer.log" 2>&1; then
  echo "FAIL: check_runtime --write-files"; cat "$tmp/writer.log"; exit 1
fi
head -c 3000 "$tmp/m.kiln" > "$tmp/truncated.kiln"
cp "$tmp/m.kiln" "$tmp/flipped.kiln"
printf '\x55' | dd of="$tmp/flipped.kiln" bs=1 seek=2000 conv=notrunc status=none

# does this machine run bundles?
have_gpu=0
if "$kiln" run "$tmp/m.kiln" >"$tmp/probe.out" 2>"$tmp/probe.err"; then have_gpu=1; fi

if [ "$gpu" = "--gpu" ]; then
  if [ $have_gpu = 0 ]; then
    echo "SKIP: cli_bundle --gpu: $(head -c 300 "$tmp/probe.err")"
    exit 77
  fi
  # run: outputs written, as .npy, matching the CPU evaluator on the same input
  expect_ok run_outputs "y: f32 [4,5,1000]" "$kiln" run "$tmp/m.kiln" --input "x=$tmp/x.npy" --output-dir "$tmp/gpu_out"
  expect_ok run_cpu_twin "y: f32 [4,5,1000]" "$kiln" run --cpu "$tmp/m.onnx" --input "x=$tmp/x.npy" --output-dir "$tmp/cpu_out"
  for o in y scaled; do
    if [ ! -s "$tmp/gpu_out/$o.npy" ]; then echo "FAIL run: no $o.npy"; failures=$((failures + 1)); fi
  done
  expect_ok compare_gpu_out "PASS" "$kiln" compare "$tmp/m.onnx" "$tmp/m.kiln" --seed 5
  expect_ok compare_tight "rel L2" "$kiln" compare "$tmp/m.onnx" "$tmp/m.kiln" --rtol 0 --atol 1e-6
  expect_ok bench_graph "latency ms: p50" "$kiln" bench "$tmp/m.kiln" --iterations 50 --warmup 5
  grep -F "GPU memory" "$tmp/out" || { echo "FAIL bench: no memory line"; failures=$((failures + 1)); }
  expect_ok bench_no_graph "kernel launches (--no-graph)" "$kiln" bench "$tmp/m.kiln" --iterations 50 --no-graph
  expect_ok bench_no_pdl "plain launches (--no-pdl)" "$kiln" bench "$tmp/m.kiln" --iterations 50 --no-pdl
  # the profile's JSON says what each layer's main kernel holds of an SM (registers from the driver);
  # a bundle of kiln build (the hand-built one has no layer table)
  expect_ok build_twin "built" "$kiln" build "$tmp/m.onnx" -o "$tmp/built.kiln" --no-autotune
  expect_ok bench_profile_json "profile: layers sum" "$kiln" bench "$tmp/built.kiln" --iterations 5 --profile \
    --profile-json "$tmp/prof.json"
  if grep -Eq '"launch": \{"grid_blocks": [1-9][0-9]*, "threads": [1-9][0-9]*, "registers": [1-9][0-9]*, "shared_bytes": [0-9]+, "blocks_per_sm": [1-9]' "$tmp/prof.json"; then
    echo "ok   bench_profile_json_launch"
  else
    echo "FAIL bench_profile_json_launch: $(head -c 400 "$tmp/prof.json")"; failures=$((failures + 1))
  fi
  # refusals on the GPU: wrong input shape, unknown input; no output files
  expect_fail run_wrong_shape "input 'x': the bundle was built for f32 [4,5,1000], got f32 [4,5,1001]" \
    "$kiln" run "$tmp/m.kiln" --input "x=$tmp/x_wrong.npy" --output-dir "$tmp/bad1"
  no_outputs run_wrong_shape "$tmp/bad1"
  expect_fail run_unknown_input "no input named 'nosuch'" "$kiln" run "$tmp/m.kiln" --input "nosuch=$tmp/x.npy" \
    --output-dir "$tmp/bad2"
  no_outputs run_unknown_input "$tmp/bad2"
  # compare against a model that computes something else (alpha 0.8 instead of 0.75): FAIL, exit 1
  "$kiln" compare "$tmp/m_wrong.onnx" "$tmp/m.kiln" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ $rc -eq 1 ] && grep -q "FAIL" "$tmp/out" && grep -q "out of tolerance" "$tmp/out"; then
    echo "ok   compare_detects_mismatch"
  else
    echo "FAIL compare_detects_mismatch: exit $rc"; cat "$tmp/out" "$tmp/err"; failures=$((failures + 1))
  fi
  echo "cli_bundle --gpu: $failures failure(s)"
  [ $failures -eq 0 ]
  exit
fi

# ---- without --gpu: everything that needs no GPU
expect_ok inspect "kernels (2):" "$kiln" inspect "$tmp/m.kiln"
for needle in "group group_scale" "cubin  sm_90" "ptx    compute_90" "arena: 80256 bytes" "weights: 2 tensors, 4052 bytes" \
  "input  0 x: f32 [4,5,1000]"; do
  grep -qF -- "$needle" "$tmp/out" || { echo "FAIL inspect: lacks '$needle'"; failures=$((failures + 1)); }
done
expect_fail inspect_truncated "truncated.kiln" "$kiln" inspect "$tmp/truncated.kiln"
# --images: every image as a file of the size inspect reports (PTX without its terminating NUL)
mkdir -p "$tmp/img"
expect_ok inspect_images "wrote $tmp/img/module0.sm_90.cubin" "$kiln" inspect "$tmp/m.kiln" --images "$tmp/img"
for kind in "cubin  sm_90:module0.sm_90.cubin:0" "ptx    compute_90:module0.compute_90.ptx:1"; do
  IFS=: read -r label file nul <<<"$kind"
  want=$(grep -F -- "$label " "$tmp/out" | grep -o '[0-9]* bytes' | head -1 | cut -d' ' -f1)
  have=$(stat -c %s "$tmp/img/$file" 2>/dev/null || echo missing)
  if [ -z "$want" ] || [ "$have" != "$((want - nul))" ]; then
    echo "FAIL inspect_images: $file has $have bytes, the bundle's image ${want:-?} (less $nul)"; failures=$((failures + 1))
  fi
done
[ -z "$(find "$tmp/img" -name '*.part')" ] || { echo "FAIL inspect_images: a .part file is left"; failures=$((failures + 1)); }
tr -d '\000' <"$tmp/img/module0.compute_90.ptx" | cmp -s - "$tmp/img/module0.compute_90.ptx" ||
  { echo "FAIL inspect_images: a NUL in the PTX file"; failures=$((failures + 1)); }
expect_fail inspect_images_no_folder "not an existing folder" "$kiln" inspect "$tmp/m.kiln" --images "$tmp/nofolder"
[ ! -e "$tmp/nofolder" ] || { echo "FAIL inspect_images_no_folder: it made the folder"; failures=$((failures + 1)); }
expect_fail inspect_images_no_arg "--images needs a folder" "$kiln" inspect "$tmp/m.kiln" --images
expect_fail inspect_flipped "section" "$kiln" inspect "$tmp/flipped.kiln"
expect_fail run_truncated "truncated.kiln" "$kiln" run "$tmp/truncated.kiln" --output-dir "$tmp/o1"
no_outputs run_truncated "$tmp/o1"
expect_fail run_flipped "section" "$kiln" run "$tmp/flipped.kiln" --output-dir "$tmp/o2"
no_outputs run_flipped "$tmp/o2"
expect_fail run_missing "cannot open" "$kiln" run "$tmp/nope.kiln"
expect_fail run_bad_option "unknown option" "$kiln" run "$tmp/m.kiln" --frobnicate
expect_fail bench_bad_iterations "--iterations" "$kiln" bench "$tmp/m.kiln" --iterations 0
expect_fail bench_bad_repeat "--profile-repeat takes a count" "$kiln" bench "$tmp/m.kiln" --profile-repeat 0
expect_fail bench_big_repeat "--profile-repeat takes a count" "$kiln" bench "$tmp/m.kiln" --profile-repeat 1001
expect_fail compare_truncated "truncated.kiln" "$kiln" compare "$tmp/m.onnx" "$tmp/truncated.kiln"
expect_ok run_cpu_still_works "y: f32 [4,5,1000]" "$kiln" run --cpu "$tmp/m.onnx"
if [ $have_gpu = 0 ]; then
  # no GPU here: a clear message, nonzero exit, no output files
  for c in run bench; do
    expect_fail "${c}_no_gpu" "no CUDA" "$kiln" $c "$tmp/m.kiln"
  done
  expect_fail run_no_gpu_outputs "no CUDA" "$kiln" run "$tmp/m.kiln" --output-dir "$tmp/o3"
  no_outputs run_no_gpu_outputs "$tmp/o3"
  expect_fail compare_no_gpu "no CUDA" "$kiln" compare "$tmp/m.onnx" "$tmp/m.kiln"
else
  echo "ok   (a GPU is here: the GPU half is cli_bundle_gpu)"
fi
echo "cli_bundle: $failures failure(s)"
[ $failures -eq 0 ]
