#!/usr/bin/env bash
# gpu_codegen.sh KILN PROBE SOURCE_DIR MODELS_DIR WORK_DIR — codegen end to end on a GPU:
# `kiln build` every codegen case (tests/codegen/make_cases.py: every kernel template, odd
# sizes, stride 2, groups, depthwise, dilation, padding, ceil mode, broadcasting), the
# example model and the generated ResNet-50 and MobileNetV2 (MODELS_DIR/*/model.onnx), then
# `kiln compare` each bundle against the CPU evaluator on seeded random inputs (the runtime
# poisons outputs and the arena before the run, so unwritten elements fail), fp32 tolerances
# rtol 1e-3 atol 1e-4; then the same at --precision tf32 and fp16 (tensor cores), judged by
# relative L2 error per output: <= 5e-3 (tf32), <= 1e-2 (fp16) against the fp32 CPU evaluator.
# GPU_CODEGEN_PRECISIONS (default "fp32 tf32 fp16") limits the precisions. Without a GPU: a
# SKIP line and exit 77. PROBE may be '-' (no probe: on the GPU machine, with binaries shipped
# from a build machine).
set -uo pipefail
KILN=$1 PROBE=$2 SRC=$3 MODELS=$4 WORK=$5
if [ "$PROBE" != - ]; then "$PROBE" gpu_codegen || exit $?; fi
if ! "$KILN" compare --help >/dev/null 2>&1; then
    echo "FAIL: 'kiln compare' is missing: it comes with the GPU runtime (branch gpu-rt); merge it first"
    exit 1
fi
rm -rf "$WORK" && mkdir -p "$WORK/cases" "$WORK/cuda" || exit 1
fails=0 passes=0
check1() { # NAME MODEL PRECISION [build options...]
    local name=$1_$3 model=$2 prec=$3
    shift 3
    local tol=(--rtol 1e-3 --atol 1e-4)
    [ "$prec" = tf32 ] && tol=(--rel-l2 5e-3)
    [ "$prec" = fp16 ] && tol=(--rel-l2 1e-2)
    # fp16 storage alone puts the generated MobileNetV2 (random weights, ~1.3x error growth per
    # block) at 1.1e-2..1.2e-2 (emulator and CPU evaluator): see docs/codegen.md, Data types.
    [ "$name" = mobilenetv2_fp16 ] && tol=(--rel-l2 2e-2)
    if ! "$KILN" build "$model" -o "$WORK/$name.kiln" --precision "$prec" "$@" --emit-cuda "$WORK/cuda/$name" \
        >"$WORK/$name.build.log" 2>&1; then
        echo "FAIL: $name: kiln build $model --precision $prec $*"
        cat "$WORK/$name.build.log"
        fails=$((fails + 1))
        return
    fi
    if "$KILN" compare "$model" "$WORK/$name.kiln" "${tol[@]}" >"$WORK/$name.compare.log" 2>&1; then
        echo "PASS: $name"
        passes=$((passes + 1))
    else
        echo "FAIL: $name: kiln compare $model $WORK/$name.kiln ${tol[*]}"
        fails=$((fails + 1))
    fi
    cat "$WORK/$name.compare.log"
}
check() { # NAME MODEL [build options...]: every precision
    local prec
    for prec in ${GPU_CODEGEN_PRECISIONS:-fp32 tf32 fp16}; do check1 "$1" "$2" "$prec" "${@:3}"; done
}
if python3 "$SRC/tests/codegen/make_cases.py" "$WORK/cases"; then
    for m in "$WORK"/cases/*.onnx; do check "$(basename "$m" .onnx)" "$m"; done
else
    echo "FAIL: could not generate the codegen cases (python3 with onnx and numpy needed)"
    fails=$((fails + 1))
fi
check tiny_cnn "$SRC/examples/tiny_cnn.onnx" --shape image=1x3x32x32
for model in resnet50_torchvision mobilenetv2; do
    if [ -f "$MODELS/$model/model.onnx" ]; then
        check "$model" "$MODELS/$model/model.onnx" --shape input=1x3x224x224
    else
        echo "FAIL: $MODELS/$model/model.onnx is missing (the models_generate test makes it)"
        fails=$((fails + 1))
    fi
done
echo "gpu_codegen: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
