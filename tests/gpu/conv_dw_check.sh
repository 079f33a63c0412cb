#!/usr/bin/env bash
# conv_dw_check.sh KILN WORK [BATCH] — the depthwise kernels (codegen/cg_conv_dw.c,
# kernels/conv_dw.cuh) on the GPU at MobileNetV2's depthwise shapes, batch 32
# (tests/gpu/make_dw_cases.py: 1x1 expand + ReLU6 -> depthwise 3x3 + bias + ReLU6). Per shape and
# precision (fp16: NHWC, 8 halves a thread; fp32: NCHW): `kiln build` with the heuristic's
# candidate, `kiln compare` against the CPU evaluator (seeded inputs, poisoned outputs; fp16 by
# relative L2 <= 1e-2, fp32 by its default rtol 1e-4 / atol 1e-5), a check that the layer ran
# on conv_dw, and `kiln bench --profile` of the depthwise layer next to (fp16; DW_BASELINE=all:
# fp32 too) the same build with `--tile direct` (the previous conv2d_direct kernel). One line per case:
#   PASS: dw_C_H_sS_PREC  TILE  US us  GB/s  (direct: US us, speedup X)
# or FAIL: ... with the reason. Exit 0 when every case passes, 1 otherwise, 77 (SKIP) without a
# GPU or python3 with onnx.
set -uo pipefail
K=$1 W=$2 B=${3:-32}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || { echo "SKIP: conv_dw_check: no GPU"; exit 77; }
mkdir -p "$W" || exit 1
python3 "$SRC/tests/gpu/make_dw_cases.py" "$W" "$B" >/dev/null || { echo "SKIP: conv_dw_check: python3 with onnx needed"; exit 77; }
fails=0
# the depthwise layer's row of a --profile table: tiles, us, GB/s
dw_row() { awk '$3 ~ /^(dw_|direct)/ { print $3, $4, $NF; exit }' "$1"; }
for m in "$W"/dw_*.onnx; do
  n=$(basename "$m" .onnx)
  for prec in fp16 fp32; do
    c=${n}_$prec b=$W/${n}_$prec.kiln
    want=dw_nhwc:v8 tol=(--rel-l2 1e-2)
    [ "$prec" = fp32 ] && want=dw_nchw: tol=()
    if ! "$K" build "$m" -o "$b" --precision "$prec" > "$W/$c.build.txt" 2>&1; then
      echo "FAIL: $c: kiln build: $(tail -1 "$W/$c.build.txt")"; fails=$((fails + 1)); continue
    fi
    if ! "$K" compare "$m" "$b" "${tol[@]}" > "$W/$c.compare.txt" 2>&1; then
      echo "FAIL: $c: kiln compare: $(grep -m1 -E 'FAIL|error' "$W/$c.compare.txt")"; fails=$((fails + 1)); continue
    fi
    "$K" bench "$b" --iterations 20 --profile > "$W/$c.prof.txt" 2>&1
    read -r tile us gbs <<< "$(dw_row "$W/$c.prof.txt")"
    if [[ "${tile:-}" != "$want"* ]]; then
      echo "FAIL: $c: the depthwise layer ran '${tile:-?}', not $want (see $W/$c.prof.txt)"; fails=$((fails + 1)); continue
    fi
    base="" # the previous kernel on the same shape, for the record (fp16, the target; DW_BASELINE=all: fp32 too)
    if { [ "$prec" = fp16 ] || [ "${DW_BASELINE:-fp16}" = all ]; } && "$K" build "$m" -o "$W/${c}_direct.kiln" --precision "$prec" --tile direct > /dev/null 2>&1 &&
       "$K" bench "$W/${c}_direct.kiln" --iterations 20 --profile > "$W/${c}_direct.prof.txt" 2>&1; then
      read -r _ dus _ <<< "$(dw_row "$W/${c}_direct.prof.txt")"
      base=$(awk -v a="$us" -v b="${dus:-0}" 'BEGIN { if (a > 0 && b > 0) printf "(direct: %.2f us, speedup %.2fx)", b, b / a }')
    fi
    echo "PASS: $c  $tile  $us us  $gbs GB/s  $base"
  done
done
[ "$fails" -eq 0 ]
