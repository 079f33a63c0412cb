#!/usr/bin/env python3
"""Writes examples/tiny_cnn.onnx: a small residual CNN with a dynamic batch dim.

Conv-BN-Relu, MaxPool, a residual block (Conv-BN-Relu-Conv-BN + Add, Relu),
GlobalAveragePool, Flatten, Gemm, Softmax. Weights are seeded random values. The file
is committed (a few KB) so that the README's first command needs no Python; this script
documents how it was made. Needs onnx and numpy (test-only dependencies).
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(2026)


def w(name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def bn(prefix, c):
    return [
        numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), prefix + "_scale"),
        numpy_helper.from_array(rng.uniform(-0.2, 0.2, c).astype(np.float32), prefix + "_bias"),
        numpy_helper.from_array(rng.uniform(-0.1, 0.1, c).astype(np.float32), prefix + "_mean"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), prefix + "_var"),
    ]


def bn_node(prefix, x, y):
    return helper.make_node("BatchNormalization", [x] + [prefix + s for s in ("_scale", "_bias", "_mean", "_var")],
                            [y], name=prefix, epsilon=1e-5)


C = 8
inits = [w("stem_w", C, 3, 3, 3), *bn("stem_bn", C), w("b1_w", C, C, 3, 3, scale=0.15), *bn("b1_bn", C),
         w("b2_w", C, C, 3, 3, scale=0.15), *bn("b2_bn", C), w("fc_w", 10, C), w("fc_b", 10, scale=0.1)]
nodes = [
    helper.make_node("Conv", ["image", "stem_w"], ["c0"], name="stem_conv", pads=[1, 1, 1, 1]),
    bn_node("stem_bn", "c0", "b0"),
    helper.make_node("Relu", ["b0"], ["r0"], name="stem_relu"),
    helper.make_node("MaxPool", ["r0"], ["p0"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Conv", ["p0", "b1_w"], ["c1"], name="block_conv1", pads=[1, 1, 1, 1]),
    bn_node("b1_bn", "c1", "n1"),
    helper.make_node("Relu", ["n1"], ["r1"], name="block_relu1"),
    helper.make_node("Conv", ["r1", "b2_w"], ["c2"], name="block_conv2", pads=[1, 1, 1, 1]),
    bn_node("b2_bn", "c2", "n2"),
    helper.make_node("Add", ["n2", "p0"], ["s2"], name="residual_add"),
    helper.make_node("Relu", ["s2"], ["r2"], name="block_relu2"),
    helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
    helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
    helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
]
graph = helper.make_graph(
    nodes, "tiny_cnn",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
    [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
    initializer=inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln-examples")
model.ir_version = 8
onnx.checker.check_model(model)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_cnn.onnx")
onnx.save(model, out)
print(f"wrote {out} ({os.path.getsize(out)} bytes)")
