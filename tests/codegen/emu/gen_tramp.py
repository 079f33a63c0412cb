#!/usr/bin/env python3
"""gen_tramp.py IN.cu OUT.cpp — appends to kiln's generated module one trampoline per kernel,
`extern "C" void emu_tramp_NAME(void **p)`, that calls the kernel with its parameters read
from cuLaunchKernel-style pointers (each p[i] points at parameter i's bytes)."""
import re
import sys

src = open(sys.argv[1]).read()
out = [src, "\n// ---- emulation trampolines ----\n"]
for m in re.finditer(r'extern "C" __global__ void __launch_bounds__\(\d+(?:, \d+)?\)(?: KILN_CLUSTER2)? (\w+)\(([^)]*)\)', src):
    name, params = m.group(1), [p.strip() for p in m.group(2).split(",") if p.strip()]
    args = []
    for i, p in enumerate(params):
        t = re.sub(r"\w+$", "", p).strip()
        args.append(f"*({t} *)p[{i}]")
    out.append(f'extern "C" void emu_tramp_{name}(void **p) {{ {name}({", ".join(args)}); }}\n')
open(sys.argv[2], "w").write("".join(out))
