#!/usr/bin/env python3
"""Conformance reports for docs/conformance.md.

usage: scripts/conformance_report.py [KILN]
  Runs `kiln conformance --cpu` on onnx 1.22.0's backend node cases and prints the part of
  docs/conformance.md that lists unsupported cases whose op types kiln does support (each with
  the reason kiln gives), grouped by reason.

usage: scripts/conformance_report.py --gpu GPU.log [--cpu CPU.log] [--markdown]
  Reads the per-case lines (PASS / FAIL / UNSUPPORTED NAME: reason) of a `kiln conformance --gpu`
  log. With --cpu (a `kiln conformance --cpu` log of the same cases) it lists only the cases the
  CPU evaluator passes but the GPU does not: the exceptions issue 4 asks to list. Exceptions are
  grouped by the op the reason names (codegen's "OP (node 'x'): why") and by reason, with the
  case count and up to three case names per group. The exit status is 1 when any case FAILed on
  the GPU (a wrong result or a crash, not a refusal)."""
import collections
import re
import sys

LINE = re.compile(r"^(PASS|FAIL|UNSUPPORTED) (\S+?)(?:: (.*))?$")
# codegen's list of refused nodes: "gpu: N node(s) cannot run on the GPU yet: OP (node 'n'): why ..."
NODE = re.compile(r"([A-Za-z_]\w*(?:\[[^\]]*\])?) \(node '[^']*'\): (.*?)(?= [A-Za-z_]\w*(?:\[[^\]]*\])? \(node '|$)")


def parse(path):
    cases = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if m:
                cases[m.group(2)] = (m.group(1), m.group(3) or "")
    return cases


def groups_of(reason):
    """(op, why) pairs a reason names; one ("-", reason) when it names no node."""
    body = reason[5:] if reason.startswith("gpu: ") else reason
    if "cannot run on the GPU yet:" in body:
        body = body.split("cannot run on the GPU yet:", 1)[1].strip()
        found = [(op, why.strip()) for op, why in NODE.findall(body)]
        if found:
            return found
    body = re.sub(r"'[^']*'", "'…'", body)  # value and node names differ per case
    body = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", body)
    return [("-", body)]


def gpu_report(argv):
    args = [a for a in argv if not a.startswith("--")]
    markdown = "--markdown" in argv
    cpu_path = None
    if "--cpu" in argv:
        i = argv.index("--cpu")
        cpu_path = argv[i + 1] if i + 1 < len(argv) else None
        args = [a for a in args if a != cpu_path]
    if len(args) != 1:
        sys.exit(__doc__)
    gpu = parse(args[0])
    cpu = parse(cpu_path) if cpu_path else None
    counts = collections.Counter(r for r, _ in gpu.values())
    groups = collections.defaultdict(list)
    n_exc = 0
    for name, (res, reason) in sorted(gpu.items()):
        if res == "PASS":
            continue
        if cpu is not None and cpu.get(name, ("?",))[0] != "PASS":
            continue  # not an exception: the CPU evaluator does not pass it either
        n_exc += 1
        for op, why in groups_of(reason):
            groups[(res, op, why)].append(name)
    title = "GPU conformance exceptions" + (" (cases the CPU evaluator passes)" if cpu is not None else "")
    summary = "%d passed, %d failed, %d unsupported on the GPU; %d exceptions" % (
        counts["PASS"], counts["FAIL"], counts["UNSUPPORTED"], n_exc)
    order = sorted(groups.items(), key=lambda kv: (kv[0][0] != "FAIL", kv[0][1], -len(kv[1]), kv[0][2]))
    if markdown:
        print("### " + title + "\n\n" + summary + "\n\n| result | op | reason | cases | examples |\n|---|---|---|---|---|")
        for (res, op, why), names in order:
            print("| %s | %s | %s | %d | %s |" % (res, op, why.replace("|", "\\|"), len(names), ", ".join(names[:3])))
    else:
        print(title + ": " + summary)
        for (res, op, why), names in order:
            print("%-11s %-28s %4d  %s\n%44s e.g. %s" % (res, op, len(names), why, "", ", ".join(names[:3])))
    return 1 if counts["FAIL"] else 0



def cpu_report(argv):
    import os
    import subprocess

    import onnx

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kiln = argv[0] if argv else os.path.join(root, "build", "kiln")
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    ops = set(re.findall(r"^KILN_OP\((\w+),", open(os.path.join(root, "ir", "op_table.def")).read(), re.M))
    ops |= {"Upsample", "Scatter"}
    out = subprocess.run([kiln, "conformance", "--cpu", "--no-summary", os.path.join(data, "node")],
                         capture_output=True, text=True).stdout
    groups = collections.defaultdict(list)
    other = 0
    for line in out.splitlines():
        m = re.match(r"UNSUPPORTED (\S+): (.*)", line)
        if not m:
            continue
        case, why = m.groups()
        model = onnx.load(os.path.join(data, "node", case, "model.onnx"), load_external_data=False)
        types = {n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")}
        if any(n.domain not in ("", "ai.onnx") for n in model.graph.node) or not types <= ops:
            other += 1
            continue
        why = re.sub(r"node '[^']*' \(#\d+ (\w+)\)", r"\1", why)
        why = re.sub(r"graph (input|output) '[^']*'", r"graph \1", why)
        groups[why].append(case)
    print(out.strip().splitlines()[-1])
    print(f"unsupported because an op type is outside kiln's table: {other}")
    print(f"unsupported although every op type is in kiln's table: {sum(len(v) for v in groups.values())}\n")
    print("| reason kiln gives | cases |\n| --- | --- |")
    for why, cases in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(cases[:6]) + (f", ... ({len(cases)} in all)" if len(cases) > 6 else "")
        print(f"| {why.replace('|', '/')} | {shown} |")
    return 0


if __name__ == "__main__":
    if "--gpu" in sys.argv[1:]:
        sys.exit(gpu_report([a for a in sys.argv[1:] if a != "--gpu"]))
    sys.exit(cpu_report(sys.argv[1:]))
