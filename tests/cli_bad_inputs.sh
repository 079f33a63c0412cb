#!/usr/bin/env bash
# The kiln CLI on good and bad inputs. Bad input must give a message on stderr naming the
# problem and exit status 1 or 2 (never a signal), and must leave no partial output file.
# The good run is checked against onnxruntime on the same seeded input.
# usage: cli_bad_inputs.sh KILN EXAMPLE.onnx
set -uo pipefail
kiln=$1 model=$2
if ! python3 -c 'import numpy, onnxruntime' 2>/dev/null; then
  echo "SKIP: numpy/onnxruntime not installed (run scripts/install-deps.sh --test)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect_fail NAME NEEDLE CMD... : nonzero exit below 128, stderr contains NEEDLE
expect_fail() {
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

head -c 3000 "$model" > "$tmp/truncated.onnx"
printf 'this is not a protobuf model\n' > "$tmp/text.onnx"
: > "$tmp/empty.onnx"
python3 - "$tmp" <<'PY'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
np.save(f"{d}/good.npy", rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
np.save(f"{d}/wrong_shape.npy", rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
np.save(f"{d}/wrong_dtype.npy", rng.standard_normal((2, 3, 32, 32)))
np.save(f"{d}/wrong_rank.npy", rng.standard_normal((3, 32, 32)).astype(np.float32))
open(f"{d}/garbage.npy", "wb").write(bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
open(f"{d}/truncated.npy", "wb").write(open(f"{d}/good.npy", "rb").read()[:1000])
PY

expect_fail truncated_model "truncated" "$kiln" run --cpu "$tmp/truncated.onnx"
expect_fail not_protobuf "not an ONNX model" "$kiln" run --cpu "$tmp/text.onnx"
expect_fail empty_model "empty" "$kiln" inspect "$tmp/empty.onnx"
expect_fail missing_model "cannot open" "$kiln" run --cpu "$tmp/nope.onnx"
for bad in wrong_shape:"dim 2 is 16" wrong_dtype:"dtype f64" wrong_rank:"rank 3" garbage:"not a .npy" truncated:"shape needs"; do
  name=${bad%%:*} needle=${bad#*:}
  expect_fail "npy_$name" "$needle" "$kiln" run --cpu "$model" --input "image=$tmp/$name.npy" --output-dir "$tmp/out_$name"
  if [ -n "$(ls -A "$tmp/out_$name" 2>/dev/null)" ]; then
    echo "FAIL npy_$name: left files in the output folder"; failures=$((failures + 1))
  fi
done
expect_fail unknown_input "no input named 'nosuch'" "$kiln" run --cpu "$model" --input "nosuch=$tmp/good.npy"
expect_fail bad_input_spec "NAME=FILE" "$kiln" run --cpu "$model" --input "image"
expect_fail unknown_option "unknown option" "$kiln" run --cpu "$model" --frobnicate
expect_fail unknown_command "unknown command" "$kiln" frobnicate
expect_fail conformance_missing_dir "does not exist" "$kiln" conformance --cpu "$tmp/nope"

# the good run: outputs match onnxruntime
if "$kiln" run --cpu "$model" --input "image=$tmp/good.npy" --output-dir "$tmp/good_out" >"$tmp/out" 2>"$tmp/err"; then
  if python3 - "$model" "$tmp" <<'PY'
import sys, numpy as np, onnxruntime as ort
model, d = sys.argv[1], sys.argv[2]
x = np.load(f"{d}/good.npy")
want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
got = np.load(f"{d}/good_out/probs.npy")
assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype)
ok = np.abs(got - want) <= 1e-5 + 1e-4 * np.abs(want)
assert ok.all(), f"max abs err {np.abs(got - want).max()}"
PY
  then echo "ok   good_run: matches onnxruntime"
  else echo "FAIL good_run: differs from onnxruntime"; failures=$((failures + 1)); fi
else
  echo "FAIL good_run:"; cat "$tmp/err"; failures=$((failures + 1))
fi
# limits (kiln --limit / KILN_LIMITS): refused with the limit's name, exit 1; a bad spec exits 2
expect_fail limit_nodes "over the node limit of 3" "$kiln" --limit nodes=3 inspect "$model"
expect_fail limit_tensor_env "over the tensor limit of 100 bytes" env KILN_LIMITS=tensor-bytes=100 "$kiln" inspect "$model"
expect_fail limit_file "over the file limit of 1024 bytes" "$kiln" --limit file-bytes=1K run --cpu "$model"
expect_fail limit_bad_spec "unknown limit 'bogus'" "$kiln" --limit bogus=1 inspect "$model"
expect_fail limit_missing_spec "--limit needs" "$kiln" --limit
# a model nested 90,000 messages deep (350 KB): refused, not a stack overflow in the protobuf parser
python3 - "$tmp/deep.onnx" <<'PY'
import sys
def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7f, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)
chunks, size = [], 0
for _ in range(30000):
    for field in (6, 5, 1):  # AttributeProto.g, NodeProto.attribute, GraphProto.node
        h = bytes([field << 3 | 2]) + varint(size); chunks.append(h); size += len(h)
chunks.append(bytes([7 << 3 | 2]) + varint(size))  # ModelProto.graph
open(sys.argv[1], "wb").write(b"".join(reversed(chunks)))
PY
expect_fail deep_nesting "over the nesting limit" "$kiln" inspect "$tmp/deep.onnx"
expect_fail deep_nesting_cap "nesting-depth=100000 is too large" "$kiln" --limit nesting-depth=100000 inspect "$tmp/deep.onnx"

# non-finite inputs are computed with (IEEE 754), not refused: NaN in, NaN out, and the summary counts them
python3 -c "import numpy as np, sys; np.save(sys.argv[1], np.full((1, 3, 32, 32), np.nan, np.float32))" "$tmp/nan.npy"
if "$kiln" run --cpu "$model" --input "image=$tmp/nan.npy" --output-dir "$tmp/nan_out" >"$tmp/out" 2>"$tmp/err" &&
    grep -q "(10 NaN)" "$tmp/out" &&
    python3 -c "import numpy as np, sys; assert np.isnan(np.load(sys.argv[1])).all()" "$tmp/nan_out/probs.npy"; then
  echo "ok   nan_input: $(cat "$tmp/out")"
else
  echo "FAIL nan_input:"; cat "$tmp/out" "$tmp/err"; failures=$((failures + 1))
fi

for h in run inspect conformance; do
  "$kiln" "$h" --help >/dev/null || { echo "FAIL $h --help"; failures=$((failures + 1)); }
done
[ "$failures" -eq 0 ] && echo "all CLI checks passed" || echo "$failures CLI check(s) failed"
exit $((failures > 0))
