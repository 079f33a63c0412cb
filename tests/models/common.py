"""Shared pieces of kiln's test-model generators (test-only: onnx, numpy, onnxruntime).

A generator describes its network once through `Net`; the network is built twice:

  1. calibration: every BatchNormalization is written out as normalization by the batch's
     own statistics (ReduceMean over N,H,W), and those statistics become graph outputs;
     onnxruntime runs it once on a seeded random input;
  2. inference: plain BatchNormalization whose running mean/var are the statistics measured
     in step 1.

So with He-initialized random weights the activations of the final model stay O(1) all the
way down (each BN really normalizes), and fp32 comparisons between kiln, its optimized graph
and onnxruntime compare numbers of a sensible size rather than overflow or underflow noise.

Each model is written as an ONNX backend test case folder:
  DIR/model.onnx, DIR/test_data_set_0/input_0.pb, DIR/test_data_set_0/output_0.pb
where the expected output is onnxruntime's on a seeded random batch-2 input.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
BN_EPS = 1e-5


class Net:
    """Emits ONNX nodes the way torch.onnx.export (TorchScript exporter, opset 17) names and
    shapes them: parameters as initializers named like the module's state_dict, small
    non-parameter constants as Constant nodes, node names '/module/path/OpType'."""

    def __init__(self, rng, calibrate, stats=None):
        self.rng = rng
        self.calibrate = calibrate
        self.stats = stats or {}
        self.nodes = []
        self.inits = []
        self.stat_outputs = []  # calibration: (value name, bn name, 'mean'|'var')
        self.names = {}
        self.n_const = 0

    # -- plumbing ---------------------------------------------------------------------------
    def _unique(self, name):
        k = self.names.get(name, 0)
        self.names[name] = k + 1
        return name if k == 0 else f"{name}_{k}"

    def node(self, op, inputs, scope, n_out=1, **attrs):
        name = self._unique(f"{scope}/{op}")
        outs = [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def param(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def constant(self, arr, scope):
        """A Constant node, as the exporter writes for literals (shape-chain indices, clip bounds)."""
        name = self._unique(f"{scope}/Constant")
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node("Constant", [], [out], name=name,
                                           value=numpy_helper.from_array(np.asarray(arr))))
        return out

    # -- layers -----------------------------------------------------------------------------
    def conv(self, x, cin, cout, k, stride, pad, scope, pname, group=1, bias=False):
        fan_in = (cin // group) * k * k
        w = (self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        ins = [x, self.param(f"{pname}.weight", w)]
        if bias:
            ins.append(self.param(f"{pname}.bias", np.zeros(cout, np.float32)))
        return self.node("Conv", ins, scope, dilations=[1, 1], group=group, kernel_shape=[k, k],
                         pads=[pad] * 4, strides=[stride, stride])

    def batchnorm(self, x, c, scope, pname, gamma_scale=1.0):
        gamma = (self.rng.uniform(0.5, 1.5, c) * gamma_scale).astype(np.float32)
        beta = (self.rng.standard_normal(c) * 0.1).astype(np.float32)
        if self.calibrate:
            # y = (x - mean_b) / sqrt(var_b + eps) * gamma + beta with the batch's statistics
            m = self.node("ReduceMean", [x], scope + "/calib", axes=[0, 2, 3], keepdims=1)
            d = self.node("Sub", [x, m], scope + "/calib")
            v = self.node("ReduceMean", [self.node("Mul", [d, d], scope + "/calib")], scope + "/calib",
                          axes=[0, 2, 3], keepdims=1)
            eps = self.param(f"{pname}.calib_eps", np.array(BN_EPS, np.float32))
            s = self.node("Sqrt", [self.node("Add", [v, eps], scope + "/calib")], scope + "/calib")
            g = self.param(f"{pname}.weight", gamma.reshape(1, c, 1, 1))
            b = self.param(f"{pname}.bias", beta.reshape(1, c, 1, 1))
            y = self.node("Add", [self.node("Mul", [self.node("Div", [d, s], scope + "/calib"), g], scope + "/calib"),
                                  b], scope + "/calib")
            self.stat_outputs += [(m, pname, "mean"), (v, pname, "var")]
            return y
        mean, var = self.stats[pname]
        ins = [x, self.param(f"{pname}.weight", gamma), self.param(f"{pname}.bias", beta),
               self.param(f"{pname}.running_mean", mean), self.param(f"{pname}.running_var", var)]
        return self.node("BatchNormalization", ins, scope, epsilon=BN_EPS, momentum=0.9)

    def relu(self, x, scope):
        return self.node("Relu", [x], scope)

    def relu6(self, x, scope):
        """torch's ReLU6 as exported at opset >= 11: Clip with min/max inputs."""
        lo = self.constant(np.array(0.0, np.float32), scope)
        hi = self.constant(np.array(6.0, np.float32), scope)
        return self.node("Clip", [x, lo, hi], scope)

    def gemm(self, x, cin, cout, scope, pname):
        w = (self.rng.standard_normal((cout, cin)) * np.sqrt(1.0 / cin)).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.01).astype(np.float32)
        return self.node("Gemm", [x, self.param(f"{pname}.weight", w), self.param(f"{pname}.bias", b)], scope,
                         alpha=1.0, beta=1.0, transB=1)

    # -- model ------------------------------------------------------------------------------
    def model(self, graph_name, x, y, in_shape, n_classes):
        inp = helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch"] + list(in_shape))
        outs = [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["batch", n_classes])]
        for name, _, _ in self.stat_outputs:
            outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
        g = helper.make_graph(self.nodes, graph_name, [inp], outs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pytorch", producer_version="2.1.0")
        m.ir_version = 8
        return m


def ort_run(model, feeds):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # reference semantics
    so.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def build_calibrated(describe, seed, in_shape, calib_batch=2):
    """describe(net) -> (graph name, input name, output name, n_classes). Returns the
    inference model with BN statistics measured on a calibration input."""
    net = Net(np.random.default_rng(seed), calibrate=True)
    name, x, y, n_classes = describe(net)
    cal = net.model(name, x, y, in_shape, n_classes)
    xin = np.random.default_rng(seed + 1000).standard_normal((calib_batch,) + tuple(in_shape)).astype(np.float32)
    res = ort_run(cal, {x: xin})
    stats = {}
    for (vname, pname, what), arr in zip(net.stat_outputs, res[1:]):
        stats.setdefault(pname, [None, None])[0 if what == "mean" else 1] = arr.reshape(-1).astype(np.float32)
    # same seed: the same weights are drawn in the same order
    net2 = Net(np.random.default_rng(seed), calibrate=False, stats=stats)
    name, x, y, n_classes = describe(net2)
    model = net2.model(name, x, y, in_shape, n_classes)
    onnx.checker.check_model(model, full_check=True)
    return model, x


def write_case(model, in_name, in_shape, out_dir, seed, batch=2):
    """ONNX backend test case folder; the expected output is onnxruntime's."""
    os.makedirs(os.path.join(out_dir, "test_data_set_0"), exist_ok=True)
    xin = np.random.default_rng(seed).standard_normal((batch,) + tuple(in_shape)).astype(np.float32)
    out = ort_run(model, {in_name: xin})[0]
    if not np.all(np.isfinite(out)) or not (0.05 < float(np.std(out)) < 50):
        raise SystemExit(f"{out_dir}: output std {np.std(out):.3g} is not O(1); the model generator is off")
    tmp = os.path.join(out_dir, "model.onnx.tmp")
    onnx.save(model, tmp)
    os.replace(tmp, os.path.join(out_dir, "model.onnx"))
    with open(os.path.join(out_dir, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(xin, in_name).SerializeToString())
    with open(os.path.join(out_dir, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(out, model.graph.output[0].name).SerializeToString())
    return out
