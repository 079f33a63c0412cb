#!/usr/bin/env python3
"""kiln vs PyTorch eager vs torch.compile on torchvision CNNs, in one run on one GPU.

    python3 bench/run.py KILN [--work /tmp/bench] [--models resnet18,resnet50,mobilenet_v2]
                         [--batches 1,32] [--precisions fp16,fp32] [--iterations 200] [--out FILE]

Run on the GPU machine (torch + torchvision there; kiln comes from scripts/gpu_pack.sh). For each
model (random weights, fixed seed, BatchNorm statistics calibrated on random
images as tests/gpu/torchvision_check.py does, exported once with a dynamic batch, opset 17), batch and
precision:
  kiln          `kiln build --precision P --shape input=Bx3x224x224 --autotune --tuning-cache C`
                twice: cold (C removed first) and warm (C from the cold build: nothing is timed, the
                bundle must be byte-identical), both timed (--warm target: the warm build only for
                ResNet-50 fp16, the build-time target); then `kiln bench` (CUDA graph replay;
                median of N runs timed with CUDA events);
  eager         PyTorch eager: fp32 with TF32 off (kiln's fp32 is true fp32), fp16 as
                model.half() in channels_last (what cuDNN is fastest with);
  compile       torch.compile(mode="reduce-overhead") of the same module (CUDA graphs).
Each kiln bundle (the autotuned ones too) also runs once on the row's input and its output is
compared with PyTorch fp32 (TF32 off): relative L2 <= 1e-2 at fp16, 1e-5 at fp32 (column
"check"; --no-check skips it). Latencies are medians of CUDA-event-timed runs after warm-up. Peak memory: torch's
max_memory_allocated, kiln's weights + arena from `kiln bench`. Writes a markdown table whose
last line is `worst fp16 ratio kiln/torch.compile: R` to --out (default
bench/results/<date>-<card>.md) and prints it, with the issue's targets and by how much each is
missed. Ceilings (fp16 matrix-multiply rate, device copy bandwidth) are measured with torch in the
same run; `kiln bench --profile --profile-repeat 10` of ResNet-50 batch 32 fp16 against them goes to
the same file's profile section (and --profile-out, JSON): conv / GEMM layers timed over 10
launches back to back, as the GEMM rate is (one launch between its own events also carries the
gap before the launch, ~2-3 us on an H100); the target lines give the one-launch time beside it.
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sass  # noqa: E402  (bench/sass.py)


def torch_time(fn, x, iters, warmup):
    import torch

    for _ in range(warmup):
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn(x)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


# kiln bench --profile-repeat for the ResNet-50 profile: each conv / GEMM layer this many times back to back
PROFILE_REPEAT = 10

# kiln's output vs PyTorch fp32 (TF32 off) on the same input, relative L2 (torchvision_check.py's bounds)
LIMITS = {"fp32": 1e-5, "tf32": 5e-3, "fp16": 1e-2}


def check_output(a, model, bundle, x):
    """Runs the bundle once on x (kiln run) and returns ||kiln - torch|| / ||torch|| (None: no output).
    Every benchmarked bundle, the autotuned ones included, is checked this way."""
    import numpy as np
    import torch

    inp, outdir = bundle + ".input.npy", bundle + ".out"
    np.save(inp, x.float().cpu().numpy())
    with torch.no_grad():
        ref = model(x.float()).float().cpu().numpy().astype(np.float64)
    r = subprocess.run([a.kiln, "run", bundle, "--input", f"input={inp}", "--output-dir", outdir],
                       capture_output=True, text=True)
    path = os.path.join(outdir, "output.npy")
    if r.returncode or not os.path.exists(path):
        return None
    k = np.load(path).astype(np.float64)
    if k.shape != ref.shape or not np.isfinite(k).all():
        return None
    return float(np.linalg.norm(k - ref) / max(np.linalg.norm(ref), 1e-30))


def ceilings():
    """fp16 GEMM TFLOP/s (8192^3, torch.matmul: cuBLAS) and copy GB/s (read + write) on this card."""
    import torch

    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.half)
    b = torch.randn(n, n, device="cuda", dtype=torch.half)
    ms = torch_time(lambda _: torch.matmul(a, b), None, 20, 5)
    tflops = 2 * n ** 3 / (ms * 1e-3) / 1e12
    x = torch.empty(1 << 28, device="cuda", dtype=torch.uint8)  # 256 MiB, well beyond L2
    y = torch.empty_like(x)
    ms = torch_time(lambda _: y.copy_(x), None, 20, 5)
    gbps = 2 * x.numel() / (ms * 1e-3) / 1e9
    del a, b, x, y
    torch.cuda.empty_cache()
    return tflops, gbps


def peer_stem():
    """PyTorch eager (cuDNN; main() sets benchmark mode) on ResNet-50's stem at batch 32 fp16, timed as kiln's
    profile times a conv (PROFILE_REPEAT launches back to back, the mean): the conv with its bias alone, and
    conv -> ReLU -> MaxPool 3x3/2 (what kiln's fused stem kernel computes, less the input's fp16 Cast). The
    faster of channels_last and NCHW for each. In us."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator(device="cuda").manual_seed(3)
    x = torch.randn(32, 3, 224, 224, device="cuda", generator=g).half()
    w = (0.1 * torch.randn(64, 3, 7, 7, device="cuda", generator=g)).half()
    b = torch.randn(64, device="cuda", generator=g).half()
    best = [float("inf"), float("inf")]
    with torch.no_grad():
        for fmt in (torch.channels_last, torch.contiguous_format):
            xf, wf = x.to(memory_format=fmt), w.to(memory_format=fmt)
            conv = lambda _: F.conv2d(xf, wf, b, stride=2, padding=3)  # noqa: E731
            stem = lambda _: F.max_pool2d(F.relu(conv(None)), 3, 2, 1)  # noqa: E731
            for k, fn in enumerate((conv, stem)):
                def rep(_, fn=fn):
                    for _ in range(PROFILE_REPEAT):
                        fn(None)
                best[k] = min(best[k], 1e3 * torch_time(rep, None, 20, 5) / PROFILE_REPEAT)
    return best


def main():
    import torch
    import torchvision

    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--work", default="/tmp/bench")
    ap.add_argument("--models", default="resnet18,resnet50,mobilenet_v2")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--precisions", default="fp16,fp32")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (quick runs)")
    ap.add_argument("--no-check", action="store_true", help="skip the output check of each kiln bundle vs PyTorch fp32")
    ap.add_argument("--out", default="")
    ap.add_argument("--profile-out", default="", help="JSON of kiln's ResNet-50 b32 fp16 profile")
    ap.add_argument("--no-tune", action="store_true", help="kiln build --no-autotune (heuristic tiles)")
    ap.add_argument("--tune-precisions", default="fp16,fp32",
                    help="precisions kiln autotunes (others: --no-autotune, the heuristic's tiles)")
    ap.add_argument("--tune-batches", default="",
                    help="batches kiln autotunes at (default: all); others use the heuristic's tiles")
    ap.add_argument("--build-args", default="", help="extra kiln build arguments, space-separated (e.g. '--arch sm_90')")
    ap.add_argument("--prebuild", action="store_true",
                    help="build the untuned rows' bundles (no GPU timing) all at once before measuring anything")
    ap.add_argument("--warm", choices=["all", "target"], default="all",
                    help="the warm rebuild (timed, byte-identity) of every row, or only of the build-time "
                         "target's rows (resnet50 fp16): saves a rebuild per other row")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    card = torch.cuda.get_device_name(0)
    torch.backends.cudnn.benchmark = True
    t_start = time.time()
    profile_text = ""
    rows = []
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gpu"))
    from torchvision_check import calibrate_bn  # BN statistics from random images: O(1) activations

    def report():
        """The results file from the rows so far (rewritten after every row: a cut run keeps them)."""
        fmt = lambda v, f="{:.3f}": "-" if v is None else f.format(v)  # noqa: E731
        lines = [f"# kiln vs PyTorch on {card}, {datetime.date.today()}", "",
                 f"Median latency in ms ({a.iterations} runs after {a.warmup} warm-up, CUDA events). fp32 rows: TF32 off in "
                 "PyTorch. fp16 eager: channels_last half. compile: torch.compile(mode=\"reduce-overhead\"). "
                 "build s: kiln build wall time with a cold / warm tuning cache (same: the warm build's bundle is "
                 "byte-identical). kiln autotuned at: "
                 f"{', '.join(p for p in a.precisions.split(',') if not a.no_tune and p in a.tune_precisions.split(',')) or 'none'}"
                 f"{' at batch ' + a.tune_batches if a.tune_batches and not a.no_tune else ''}"
                 " (other precisions: the heuristic's tiles, --no-autotune"
                 f"{'; those built in parallel processes before any measurement' if a.prebuild else ''}). "
                 "Memory: MB, torch max_memory_allocated; kiln weights + arena. "
                 "check: kiln's output vs PyTorch fp32 (TF32 off) on the same input, relative L2 (bounds: fp16 1e-2, "
                 "fp32 1e-5). "
                 f"Ceilings measured in this run: fp16 GEMM (torch.matmul 8192^3) {ceil_tflops:.0f} TFLOP/s, "
                 f"device copy {ceil_gbps:.0f} GB/s.", "",
                 "| model | prec | batch | kiln | eager | compile | kiln/compile | kiln/eager | kiln build s cold / warm | mem kiln / eager / compile | check |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        misses = []
        worst = None
        for r in rows:
            k, e, c = r.get("kiln"), r.get("eager"), r.get("compile")
            rc = k / c if k and c else None
            re_ = k / e if k and e else None
            if r["prec"] == "fp16":
                cand = rc if rc is not None else float("inf")
                worst = cand if worst is None else max(worst, cand)
            if r.get("kiln") is not None and "rel_l2" in r and r["rel_l2"] is None:
                misses.append(f"{r['model']} {r['prec']} b{r['batch']}: the output check did not run (kiln run failed)")
            if r.get("rel_l2") is not None and not r["rel_l2"] <= LIMITS[r["prec"]]:
                misses.append(f"{r['model']} {r['prec']} b{r['batch']}: output rel L2 {r['rel_l2']:.2e} vs PyTorch fp32 "
                              f"(bound {LIMITS[r['prec']]})")
            if r["prec"] == "fp16" and (rc is None or rc > 0.8):
                misses.append(f"{r['model']} fp16 b{r['batch']}: kiln/compile {fmt(rc, '{:.2f}')} (target <= 0.80)")
            if r["prec"] == "fp32" and (re_ is None or re_ > 1.0):
                misses.append(f"{r['model']} fp32 b{r['batch']}: kiln/eager {fmt(re_, '{:.2f}')} (target <= 1.00)")
            if r["model"] == "resnet50" and r["prec"] == "fp16":
                if r["build_s"] > 90:
                    misses.append(f"resnet50 fp16 b{r['batch']}: cold build {r['build_s']:.1f} s (target <= 90)")
                if r.get("warm_s") is None or r["warm_s"] > 5:
                    misses.append(f"resnet50 fp16 b{r['batch']}: warm build {fmt(r.get('warm_s'), '{:.1f}')} s (target <= 5)")
            same = " same" if r.get("identical") else (" DIFFERENT" if "identical" in r else "")
            lines.append(f"| {r['model']} | {r['prec']} | {r['batch']} | {fmt(k)} | {fmt(e)} | {fmt(c)} | {fmt(rc, '{:.2f}')} | "
                         f"{fmt(re_, '{:.2f}')} | {r['build_s']:.1f} / {fmt(r.get('warm_s'), '{:.1f}')}{same} | "
                         f"{fmt(r.get('kiln_mem'), '{:.0f}')} / "
                         f"{fmt(r.get('eager_mem'), '{:.0f}')} / {fmt(r.get('compile_mem'), '{:.0f}')} | "
                         f"{fmt(r.get('rel_l2'), '{:.1e}')} |")
            if r.get("tune_err"):
                lines.append(f"|  | autotuning failed, heuristic tiles: {r['tune_err']} | | | | | | | | | |")
            if r.get("kiln_err"):
                lines.append(f"|  | kiln error: {r['kiln_err']} | | | | | | | | | |")
        notes = [f"- {r['model']} {r['prec']} b{r['batch']}: {r['tune_note']}" for r in rows if r.get("tune_note")]
        if notes:
            lines += ["", "Tuning (kiln build's summary line):", ""] + notes
        lines += ["", "## Targets (issue 5)", ""]
        lines += [f"- MISSED: {m}" for m in misses] or ["- all latency and build-time targets met"]
        pj = next((r.get("profile_json") for r in rows if r.get("profile_json")), None)
        if pj:
            import json
            with open(pj) as f:
                prof = json.load(f)
            single = {}
            pj1 = next((r.get("profile_json_single") for r in rows if r.get("profile_json_single")), None)
            if pj1:
                with open(pj1) as f:
                    single = {l["layer"]: l["us"] for l in json.load(f).get("layers", [])}
            convs = sorted((l for l in prof.get("layers", []) if l.get("flops")), key=lambda l: -l["flops"])[:5]
            lines += ["", f"Largest ResNet-50 batch-32 fp16 layers by FLOPs (target: >= 60% of the {ceil_tflops:.0f} TFLOP/s "
                      f"fp16 GEMM rate measured above; time: the mean of {prof.get('repeat', 1)} launches back to back, "
                      "as the GEMM rate is timed (the inputs stay in L2 between launches: a lower bound where a real run "
                      "finds them evicted), and in brackets one launch between its own events, which adds the gap before "
                      "a launch):", ""]
            for l in convs:
                frac = l["tflops"] / ceil_tflops if ceil_tflops else 0
                one = f" ({single[l['layer']]:.1f} us one launch)" if l["layer"] in single else ""
                lines.append(f"- {l['layer']} ({l['op']}, {l.get('tiles', '')}): {l['us']:.1f} us{one}, {l['tflops']:.1f} "
                             f"TFLOP/s = {100 * frac:.1f}%"
                             f"{'' if frac >= 0.6 else ' (MISSED by ' + format(60 - 100 * frac, '.1f') + ' points)'}")
                # what 60% would take, against the time the layer's own memory traffic needs at the
                # measured copy bandwidth (a layer whose bytes alone take longer cannot reach it)
                if frac < 0.6 and ceil_tflops and ceil_gbps and l.get("bytes"):
                    t60 = l["flops"] / (0.6 * ceil_tflops * 1e12) * 1e6
                    tmem = l["bytes"] / (ceil_gbps * 1e9) * 1e6
                    lines.append(f"  - 60% would be {t60:.1f} us; its {l['bytes'] / 1e6:.1f} MB of DRAM traffic take "
                                 f"{tmem:.1f} us at the measured {ceil_gbps:.0f} GB/s"
                                 + (" (bound by memory: 60% is out of reach for this layer as fused)" if tmem > t60 else ""))
                # and what its main kernel holds of an SM (kiln bench --profile-json "launch")
                lr = l.get("launch")
                if frac < 0.6 and lr and lr.get("blocks_per_sm"):
                    warps = lr["blocks_per_sm"] * ((lr["threads"] + 31) // 32)
                    lines.append(f"  - occupancy: {lr['grid_blocks']} blocks of {lr['threads']} threads, "
                                 f"{lr['blocks_per_sm']} an SM ({warps} of 64 warp slots), {lr['registers']} registers a "
                                 f"thread, {lr['shared_bytes'] / 1024:.1f} KiB shared memory a block")
                # and what the kernel is made of (static SASS counts: bench/sass.py)
                bundle = next((r.get("profile_bundle") for r in rows if r.get("profile_bundle")), None)
                if frac < 0.6 and lr and lr.get("kernel") and bundle:
                    summary = sass.kernel_summary(a.kiln, bundle, lr["kernel"])
                    if summary:
                        lines.append(f"  - {summary}")
            # the peer on the stem, for scale: the 7x7 over RGB is the largest conv and the hardest shape
            stem_flops = 2 * 32 * 112 * 112 * 64 * 3 * 7 * 7
            lines.append(f"- Peer on ResNet-50's stem at batch 32 fp16 (PyTorch eager = cuDNN in benchmark mode, the faster of "
                         f"channels_last and NCHW, timed the same way): the conv with its bias alone {stem_conv_us:.1f} us = "
                         f"{100 * stem_flops / (stem_conv_us * 1e-6) / (ceil_tflops * 1e12):.1f}% of the GEMM rate; "
                         f"conv -> ReLU -> MaxPool {stem_pool_us:.1f} us (kiln's stem kernel also reads the float32 NCHW "
                         "input and casts it)")
        if profile_text:
            lines += ["", "## Per-kernel profile: kiln ResNet-50, batch 32, fp16", "", "```", profile_text.rstrip(), "```"]
        lines += ["", f"worst fp16 ratio kiln/torch.compile: {worst:.2f}" if worst is not None else
                  "worst fp16 ratio kiln/torch.compile: -"]
        text = "\n".join(lines) + "\n"
        out = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                    f"{datetime.date.today()}-{card.replace(' ', '_')}.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(text)
        return text

    models = {}

    def load_model(name):
        if name in models:
            return models[name]
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None)
        calibrate_bn(model, 0)
        model = model.eval().cuda()
        onnx_path = os.path.join(a.work, f"{name}.onnx")
        if not os.path.exists(onnx_path):
            x = torch.randn(1, 3, 224, 224, device="cuda")
            with torch.no_grad():
                torch.onnx.export(model, (x,), onnx_path, input_names=["input"], output_names=["output"],
                                  opset_version=17, dynamo=False, dynamic_axes={"input": {0: "batch"}})
        models[name] = (model, onnx_path)
        return models[name]

    def build_cmd(name, onnx_path, prec, batch):
        bundle = os.path.join(a.work, f"{name}-{prec}-b{batch}.kiln")
        cache = os.path.join(a.work, f"{name}-{prec}-b{batch}.tune")
        cmd = [a.kiln, "build", onnx_path, "--precision", prec, "--shape", f"input={batch}x3x224x224"]
        tune = not a.no_tune and prec in a.tune_precisions.split(",") and (
            not a.tune_batches or str(batch) in a.tune_batches.split(","))
        cmd += ["--autotune", "--tuning-cache", cache] if tune else ["--no-autotune"]
        return cmd + a.build_args.split(), bundle, cache, tune

    # The builds that time nothing on the GPU (--no-autotune, no warm rebuild) run first, all at once (each a
    # process of its own, its own wall time reported), beside the ceilings' GPU timing: they use no GPU, and
    # the run fits the device's 10-minute calls
    prebuilt = {}
    procs = []

    def prebuild(key, cmd):  # (a thread each: a build's own wall time, however long the others take)
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        prebuilt[key] = (r, time.time() - t0)

    if a.prebuild:
        for name in a.models.split(","):
            _, onnx_path = load_model(name)
            for prec in a.precisions.split(","):
                for batch in [int(b) for b in a.batches.split(",")]:
                    cmd, bundle, _, tune = build_cmd(name, onnx_path, prec, batch)
                    if tune or a.warm == "all" or (name == "resnet50" and prec == "fp16"):
                        continue
                    procs.append(threading.Thread(target=prebuild, args=((name, prec, batch), cmd + ["-o", bundle])))
                    procs[-1].start()
    ceil_tflops, ceil_gbps = ceilings()
    print(f"ceilings: fp16 GEMM {ceil_tflops:.0f} TFLOP/s, copy {ceil_gbps:.0f} GB/s", flush=True)
    stem_conv_us, stem_pool_us = peer_stem()
    print(f"peer stem (cuDNN, b32 fp16): conv {stem_conv_us:.1f} us, conv+relu+maxpool {stem_pool_us:.1f} us", flush=True)
    if a.prebuild:
        for th in procs:
            th.join()
        print(f"prebuilt {len(prebuilt)} untuned bundles in parallel ({time.time() - t_start:.0f} s)", flush=True)

    for name in a.models.split(","):
        model, onnx_path = load_model(name)
        for prec in a.precisions.split(","):
            for batch in [int(b) for b in a.batches.split(",")]:
                row = {"model": name, "prec": prec, "batch": batch}
                # kiln
                cmd, bundle, cache, tune = build_cmd(name, onnx_path, prec, batch)
                if os.path.exists(cache):
                    os.remove(cache)
                row["tuned"] = tune
                if (name, prec, batch) in prebuilt:
                    r, row["build_s"] = prebuilt[(name, prec, batch)]
                    row["prebuilt"] = True
                else:
                    t0 = time.time()
                    r = subprocess.run(cmd + ["-o", bundle], capture_output=True, text=True)
                    row["build_s"] = time.time() - t0
                if r.returncode and tune:  # the tuner failed: say so, and measure the heuristic's tiles
                    row["tune_err"] = (r.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"autotuned build failed ({row['tune_err']}); building with --no-autotune", flush=True)
                    tune = row["tuned"] = False
                    cmd = [c for c in cmd if c not in ("--autotune", "--tuning-cache", cache)] + ["--no-autotune"]
                    t0 = time.time()
                    r = subprocess.run(cmd + ["-o", bundle], capture_output=True, text=True)
                    row["build_s"] = time.time() - t0
                if not r.returncode and (a.warm == "all" or (name == "resnet50" and prec == "fp16")):
                    # warm: the same command (the same -o: builds are deterministic), the cache from the cold build
                    os.replace(bundle, bundle + ".cold")
                    t0 = time.time()
                    r2 = subprocess.run(cmd + ["-o", bundle], capture_output=True, text=True)
                    row["warm_s"] = time.time() - t0 if not r2.returncode else None
                    if r2.returncode:
                        os.replace(bundle + ".cold", bundle)
                    with open(bundle, "rb") as f1, open(bundle + ".cold", "rb") as f2:
                        row["identical"] = not r2.returncode and f1.read() == f2.read()
                if not r.returncode:
                    tl = [l for l in r.stderr.splitlines() if l.startswith("tuning") or "heuristic" in l]
                    row["tune_note"] = " / ".join(x.strip() for x in tl[-2:])
                if r.returncode:
                    row["kiln"] = None
                    row["kiln_err"] = (r.stderr.strip().splitlines() or ["?"])[-1]
                else:
                    r = subprocess.run([a.kiln, "bench", bundle, "--iterations", str(a.iterations), "--warmup",
                                        str(a.warmup)], capture_output=True, text=True)
                    m = re.search(r"p50 ([0-9.]+)", r.stdout)
                    mem = re.search(r"weights ([0-9.]+) MB, arena \+ staging ([0-9.]+) MB", r.stdout)
                    row["kiln"] = float(m.group(1)) if m and not r.returncode else None
                    row["kiln_mem"] = float(mem.group(1)) + float(mem.group(2)) if mem else None
                    if row["kiln"] is None:
                        row["kiln_err"] = (r.stderr.strip().splitlines() or ["?"])[-1]
                    if name == "resnet50" and prec == "fp16" and batch == 32 and row["kiln"] is not None:
                        pj = a.profile_out or os.path.join(a.work, "profile.json")
                        # conv / GEMM layers 10 launches back to back (their kernel time, as the GEMM
                        # rate is measured); then once each, events around every launch, for comparison
                        r = subprocess.run([a.kiln, "bench", bundle, "--profile", "--profile-repeat", str(PROFILE_REPEAT),
                                            "--iterations", "50", "--ceilings", f"{ceil_tflops:.1f},{ceil_gbps:.1f}",
                                            "--profile-json", pj], capture_output=True, text=True)
                        profile_text = r.stdout if not r.returncode else "kiln bench --profile failed: " + r.stderr
                        row["profile_json"] = pj if not r.returncode else None
                        row["profile_bundle"] = bundle
                        pj1 = re.sub(r"(\.json)?$", ".single.json", pj, count=1)
                        r1 = subprocess.run([a.kiln, "bench", bundle, "--profile", "--iterations", "50",
                                             "--profile-json", pj1], capture_output=True, text=True)
                        row["profile_json_single"] = pj1 if not r1.returncode else None
                # PyTorch
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
                m_t = model
                x = torch.randn(batch, 3, 224, 224, device="cuda")
                if row["kiln"] is not None and not a.no_check:
                    row["rel_l2"] = check_output(a, model, bundle, x)
                    if row["rel_l2"] is None or not row["rel_l2"] <= LIMITS[prec]:
                        row["kiln_err"] = f"output vs PyTorch fp32: rel L2 {row['rel_l2']} > {LIMITS[prec]}"
                if prec == "fp16":
                    m_t = getattr(torchvision.models, name)(weights=None).eval().cuda()
                    m_t.load_state_dict(model.state_dict())
                    m_t = m_t.half().to(memory_format=torch.channels_last)
                    x = x.half().to(memory_format=torch.channels_last)
                with torch.no_grad():
                    torch.cuda.reset_peak_memory_stats()
                    row["eager"] = torch_time(m_t, x, a.iterations, a.warmup)
                    row["eager_mem"] = torch.cuda.max_memory_allocated() / 1e6
                    if not a.no_compile:
                        torch._dynamo.reset()
                        c = torch.compile(m_t, mode="reduce-overhead")
                        torch.cuda.reset_peak_memory_stats()
                        row["compile"] = torch_time(c, x, a.iterations, max(a.warmup, 5))
                        row["compile_mem"] = torch.cuda.max_memory_allocated() / 1e6
                rows.append(row)
                print(f"[{time.time() - t_start:.0f} s]", row, flush=True)
                report()
    text = report()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
