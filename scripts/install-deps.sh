#!/usr/bin/env bash
# Installs what kiln needs on a Debian/Ubuntu machine. With --test, also the test-only
# Python packages (onnx 1.22.0 ships the ONNX backend test data; numpy; onnxruntime).
# Packages already present are not reinstalled.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs=(build-essential cmake pkg-config check libprotobuf-c-dev protobuf-c-compiler)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "${1:-}" = "--test" ]; then
  # clang with libFuzzer for the fuzz targets, valgrind for the CLI memcheck test
  missing=()
  for p in clang valgrind; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  ver=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
  if [ -n "$ver" ] && ! ls /usr/lib/llvm-"$ver"/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 &&
      ! dpkg -s "libclang-rt-$ver-dev" >/dev/null 2>&1; then
    echo "install-deps: apt-get install libclang-rt-$ver-dev"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "libclang-rt-$ver-dev" >/dev/null || true
  fi
  if ! python3 -c 'import onnx, numpy, onnxruntime, sys; sys.exit(onnx.__version__ != "1.22.0")' 2>/dev/null; then
    echo "install-deps: pip install onnx==1.22.0 numpy onnxruntime"
    python3 -m pip install -q "onnx==1.22.0" numpy onnxruntime
  fi
fi
