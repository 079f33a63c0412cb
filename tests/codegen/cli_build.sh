#!/usr/bin/env bash
# cli_build.sh KILN MODEL WORK — `kiln build` from the command line (no GPU needed): a bundle and
# its CUDA source are written; wrong options and dynamic dims give clear errors, exit != 0 and
# leave no bundle behind.
set -uo pipefail
KILN=$1 MODEL=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
fails=0
expect_fail() { # WHAT PATTERN ARGS...
    local what=$1 pat=$2
    shift 2
    local out rc
    out=$("$KILN" build "$@" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] || ! grep -q -- "$pat" <<<"$out"; then
        echo "FAIL: $what: exit $rc, output: $out"
        fails=$((fails + 1))
    elif [ -e "$WORK/bad.kiln" ]; then
        echo "FAIL: $what: a bundle was written"
        fails=$((fails + 1))
    else
        echo "ok: $what: $(head -1 <<<"$out")"
    fi
}
expect_fail "dynamic batch without --shape" "--shape image=DIMS" "$MODEL" -o "$WORK/bad.kiln"
expect_fail "int8" "not implemented yet" "$MODEL" -o "$WORK/bad.kiln" --precision int8 --shape image=1x3x32x32
expect_fail "bad arch" "not an architecture" "$MODEL" -o "$WORK/bad.kiln" --arch sm_90,gfx90a
expect_fail "bad shape" "bad dims" "$MODEL" -o "$WORK/bad.kiln" --shape image=1x3xx32
expect_fail "wrong input name" "no input named" "$MODEL" -o "$WORK/bad.kiln" --shape img=1x3x32x32
expect_fail "shape against the model" "dim 1 is 3" "$MODEL" -o "$WORK/bad.kiln" --shape image=1x4x32x32
expect_fail "no output" "usage" "$MODEL"
if "$KILN" build "$MODEL" -o "$WORK/m.kiln" --shape image=2x3x32x32 --arch sm_80,sm_90 --emit-cuda "$WORK/cuda" \
    >"$WORK/ok.log" 2>&1 && [ -s "$WORK/m.kiln" ] && grep -q "conv_f32<" "$WORK/cuda/tiny_cnn.cu" &&
    grep -q "archs sm_80 sm_90 + PTX" "$WORK/ok.log"; then
    echo "ok: build: $(tail -1 "$WORK/ok.log")"
else
    echo "FAIL: build"
    cat "$WORK/ok.log"
    fails=$((fails + 1))
fi
for prec in tf32 fp16; do # tensor cores: the mma template, the precision and tiles in the metadata
    tag=${prec/fp16/f16}
    # fp16: the convs run NHWC (conv_nhwc.cuh) and the classifier (M = 2) on kernels/gemv.cuh,
    # so the Gemm is forced onto the mma template to see it and its tile in the metadata
    tile=()
    [ "$prec" = fp16 ] && tile=(--tile 16x32x32/16x8)
    if "$KILN" build "$MODEL" -o "$WORK/$prec.kiln" --precision $prec --shape image=2x3x32x32 --arch sm_80,sm_90 \
        "${tile[@]}" --emit-cuda "$WORK/cuda_$prec" >"$WORK/$prec.log" 2>&1 && grep -q "kiln::mma_$tag" "$WORK/cuda_$prec/tiny_cnn.cu" &&
        "$KILN" inspect "$WORK/$prec.kiln" >"$WORK/$prec.inspect" 2>&1 && grep -q "precision.*$prec" "$WORK/$prec.inspect" &&
        grep -q "mma_$tag:" "$WORK/$prec.inspect"; then
        echo "ok: build --precision $prec"
    else
        echo "FAIL: build --precision $prec"
        cat "$WORK/$prec.log" "$WORK/$prec.inspect"
        fails=$((fails + 1))
    fi
done
[ "$fails" -eq 0 ]
