#!/usr/bin/env python3
"""Turns `kiln conformance` logs into a grouped list of exceptions for docs.

usage: conformance_report.py GPU.log [--cpu CPU.log] [--markdown]

Reads the per-case lines (PASS / FAIL / UNSUPPORTED NAME: reason) of a `kiln conformance
--gpu` log. With --cpu (a `kiln conformance --cpu` log of the same cases) it lists only the
cases the CPU evaluator passes but the GPU does not: the exceptions issue 4 asks to list.
Exceptions are grouped by the op the reason names (codegen's "OP (node 'x'): why") and by
reason, with the case count and up to three case names per group. The exit status is 1 when
any case FAILed on the GPU (a wrong result or a crash, not a refusal)."""
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


def main(argv):
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
