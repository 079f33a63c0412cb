#!/usr/bin/env bash
# Seed corpora for the fuzz targets, generated (not committed): OUT/onnx, OUT/bundle, OUT/npy.
#   fuzz/make_corpus.sh OUT KILN_CLI CHECK_RUNTIME [MODELS_DIR]
# KILN_CLI: a kiln binary (for `kiln build`, when it has NVRTC); CHECK_RUNTIME: tests' check_runtime
# (its --write-files writes a small bundle, its ONNX twin and an .npy without a GPU);
# MODELS_DIR: the output of tests/models/generate.py, if any (only its small files are used).
# Sources: examples/*.onnx, the ONNX backend node cases (onnx's test data; small models that
# cover every op, with their input .pb and numpy-made .npy files), the bundles. Files over
# 256 KiB are left out: libFuzzer mutates small inputs far faster, and -max_len cuts the rest.
set -euo pipefail
out=$1 kiln=${2:-} writer=${3:-} models=${4:-}
src="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out/onnx" "$out/bundle" "$out/npy"
small() { [ -f "$1" ] && [ "$(stat -c %s "$1")" -le 262144 ]; }
n=0
for f in "$src"/examples/*.onnx; do small "$f" && cp "$f" "$out/onnx/example_$(basename "$f")" && n=$((n + 1)); done
data=$(python3 -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data"))' 2>/dev/null || true)
if [ -n "$data" ] && [ -d "$data/node" ]; then
  for d in "$data"/node/*/ "$data"/pytorch-operator/*/; do
    [ -f "$d/model.onnx" ] || continue
    name=$(basename "$d")
    small "$d/model.onnx" && cp "$d/model.onnx" "$out/onnx/$name.onnx" && n=$((n + 1))
  done
fi
if [ -n "$models" ] && [ -d "$models" ]; then
  while IFS= read -r f; do small "$f" && cp "$f" "$out/onnx/models_$(echo "${f#$models/}" | tr / _)" && n=$((n + 1)); done \
    < <(find "$models" -name '*.onnx')
fi
echo "onnx: $n seeds"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nb=0
if [ -n "$writer" ] && "$writer" --write-files "$tmp" >/dev/null 2>&1; then
  for f in "$tmp"/*.kiln; do [ -f "$f" ] && cp "$f" "$out/bundle/runtime_$(basename "$f")" && nb=$((nb + 1)); done
  for f in "$tmp"/*.onnx; do [ -f "$f" ] && cp "$f" "$out/onnx/runtime_$(basename "$f")"; done
  for f in "$tmp"/*.npy; do [ -f "$f" ] && cp "$f" "$out/npy/runtime_$(basename "$f")"; done
fi
if [ -n "$kiln" ] && "$kiln" build "$src/examples/tiny_cnn.onnx" --shape image=1,3,32,32 -o "$tmp/tiny_cnn.kiln" >/dev/null 2>&1; then
  cp "$tmp/tiny_cnn.kiln" "$out/bundle/tiny_cnn.kiln"
  nb=$((nb + 1))
fi
echo "bundle: $nb seeds"

python3 - "$out/npy" <<'PY' || echo "npy: numpy missing, only the bundle writer's .npy seeds"
import sys, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)
shapes = [(), (0,), (1,), (5,), (2, 3), (1, 3, 4, 4), (2, 1, 1, 1, 1, 1, 1, 2)]
dtypes = ['<f4', '<f8', '<f2', '|i1', '|u1', '<i2', '<u2', '<i4', '<u4', '<i8', '<u8', '|b1']
k = 0
for dt in dtypes:
    for s in shapes:
        a = (rng.standard_normal(s) * 10).astype(dt)
        np.save(f"{out}/{dt.strip('<|')}_{k}.npy", a)
        k += 1
a = np.arange(6, dtype='<f4').reshape(2, 3)
with open(f"{out}/v2.npy", "wb") as f: np.lib.format.write_array(f, a, version=(2, 0))
with open(f"{out}/v3.npy", "wb") as f: np.lib.format.write_array(f, a, version=(3, 0))
np.save(f"{out}/fortran.npy", np.asfortranarray(np.ones((2, 3), '<f4')))
np.save(f"{out}/bigendian.npy", np.ones(3, '>f4'))
print(f"npy: {k + 4} seeds")
PY
