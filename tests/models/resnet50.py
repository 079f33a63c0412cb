"""ResNet-50 shaped like torchvision's resnet50 exported with
torch.onnx.export(model, x, dynamo=False, opset_version=17, dynamic_axes={input: {0: batch}}):

  input f32[batch,3,224,224]
  conv1 7x7/2 (no bias) -> bn1 -> relu -> maxpool 3x3/2
  layer1..layer4: Bottleneck blocks [3, 4, 6, 3], widths 64/128/256/512 (x4 out)
      conv1 1x1 -> bn -> relu -> conv2 3x3/s -> bn -> relu -> conv3 1x1 -> bn
      (+ downsample: conv 1x1/s -> bn in each layer's first block) -> Add -> relu
  avgpool: GlobalAveragePool
  flatten as `x.view(x.size(0), -1)` exports it (dynamic batch):
      Shape -> Gather(indices=0) -> Unsqueeze(axes=[0]) -> Concat(that, [-1]) -> Reshape
  fc: Gemm(transB=1) 2048 -> 1000

Random He-initialized weights (fixed seed); BN statistics measured on a calibration input
(see common.py), so activations stay O(1).
"""
import numpy as np

from common import Net

IN_SHAPE = (3, 224, 224)
SEED = 50


def bottleneck(net: Net, x, cin, width, stride, downsample, scope, pname):
    cout = width * 4
    y = net.conv(x, cin, width, 1, 1, 0, f"{scope}/conv1", f"{pname}.conv1")
    y = net.relu(net.batchnorm(y, width, f"{scope}/bn1", f"{pname}.bn1"), f"{scope}/relu")
    y = net.conv(y, width, width, 3, stride, 1, f"{scope}/conv2", f"{pname}.conv2")
    y = net.relu(net.batchnorm(y, width, f"{scope}/bn2", f"{pname}.bn2"), f"{scope}/relu_1")
    y = net.conv(y, width, cout, 1, 1, 0, f"{scope}/conv3", f"{pname}.conv3")
    # a smaller gamma on the block's last BN keeps the residual stream from growing block by block
    y = net.batchnorm(y, cout, f"{scope}/bn3", f"{pname}.bn3", gamma_scale=0.5)
    idn = x
    if downsample:
        idn = net.conv(x, cin, cout, 1, stride, 0, f"{scope}/downsample/downsample.0", f"{pname}.downsample.0")
        idn = net.batchnorm(idn, cout, f"{scope}/downsample/downsample.1", f"{pname}.downsample.1")
    y = net.node("Add", [y, idn], scope)
    return net.relu(y, f"{scope}/relu_2")


def describe(net: Net):
    x = "input"
    y = net.conv(x, 3, 64, 7, 2, 3, "/conv1", "conv1")
    y = net.relu(net.batchnorm(y, 64, "/bn1", "bn1"), "/relu")
    y = net.node("MaxPool", [y], "/maxpool", ceil_mode=0, dilations=[1, 1], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                 strides=[2, 2])
    cin = 64
    for li, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1):
        for b in range(blocks):
            s = stride if b == 0 else 1
            y = bottleneck(net, y, cin, width, s, b == 0, f"/layer{li}/layer{li}.{b}", f"layer{li}.{b}")
            cin = width * 4
    y = net.node("GlobalAveragePool", [y], "/avgpool")
    # x.view(x.size(0), -1)
    shape = net.node("Shape", [y], "")
    batch = net.node("Gather", [shape, net.constant(np.array(0, np.int64), "")], "", axis=0)
    batch = net.node("Unsqueeze", [batch, net.constant(np.array([0], np.int64), "")], "")
    target = net.node("Concat", [batch, net.constant(np.array([-1], np.int64), "")], "", axis=0)
    y = net.node("Reshape", [y, target], "", allowzero=0)
    y = net.gemm(y, 2048, 1000, "/fc", "fc")
    # the exporter names the graph output after the dynamic_axes/output_names given: "output"
    net.nodes[-1].output[0] = "output"
    return "main_graph", x, "output", 1000
