#!/usr/bin/env python3
"""Writes MobileNetV2's depthwise layers at batch 32 as small ONNX models into DIR for
tests/gpu/conv_dw_check.sh: x [32, max(40, C/6), H, W] -> 1x1 expand (C/6 -> C) + ReLU6 -> depthwise 3x3
(stride 1 or 2, pad 1, bias) + ReLU6 -> out, the block shape select-layout makes NHWC at fp16.
Seeded random weights; names dw_C_H_sS.
usage: make_dw_cases.py DIR [BATCH]"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

# (C, H, stride) of torchvision's mobilenet_v2 depthwise convolutions (224x224 input); the
# first (C = 32) has no expand conv in the model: here its input comes from a 1x1 conv too.
SHAPES = [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (192, 28, 2), (384, 14, 1),
          (576, 14, 1), (576, 14, 2), (960, 7, 1)]


def main(d, batch):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(5)
    N = helper.make_node
    for c, h, s in SHAPES:
        cin = max(40, c // 6)  # > 32 taps: the expand conv is never "direct" (conv_dw_check.sh)

        def t(name, *shape, scale=0.5):
            return helper.make_tensor(name, TensorProto.FLOAT, shape,
                                      rng.uniform(-scale, scale, size=shape).astype(np.float32).ravel().tolist())
        scal = lambda name, v: helper.make_tensor(name, TensorProto.FLOAT, [], [float(v)])
        name = "dw_%d_%d_s%d" % (c, h, s)
        # named nodes: the profile's layer (and tiles) names come from them
        nodes = [N("Conv", ["x", "we", "be"], ["e"], name="expand"), N("Clip", ["e", "lo", "hi"], ["ec"], name="expand_relu6"),
                 N("Conv", ["ec", "wd", "bd"], ["dd"], name="dw", group=c, strides=[s, s], pads=[1, 1, 1, 1]),
                 N("Clip", ["dd", "lo", "hi"], ["out"], name="dw_relu6")]
        g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, cin, h, h])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT,
                                                             [batch, c, (h - 1) // s + 1, (h - 1) // s + 1])],
                              [t("we", c, cin, 1, 1, scale=0.3), t("be", c), scal("lo", 0), scal("hi", 6),
                               t("wd", c, 1, 3, 3), t("bd", c)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln-tests")
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(d, name + ".onnx"))
        print(name)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32)
