#!/usr/bin/env python3
"""Generate kiln's test models into OUT_DIR as ONNX backend test case folders:

  OUT_DIR/resnet50_torchvision/   ResNet-50 shaped like torchvision's opset-17 export (~100 MB)
  OUT_DIR/mobilenetv2/            MobileNetV2 with Relu6 as Clip and depthwise convs

usage: generate.py OUT_DIR [MODEL...]     (MODEL: resnet50_torchvision, mobilenetv2)

Deterministic (fixed seeds). A folder whose files exist and whose stamp matches this
generator's sources is kept as is, so the ctest set-up is cheap after the first run.
Exits 77 with a SKIP line when onnx, numpy or onnxruntime are missing (test-only deps).
"""
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("resnet50_torchvision", "mobilenetv2")


def sources_stamp(mod_file):
    h = hashlib.sha256()
    for f in ("common.py", "generate.py", mod_file):
        with open(os.path.join(HERE, f), "rb") as fp:
            h.update(fp.read())
    return h.hexdigest()


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    missing = []
    for mod in ("numpy", "onnx", "onnxruntime"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        print(f"SKIP: test-model generation needs {', '.join(missing)} (pip install onnx==1.22.0 numpy onnxruntime)")
        return 77
    sys.dont_write_bytecode = True  # keep the source tree clean
    sys.path.insert(0, HERE)
    import common
    import mobilenetv2
    import resnet50

    out_root = argv[1]
    wanted = argv[2:] or list(MODELS)
    for name in wanted:
        if name not in MODELS:
            print(f"generate.py: unknown model '{name}' (models: {', '.join(MODELS)})")
            return 2
        mod, mod_file = {"resnet50_torchvision": (resnet50, "resnet50.py"),
                         "mobilenetv2": (mobilenetv2, "mobilenetv2.py")}[name]
        d = os.path.join(out_root, name)
        stamp = sources_stamp(mod_file)
        stamp_file = os.path.join(d, "generator.stamp")
        files = [os.path.join(d, "model.onnx"), os.path.join(d, "test_data_set_0", "input_0.pb"),
                 os.path.join(d, "test_data_set_0", "output_0.pb")]
        if all(os.path.exists(f) for f in files) and os.path.exists(stamp_file) and open(stamp_file).read() == stamp:
            print(f"{name}: up to date in {d}")
            continue
        if os.path.exists(stamp_file):
            os.remove(stamp_file)
        model, x = common.build_calibrated(mod.describe, mod.SEED, mod.IN_SHAPE)
        out = common.write_case(model, x, mod.IN_SHAPE, d, seed=mod.SEED + 1)
        with open(stamp_file, "w") as f:
            f.write(stamp)
        ops = {}
        for n in model.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        print(f"{name}: {len(model.graph.node)} nodes ({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))}); "
              f"onnxruntime output {list(out.shape)} std {out.std():.3f} -> {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
