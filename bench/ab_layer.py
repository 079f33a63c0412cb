#!/usr/bin/env python3
r"""A/B one layer of a model across kiln builds, in one call on the GPU machine.

    python3 bench/ab_layer.py MODEL LAYER VARIANT [VARIANT ...] [--shape input=32x3x224x224]
                              [--precision fp16] [--rounds 4] [--tile NAME] [--ncu-regions] [--out DIR] [--work DIR]

VARIANT is NAME=KILN[@ENV=VALUE[,ENV=VALUE...]]: a kiln binary and the environment its `kiln build`
and `kiln bench` run with (the developer switches of docs/tuning.md, KILN_PDL=0; items separated by ';'
instead where a value holds commas), e.g.
    base=build-gpu/v/kiln_base  new=build-gpu/plain/kiln  ring2=build-gpu/plain/kiln@KILN_CONV_POOL_RING=2
Every variant's bundle is built first (in parallel, --no-autotune: the heuristic's tiles, so that
only the variant differs), then the rounds alternate the variants (`kiln bench --profile
--profile-repeat 10`: the layer's mean over 10 launches back to back, the benchmark's layer table),
then each variant's whole-network latency (`kiln bench`, 100 runs). LAYER is a regular expression
on the profile's layer, op and tiles columns joined by one space (the layer column is cut at 32
characters: e.g. 'conv1/Conv', or 'layer2.0/c.*Conv\+Conv' for the layer-2 conv pair). Prints one
line a measurement and a summary (median, min, max a variant); with --out, also DIR/ab.md.
--tile NAME builds every variant with `kiln build --tile NAME`; --work DIR keeps the bundles there
(DIR/NAME.kiln).

--ncu-regions: one more launch of the layer's kernel per variant under ncu's source-level stall
sampling, summarized in three regions by address: the start up to the first wgmma (HGMMA), the main
part (to the last instruction that runs more than once a warp) and the end, with each region's
share of the warp samples and top stall reasons. (The kernel is matched by ncu's -k regex:KERNEL,
--kernel; the bundle's first kernel, k0_, by default.) `--regions-csv FILE` summarizes a table saved
with `ncu -i REPORT --page source --csv --print-source sass` (no GPU needed).

Machine notes (docs/gpu.md): LD_LIBRARY_PATH must hold the packed libraries (build-gpu); run from the
repository root. Written after a device call hung on a bare `wait` in a shell script (it also waits
for `exec > >(tee ...)`): this tool waits on its own child processes only.
"""
import argparse
import csv
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile


def parse_variant(text):
    if "=" not in text:
        sys.exit(f"ab_layer: variant '{text}': expected NAME=KILN[@ENV=VALUE,...]")
    name, rest = text.split("=", 1)
    kiln, _, envs = rest.partition("@")
    env = {}
    # (';' separates the items where a value holds commas, e.g. KILN_NVRTC_DEFINES=A=1,B=2)
    for item in filter(None, envs.split(";" if ";" in envs else ",")):
        if "=" not in item:
            sys.exit(f"ab_layer: variant '{text}': environment item '{item}' is not ENV=VALUE")
        k, v = item.split("=", 1)
        env[k] = v
    if not os.access(kiln, os.X_OK):
        sys.exit(f"ab_layer: variant '{name}': '{kiln}' is not an executable")
    return name, kiln, env


def run(cmd, env=None, timeout=600):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return p.returncode, p.stdout


def layer_us(profile_text, layer_re):
    """The layer's time in us from `kiln bench --profile` (columns: layer op tiles us ...; the first
    line whose first three columns, joined by a space, match layer_re)."""
    for line in profile_text.splitlines():
        f = line.split()
        if len(f) >= 4 and re.search(layer_re, " ".join(f[:3])):
            try:
                return float(f[3])
            except ValueError:
                continue
    return None


def ncu_regions(kiln, bundle, kernel, workdir, name):
    rep = os.path.join(workdir, f"ncu_{name}")
    rc, out = run(["ncu", "--clock-control", "none", "--launch-skip", "3", "--launch-count", "1", "-k",
                   f"regex:{kernel}", "--section", "SourceCounters", "--section", "WarpStateStats", "-f", "-o",
                   rep, kiln, "bench", bundle, "--iterations", "5", "--warmup", "1"], timeout=300)
    if rc != 0:
        return f"ncu failed ({rc}): {out[-400:]}"
    rc, text = run(["ncu", "-i", rep + ".ncu-rep", "--page", "source", "--csv", "--print-source", "sass"])
    if rc != 0:
        return f"ncu -i failed ({rc})"
    return summarize_regions(text, name)


def summarize_regions(text, name):
    """ncu's `--page source --csv --print-source sass` table in three regions by address: the start up
    to the first HGMMA (a kernel without one: all of it), the main part up to the last instruction
    executed more often than the kernel's first (once a warp), and the end; each region's share of the
    warp samples (about its share of the time when every warp lives through the whole kernel) and its
    top stall reasons (shares of all samples)."""
    rows = list(csv.reader(io.StringIO(text)))
    hdr_i = next((i for i, r in enumerate(rows) if "Source" in r and "Instructions Executed" in r), None)
    if hdr_i is None:
        return f"{name}: no source table in ncu's output"
    hdr, data = rows[hdr_i], [r for r in rows[hdr_i + 1:] if len(r) == len(rows[hdr_i])]
    if not data:
        return f"{name}: an empty source table"
    ix = {h: i for i, h in enumerate(hdr)}

    def num(s):
        try:
            return float(s.replace(",", ""))
        except ValueError:
            return 0.0

    stalls = [h for h in hdr if h.startswith("stall_") and "(Not" not in h]
    samples = [num(r[ix["Warp Stall Sampling (All Samples)"]]) for r in data]
    execd = [num(r[ix["Instructions Executed"]]) for r in data]
    once = execd[0]  # the kernel's first instruction: once a warp
    first_mma = next((i for i, r in enumerate(data) if "HGMMA" in r[ix["Source"]]), len(data))
    last_loop = max((i for i in range(len(data)) if execd[i] > once), default=len(data) - 1)
    keys = ["start (up to the first HGMMA)", "main (to the last instruction run more than once a warp)", "end"]
    regions = {k: [] for k in keys}
    for i in range(len(data)):
        regions[keys[0] if i <= first_mma else keys[1] if i <= max(last_loop, first_mma) else keys[2]].append(i)
    total = sum(samples) or 1.0
    lines = [f"{name}: {int(total)} warp samples, {len(data)} SASS instructions, {int(sum(execd))} executed"]
    for key in keys:
        idx = regions[key]
        top = sorted(((sum(num(data[i][ix[k]]) for i in idx), k[6:]) for k in stalls), reverse=True)[:4]
        lines.append(f"  {key}: {sum(samples[i] for i in idx) / total:.0%} of the samples, "
                     f"{int(sum(execd[i] for i in idx))} instructions executed; top stalls " +
                     ", ".join(f"{k} {v / total:.0%}" for v, k in top if v > 0))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("layer", help="regular expression on the profile's layer column")
    ap.add_argument("variants", nargs="+", help="NAME=KILN[@ENV=VALUE,...]")
    ap.add_argument("--shape", default="input=32x3x224x224")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--tile", help="kiln build --tile NAME for every variant (e.g. tc128x128x64s6g2k1)")
    ap.add_argument("--ncu-regions", action="store_true")
    ap.add_argument("--kernel", default="k0_", help="ncu kernel-name regex for --ncu-regions")
    ap.add_argument("--out", help="directory for ab.md")
    ap.add_argument("--work", help="directory for the bundles (NAME.kiln; kept), a new temporary one by default")
    ap.add_argument("--regions-csv", metavar="FILE",
                    help="only summarize FILE (ncu --page source --csv --print-source sass) by region")
    if "--regions-csv" in sys.argv:  # offline: no model, layer or variants
        i = sys.argv.index("--regions-csv")
        if i + 1 >= len(sys.argv):
            sys.exit("ab_layer: --regions-csv needs a file")
        try:
            with open(sys.argv[i + 1]) as f:
                text = f.read()
        except OSError as e:
            sys.exit(f"ab_layer: --regions-csv {sys.argv[i + 1]}: {e.strerror}")
        print(summarize_regions(text, os.path.basename(sys.argv[i + 1])))
        return 0
    a = ap.parse_args()
    if not os.path.isfile(a.model):
        sys.exit(f"ab_layer: model '{a.model}': no such file")
    if a.rounds < 1:
        sys.exit("ab_layer: --rounds must be at least 1")
    try:
        re.compile(a.layer)
    except re.error as e:
        sys.exit(f"ab_layer: LAYER '{a.layer}' is not a regular expression: {e}")
    variants = [parse_variant(v) for v in a.variants]
    if len({n for n, _, _ in variants}) != len(variants):
        sys.exit("ab_layer: variant names must differ")
    if a.work:
        os.makedirs(a.work, exist_ok=True)
    work = a.work or tempfile.mkdtemp(prefix="ab_layer_")
    report = []

    def say(line):
        print(line, flush=True)
        report.append(line)

    procs = {}
    for name, kiln, env in variants:
        bundle = os.path.join(work, f"{name}.kiln")
        e = dict(os.environ)
        e.update(env)
        log = open(os.path.join(work, f"{name}.build.log"), "w")
        procs[name] = (subprocess.Popen([kiln, "build", a.model, "-o", bundle, "--precision", a.precision, "--shape",
                                         a.shape, "--no-autotune"] + (["--tile", a.tile] if a.tile else []), env=e, stdout=log, stderr=subprocess.STDOUT), log)
    failed = False
    for name, (p, log) in procs.items():
        rc = p.wait()
        log.close()
        if rc != 0:
            failed = True
            say(f"build {name}: FAILED (rc {rc}); see {work}/{name}.build.log")
    if failed:
        return 1
    times = {n: [] for n, _, _ in variants}
    for r in range(1, a.rounds + 1):
        for name, kiln, env in variants:
            rc, out = run([kiln, "bench", os.path.join(work, f"{name}.kiln"), "--profile", "--profile-repeat", "10"], env)
            us = layer_us(out, a.layer) if rc == 0 else None
            if us is None:
                say(f"round {r} {name}: no '{a.layer}' layer in the profile (rc {rc})")
                continue
            times[name].append(us)
            say(f"round {r} {name}: {us:.2f} us")
    say("")
    say(f"| variant | median us | min | max | runs | network p50 ms |")
    say(f"|---|---|---|---|---|---|")
    for name, kiln, env in variants:
        rc, out = run([kiln, "bench", os.path.join(work, f"{name}.kiln"), "--iterations", "100", "--warmup", "20"], env)
        m = re.search(r"latency ms: p50 ([0-9.]+)", out)
        t = times[name]
        if t:
            say(f"| {name} | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} | {len(t)} | "
                f"{m.group(1) if m else '-'} |")
        else:
            say(f"| {name} | - | - | - | 0 | {m.group(1) if m else '-'} |")
    if a.ncu_regions:
        for name, kiln, _ in variants:
            say(ncu_regions(kiln, os.path.join(work, f"{name}.kiln"), a.kernel, work, name))
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "ab.md"), "w") as f:
            f.write("\n".join(report) + "\n")
    missing = [n for n, t in times.items() if not t]
    if missing:  # a variant without a single measurement is a failed run, not a result
        print(f"ab_layer: no '{a.layer}' measurement for {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
