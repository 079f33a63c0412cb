#!/usr/bin/env python3
"""Runs `kiln conformance --cpu` on onnx 1.22.0's backend node cases and prints the part of
docs/conformance.md that lists unsupported cases whose op types kiln does support (each with the
reason kiln gives), grouped by reason. usage: scripts/conformance_report.py [KILN]"""
import collections
import os
import re
import subprocess
import sys

import onnx

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
kiln = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build", "kiln")
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
