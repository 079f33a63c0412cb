#!/usr/bin/env python3
"""Writes small ONNX models that use every GPU kernel template of kiln's codegen (odd sizes,
stride 2, groups, depthwise, dilation, padding, ceil mode, broadcasting, every epilogue
activation) into DIR, one CASE.onnx each, static shapes, seeded random weights. The GPU test
(tests/codegen/gpu_codegen.sh) builds each with `kiln build` and checks it with `kiln compare`.
usage: make_cases.py DIR"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

rng = np.random.default_rng(20261126)


def w(name, *shape, scale=0.5):
    return helper.make_tensor(name, TensorProto.FLOAT, shape,
                              (rng.uniform(-scale, scale, size=shape)).astype(np.float32).ravel().tolist())


def scalar(name, v):
    return helper.make_tensor(name, TensorProto.FLOAT, [], [float(v)])


def save(d, name, nodes, inputs, outputs, inits, opset=17):
    """inputs: (name, shape) for float32, or (name, shape, TensorProto type)."""
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(i[0], i[2] if len(i) > 2 else TensorProto.FLOAT, i[1])
                                        for i in inputs],
                          [helper.make_empty_tensor_value_info(n) for n in outputs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="kiln-tests")
    # output types from ONNX's own shape inference (so that the cases state them)
    inferred = onnx.shape_inference.infer_shapes(m)
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for o in m.graph.output:
        o.type.CopyFrom(known[o.name].type)
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(d, name + ".onnx"))


def main(d):
    os.makedirs(d, exist_ok=True)
    N = helper.make_node
    # conv: stride 2, odd sizes, bias + relu (implicit GEMM, M = 10 < 16 tiles)
    save(d, "conv_stride2_odd",
         [N("Conv", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1]), N("Relu", ["y"], ["out"])],
         [("x", [2, 6, 11, 13])], ["out"], [w("w", 10, 6, 3, 3), w("b", 10)])
    # groups + dilation, asymmetric pads, no bias
    save(d, "conv_groups_dilation",
         [N("Conv", ["x", "w"], ["out"], group=2, dilations=[2, 2], pads=[2, 1, 1, 2])],
         [("x", [1, 8, 9, 10])], ["out"], [w("w", 6, 4, 3, 3)])
    # depthwise stride 2 + ReLU6 (direct kernel), then a 1x1 conv with a residual and relu
    save(d, "depthwise_residual",
         [N("Conv", ["x", "wd", "bd"], ["d"], group=12, strides=[2, 2], pads=[1, 1, 1, 1]),
          N("Clip", ["d", "lo", "hi"], ["d6"]),
          N("Conv", ["d6", "wp", "bp"], ["p"]),
          N("Add", ["p", "d6"], ["s"]), N("Relu", ["s"], ["out"])],
         [("x", [1, 12, 15, 15])], ["out"],
         [w("wd", 12, 1, 3, 3), w("bd", 12), scalar("lo", 0), scalar("hi", 6), w("wp", 12, 12, 1, 1), w("bp", 12)])
    # big enough for several 64x64 tiles in both GEMM dims, with a 7x7 stride-2 stem
    save(d, "conv_large_tiles",
         [N("Conv", ["x", "w1", "b1"], ["a"], strides=[2, 2], pads=[3, 3, 3, 3]), N("Relu", ["a"], ["r"]),
          N("Conv", ["r", "w2", "b2"], ["out"], pads=[1, 1, 1, 1])],
         [("x", [2, 3, 45, 47])], ["out"], [w("w1", 64, 3, 7, 7, scale=0.2), w("b1", 64),
                                            w("w2", 130, 64, 3, 3, scale=0.1), w("b2", 130)])
    # 1x1 convolutions on the implicit GEMM (40 taps): stride 1 (the direct-B path) with a
    # residual, and stride 2 (the general path); odd pixel count, two images
    save(d, "conv_1x1",
         [N("Conv", ["x", "w1", "b1"], ["a"]), N("Add", ["a", "x"], ["s"]), N("Relu", ["s"], ["r"]),
          N("Conv", ["r", "w2"], ["out"], strides=[2, 2])],
         [("x", [2, 40, 7, 9])], ["out"], [w("w1", 40, 40, 1, 1, scale=0.2), w("b1", 40),
                                           w("w2", 70, 40, 1, 1, scale=0.2)])
    # grids large enough for the widest tensor-core tiles: 64x64 (M 72, 2 x 285 blocks), then
    # 1x1 convs with M 40 (32x64) and M 20 (16x64); a 50x60 map gives 64x32 (64x64: 94 blocks)
    save(d, "conv_wide",
         [N("Conv", ["x", "w", "b"], ["a"], pads=[1, 1, 1, 1]), N("Relu", ["a"], ["r"]),
          N("Conv", ["r", "w2"], ["c"]), N("Conv", ["c", "w3"], ["out"]),
          N("Conv", ["y", "w"], ["out2"], pads=[1, 1, 1, 1])],
         [("x", [1, 8, 130, 140]), ("y", [1, 8, 50, 60])], ["out", "out2"],
         [w("w", 72, 8, 3, 3, scale=0.3), w("b", 72), w("w2", 40, 72, 1, 1, scale=0.2),
          w("w3", 20, 40, 1, 1, scale=0.3)])
    # every epilogue activation after a conv (SiLU and HardSwish written out are fused too)
    acts, inits, prev = [], [], "x"
    kinds = [("Sigmoid", {}), ("Tanh", {}), ("LeakyRelu", {"alpha": 0.1}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
             ("HardSwish", {}), ("Elu", {"alpha": 0.7}), ("SiLU", {})]
    for i, (k, attrs) in enumerate(kinds):
        inits += [w(f"w{i}", 8, 8, 3, 3, scale=0.3), w(f"b{i}", 8)]
        acts.append(N("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        if k == "SiLU":
            acts += [N("Sigmoid", [f"c{i}"], [f"g{i}"]), N("Mul", [f"c{i}", f"g{i}"], [f"a{i}"])]
        else:
            acts.append(N(k, [f"c{i}"], [f"a{i}"], **attrs))
        prev = f"a{i}"
    save(d, "conv_activations", acts, [("x", [1, 8, 10, 9])], [prev], inits)
    # pools, concat, global pools
    save(d, "pools_concat",
         [N("MaxPool", ["x"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
          N("AveragePool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
            count_include_pad=1),
          N("AveragePool", ["x"], ["q"], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1]),
          N("Concat", ["m", "p"], ["c"], axis=1),
          N("GlobalAveragePool", ["c"], ["ga"]), N("GlobalMaxPool", ["q"], ["gm"])],
         [("x", [2, 3, 9, 10])], ["c", "q", "ga", "gm"], [])
    # Gemm (transB, alpha, beta, C) + relu, softmax; batched broadcast MatMul + log-softmax
    save(d, "gemm_softmax_matmul",
         [N("Gemm", ["x", "w", "c"], ["z"], transB=1, alpha=0.5, beta=2.0), N("Relu", ["z"], ["zr"]),
          N("Softmax", ["zr"], ["prob"], axis=1),
          N("MatMul", ["a", "bm"], ["mm"]), N("LogSoftmax", ["mm"], ["lsm"], axis=2),
          N("MatMul", ["x", "wt"], ["mv"])],
         [("x", [3, 37]), ("a", [3, 1, 4, 5])], ["prob", "lsm", "mv"],
         [w("w", 70, 37), w("c", 70), w("bm", 2, 5, 6), w("wt", 37)])
    # small-M Gemm (kernels/gemv.cuh "rows_w4"): M = 1 (K = 512: 16-byte vector loads), M = 3
    # (K = 203: scalar path), M = 32 (K = 40, C broadcast over rows, beta != 1, residual + relu),
    # and a small-M MatMul with B [K][N] (strided k: not the heuristic's gemv)
    # small-M Gemm on fp16 tensor cores (gemv.cuh "mma_rows_w8", fp16 with K % 16 == 0): M = 32
    # (two m16 tiles, N = 50 not a multiple of 8, bias + relu), M = 20 (rows past M, residual),
    # M = 1 (the rows kernel at batch 1 unless forced); emu_codegen.sh forces mma_rows_w8
    save(d, "gemv_mma_rows",
         [N("Gemm", ["x32", "w32", "c32"], ["g32"], transB=1), N("Relu", ["g32"], ["y32"]),
          N("Gemm", ["x20", "w20"], ["g20"], transB=1, alpha=0.5), N("Add", ["g20", "r20"], ["y20"]),
          N("Gemm", ["x1", "w1", "c1"], ["y1"], transB=1)],
         [("x32", [32, 256]), ("x20", [20, 64]), ("r20", [20, 24]), ("x1", [1, 128])], ["y32", "y20", "y1"],
         [w("w32", 50, 256, scale=0.1), w("c32", 50), w("w20", 24, 64, scale=0.2), w("w1", 40, 128, scale=0.1),
          w("c1", 40)])
    save(d, "gemv_small_m",
         [N("Gemm", ["x1", "w1", "c1"], ["y1"], transB=1),
          N("Gemm", ["x3", "w3", "c3"], ["g3"], transB=1, alpha=0.75, beta=-1.5), N("Relu", ["g3"], ["y3"]),
          N("Gemm", ["x32", "w32", "c32"], ["g32"], transB=1, beta=0.5), N("Add", ["g32", "r32"], ["s32"]),
          N("Relu", ["s32"], ["y32"]),
          N("MatMul", ["x3", "wm"], ["ym"])],
         [("x1", [1, 512]), ("x3", [3, 203]), ("x32", [32, 40]), ("r32", [32, 50])], ["y1", "y3", "y32", "ym"],
         [w("w1", 100, 512, scale=0.1), w("c1", 100), w("w3", 70, 203, scale=0.1), w("c3", 70),
          w("w32", 50, 40), w("c32", 1, 50), w("wm", 203, 9, scale=0.1)])
    # elementwise: a broadcast DAG with two outputs, variadic Max, unary chain
    save(d, "elementwise",
         [N("Mul", ["x", "y"], ["t0"]), N("Add", ["t0", "c"], ["t1"]), N("Sigmoid", ["t1"], ["t2"]),
          N("Sub", ["t2", "x"], ["o1"]), N("Tanh", ["t1"], ["o2"]),
          N("Div", ["y", "c"], ["q"]), N("Abs", ["q"], ["qa"]), N("Sqrt", ["qa"], ["qs"]),
          N("Max", ["qs", "c", "y"], ["o3"]), N("Exp", ["x"], ["e"]), N("Neg", ["e"], ["o4"])],
         [("x", [3, 5, 7]), ("y", [5, 1])], ["o1", "o2", "o3", "o4"], [w("c", 7)])
    # data movement: Transpose, Slice (steps, negative step), Pad (value, negative pad), Expand, Split
    i64 = lambda name, v: helper.make_tensor(name, TensorProto.INT64, [len(v)], v)
    save(d, "data_movement",
         [N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
          N("Slice", ["t", "s0", "e0", "a0", "p0"], ["sl"]),
          N("Slice", ["x", "s1", "e1", "a1", "p1"], ["sr"]),
          N("Pad", ["x", "pads", "pv"], ["pd"], mode="constant"),
          N("Expand", ["y", "shape"], ["ex"]),
          N("Split", ["x", "split"], ["sp0", "sp1"], axis=3),
          N("Relu", ["sl"], ["out0"])],
         [("x", [2, 3, 5, 7]), ("y", [3, 1])], ["out0", "sr", "pd", "ex", "sp0", "sp1"],
         [i64("s0", [1, 0]), i64("e0", [4, -1]), i64("a0", [1, 3]), i64("p0", [2, 1]),
          i64("s1", [-1, 6]), i64("e1", [-6, 0]), i64("a1", [2, 3]), i64("p1", [-2, -3]),
          i64("pads", [0, 1, 2, -1, 1, 0, -1, 3]), scalar("pv", 0.5), i64("shape", [2, 3, 4]),
          i64("split", [3, 4])])

    # reductions (kernels/reduce.cuh): any axes (constant input, opset 18), keepdims, noop,
    # ArgMax/ArgMin with ties (Floor) and select_last_index, and fused reduction groups
    # (prologue x*x / Exp, epilogue Sqrt / Log / + broadcast constant)
    save(d, "reductions",
         [N("ReduceSum", ["x", "ax02"], ["rs"], keepdims=1),
          N("ReduceMean", ["x", "ax1"], ["rm"], keepdims=0),
          N("ReduceMax", ["x", "axm1"], ["rx"], keepdims=0),
          N("ReduceMin", ["x"], ["rn"], keepdims=1),
          N("ReduceProd", ["x", "ax1"], ["rp"], keepdims=1),
          N("ReduceL1", ["x", "ax02"], ["r1"], keepdims=0),
          N("ReduceL2", ["x", "ax1"], ["r2"], keepdims=1),
          N("ReduceLogSumExp", ["x", "ax02"], ["rlse"], keepdims=0),
          N("ReduceSumSquare", ["x", "axm1"], ["rss"], keepdims=1),
          N("Abs", ["x"], ["xa"]), N("ReduceLogSum", ["xa", "ax1"], ["rls"], keepdims=1),
          N("ReduceSum", ["x", "empty"], ["noop"], keepdims=1, noop_with_empty_axes=1),
          N("Mul", ["x", "x"], ["sq"]), N("ReduceSum", ["sq", "axm1"], ["ssq"], keepdims=1),
          N("Sqrt", ["ssq"], ["fused_l2"]),
          N("Exp", ["x"], ["ex"]), N("ReduceSum", ["ex", "ax1"], ["sex"], keepdims=0),
          N("Log", ["sex"], ["lg"]), N("Add", ["lg", "bias"], ["fused_lse"]),
          N("Mul", ["x", "three"], ["x3"]), N("Floor", ["x3"], ["fl"]),
          N("ArgMax", ["fl"], ["amax"], axis=1, keepdims=1),
          N("ArgMax", ["fl"], ["amax_last"], axis=2, keepdims=0, select_last_index=1),
          N("ArgMin", ["fl"], ["amin"], axis=-1, keepdims=1),
          N("ArgMin", ["fl"], ["amin_last"], axis=0, keepdims=1, select_last_index=1)],
         [("x", [3, 37, 5])],
         ["rs", "rm", "rx", "rn", "rp", "r1", "r2", "rlse", "rss", "rls", "noop", "fused_l2", "fused_lse",
          "amax", "amax_last", "amin", "amin_last"],
         [i64("ax02", [0, 2]), i64("ax1", [1]), i64("axm1", [-1]), helper.make_tensor("empty", TensorProto.INT64, [0], []),
          w("bias", 5), scalar("three", 3.0)], opset=18)
    # Gather (any axis, int64 / int32 indices, negative ones) and GatherElements
    i32 = lambda name, shape, v: helper.make_tensor(name, TensorProto.INT32, shape, v)
    save(d, "gather",
         [N("Gather", ["x", "i0"], ["g0"], axis=0),
          N("Gather", ["x", "i1"], ["g1"], axis=1),
          N("Gather", ["x", "is"], ["g2"], axis=-1),
          N("Relu", ["x"], ["xr"]), N("Gather", ["xr", "i3"], ["g3"], axis=2),
          N("GatherElements", ["x", "ie"], ["ge"], axis=1)],
         [("x", [4, 6, 5])], ["g0", "g1", "g2", "g3", "ge"],
         [helper.make_tensor("i0", TensorProto.INT64, [2, 2], [3, -1, 0, 2]),
          i32("i1", [3], [-6, 5, 1]), i32("i3", [2, 2], [-5, 4, 0, -1]), helper.make_tensor("is", TensorProto.INT64, [], [-2]),
          helper.make_tensor("ie", TensorProto.INT64, [4, 3, 5],
                             rng.integers(-6, 6, size=60).tolist())])

    # Softmax / LogSoftmax inside fused reduction groups (a broadcast prologue and epilogue)
    save(d, "softmax_groups",
         [N("Add", ["x", "m"], ["xm"]), N("Softmax", ["xm"], ["sm"], axis=1), N("Mul", ["sm", "s"], ["o1"]),
          N("Mul", ["x", "two"], ["x2"]), N("LogSoftmax", ["x2"], ["o2"], axis=-1)],
         [("x", [2, 33, 6])], ["o1", "o2"], [w("m", 33, 1), w("s", 6), scalar("two", 2.0)])
    save(d, "softmax_group_opset11",
         [N("Sub", ["x", "m"], ["xm"]), N("Softmax", ["xm"], ["o"], axis=1)],
         [("x", [3, 4, 5])], ["o"], [w("m", 5)], opset=11)

    # LayerNormalization (axis 1 of 3-D: two normalized dims, broadcast Scale, with Mean and
    # InvStdDev outputs), the recognized x-mean / sqrt(var+eps) pattern, RMSNormalization (opset 23)
    save(d, "layer_norm",
         [N("LayerNormalization", ["x", "g", "b"], ["ln", "mean", "inv"], axis=1, epsilon=1e-3),
          N("ReduceMean", ["x", "axm1"], ["mu"], keepdims=1), N("Sub", ["x", "mu"], ["dx"]),
          N("Mul", ["dx", "dx"], ["dx2"]), N("ReduceMean", ["dx2", "axm1"], ["var"], keepdims=1),
          N("Add", ["var", "eps"], ["ve"]), N("Sqrt", ["ve"], ["sd"]), N("Div", ["dx", "sd"], ["nrm"]),
          N("Mul", ["nrm", "g2"], ["pat"])],
         [("x", [3, 7, 40])], ["ln", "mean", "inv", "pat"],
         [w("g", 40), w("b", 7, 40), i64("axm1", [-1]), scalar("eps", 1e-5), w("g2", 40)], opset=18)
    # normalizations inside reduction groups: prologue Mul, LayerNormalization, epilogue residual Add + Relu
    save(d, "norm_groups",
         [N("Mul", ["x", "two"], ["x2"]), N("LayerNormalization", ["x2", "g", "b"], ["ln"], axis=-1),
          N("Add", ["ln", "x"], ["res"]), N("Relu", ["res"], ["o1"]),
          N("Sub", ["x", "b"], ["x3"]), N("RMSNormalization", ["x3", "g"], ["rn"], axis=1), N("Tanh", ["rn"], ["o2"])],
         [("x", [3, 5, 40])], ["o1", "o2"], [scalar("two", 2.0), w("g", 40), w("b", 40)], opset=23)
    save(d, "rms_norm", [N("RMSNormalization", ["x", "g"], ["y"], axis=-1)], [("x", [5, 70])], ["y"], [w("g", 70)],
         opset=23)

    # ConvTranspose: 2-D stride 2 with padding, output_padding, dilation, groups and a bias;
    # 1-D with output_shape; 3-D plain
    save(d, "conv_transpose",
         [N("ConvTranspose", ["x", "w", "b"], ["y2"], strides=[2, 3], pads=[1, 0, 2, 1], output_padding=[1, 2],
            dilations=[2, 1], group=2),
          N("ConvTranspose", ["x1", "w1"], ["y1"], strides=[3], output_shape=[13]),
          N("ConvTranspose", ["x3", "w3"], ["y3"], strides=[1, 2, 1], pads=[0, 1, 1, 0, 1, 0])],
         [("x", [2, 4, 5, 6]), ("x1", [1, 3, 4]), ("x3", [1, 2, 3, 4, 3])], ["y2", "y1", "y3"],
         [w("w", 4, 3, 3, 2), w("b", 6), w("w1", 3, 2, 3), w("w3", 2, 2, 2, 3, 2)])

    # Resize: nearest (rounding modes), linear, cubic, antialias, tf_crop_and_resize, sizes with
    # keep_aspect_ratio_policy, axes; Upsample (opset 9) is imported as Resize
    f32 = lambda name, v: helper.make_tensor(name, TensorProto.FLOAT, [len(v)], v)
    e = helper.make_tensor("e", TensorProto.FLOAT, [0], [])
    save(d, "resize",
         [N("Resize", ["x", "", "s1"], ["nf"], mode="nearest", nearest_mode="floor",
            coordinate_transformation_mode="asymmetric"),
          N("Resize", ["x", "", "s2"], ["nc"], mode="nearest", nearest_mode="round_prefer_ceil",
            coordinate_transformation_mode="half_pixel"),
          N("Resize", ["x", "", "s1"], ["lin"], mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
          N("Resize", ["x", "", "s2"], ["cub"], mode="cubic", coordinate_transformation_mode="align_corners",
            exclude_outside=1),
          N("Resize", ["x", "", "s3"], ["aa"], mode="linear", antialias=1),
          N("Resize", ["x", "roi", "s1"], ["crop"], mode="linear", coordinate_transformation_mode="tf_crop_and_resize",
            extrapolation_value=-3.0),
          N("Resize", ["x", "", "", "sz"], ["keep"], mode="cubic", axes=[2, 3], keep_aspect_ratio_policy="not_larger")],
         [("x", [1, 2, 5, 7])], ["nf", "nc", "lin", "cub", "aa", "crop", "keep"],
         [f32("s1", [1, 1, 2.0, 1.5]), f32("s2", [1, 1, 0.6, 0.5]), f32("s3", [1, 1, 0.5, 0.4]),
          f32("roi", [0, 0, 0.2, -0.3, 1, 1, 0.9, 1.2]), i64("sz", [9, 9]), e], opset=19)
    save(d, "upsample9", [N("Upsample", ["x", "sc"], ["y"], mode="linear")], [("x", [1, 2, 3, 4])], ["y"],
         [f32("sc", [1, 1, 2, 3])], opset=9)

    # index family: Trilu (upper / lower, k), Tile, DepthToSpace (DCR, CRD), SpaceToDepth
    save(d, "index_misc",
         [N("Trilu", ["x", "k1"], ["up"], upper=1), N("Trilu", ["x", "km"], ["lo"], upper=0),
          N("Tile", ["x", "rep"], ["t"]),
          N("DepthToSpace", ["z"], ["dcr"], blocksize=2, mode="DCR"),
          N("DepthToSpace", ["z"], ["crd"], blocksize=2, mode="CRD"),
          N("SpaceToDepth", ["z"], ["s2d"], blocksize=3),
          N("GatherND", ["z", "nd"], ["gnd"]), N("GatherND", ["z", "ndb"], ["gndb"], batch_dims=1),
          N("EyeLike", ["x2"], ["eye"], k=1)],
         [("x", [2, 4, 5]), ("z", [2, 12, 3, 6]), ("x2", [3, 5])], ["up", "lo", "t", "dcr", "crd", "s2d", "gnd", "gndb", "eye"],
         [helper.make_tensor("k1", TensorProto.INT64, [], [1]), helper.make_tensor("km", TensorProto.INT64, [], [-1]),
          i64("rep", [2, 1, 3]), helper.make_tensor("nd", TensorProto.INT64, [2, 2, 2], [1, -1, 0, 3, -2, 11, 1, 0]),
          helper.make_tensor("ndb", TensorProto.INT32, [2, 3, 2], [0, 1, 11, 2, -1, -1, 5, 0, 3, 2, 7, 1])])

    # CumSum (inclusive, exclusive, reverse) and InstanceNormalization
    save(d, "cumsum_instnorm",
         [N("CumSum", ["x", "a1"], ["c0"]), N("CumSum", ["x", "a2"], ["c1"], exclusive=1, reverse=1),
          N("CumSum", ["x", "a0"], ["c2"], exclusive=1),
          N("InstanceNormalization", ["z", "g", "b"], ["inorm"], epsilon=1e-4),
          N("LpNormalization", ["z"], ["lp1"], axis=1, p=1), N("LpNormalization", ["z"], ["lp2"], axis=-1, p=2),
          N("LRN", ["z"], ["lrn"], size=3, alpha=0.01, beta=0.6, bias=1.5)],
         [("x", [3, 4, 37]), ("z", [2, 3, 5, 7])], ["c0", "c1", "c2", "inorm", "lp1", "lp2", "lrn"],
         [helper.make_tensor("a1", TensorProto.INT64, [], [1]), helper.make_tensor("a2", TensorProto.INT32, [], [-1]),
          helper.make_tensor("a0", TensorProto.INT64, [], [0]), w("g", 3), w("b", 3)])

    # losses: NegativeLogLikelihoodLoss (none / sum / mean with weights and ignore_index) and
    # SoftmaxCrossEntropyLoss with its log_prob output
    tgt = helper.make_tensor("t", TensorProto.INT64, [3, 4], [0, 4, 2, 1, 3, 3, -1, 0, 4, 2, 1, -1])
    save(d, "losses",
         [N("NegativeLogLikelihoodLoss", ["x", "t"], ["l_none"], reduction="none", ignore_index=-1),
          N("NegativeLogLikelihoodLoss", ["x", "t", "wc"], ["l_sum"], reduction="sum", ignore_index=-1),
          N("NegativeLogLikelihoodLoss", ["x", "t", "wc"], ["l_mean"], reduction="mean", ignore_index=-1),
          N("SoftmaxCrossEntropyLoss", ["x", "t"], ["sce", "logp"], reduction="mean", ignore_index=-1)],
         [("x", [3, 5, 4])], ["l_none", "l_sum", "l_mean", "sce", "logp"], [tgt, w("wc", 5)], opset=13)

    # global pools inside reduction groups (SiLU prologue, as EfficientNet's squeeze-excite)
    save(d, "gpool_groups",
         [N("Sigmoid", ["x"], ["sg"]), N("Mul", ["x", "sg"], ["silu"]), N("GlobalAveragePool", ["silu"], ["gap"]),
          N("Add", ["x", "c"], ["xc"]), N("GlobalMaxPool", ["xc"], ["gmp"]), N("Relu", ["gmp"], ["o2"])],
         [("x", [2, 6, 5, 7])], ["gap", "o2"], [w("c", 1, 6, 1, 1)])
    save(d, "hardmax", [N("Hardmax", ["x"], ["h1"], axis=1), N("Hardmax", ["x"], ["h2"], axis=-1)],
         [("x", [3, 40, 5])], ["h1", "h2"], [])
    save(d, "cumprod", [N("CumProd", ["x", "a1"], ["p0"]), N("CumProd", ["x", "a1"], ["p1"], exclusive=1, reverse=1)],
         [("x", [2, 6, 3])], ["p0", "p1"], [helper.make_tensor("a1", TensorProto.INT64, [], [1])], opset=26)
    save(d, "hardmax_opset11", [N("Hardmax", ["x"], ["h"], axis=1)], [("x", [3, 4, 5])], ["h"], [], opset=11)

    # outputs known at build time: Shape, Size (static input), a Constant; next to a kernel
    save(d, "build_time_outputs",
         [N("Shape", ["x"], ["shp"], start=1), N("Size", ["x"], ["sz"]),
          N("Constant", [], ["k"], value=helper.make_tensor("kv", TensorProto.FLOAT, [2, 2], [1.5, -2, 3, 0.25])),
          N("Relu", ["x"], ["r"])],
         [("x", [2, 3, 4])], ["shp", "sz", "k", "r"], [])

    # f64: Reduce* and a fused reduction group computed in double (prologue Exp, epilogue Log + 0.5)
    gd = helper.make_graph(
        [N("ReduceSum", ["x", "ax"], ["rs"], keepdims=0), N("Exp", ["x"], ["e"]),
         N("ReduceSum", ["e", "ax"], ["se"], keepdims=1), N("Log", ["se"], ["l"]), N("Add", ["l", "h"], ["lse"]),
         N("ArgMax", ["x"], ["am"], axis=1)],
        "f64", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [3, 9, 4])],
        [helper.make_tensor_value_info("rs", TensorProto.DOUBLE, [3, 4]),
         helper.make_tensor_value_info("lse", TensorProto.DOUBLE, [3, 1, 4]),
         helper.make_tensor_value_info("am", TensorProto.INT64, [3, 1, 4])],
        [i64("ax", [1]), helper.make_tensor("h", TensorProto.DOUBLE, [], [0.5])])
    md = helper.make_model(gd, opset_imports=[helper.make_opsetid("", 18)], producer_name="kiln-tests")
    onnx.checker.check_model(md)
    onnx.save(md, os.path.join(d, "reduce_f64.onnx"))

    # scatters (one thread, in order): ScatterElements (none / add, negative and duplicate
    # indices), ScatterND (mul, max)
    save(d, "scatter",
         [N("ScatterElements", ["x", "si", "u"], ["se"], axis=1),
          N("ScatterElements", ["x", "si", "u"], ["sa"], axis=1, reduction="add"),
          N("ScatterND", ["x", "ni", "nu"], ["sm"], reduction="mul"),
          N("ScatterND", ["x", "ni", "nu"], ["sx"], reduction="max")],
         [("x", [3, 5, 4]), ("u", [3, 2, 4]), ("nu", [2, 4])], ["se", "sa", "sm", "sx"],
         [helper.make_tensor("si", TensorProto.INT64, [3, 2, 4], rng.integers(-5, 5, size=24).tolist()),
          helper.make_tensor("ni", TensorProto.INT64, [2, 2], [1, -1, 1, 4])], opset=18)

    # TopK: largest along the middle axis (ties from Floor), smallest along the last
    save(d, "topk",
         [N("Mul", ["x", "four"], ["x4"]), N("Floor", ["x4"], ["f"]),
          N("TopK", ["f", "k3"], ["v1", "i1"], axis=1), N("TopK", ["x", "k2"], ["v2", "i2"], axis=-1, largest=0)],
         [("x", [3, 9, 5])], ["v1", "i1", "v2", "i2"],
         [scalar("four", 4.0), i64("k3", [3]), i64("k2", [2])])

    # OneHot with float indices (truncated, negative, out of range), axis 1
    save(d, "one_hot",
         [N("Mul", ["x", "five"], ["x5"]), N("OneHot", ["x5", "depth", "vals"], ["oh"], axis=1)],
         [("x", [3, 7])], ["oh"],
         [scalar("five", 5.0), i64("depth", [4]), helper.make_tensor("vals", TensorProto.FLOAT, [2], [-1.0, 2.5])])

    # Einsum: batched matmul, batch diagonal with an ellipsis, implicit output, sum, transpose,
    # three operands
    save(d, "einsum",
         [N("Einsum", ["a", "b"], ["bmm"], equation="bij,bjk->bik"),
          N("Einsum", ["sq"], ["diag"], equation="...ii->...i"),
          N("Einsum", ["m", "mt"], ["imp"], equation="ij,jk"),
          N("Einsum", ["m"], ["rows"], equation="ij->i"),
          N("Einsum", ["m"], ["tr"], equation="ij -> ji"),
          N("Einsum", ["a", "b", "v"], ["three"], equation="bij,bjk,k->bi")],
         [("a", [2, 3, 4]), ("b", [2, 4, 5]), ("sq", [2, 3, 3]), ("m", [3, 6]), ("mt", [6, 2]), ("v", [5])],
         ["bmm", "diag", "imp", "rows", "tr", "three"], [])

    # RotaryEmbedding: 4-D with position_ids (partial rotation), 3-D interleaved with a cache per token
    pos = helper.make_tensor("pos", TensorProto.INT64, [2, 3], [0, 4, 2, 7, 1, 3])
    save(d, "rotary",
         [N("RotaryEmbedding", ["x4", "cos", "sin", "pos"], ["r4"], rotary_embedding_dim=4),
          N("RotaryEmbedding", ["x3", "c3", "s3"], ["r3"], num_heads=2, interleaved=1)],
         [("x4", [2, 2, 3, 6]), ("x3", [2, 3, 8])], ["r4", "r3"],
         [w("cos", 8, 2), w("sin", 8, 2), pos, w("c3", 2, 3, 2), w("s3", 2, 3, 2)], opset=23)
    # two independent conv branches joined by Concat and Add (multi-stream execution: the
    # branches have no dependency edge and may run on separate streams)
    save(d, "parallel_branches",
         [N("Conv", ["x", "wa", "ba"], ["a"], pads=[1, 1, 1, 1]), N("Relu", ["a"], ["ra"]),
          N("Conv", ["x", "wb"], ["b"], strides=[1, 1]),
          N("Concat", ["ra", "b"], ["cat"], axis=1),
          N("Conv", ["x", "wc"], ["c"], pads=[1, 1, 1, 1]),
          N("Conv", ["x", "wd"], ["e"]),
          N("Add", ["c", "e"], ["out1"])],
         [("x", [1, 6, 12, 12])], ["cat", "out1"],
         [w("wa", 8, 6, 3, 3), w("ba", 8), w("wb", 8, 6, 1, 1), w("wc", 8, 6, 3, 3), w("wd", 8, 6, 1, 1)])
    typed_cases(d)
    nhwc_cases(d)


def nhwc_cases(d):
    """Cases whose convolution regions select-layout makes NHWC at tf32 and fp16 (emu_codegen.sh
    asserts the NHWC kernels are in the generated source): the NHWC conv paths (3-channel stem,
    grouped, depthwise), pools, per-channel and [N,C,1,1] broadcasts, Concat/Split with the
    axis remapped, border conversions both ways and graph outputs produced in NHWC."""
    N = helper.make_node

    def ints(name, vals):
        return helper.make_tensor(name, TensorProto.INT64, [len(vals)], vals)
    # stem (C = 3), max/average pools, a per-channel graph input, an SE-style [N,C,1,1] scale,
    # global pools; `c` is a graph output that the region also reads, `out` one it produces
    save(d, "nhwc_stem_pools",
         [N("Conv", ["x", "w0", "b0"], ["s"], pads=[1, 1, 1, 1]), N("Relu", ["s"], ["r"]),
          N("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
          N("AveragePool", ["m"], ["a1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
          N("AveragePool", ["a1"], ["a2"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
          N("Conv", ["a2", "w1"], ["c"]),
          N("Mul", ["c", "chs"], ["e"]),
          N("GlobalAveragePool", ["e"], ["g"]), N("Sigmoid", ["g"], ["gs"]), N("Mul", ["e", "gs"], ["se"]),
          N("GlobalMaxPool", ["se"], ["out_g"]),
          N("Conv", ["se", "w2", "b2"], ["out"], strides=[2, 2], pads=[1, 1, 1, 1])],
         [("x", [2, 3, 20, 22]), ("chs", [24, 1, 1])], ["out", "out_g", "c"],
         [w("w0", 16, 3, 3, 3), w("b0", 16), w("w1", 24, 16, 1, 1, scale=0.3), w("w2", 32, 24, 3, 3, scale=0.2),
          w("b2", 32)])
    # fp16 stems with C < 8 (x padded to 8 channels in scratch, cg_conv_nhwc.c emit_pad_c8) and
    # NHWC pools on 16-byte vectors of 8 channels (pool2d_nhwc_h8); the C = 12 MaxPool stays on
    # the per-element NHWC pool (emu_codegen.sh greps the fp16 sources for each)
    save(d, "nhwc_stem_c3",
         [N("Conv", ["x", "w0", "b0"], ["s"], strides=[2, 2], pads=[3, 3, 3, 3]), N("Relu", ["s"], ["r"]),
          N("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
          N("AveragePool", ["m"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
          N("Conv", ["a", "w1"], ["c"]),
          N("MaxPool", ["c"], ["m2"], kernel_shape=[2, 2], strides=[2, 2]),
          N("Conv", ["m2", "w2", "b2"], ["out"])],
         [("x", [2, 3, 29, 30])], ["out"],
         [w("w0", 16, 3, 7, 7, scale=0.2), w("b0", 16), w("w1", 12, 16, 1, 1, scale=0.3), w("w2", 8, 12, 1, 1),
          w("b2", 8)])
    for cin in (1, 4):
        save(d, "nhwc_stem_c%d" % cin,
             [N("Conv", ["x", "w0", "b0"], ["s"], strides=[2, 2], pads=[3, 3, 3, 3]), N("Relu", ["s"], ["r"]),
              N("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
              N("Conv", ["m", "w1"], ["out"])],
             [("x", [1, cin, 21, 19])], ["out"],
             [w("w0", 16, cin, 7, 7, scale=0.3), w("b0", 16), w("w1", 16, 16, 1, 1, scale=0.3)])
    # conv pairs (passes/fuse_conv_pair.c, fp16): Add(conv, conv) + Relu as one GEMM over both
    # depths. First pair: the anchor (the later conv, 1x1 stride 2 on 24 channels: depth 24) is
    # not a whole K tile, so the 3x3 conv's depth (576) goes first; second pair: two 1x1 convs
    # (ResNet-50's projection), the anchor without a bias. M = 50 pixels: partial tiles.
    save(d, "nhwc_conv_pair",
         [N("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), N("Relu", ["c1"], ["c1r"]),
          N("Conv", ["c1r", "wt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1]), N("Relu", ["t"], ["tr"]),
          N("Conv", ["tr", "wu", "bu"], ["u"], pads=[1, 1, 1, 1]),
          N("Conv", ["x", "wv", "bv"], ["v"], strides=[2, 2]),
          N("Add", ["u", "v"], ["s1"]), N("Relu", ["s1"], ["y1"]),
          N("Conv", ["y1", "wp", "bp"], ["p"]),
          N("Conv", ["tr", "wq"], ["q"]),
          N("Add", ["p", "q"], ["s2"]), N("Relu", ["s2"], ["out"])],
         [("x", [2, 24, 10, 9])], ["out"],
         [w("w1", 64, 24, 3, 3, scale=0.2), w("b1", 64), w("wt", 64, 64, 3, 3, scale=0.1),
          w("wu", 64, 64, 3, 3, scale=0.1), w("bu", 64), w("wv", 64, 24, 1, 1, scale=0.3), w("bv", 64),
          w("wp", 64, 64, 1, 1, scale=0.2), w("bp", 64), w("wq", 64, 64, 1, 1, scale=0.2)])
    # a stem with K = 64 (the wgmma tiles' width): emu_codegen.sh forces its space-to-depth
    # candidates ("s2d:", a stride-1 4x4 conv over 16 channels) on mma.sync and wgmma tiles;
    # odd input sizes put the padding on both sides of the space-to-depth copy
    save(d, "nhwc_stem_s2d",
         [N("Conv", ["x", "w0", "b0"], ["s"], strides=[2, 2], pads=[3, 3, 3, 3]), N("Relu", ["s"], ["r"]),
          N("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
          N("Conv", ["m", "w1"], ["out"])],
         [("x", [2, 3, 33, 31])], ["out"],
         [w("w0", 64, 3, 7, 7, scale=0.3), w("b0", 64), w("w1", 16, 64, 1, 1, scale=0.2)])
    # the pooled stem (passes/fuse_conv_pool.c, kernels/conv_pool.cuh): C = 4, no bias, no ReLU,
    # odd conv output height (19: the last pooled row sees padding), width 44 (float4 rows of the fused
    # input Cast), batch 3
    save(d, "nhwc_stem_pool_c4",
         [N("Conv", ["x", "w0"], ["s"], strides=[2, 2], pads=[3, 3, 3, 3]),
          N("MaxPool", ["s"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
          N("Conv", ["m", "w1"], ["out"])],
         [("x", [3, 4, 37, 44])], ["out"],
         [w("w0", 64, 4, 7, 7, scale=0.3), w("w1", 16, 64, 1, 1, scale=0.2)])
    # ... and ResNet's stem on a narrow image: C = 3, 7x7, bias, ReLU, 64 conv pixels a row (Q = 64: the
    # wgmma variant's rows are exactly full, no pixel masked, as ResNet's 112)
    save(d, "nhwc_stem_pool_c3w",
         [N("Conv", ["x", "w0", "b0"], ["s"], strides=[2, 2], pads=[3, 3, 3, 3]), N("Relu", ["s"], ["r"]),
          N("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
          N("Conv", ["m", "w1"], ["out"])],
         [("x", [2, 3, 22, 128])], ["out"],
         [w("w0", 64, 3, 7, 7, scale=0.3), w("b0", 64), w("w1", 16, 64, 1, 1, scale=0.2)])
    # ... and C = 1 (x stays NCHW: the same bytes), a 5x5 kernel with pads 2, bias and ReLU; x is also
    # read by a GlobalAveragePool, so its fp16 Cast stays outside the group (the kernel's fp16 x)
    save(d, "nhwc_stem_pool_c1",
         [N("Conv", ["x", "w0", "b0"], ["s"], strides=[2, 2], pads=[2, 2, 2, 2]), N("Relu", ["s"], ["r"]),
          N("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
          N("Conv", ["m", "w1"], ["out"]), N("GlobalAveragePool", ["x"], ["gx"])],
         [("x", [2, 1, 30, 29])], ["out", "gx"],
         [w("w0", 64, 1, 5, 5, scale=0.3), w("b0", 64), w("w1", 16, 64, 1, 1, scale=0.2)])
    # ... and C = 2, a 5x5 kernel, an odd input height and a width of 4k + 2 (the float32 rows' first load
    # one value a thread, the row loop's pairs of rows two columns a thread), bias and ReLU
    save(d, "nhwc_stem_pool_c2",
         [N("Conv", ["x", "w0", "b0"], ["s"], strides=[2, 2], pads=[2, 2, 2, 2]), N("Relu", ["s"], ["r"]),
          N("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
          N("Conv", ["m", "w1"], ["out"])],
         [("x", [2, 2, 25, 38])], ["out"],
         [w("w0", 64, 2, 5, 5, scale=0.3), w("b0", 64), w("w1", 16, 64, 1, 1, scale=0.2)])
    # Concat (channels and width) and Split (channels) in NHWC; a Transpose leaves the region
    # (NHWC -> NCHW) and the next conv enters another one (NCHW -> NHWC)
    save(d, "nhwc_concat_split",
         [N("Conv", ["x", "wa", "ba"], ["a"], pads=[1, 1, 1, 1]), N("Conv", ["x", "wb"], ["b"]),
          N("Concat", ["a", "b"], ["cat"], axis=1),
          N("Split", ["cat", "sp"], ["s1", "s2"], axis=1),
          N("Conv", ["s1", "wc"], ["o1"], pads=[1, 1, 1, 1]), N("Conv", ["s2", "wd"], ["o2"]),
          N("Concat", ["o1", "o2"], ["cw"], axis=3),
          N("Transpose", ["cw"], ["t"], perm=[0, 1, 3, 2]),
          N("Conv", ["t", "we", "be"], ["t2"], pads=[1, 1, 1, 1]), N("Relu", ["t2"], ["t3"]),
          N("Conv", ["t3", "wf"], ["out"])],
         [("x", [1, 8, 12, 10])], ["out", "cat"],
         [w("wa", 16, 8, 3, 3, scale=0.3), w("ba", 16), w("wb", 8, 8, 1, 1), ints("sp", [10, 14]),
          w("wc", 16, 10, 3, 3, scale=0.3), w("wd", 16, 14, 1, 1, scale=0.3), w("we", 24, 16, 3, 3, scale=0.2),
          w("be", 24), w("wf", 16, 24, 1, 1, scale=0.3)])
    # MobileNet-like: 1x1 expand, depthwise 3x3 (stride 1 and 2, ReLU6), a grouped conv
    # (C/groups = 24: the implicit GEMM), odd channel count depthwise (45: no channel pairs)
    save(d, "nhwc_depthwise_grouped",
         [N("Conv", ["x", "w1", "b1"], ["e"]), N("Relu", ["e"], ["er"]),
          N("Conv", ["er", "wd1", "bd1"], ["d1"], group=48, pads=[1, 1, 1, 1]), N("Clip", ["d1", "lo", "hi"], ["d1c"]),
          N("Conv", ["d1c", "wd2"], ["d2"], group=48, strides=[2, 2], pads=[1, 1, 1, 1]),
          N("Conv", ["d2", "wg", "bg"], ["gr"], group=2, pads=[1, 1, 1, 1]),
          N("Conv", ["gr", "w3"], ["f"]),
          N("Conv", ["f", "wd3"], ["d3"], group=45, pads=[1, 1, 1, 1]), N("Add", ["d3", "f"], ["out"])],
         [("x", [2, 32, 13, 14])], ["out"],
         [w("w1", 48, 32, 1, 1, scale=0.3), w("b1", 48), w("wd1", 48, 1, 3, 3), w("bd1", 48), scalar("lo", 0),
          scalar("hi", 6), w("wd2", 48, 1, 3, 3), w("wg", 32, 24, 3, 3, scale=0.1), w("bg", 32),
          w("w3", 45, 32, 1, 1, scale=0.3), w("wd3", 45, 1, 3, 3)])
    # depthwise convolutions (codegen/cg_conv_dw.c, kernels/conv_dw.cuh): NCHW at fp32, NHWC at
    # tf32 (4 floats a thread) and fp16 (8 halves a thread). 3x3 stride 1 and 2, 5x5, dilation,
    # asymmetric pads, widths that leave a partial column group, bias, Clip (ReLU6), a residual.
    save(d, "dw_taps",
         [N("Conv", ["x", "wd1", "bd1"], ["d1"], group=32, pads=[1, 1, 1, 1]), N("Clip", ["d1", "lo", "hi"], ["d1c"]),
          N("Conv", ["d1c", "wd2"], ["d2"], group=32, strides=[2, 2], pads=[1, 1, 1, 1]),
          N("Conv", ["d2", "wd3", "bd3"], ["d3"], group=32, pads=[2, 2, 2, 2]), N("Relu", ["d3"], ["d3r"]),
          N("Conv", ["d3r", "wd4"], ["d4"], group=32, dilations=[2, 2], pads=[2, 1, 1, 2]),
          N("Conv", ["d4", "wd5", "bd5"], ["d5"], group=32, strides=[2, 1], pads=[0, 1, 1, 0]),
          N("Conv", ["d4", "wd6"], ["d5b"], group=32, kernel_shape=[3, 3], strides=[2, 1], pads=[0, 1, 1, 0]),
          N("Add", ["d5", "d5b"], ["out"])],
         [("x", [2, 32, 13, 23])], ["out"],
         [w("wd1", 32, 1, 3, 3), w("bd1", 32), scalar("lo", 0), scalar("hi", 6), w("wd2", 32, 1, 3, 3),
          w("wd3", 32, 1, 5, 5, scale=0.3), w("bd3", 32), w("wd4", 32, 1, 3, 3), w("wd5", 32, 1, 3, 3), w("bd5", 32),
          w("wd6", 32, 1, 3, 3)])
    # channel counts without a 16-byte vector (12: 4 halves, 45: one channel a thread), a
    # depthwise conv with its residual fused (d + x), and a MobileNetV2 inverted-residual block
    save(d, "nhwc_dw_odd_c",
         [N("Conv", ["x", "wd1", "bd1"], ["d1"], group=12, pads=[1, 1, 1, 1]), N("Add", ["d1", "x"], ["d1s"]),
          N("Conv", ["d1s", "we"], ["e"]), N("Clip", ["e", "lo", "hi"], ["ec"]),
          N("Conv", ["ec", "wd2", "bd2"], ["d2"], group=45, strides=[2, 2], pads=[1, 1, 1, 1]),
          N("Clip", ["d2", "lo", "hi"], ["out"])],
         [("x", [2, 12, 11, 9])], ["out"],
         [w("wd1", 12, 1, 3, 3), w("bd1", 12), w("we", 45, 12, 1, 1, scale=0.3), scalar("lo", 0), scalar("hi", 6),
          w("wd2", 45, 1, 3, 3), w("bd2", 45)])
    save(d, "nhwc_dw_mbv2_block",
         [N("Conv", ["x", "w1", "b1"], ["e"]), N("Clip", ["e", "lo", "hi"], ["ec"]),
          N("Conv", ["ec", "wd", "bd"], ["d"], group=96, pads=[1, 1, 1, 1]), N("Clip", ["d", "lo", "hi"], ["dc"]),
          N("Conv", ["dc", "w2", "b2"], ["p"]), N("Add", ["p", "x"], ["out"])],
         [("x", [2, 16, 10, 10])], ["out"],
         [w("w1", 96, 16, 1, 1, scale=0.3), w("b1", 96), scalar("lo", 0), scalar("hi", 6), w("wd", 96, 1, 3, 3),
          w("bd", 96), w("w2", 16, 96, 1, 1, scale=0.2), w("b2", 16)])
    # a Flatten (a view: it aliases its input and cannot convert) keeps its region NCHW; the
    # region of the second input is NHWC
    save(d, "nhwc_view_border",
         [N("Conv", ["x", "wa", "ba"], ["a"], pads=[1, 1, 1, 1]), N("Relu", ["a"], ["ar"]),
          N("Conv", ["ar", "wb"], ["b"], strides=[2, 2]), N("Flatten", ["b"], ["f"]),
          N("Gemm", ["f", "wg"], ["out"], transB=1),
          N("Conv", ["x2", "wc"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["cr"]),
          N("Conv", ["cr", "wd", "bd"], ["e"], pads=[1, 1, 1, 1]), N("Conv", ["e", "we"], ["out2"])],
         [("x", [2, 8, 10, 10]), ("x2", [1, 8, 9, 11])], ["out", "out2"],
         [w("wa", 16, 8, 3, 3, scale=0.3), w("ba", 16), w("wb", 16, 16, 1, 1, scale=0.3), w("wg", 7, 400, scale=0.1),
          w("wc", 16, 8, 3, 3, scale=0.3), w("wd", 16, 16, 3, 3, scale=0.2), w("bd", 16), w("we", 8, 16, 1, 1)])


def typed_cases(d):
    """Cases with f16, integer and bool tensors (the dtype-generic kernels)."""
    N = helper.make_node
    T = TensorProto
    i64 = lambda name, v: helper.make_tensor(name, T.INT64, [len(v)], v)
    h = lambda name, v: helper.make_tensor(name, T.FLOAT16, [], [float(v)])
    # f16 activations through pooling, softmax, concat, slice, transpose, pad and a fused DAG
    save(d, "f16_kernels",
         [N("MaxPool", ["x"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
          N("AveragePool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
          N("Concat", ["m", "p"], ["c"], axis=1),
          N("GlobalAveragePool", ["c"], ["ga"]), N("GlobalMaxPool", ["x"], ["gm"]),
          N("Softmax", ["x"], ["sm"], axis=3), N("LogSoftmax", ["x"], ["lsm"], axis=1),
          N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
          N("Slice", ["t", "s0", "e0", "a0"], ["sl"]),
          N("Pad", ["x", "pads", "pv"], ["pd"], mode="constant"),
          N("Mul", ["x", "y"], ["xy"]), N("Add", ["xy", "k"], ["xyk"]), N("Sigmoid", ["xyk"], ["sg"]),
          N("Max", ["sg", "y"], ["mx"]), N("Cast", ["mx"], ["mx32"], to=T.FLOAT)],
         [("x", [2, 3, 9, 10], T.FLOAT16), ("y", [10], T.FLOAT16)],
         ["c", "ga", "gm", "sm", "lsm", "sl", "pd", "mx", "mx32"],
         [i64("s0", [1, 2]), i64("e0", [8, 3]), i64("a0", [1, 3]), i64("pads", [0, 0, 1, 2, 0, 0, 2, 1]),
          h("pv", 0.75), h("k", 0.25)])
    # exact integer arithmetic (int64 broadcast, int32), division/modulo by zero, comparisons -> bool
    save(d, "int_elementwise",
         [N("Add", ["a", "b"], ["add"]), N("Sub", ["a", "b"], ["sub"]), N("Mul", ["a", "b"], ["mul"]),
          N("Div", ["a", "b"], ["div"]), N("Mod", ["a", "b"], ["mod"]), N("Mod", ["a", "b"], ["fmod"], fmod=1),
          N("Neg", ["a"], ["neg"]), N("Abs", ["neg"], ["abs"]), N("Max", ["a", "b", "big"], ["mx"]),
          N("Min", ["a", "b"], ["mn"]),
          N("Mul", ["c", "c"], ["c2"]), N("Div", ["c2", "c"], ["cdiv"]), N("Sub", ["cdiv", "c"], ["csub"]),
          N("Cast", ["c", ], ["c64"], to=T.INT64), N("Add", ["c64", "a"], ["mixed"]),
          N("Less", ["a", "b"], ["lt"]), N("Equal", ["a", "b"], ["eq"]), N("GreaterOrEqual", ["c", "cz"], ["ge"]),
          N("Greater", ["a", "b"], ["gt"]), N("LessOrEqual", ["a", "b"], ["le"]),
          N("Where", ["lt", "a", "mul"], ["wh"]),
          N("BitShift", ["u", "sh"], ["shl"], direction="LEFT"), N("BitShift", ["u", "sh"], ["shr"], direction="RIGHT"),
          N("BitwiseAnd", ["u", "sh"], ["band"]), N("BitwiseNot", ["c"], ["bnot"])],
         [("a", [3, 5], T.INT64), ("b", [5], T.INT64), ("c", [3, 5], T.INT32), ("cz", [1], T.INT32),
          ("u", [4, 6], T.UINT8), ("sh", [6], T.UINT8)],
         ["add", "sub", "mul", "div", "mod", "fmod", "abs", "mx", "mn", "csub", "mixed", "lt", "eq", "ge", "gt", "le",
          "wh", "shl", "shr", "band", "bnot"],
         [helper.make_tensor("big", T.INT64, [1], [(1 << 62) + 3])], opset=18)
    # logic on bool, Where on f32 and int32, Cast between dtypes (saturation, NaN, bool), IsNaN/IsInf
    save(d, "logic_cast",
         [N("Greater", ["x", "y"], ["g"]), N("Less", ["x", "z"], ["l"]),
          N("And", ["g", "l"], ["and"]), N("Or", ["g", "l"], ["or"]), N("Xor", ["g", "l"], ["xor"]),
          N("Not", ["and"], ["not"]), N("Xor", ["not", "p"], ["xp"]),
          N("Where", ["or", "x", "y"], ["wf"]), N("Where", ["xp", "i", "j"], ["wi"]),
          N("Mul", ["x", "big"], ["xb"]), N("Cast", ["xb"], ["c8"], to=T.INT8), N("Cast", ["xb"], ["cu8"], to=T.UINT8),
          N("Cast", ["xb"], ["c32"], to=T.INT32), N("Cast", ["xb"], ["c16"], to=T.FLOAT16),
          N("Cast", ["c16"], ["c16f"], to=T.FLOAT), N("Cast", ["xor"], ["cb"], to=T.FLOAT),
          N("Cast", ["x"], ["xbool"], to=T.BOOL), N("Cast", ["i"], ["if"], to=T.FLOAT),
          N("Cast", ["i"], ["i8"], to=T.INT8), N("Cast", ["i"], ["ib"], to=T.BOOL),
          N("Sub", ["y", "y"], ["zero"]), N("Div", ["x", "zero"], ["q"]), N("Sub", ["q", "q"], ["nan"]),
          N("IsNaN", ["nan"], ["isnan"]), N("IsInf", ["q"], ["isinf"]),
          N("IsInf", ["q"], ["isposinf"], detect_negative=0),
          N("Concat", ["g", "l"], ["gl"], axis=0), N("Transpose", ["i"], ["it"], perm=[1, 0]),
          N("Slice", ["a", "s0", "e0"], ["as"])],
         [("x", [4, 6]), ("y", [4, 6]), ("z", [6]), ("p", [4, 6], T.BOOL), ("i", [4, 6], T.INT32),
          ("j", [1, 6], T.INT32), ("a", [7, 5], T.INT64)],
         ["and", "or", "xor", "not", "wf", "wi", "c8", "cu8", "c32", "c16", "c16f", "cb", "xbool", "if", "i8", "ib",
          "isnan", "isinf", "isposinf", "gl", "it", "as"],
         [scalar("big", 300.0), i64("s0", [1, 1]), i64("e0", [6, 4])], opset=18)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
