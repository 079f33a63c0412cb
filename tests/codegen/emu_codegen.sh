#!/usr/bin/env bash
# emu_codegen.sh KILN EMU_RUN SOURCE_DIR WORK [MODELS_DIR] — codegen's kernels without a GPU:
# every codegen case (make_cases.py) and the example model at fp32, tf32 and fp16, and
# ResNet-50 (fp16) and MobileNetV2 (fp32, fp16) when MODELS_DIR has them
# (tests/models; a minute or two each on one core) are built with `kiln build --emit-cuda`,
# the generated module is compiled as host C++ with a CUDA shim (tests/codegen/emu/, which
# emulates mma.sync from the PTX fragment layouts) and emu_run runs the launch plan on the CPU
# against the fp32 CPU evaluator: fp32 rtol 1e-3 atol 1e-4 per element; tf32 relative L2
# error <= 5e-3, fp16 <= 1e-2 per output (the GPU acceptance bounds of issue 4; the generated
# MobileNetV2 at fp16: 2e-2, see run()).
# EMU_PRECISIONS (default "fp32 tf32 fp16") limits the precisions of the small cases.
# SKIP (77) without g++ or python3 with onnx.
set -uo pipefail
KILN=$1 EMU=$2 SRC=$3 WORK=$4 MODELS=${5:-}
E=$SRC/tests/codegen/emu
command -v g++ >/dev/null || { echo "SKIP: emu_codegen: no g++"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK/cases" || exit 1
python3 "$SRC/tests/codegen/make_cases.py" "$WORK/cases" || { echo "SKIP: emu_codegen: python3 with onnx and numpy needed"; exit 77; }
cp "$SRC/examples/tiny_cnn.onnx" "$WORK/cases/" || exit 1
g++ -O1 -fPIC -c "$E/emu_sched.cpp" -o "$WORK/emu_sched.o" || exit 1
fails=0
run() { # MODEL PRECISION [build options...]
    local m=$1 prec=$2
    shift 2
    local n
    n=$(basename "$m" .onnx)_$prec${EMU_SUFFIX:-}
    local tol=(1e-3 1e-4)
    [ "$prec" = tf32 ] && tol=(1e-3 1e-4 5e-3)
    [ "$prec" = fp16 ] && tol=(1e-3 1e-4 1e-2)
    # The generated MobileNetV2's random weights amplify any perturbation ~1.3x per block: fp16
    # storage alone (convert-precision on the CPU evaluator) measures 1.2e-2 at its logits.
    [ "$n" = mobilenetv2_fp16 ] && tol=(1e-3 1e-4 2e-2)
    if ! "$KILN" build "$m" -o "$WORK/$n.kiln" --precision "$prec" "$@" --emit-cuda "$WORK/$n" >"$WORK/$n.log" 2>&1 ||
        ! python3 "$E/gen_tramp.py" "$WORK/$n/$(basename "$m" .onnx).cu" "$WORK/$n/emu.cpp" ||
        ! g++ -O2 -std=c++17 -fPIC -shared -include "$E/emu_shim.h" -I"$E" -I"$SRC/kernels" "$WORK/$n/emu.cpp" \
            "$WORK/emu_sched.o" -o "$WORK/$n/emu.so" >>"$WORK/$n.log" 2>&1; then
        echo "FAIL: $n (build)"
        cat "$WORK/$n.log"
        fails=$((fails + 1))
        return
    fi
    # Layouts (select-layout): fp32 stays NCHW everywhere; the nhwc_* cases and the models run
    # their convolution regions in NHWC at tf32/fp16 (codegen marks NHWC kernels ", NHWC").
    local cu nhwc_kernels
    cu="$WORK/$n/$(basename "$m" .onnx).cu"
    nhwc_kernels=$(grep -c '^// .*, NHWC' "$cu")
    if [ "$prec" = fp32 ] && [ "$nhwc_kernels" -ne 0 ]; then
        echo "FAIL: $n: $nhwc_kernels NHWC kernels at fp32 (the cost model keeps fp32 NCHW)"
        fails=$((fails + 1))
    fi
    # (at fp16 a stem, its MaxPool and the conv after them are two kernels: fuse-conv-pool)
    local least=3
    case "$n" in nhwc_stem_s2d_fp16* | nhwc_stem_pool_c*_fp16*) least=2 ;; esac
    case "$n" in nhwc_*_tf32 | nhwc_*_fp16 | resnet50_torchvision_fp16 | mobilenetv2_fp16)
        if [ "$nhwc_kernels" -lt "$least" ]; then
            echo "FAIL: $n: only $nhwc_kernels NHWC kernels (select-layout should make its conv regions NHWC)"
            fails=$((fails + 1))
        else
            echo "$n: $nhwc_kernels NHWC kernels"
        fi
        ;;
    esac
    # the fp16 stem with C < 8 pads x to 8 channels, or with C <= 4 to 4 for the two-tap kernel
    # ("t4:" tiles; C = 4 unpadded); the fp32 NCHW input enters by the tiled transpose-cast
    # (C = 1: the same bytes in both layouts, a plain Cast);
    # C % 8 == 0 pools take 16-byte vectors, others not
    case "$n" in nhwc_stem_c*_fp16)
        if ! grep -qE 'conv_nhwc_pad_c[48]<|tile t4:|conv_nhwc_s2d<' "$cu" || ! grep -q 'conv_nhwc_f16<' "$cu" ||
            ! grep -q 'max_pool_nhwc_h8_ct<' "$cu" ||
            { [ "$n" != nhwc_stem_c1_fp16 ] && ! grep -qE 'transpose_(cvt|few_rows)<float, __half' "$cu"; }; then
            echo "FAIL: $n: the padded-stem conv_nhwc or the vectorized NHWC MaxPool was not used"
            fails=$((fails + 1))
        fi
        ;;
    esac
    if [ "$n" = nhwc_stem_c3_fp16 ] && { ! grep -q 'pool2d_nhwc_h8<kiln::pool_avg>' "$cu" ||
        ! grep -q 'pool2d<kiln::pool_max, __half, true>' "$cu"; }; then
        echo "FAIL: $n: expected the vectorized AveragePool and the per-element C = 12 MaxPool"
        fails=$((fails + 1))
    fi
    # the stems with 64 channels and a MaxPool: one conv_pool kernel (passes/fuse_conv_pool.c)
    case "$n" in nhwc_stem_s2d_fp16 | nhwc_stem_s2d_fp16_bp* | nhwc_stem_s2d_fp16_wg* | nhwc_stem_pool_c*_fp16 | \
        nhwc_stem_pool_c*_fp16_wg* | resnet50_torchvision_fp16)
        if ! grep -q 'kiln::conv_pool_f16<' "$cu" || grep -q 'max_pool' "$cu"; then
            echo "FAIL: $n: the stem and its MaxPool are not one conv_pool kernel"
            fails=$((fails + 1))
        fi
        # the graph input's Cast goes in too, except where x has another reader (nhwc_stem_pool_c1)
        want=float
        case "$n" in nhwc_stem_pool_c1_fp16*) want=__half ;; esac
        if ! grep -q "conv_pool(const $want \*x" "$cu"; then
            echo "FAIL: $n: expected the conv_pool kernel to read $want x"
            fails=$((fails + 1))
        fi
        ;;
    esac
    # conv pairs (passes/fuse_conv_pair.c): both projection blocks are one two-source kernel at fp16
    case "$n" in nhwc_conv_pair_fp16*)
        if [ "$(grep -c '_shape2>(' "$cu")" -ne 2 ]; then
            echo "FAIL: $n: expected 2 conv pair kernels (SHP2), found $(grep -c '_shape2>(' "$cu")"
            fails=$((fails + 1))
        fi
        ;;
    esac
    # depthwise cases: the compile-time-shape kernels (cg_conv_dw.c), NHWC at fp16, NCHW at fp32
    case "$n" in *dw_*_fp16* | *dw_*_fp32*)
        local want=conv_dw_nhwc
        case "$n" in *_fp32*) want=conv_dw_nchw ;; esac
        if ! grep -q "kiln::$want<" "$cu"; then
            echo "FAIL: $n: no $want kernel"
            fails=$((fails + 1))
        fi
        ;;
    esac
    if "$EMU" "$m" "$WORK/$n.kiln" "$WORK/$n/emu.so" "${tol[@]}" >"$WORK/$n.run" 2>&1; then
        echo "PASS: $n"
    else
        echo "FAIL: $n"
        fails=$((fails + 1))
    fi
    cat "$WORK/$n.run"
}
for m in "$WORK"/cases/*.onnx; do
    shape=()
    [ "$(basename "$m")" = tiny_cnn.onnx ] && shape=(--shape image=2x3x32x32)
    for prec in ${EMU_PRECISIONS:-fp32 tf32 fp16}; do run "$m" "$prec" "${shape[@]}"; done
done
# Every tensor-core tile the autotuner may pick (kiln build --tile forces one everywhere; docs/tuning.md)
for t in 64x64x32/32x32 64x32x32/32x16 32x64x32/32x16 32x32x32/16x16 16x64x32/16x16 16x32x32/16x8; do
    EMU_SUFFIX=_tile${t//\//_} run "$WORK/cases/tiny_cnn.onnx" fp16 --shape image=2x3x32x32 --tile "$t"
done
# Depthwise: every column-group width (the heuristic takes dw_q1 on these small shapes)
for t in dw_q2 dw_q4 dw_q8; do
    for prec in fp32 fp16; do EMU_SUFFIX=_tile_$t run "$WORK/cases/dw_taps.onnx" "$prec" --tile "$t"; done
done
EMU_SUFFIX=_tile_dw_q4 run "$WORK/cases/nhwc_dw_odd_c.onnx" fp16 --tile dw_q4
# the stride-2 stem's space-to-depth candidates (cg_conv_nhwc.c "s2d:"): mma.sync, split-K and a
# wgmma tile (its mma.sync fallback here; the sm_90a build compiles the wgmma path with NVRTC)
for t in s2d:64x64x32s4w4k1 s2d:64x64x32s4w4k2 s2d:wgz128x64x64s4g2k1; do
    EMU_SUFFIX=_tile_${t//:/_} run "$WORK/cases/nhwc_stem_s2d.onnx" fp16 --arch sm_90a --tile "$t" \
        --disable-pass fuse-conv-pool
    if ! grep -q 'kiln::conv_nhwc_s2d<3, 33, 31, 3, 3, 20, 19>' "$WORK/nhwc_stem_s2d_fp16_tile_${t//:/_}/nhwc_stem_s2d.cu"; then
        echo "FAIL: nhwc_stem_s2d_fp16_tile_${t//:/_}: no space-to-depth copy"
        fails=$((fails + 1))
    fi
done
# the pooled stem (kernels/conv_pool.cuh) in bands of 3 and 4 pooled rows (9 rows: the last band
# partial); the plain runs above take one row a block
for bp in 3 4; do
    KILN_CONV_POOL_BP=$bp EMU_SUFFIX=_bp$bp run "$WORK/cases/nhwc_stem_s2d.onnx" fp16
done
# its wgmma variant (conv_pool_wg_f16: sm_90a builds; the emulator runs it with wgmma emulated from the
# descriptors): float32 x with rows of 4k, 4k + 2 and odd widths, fp16 x, n64 and n112 rows, rows exactly full
# (c3w: Q = 64), odd and even chunk counts (the bias chunk in the last step or its own), bands of 1, 3, 4
for c in nhwc_stem_s2d nhwc_stem_pool_c4 nhwc_stem_pool_c1 nhwc_stem_pool_c3w nhwc_stem_pool_c2; do
    EMU_SUFFIX=_wg run "$WORK/cases/$c.onnx" fp16 --arch sm_90a
    if ! grep -q 'kiln::conv_pool_wg_f16<' "$WORK/${c}_fp16_wg/$c.cu"; then
        echo "FAIL: ${c}_fp16_wg: no conv_pool_wg_f16 in the sm_90a build"
        fails=$((fails + 1))
    fi
done
for bp in 3 4; do
    KILN_CONV_POOL_BP=$bp EMU_SUFFIX=_wg_bp$bp run "$WORK/cases/nhwc_stem_s2d.onnx" fp16 --arch sm_90a
done
# ResNet's row width in bands of 3: the last row's pooling after a stored row (the emulated wgmma is
# asynchronous and warps drift apart between block barriers, so a missing barrier fails here)
KILN_CONV_POOL_BP=3 EMU_SUFFIX=_wg_bp3 run "$WORK/cases/nhwc_stem_pool_c3w.onnx" fp16 --arch sm_90a
# the row loop's float32 rows in pairs (a band of one pooled row loads every row up front): C = 4 and C = 2
# with a width of 4k + 2, the last pair a single row (odd row counts)
for c in nhwc_stem_pool_c4 nhwc_stem_pool_c2; do
    KILN_CONV_POOL_BP=3 EMU_SUFFIX=_wg_bp3 run "$WORK/cases/$c.onnx" fp16 --arch sm_90a
done
# ... and with the warps run last to first (a race the other way round)
KILN_EMU_WARPS_REVERSED=1 KILN_CONV_POOL_BP=3 EMU_SUFFIX=_wg_bp3_rev run "$WORK/cases/nhwc_stem_pool_c3w.onnx" fp16 --arch sm_90a
# conv pairs on split-K and on a wgmma tile's mma.sync fallback (sm_90a build: the NVRTC compile
# of the wgmma path too)
for t in 64x64x32s4w4k2 wgz128x64x64s4g2k1; do
    EMU_SUFFIX=_tile_$t run "$WORK/cases/nhwc_conv_pair.onnx" fp16 --arch sm_90a --tile "$t"
done
# Small-M Gemm/MatMul: the heuristic picks rows_w4 (kernels/gemv.cuh) there; also force the
# smallest mma tile over them, and rows_w4 over every Gemm/MatMul (strided B: its scalar path)
EMU_SUFFIX=_tile16x32x32_16x8 run "$WORK/cases/gemv_small_m.onnx" fp16 --tile 16x32x32/16x8
for prec in fp32 fp16; do EMU_SUFFIX=_tile_rows_w4 run "$WORK/cases/gemm_softmax_matmul.onnx" "$prec" --tile rows_w4; done
# small-M fp16 GEMMs on tensor cores: every Gemm of the case forced onto gemv_mma_rows (M = 1 too)
EMU_SUFFIX=_tile_mma_rows run "$WORK/cases/gemv_mma_rows.onnx" fp16 --tile mma_rows_w8
if [ "$(grep -c 'kiln::gemv_mma_rows<' "$WORK/gemv_mma_rows_fp16_tile_mma_rows/gemv_mma_rows.cu")" -ne 3 ]; then
    echo "FAIL: gemv_mma_rows_fp16_tile_mma_rows: expected 3 gemv_mma_rows kernels"
    fails=$((fails + 1))
fi
EMU_SUFFIX=_tile_rows_w4 run "$WORK/cases/gemv_small_m.onnx" tf32 --tile rows_w4
# The models at one precision each (CI time: ~1.5 min per ResNet-50 run on one core); both also
# compile every kernel for sm_80 as well as sm_90. fp32 and tf32 of ResNet-50 run on the GPU
# (gpu_codegen.sh, tests/gpu/torchvision_check.py).
for spec in "resnet50_torchvision:fp16" "mobilenetv2:fp32 fp16"; do
    n=${spec%%:*}
    [ -n "$MODELS" ] || continue
    if [ ! -f "$MODELS/$n/model.onnx" ]; then
        echo "SKIP: $n: $MODELS/$n/model.onnx is missing (models_generate makes it)"
        continue
    fi
    cp "$MODELS/$n/model.onnx" "$WORK/$n.onnx" || exit 1
    for prec in ${spec#*:}; do run "$WORK/$n.onnx" "$prec" --shape input=1x3x224x224 --arch sm_80,sm_90; done
done
[ "$fails" -eq 0 ]
