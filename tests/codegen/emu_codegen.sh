#!/usr/bin/env bash
# emu_codegen.sh KILN EMU_RUN SOURCE_DIR WORK [MODELS_DIR] — codegen's kernels without a GPU:
# every codegen case (make_cases.py), the example model, and ResNet-50 and MobileNetV2 when
# MODELS_DIR has them (tests/models; about a minute and a half on one core) are built with `kiln build --emit-cuda`, the
# generated module is compiled as host C++ with a CUDA shim (tests/codegen/emu/) and emu_run
# runs the launch plan on the CPU against the CPU evaluator (rtol 1e-3, atol 1e-4).
# SKIP (77) without g++ or python3 with onnx.
set -uo pipefail
KILN=$1 EMU=$2 SRC=$3 WORK=$4 MODELS=${5:-}
E=$SRC/tests/codegen/emu
command -v g++ >/dev/null || { echo "SKIP: emu_codegen: no g++"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK/cases" || exit 1
python3 "$SRC/tests/codegen/make_cases.py" "$WORK/cases" || { echo "SKIP: emu_codegen: python3 with onnx and numpy needed"; exit 77; }
cp "$SRC/examples/tiny_cnn.onnx" "$WORK/cases/" || exit 1
for n in mobilenetv2 resnet50_torchvision; do
    if [ -n "$MODELS" ] && [ -f "$MODELS/$n/model.onnx" ]; then
        cp "$MODELS/$n/model.onnx" "$WORK/cases/$n.onnx" || exit 1
    elif [ -n "$MODELS" ]; then
        echo "SKIP: $n: $MODELS/$n/model.onnx is missing (models_generate makes it)"
    fi
done
g++ -O1 -fPIC -c "$E/emu_sched.cpp" -o "$WORK/emu_sched.o" || exit 1
fails=0
for m in "$WORK"/cases/*.onnx; do
    n=$(basename "$m" .onnx)
    shape=()
    [ "$n" = tiny_cnn ] && shape=(--shape image=2x3x32x32)
    [ "$n" = mobilenetv2 ] || [ "$n" = resnet50_torchvision ] && shape=(--shape input=1x3x224x224)
    if ! "$KILN" build "$m" -o "$WORK/$n.kiln" "${shape[@]}" --emit-cuda "$WORK/$n" >"$WORK/$n.log" 2>&1 ||
        ! python3 "$E/gen_tramp.py" "$WORK/$n/$n.cu" "$WORK/$n/emu.cpp" ||
        ! g++ -O2 -std=c++17 -fPIC -shared -include "$E/emu_shim.h" -I"$E" -I"$SRC/kernels" "$WORK/$n/emu.cpp" \
            "$WORK/emu_sched.o" -o "$WORK/$n/emu.so" >>"$WORK/$n.log" 2>&1; then
        echo "FAIL: $n (build)"
        cat "$WORK/$n.log"
        fails=$((fails + 1))
        continue
    fi
    if "$EMU" "$m" "$WORK/$n.kiln" "$WORK/$n/emu.so" 1e-3 1e-4 >"$WORK/$n.run" 2>&1; then
        echo "PASS: $n"
    else
        echo "FAIL: $n"
        fails=$((fails + 1))
    fi
    cat "$WORK/$n.run"
done
[ "$fails" -eq 0 ]
