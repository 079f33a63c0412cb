#!/usr/bin/env bash
# bench_conv_f32.sh KILN WORK [LOG] — after `emu_conv_f32 SRC WORK --gpu > LOG`: `kiln bench`
# (CUDA graph replay, I/O in GPU memory) of each ResNet-50 shape with the fp32 conv_f32 kernel
# (WORK/NAME.kiln) and with the generic fp32 path it replaces (WORK/NAME_old.kiln); one line per
# shape: p50 latencies in microseconds, the speedup and conv_f32's TFLOP/s (FLOP = 2 * N*P*Q * K
# * R*S*C/G from the test's log) and its tile.
set -uo pipefail
K=$1 W=$2 LOG=${3:-}
for f in "$W"/r50_*_old.kiln; do
  [ -f "$f" ] || { echo "no bundles in $W (run emu_conv_f32 --gpu first)"; exit 1; }
  n=$(basename "$f" _old.kiln)
  a=$("$K" bench "$W/$n.kiln" --iterations 200 2>&1 | sed -n 's/^latency ms: p50 \([0-9.]*\).*/\1/p')
  b=$("$K" bench "$f" --iterations 200 2>&1 | sed -n 's/^latency ms: p50 \([0-9.]*\).*/\1/p')
  gf="" tile=""
  [ -n "$LOG" ] && gf=$(grep -m1 " $n (" "$LOG" | sed -n 's/.* \([0-9.e+-]*\) GFLOP.*/\1/p')
  [ -n "$LOG" ] && tile=$(grep -m1 " $n (" "$LOG" | sed -n 's/.*tile //p')
  awk -v n="$n" -v a="${a:-nan}" -v b="${b:-nan}" -v gf="${gf:-0}" -v t="$tile" 'BEGIN {
    printf "%-18s conv_f32 %8.1f us  old %8.1f us  speedup %5.2fx", n, a * 1000, b * 1000, (a > 0 ? b / a : 0);
    if (gf > 0 && a > 0) printf "  %6.1f TFLOP/s", gf / (a * 1e-3) / 1000;
    printf "  %s\n", t }'
done
