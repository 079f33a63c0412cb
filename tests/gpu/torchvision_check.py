#!/usr/bin/env python3
"""torchvision models through kiln against PyTorch, on the GPU machine (issue 4's done-when).

    python3 tests/gpu/torchvision_check.py KILN WORK [--models a,b] [--precisions fp32,tf32,fp16]
                                            [--batch N] [--memcheck resnet50:fp32,resnet50:fp16]

For each model (torchvision, random weights from a fixed seed, BatchNorm statistics calibrated
on random images so that activations are O(1) as in a trained model, eval mode): export ONNX with
torch.onnx.export (dynamo=False, opset 17), run PyTorch in fp32 on the GPU with TF32 disabled on
the same seeded input (the reference), then for each precision `kiln build` a bundle for this
GPU, `kiln run` it on the input, and compare: relative L2 error ||k - t|| / ||t|| must be
<= 1e-5 (fp32), 5e-3 (tf32), 1e-2 (fp16). The output is poisoned by kiln run's arena/output
handling; a missing or NaN output fails. --memcheck runs the named builds once more under
`compute-sanitizer --tool memcheck`. Prints one line per row and a markdown table to
WORK/torchvision.md; exits nonzero if any row fails.
"""
import argparse
import os
import subprocess
import sys
import time

LIMITS = {"fp32": 1e-5, "tf32": 5e-3, "fp16": 1e-2}
MODELS = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121"]


def calibrate_bn(m, seed, batch=8, steps=2):
    """Sets every BatchNorm's running statistics from a few batches of random images, as
    training would. Freshly initialized torchvision models keep running_var = 1, so their
    activations shrink layer by layer (MobileNetV2's logits are ~1e-9): fp16 would flush them
    to zero in any implementation. Calibrated, activations are O(1), like a trained model's."""
    import torch

    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    g = torch.Generator().manual_seed(seed + 2)
    m.train()
    with torch.no_grad():
        for _ in range(steps):
            m(torch.randn(batch, 3, 224, 224, generator=g))
    m.eval()


def export(name, path, batch, seed):
    import torch
    import torchvision

    torch.manual_seed(seed)
    m = getattr(torchvision.models, name)(weights=None)
    calibrate_bn(m, seed)
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(seed + 1))
    if not os.path.exists(path):
        with torch.no_grad():
            torch.onnx.export(m, (x,), path, input_names=["input"], output_names=["output"],
                              opset_version=17, dynamo=False)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        ref = m.cuda()(x.cuda()).float().cpu().numpy()
    return x.numpy(), ref


def run(cmd, log):
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + r.stdout + "\n")
    return r.returncode, r.stdout, time.time() - t0


def main():
    import numpy as np

    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("work")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--precisions", default="fp32,tf32,fp16")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memcheck", default="")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    log = os.path.join(a.work, "torchvision.log")
    rows, fails = [], 0
    memcheck = [s.split(":") for s in a.memcheck.split(",") if s]
    for name in a.models.split(","):
        onnx_path = os.path.join(a.work, f"{name}.onnx")
        try:
            x, ref = export(name, onnx_path, a.batch, a.seed)
        except Exception as e:  # noqa: BLE001 - report any export failure as a failed row
            print(f"FAIL {name}: export: {e}", flush=True)
            fails += 1
            continue
        inp = os.path.join(a.work, f"{name}_input.npy")
        np.save(inp, x)
        for prec in a.precisions.split(","):
            tag = f"{name}-{prec}"
            bundle = os.path.join(a.work, f"{tag}.kiln")
            outdir = os.path.join(a.work, tag)
            os.makedirs(outdir, exist_ok=True)
            rc, out, build_s = run([a.kiln, "build", onnx_path, "-o", bundle, "--precision", prec,
                                    "--shape", f"input={a.batch}x3x224x224"], log)
            if rc:
                print(f"FAIL {tag}: kiln build exit {rc}: {out.strip().splitlines()[-1:]}", flush=True)
                rows.append((name, prec, "build failed", "", "", "FAIL"))
                fails += 1
                continue
            for f in os.listdir(outdir):
                os.remove(os.path.join(outdir, f))
            rc, out, _ = run([a.kiln, "run", bundle, "--input", f"input={inp}", "--output-dir", outdir], log)
            got_path = os.path.join(outdir, "output.npy")
            if rc or not os.path.exists(got_path):
                print(f"FAIL {tag}: kiln run exit {rc}", flush=True)
                rows.append((name, prec, f"{build_s:.1f}", "run failed", "", "FAIL"))
                fails += 1
                continue
            got = np.load(got_path).astype(np.float64)
            e = ref.astype(np.float64)
            rel = float(np.linalg.norm(got - e) / max(np.linalg.norm(e), 1e-30)) if got.shape == e.shape else float("inf")
            if not np.isfinite(rel):
                rel = float("inf")
            ok = rel <= LIMITS[prec]
            mc = ""
            if [name, prec] in memcheck:
                rc, out, _ = run(["compute-sanitizer", "--tool", "memcheck", "--error-exitcode", "1", a.kiln, "run",
                                  bundle, "--input", f"input={inp}"], log)
                summary = [l for l in out.splitlines() if "ERROR SUMMARY" in l]
                mc = summary[-1].strip() if summary else f"exit {rc}"
                ok = ok and rc == 0
            rows.append((name, prec, f"{build_s:.1f}", f"{rel:.2e}", mc, "PASS" if ok else "FAIL"))
            fails += not ok
            print(f"{'PASS' if ok else 'FAIL'} {tag}: rel L2 {rel:.2e} (limit {LIMITS[prec]:.0e}), build {build_s:.1f} s"
                  + (f", memcheck: {mc}" if mc else ""), flush=True)
    with open(os.path.join(a.work, "torchvision.md"), "w") as f:
        f.write(f"batch {a.batch}, reference: PyTorch fp32 on the GPU with TF32 off\n\n")
        f.write("| model | precision | build s | rel L2 vs PyTorch | memcheck | result |\n|---|---|---|---|---|---|\n")
        for r in rows:
            f.write("| " + " | ".join(r) + " |\n")
    print(f"torchvision: {len(rows) - sum(r[-1] == 'FAIL' for r in rows)} passed, {fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
