"""conv_model.py OUT N C H W K R: writes an ONNX model of one Conv (K filters of R x R over C channels,
stride 1, padding R // 2, random weights and bias from seed 0) and a ReLU, input "x" [N, C, H, W] fp32:
a single convolution for ncu and kernel comparisons on the GPU machine (tests/gpu/run_all.sh, step hpp)."""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    out, n, c, h, w, k, r = sys.argv[1], *map(int, sys.argv[2:8])
    rng = np.random.default_rng(0)
    wt = numpy_helper.from_array((rng.standard_normal((k, c, r, r)) / np.sqrt(c * r * r)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((k,)).astype(np.float32), "b")
    p = r // 2
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[p, p, p, p], kernel_shape=[r, r]),
             helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, k, h, w])], [wt, b])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), out)


if __name__ == "__main__":
    main()
