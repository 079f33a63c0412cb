#!/usr/bin/env bash
# gpu_perlayer.sh KILN CHECK_LAYERS SOURCE_DIR WORK [MODELS_DIR] [--gpu]
# `kiln compare --per-layer` and multi-stream execution end to end.
# Without --gpu (no GPU needed, NVRTC needed for kiln build): the CPU side of --per-layer on
# tiny_cnn (source hash matches, the rebuilt optimized graph has every layer value) and the
# warning for a bundle whose source hash differs; then the GPU refusal. With KILN_EMU_RUN set
# (the emu_run binary; g++ and python3 with onnx needed): the branchy models (make_cases.py's
# cases, the three-branch model, tiny_cnn) run through the CPU emulation of the generated
# kernels with their layers in another order that the recorded dependencies allow
# (KILN_EMU_ORDER=reverse): a missing dependency edge gives wrong outputs there.
# With --gpu (SKIP 77 without a GPU):
#   - compare --per-layer PASSes ("all N layers match") on tiny_cnn (also at fp16, NHWC), a model with three
#     independent conv branches (check_layers --write-branches) and the generated ResNet-50
#     from MODELS_DIR (rtol 1e-3 atol 1e-4 everywhere, as gpu_codegen);
#   - a weight of layer 2 of tiny_cnn changed by +1.0 (checksums rewritten): compare
#     --per-layer exits 1 and prints "first divergence: <that layer>", layers 0 and 1 PASS;
#   - check_layers --gpu: 1 vs 4 streams bit-identical over 3 runs (graph capture + replay);
#   - kiln run --streams 1 vs --streams 4: identical .npy outputs; the branches model uses >= 2
#     streams; kiln bench --streams 4 runs;
#   - compute-sanitizer racecheck and memcheck of kiln run --streams 4 and racecheck of
#     check_layers --gpu (graph capture and replay with 4 streams), when installed (not for ASan builds).
set -uo pipefail
KILN=$1 CL=$2 SRC=$3 WORK=$4 MODELS=${5:-} GPU=${6:-}
[ "$MODELS" = --gpu ] && { MODELS=; GPU=--gpu; }
rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
has() { grep -q -- "$2" "$1" || { fail "$3: expected '$2' in:"; cat "$1"; }; }

TINY=$SRC/examples/tiny_cnn.onnx
"$KILN" build "$TINY" -o "$WORK/tiny.kiln" --shape image=2x3x32x32 >"$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log"; echo "FAIL: kiln build tiny_cnn"; exit 1; }

if [ "$GPU" != --gpu ]; then
    "$KILN" compare --per-layer "$TINY" "$WORK/tiny.kiln" >"$WORK/cpu.log" 2>&1
    rc=$?
    has "$WORK/cpu.log" "source model hash fnv1a64:.* matches" "per-layer hash"
    has "$WORK/cpu.log" "7 layers, 7 of 7 values found" "per-layer rebuild"
    if [ $rc -eq 0 ]; then has "$WORK/cpu.log" "all 7 layers match" "per-layer on a GPU"
    else has "$WORK/cpu.log" "no CUDA" "per-layer without a GPU"; fi
    "$CL" --set-meta "$WORK/tiny.kiln" "$WORK/other.kiln" source_model_hash fnv1a64:0000000000000000 || fail "set-meta"
    "$KILN" compare --per-layer "$TINY" "$WORK/other.kiln" >"$WORK/other.log" 2>&1
    has "$WORK/other.log" "WARNING: .* but the bundle was built from a model with fnv1a64:0000000000000000" "hash mismatch"
    "$KILN" inspect "$WORK/tiny.kiln" >"$WORK/inspect.log" 2>&1 || fail "inspect"
    has "$WORK/inspect.log" "layers (7;" "inspect layers"
    "$KILN" run "$WORK/tiny.kiln" --streams 0 >"$WORK/streams0.log" 2>&1 && fail "--streams 0 accepted"
    has "$WORK/streams0.log" "streams takes a count" "--streams 0"
    if [ -n "${KILN_EMU_RUN:-}" ] && command -v g++ >/dev/null &&
        python3 "$SRC/tests/codegen/make_cases.py" "$WORK/cases" >/dev/null 2>&1; then
        E=$SRC/tests/codegen/emu
        "$CL" --write-branches "$WORK/cases/branches.onnx" || fail "write-branches"
        "$CL" --write-war "$WORK/cases/war.onnx" || fail "write-war"
        cp "$TINY" "$WORK/cases/" || fail "copy tiny_cnn"
        g++ -O1 -fPIC -c "$E/emu_sched.cpp" -o "$WORK/emu_sched.o" || fail "emu_sched"
        for m in "$WORK"/cases/*.onnx; do
            n=$(basename "$m" .onnx)
            shape=()
            [ "$n" = tiny_cnn ] && shape=(--shape image=2x3x32x32)
            if ! "$KILN" build "$m" -o "$WORK/$n.kiln" "${shape[@]}" --emit-cuda "$WORK/$n" >"$WORK/$n.log" 2>&1 ||
                ! python3 "$E/gen_tramp.py" "$WORK/$n/$n.cu" "$WORK/$n/emu.cpp" ||
                ! g++ -O1 -std=c++17 -fPIC -shared -include "$E/emu_shim.h" -I"$E" -I"$SRC/kernels" "$WORK/$n/emu.cpp" \
                    "$WORK/emu_sched.o" -o "$WORK/$n/emu.so" >>"$WORK/$n.log" 2>&1; then
                fail "$n: emu build"
                cat "$WORK/$n.log"
                continue
            fi
            if KILN_EMU_ORDER=reverse "$KILN_EMU_RUN" "$m" "$WORK/$n.kiln" "$WORK/$n/emu.so" 1e-3 1e-4 >"$WORK/$n.run" 2>&1; then
                echo "PASS: $n in dependency-reordered layer order ($(grep -m1 'layer order' "$WORK/$n.run" | sed 's/^ *//'))"
            else
                fail "$n in dependency-reordered layer order"
                cat "$WORK/$n.run"
            fi
        done
    else
        echo "NOTE: the reordered emulation needs KILN_EMU_RUN, g++ and python3 with onnx: not run"
    fi
    echo "gpu_perlayer (no GPU part): $fails failure(s)"
    [ $fails -eq 0 ]
    exit
fi

# --gpu from here on
"$CL" --gpu "$WORK/tiny.kiln" >"$WORK/probe.log" 2>&1
rc=$?
if [ $rc -eq 77 ]; then cat "$WORK/probe.log"; exit 77; fi
cat "$WORK/probe.log"
[ $rc -eq 0 ] || fail "check_layers --gpu tiny_cnn"

per_layer() { # NAME MODEL BUNDLE [compare options]
    local name=$1 model=$2 bundle=$3
    shift 3
    if "$KILN" compare --per-layer "$model" "$bundle" "$@" >"$WORK/$name.pl.log" 2>&1; then
        has "$WORK/$name.pl.log" "all [0-9]* layers match" "$name per-layer"
    else
        fail "$name: kiln compare --per-layer $model $bundle $*"
    fi
    cat "$WORK/$name.pl.log"
}
streams() { # NAME BUNDLE MIN_STREAMS
    local name=$1 bundle=$2 min=$3
    "$KILN" run "$bundle" --streams 1 --seed 7 --output-dir "$WORK/$name.s1" >"$WORK/$name.s1.log" 2>&1 || fail "$name run --streams 1"
    "$KILN" run "$bundle" --streams 4 --seed 7 --output-dir "$WORK/$name.s4" >"$WORK/$name.s4.log" 2>&1 || fail "$name run --streams 4"
    cat "$WORK/$name.s4.log"
    for f in "$WORK/$name.s1"/*.npy; do
        cmp -s "$f" "$WORK/$name.s4/$(basename "$f")" || fail "$name: $(basename "$f") differs between 1 and 4 streams"
    done
    local used
    used=$(sed -n 's/^streams: \([0-9]*\) used.*/\1/p' "$WORK/$name.s4.log")
    [ -n "$used" ] && [ "$used" -ge "$min" ] || fail "$name: $used streams used, expected at least $min"
}

per_layer tiny_cnn "$TINY" "$WORK/tiny.kiln" --rtol 1e-3 --atol 1e-4
# fp16: select-layout stores tiny_cnn's conv region NHWC; --per-layer must read those layer
# values back in the CPU's NCHW order (a transposed read fails by far more than fp16 rounding)
"$KILN" build "$TINY" -o "$WORK/tiny16.kiln" --shape image=2x3x32x32 --precision fp16 >"$WORK/build16.log" 2>&1 ||
    fail "kiln build tiny_cnn --precision fp16"
per_layer tiny_cnn_fp16 "$TINY" "$WORK/tiny16.kiln" --rtol 5e-2 --atol 5e-2
streams tiny_cnn "$WORK/tiny.kiln" 1

# a weight of layer 2 changed: the first divergence is layer 2
bad=$("$CL" --corrupt-weight "$WORK/tiny.kiln" "$WORK/bad.kiln" 2) || fail "corrupt-weight"
"$KILN" compare --per-layer "$TINY" "$WORK/bad.kiln" --rtol 1e-3 --atol 1e-4 >"$WORK/bad.log" 2>&1 && fail "the corrupted bundle passed"
cat "$WORK/bad.log"
has "$WORK/bad.log" "first divergence: $bad (layer 2;" "corrupted weight"
grep -E "^ +[01] .* PASS" "$WORK/bad.log" | wc -l | grep -q '^2$' || fail "layers 0 and 1 should PASS before the corrupted one"

# independent branches
"$CL" --write-branches "$WORK/branches.onnx" || fail "write-branches"
"$KILN" build "$WORK/branches.onnx" -o "$WORK/branches.kiln" >"$WORK/branches.build.log" 2>&1 || fail "build branches"
per_layer branches "$WORK/branches.onnx" "$WORK/branches.kiln" --rtol 1e-3 --atol 1e-4
"$CL" --gpu "$WORK/branches.kiln" || fail "check_layers --gpu branches"
streams branches "$WORK/branches.kiln" 2
"$KILN" bench "$WORK/branches.kiln" --streams 4 --iterations 20 >"$WORK/bench.log" 2>&1 || fail "bench --streams 4"
cat "$WORK/bench.log"

# make_cases.py's parallel_branches (two conv branches joined by Concat, two more by Add)
if python3 "$SRC/tests/codegen/make_cases.py" "$WORK/cases" >/dev/null 2>&1; then
    PB=$WORK/cases/parallel_branches.onnx
    "$KILN" build "$PB" -o "$WORK/pb.kiln" >"$WORK/pb.build.log" 2>&1 || fail "build parallel_branches"
    per_layer parallel_branches "$PB" "$WORK/pb.kiln" --rtol 1e-3 --atol 1e-4
    streams parallel_branches "$WORK/pb.kiln" 2
else
    echo "NOTE: python3 with onnx missing: make_cases.py's parallel_branches not run (the branches model was)"
fi

R50=$MODELS/resnet50_torchvision/model.onnx
if [ -n "$MODELS" ] && [ -f "$R50" ]; then
    "$KILN" build "$R50" -o "$WORK/r50.kiln" --shape input=1x3x224x224 >"$WORK/r50.build.log" 2>&1 || fail "build resnet50"
    per_layer resnet50 "$R50" "$WORK/r50.kiln" --rtol 1e-3 --atol 1e-4
    "$CL" --gpu "$WORK/r50.kiln" || fail "check_layers --gpu resnet50"
    streams resnet50 "$WORK/r50.kiln" 1
elif [ -n "$MODELS" ]; then
    fail "ResNet-50 is missing: $R50 (the models_generate test makes it)"
else
    echo "NOTE: no MODELS_DIR given: ResNet-50 not run"
fi

# compute-sanitizer cannot run an ASan-instrumented binary (its runtime must be loaded first): the
# ASan build's run of this script checks everything else, the plain build's runs these
if ldd "$KILN" 2>/dev/null | grep -q libasan; then
    echo "NOTE: $KILN is built with ASan: compute-sanitizer racecheck/memcheck left to the plain build's run"
elif command -v compute-sanitizer >/dev/null; then
    for tool in racecheck memcheck; do
        compute-sanitizer --tool $tool --error-exitcode 1 "$KILN" run "$WORK/branches.kiln" --streams 4 \
            >"$WORK/$tool.log" 2>&1 || { fail "compute-sanitizer $tool"; cat "$WORK/$tool.log"; }
        tail -2 "$WORK/$tool.log"
    done
    # the 4-stream context over a direct run, a capture and a graph replay
    compute-sanitizer --tool racecheck --error-exitcode 1 "$CL" --gpu "$WORK/branches.kiln" \
        >"$WORK/racecheck-graph.log" 2>&1 || { fail "compute-sanitizer racecheck check_layers --gpu"; cat "$WORK/racecheck-graph.log"; }
    tail -2 "$WORK/racecheck-graph.log"
else
    echo "NOTE: compute-sanitizer not found: racecheck/memcheck of the multi-stream run not done"
fi
echo "gpu_perlayer: $fails failure(s)"
[ $fails -eq 0 ]
