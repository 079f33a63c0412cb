#!/usr/bin/env bash
# bench_conv_wgmma.sh KILN WORK[,WORK2...] [CUBIN_DIR] — after `gpu_conv_wgmma SRC WORK --gpu [PREFIXES]`:
# `kiln bench` (CUDA graph replay, I/O in GPU memory) of every bundle WORK/bench/SHAPE@TILE.kiln
# (ResNet-50 batch-32 convolutions, each wgmma "wg..." / warp-specialized "ws..." tile and the
# largest mma.sync tiles) of every WORK (comma-separated: e.g. the wg run and the ws run), one line
# per bundle (p50 microseconds, TFLOP/s), then per shape the best wg, ws and mma.sync tiles.
# CUBIN_DIR (from `gpu_conv_wgmma SRC DIR --nvrtc`): HGMMA instructions per sm_90a cubin
# (cuobjdump --dump-sass; the wgmma path compiled to tensor-core warpgroup MMAs).
set -uo pipefail
K=$1 WS=$2 C=${3:-}
IFS=, read -r -a WORKS <<< "$WS"
if [ -n "$C" ] && command -v cuobjdump >/dev/null; then
  for f in "$C"/*.sm_90a.cubin; do
    [ -f "$f" ] && echo "SASS $(basename "$f"): $(cuobjdump --dump-sass "$f" | grep -c HGMMA) HGMMA"
  done
fi
G=""
for w in "${WORKS[@]}"; do [ -f "$w/bench/gflop.txt" ] && { G=$w/bench/gflop.txt; break; }; done
[ -n "$G" ] || { echo "FAIL: no WORK/bench/gflop.txt in $WS (run gpu_conv_wgmma --gpu first)"; exit 1; }
while read -r shape gf; do
  declare -A best=() best_t=()
  for w in "${WORKS[@]}"; do
    for f in "$w/bench/$shape"@*.kiln; do
      [ -f "$f" ] || continue
      tile=${f##*@}; tile=${tile%.kiln}
      ms=$("$K" bench "$f" --iterations 200 2>&1 </dev/null | sed -n 's/^latency ms: p50 \([0-9.]*\).*/\1/p')
      tf=$(awk -v g="$gf" -v ms="${ms:-0}" 'BEGIN { printf "%.1f", (ms > 0 ? g / ms : 0) }')
      printf '%-16s %-20s %9.1f us %7s TFLOP/s\n' "$shape" "$tile" "$(awk -v m="${ms:-0}" 'BEGIN{print m*1000}')" "$tf"
      case $tile in ws*) k=ws ;; wg*) k=wg ;; *) k=mma ;; esac
      awk -v a="$tf" -v b="${best_t[$k]:-0}" 'BEGIN { exit !(a > b) }' && best[$k]=$tile best_t[$k]=$tf
    done
  done
  echo "BEST $shape: wgmma ${best[wg]:-none} ${best_t[wg]:-0} TFLOP/s, ws ${best[ws]:-none} ${best_t[ws]:-0} TFLOP/s vs mma.sync ${best[mma]:-none} ${best_t[mma]:-0} TFLOP/s"
  unset best best_t
done < "$G"
