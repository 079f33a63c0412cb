#!/usr/bin/env bash
# bench_conv_wgmma.sh KILN WORK [CUBIN_DIR] — after `gpu_conv_wgmma SRC WORK --gpu`: `kiln bench` (CUDA graph
# replay, I/O in GPU memory) of every bundle WORK/bench/SHAPE@TILE.kiln (ResNet-50 batch-32
# convolutions, each wgmma "wg..." tile and the largest mma.sync tiles), one line per bundle
# (p50 microseconds, TFLOP/s), then per shape the best wgmma tile vs the best mma.sync tile.
# CUBIN_DIR (from `gpu_conv_wgmma SRC DIR --nvrtc`): HGMMA instructions per sm_90a cubin
# (cuobjdump --dump-sass; the wgmma path compiled to tensor-core warpgroup MMAs).
set -uo pipefail
K=$1 W=$2/bench C=${3:-}
if [ -n "$C" ] && command -v cuobjdump >/dev/null; then
  for f in "$C"/*.sm_90a.cubin; do
    [ -f "$f" ] && echo "SASS $(basename "$f"): $(cuobjdump --dump-sass "$f" | grep -c HGMMA) HGMMA"
  done
fi
[ -f "$W/gflop.txt" ] || { echo "FAIL: no $W/gflop.txt (run gpu_conv_wgmma --gpu first)"; exit 1; }
while read -r shape gf; do
  best_wg="" best_wg_t=0 best_mma="" best_mma_t=0
  for f in "$W/$shape"@*.kiln; do
    [ -f "$f" ] || continue
    tile=${f##*@}; tile=${tile%.kiln}
    ms=$("$K" bench "$f" --iterations 200 2>&1 </dev/null | sed -n 's/^latency ms: p50 \([0-9.]*\).*/\1/p')
    tf=$(awk -v g="$gf" -v ms="${ms:-0}" 'BEGIN { printf "%.1f", (ms > 0 ? g / ms : 0) }')
    printf '%-16s %-20s %9.1f us %7s TFLOP/s\n' "$shape" "$tile" "$(awk -v m="${ms:-0}" 'BEGIN{print m*1000}')" "$tf"
    if [[ $tile == wg* ]]; then
      awk -v a="$tf" -v b="$best_wg_t" 'BEGIN { exit !(a > b) }' && best_wg=$tile best_wg_t=$tf
    else
      awk -v a="$tf" -v b="$best_mma_t" 'BEGIN { exit !(a > b) }' && best_mma=$tile best_mma_t=$tf
    fi
  done
  echo "BEST $shape: wgmma $best_wg $best_wg_t TFLOP/s vs mma.sync $best_mma $best_mma_t TFLOP/s"
done < "$W/gflop.txt"
