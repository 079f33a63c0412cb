"""MobileNetV2 laid out like torchvision's mobilenet_v2 as torch.onnx.export (opset 17,
dynamic batch) writes it:

  input f32[batch,3,224,224]
  features.0: 3x3/2 Conv -> BN -> ReLU6 (Clip with min/max inputs 0 and 6)
  features.1..17: inverted residuals (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2)
      (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1):
        [1x1 expand Conv -> BN -> Clip]   (only when t != 1)
        3x3 depthwise Conv (group = C) /s -> BN -> Clip
        1x1 project Conv -> BN            (linear bottleneck: no activation)
        + residual Add when stride 1 and in == out channels
  features.18: 1x1 Conv 320 -> 1280 -> BN -> Clip
  GlobalAveragePool -> Flatten(axis=1) -> (Dropout: gone in eval) -> Gemm(transB=1) -> 1000

Random He-initialized weights (fixed seed); BN statistics measured on a calibration input
(see common.py), so activations stay O(1).
"""
from common import Net

IN_SHAPE = (3, 224, 224)
SEED = 2


def conv_bn_act(net: Net, x, cin, cout, k, stride, group, parent, local, pname):
    """torchvision's Conv2dNormActivation: module `local` under scope `parent`."""
    scope = f"{parent}/{local}"
    y = net.conv(x, cin, cout, k, stride, (k - 1) // 2, f"{scope}/{local}.0", f"{pname}.0", group=group)
    y = net.batchnorm(y, cout, f"{scope}/{local}.1", f"{pname}.1")
    return net.relu6(y, f"{scope}/{local}.2")


def inverted_residual(net: Net, x, cin, cout, stride, t, i):
    scope, pname = f"/features/features.{i}/conv", f"features.{i}.conv"
    hidden = cin * t
    y, k = x, 0
    if t != 1:
        y = conv_bn_act(net, y, cin, hidden, 1, 1, 1, scope, f"conv.{k}", f"{pname}.{k}")
        k += 1
    y = conv_bn_act(net, y, hidden, hidden, 3, stride, hidden, scope, f"conv.{k}", f"{pname}.{k}")
    k += 1
    y = net.conv(y, hidden, cout, 1, 1, 0, f"{scope}/conv.{k}", f"{pname}.{k}")
    # a smaller gamma on the projection BN keeps the residual stream from growing
    y = net.batchnorm(y, cout, f"{scope}/conv.{k + 1}", f"{pname}.{k + 1}", gamma_scale=0.5)
    if stride == 1 and cin == cout:
        y = net.node("Add", [x, y], f"/features/features.{i}")
    return y


def describe(net: Net):
    x = "input"
    y = conv_bn_act(net, x, 3, 32, 3, 2, 1, "/features", "features.0", "features.0")
    cin, i = 32, 1
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)]:
        for b in range(n):
            y = inverted_residual(net, y, cin, c, s if b == 0 else 1, t, i)
            cin, i = c, i + 1
    y = conv_bn_act(net, y, cin, 1280, 1, 1, 1, "/features", f"features.{i}", f"features.{i}")
    y = net.node("GlobalAveragePool", [y], "")
    y = net.node("Flatten", [y], "", axis=1)
    y = net.gemm(y, 1280, 1000, "/classifier/classifier.1", "classifier.1")
    net.nodes[-1].output[0] = "output"
    return "main_graph", x, "output", 1000
