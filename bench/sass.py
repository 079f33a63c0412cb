"""sass.py — one line on a kernel's SASS, for bench/run.py's note under a layer that misses its target.

    summary = kernel_summary(kiln, bundle, kernel)   # None without cuobjdump or the kernel

The bundle's cubins come out through `kiln inspect M.kiln --images DIR`; `cuobjdump -sass -fun KERNEL`
disassembles the kernel from the image a Hopper card loads first (sm_90a, then sm_90, then any). The counts
are static (instructions in the code, not executed): what the kernel is made of, e.g. which tensor-core
instruction shapes it issues and how many shared-memory, global and barrier instructions surround them.
"""
import collections
import os
import re
import shutil
import subprocess
import tempfile

# an instruction line: /*0a40*/  [@P0 | @!UP1 ]OPCODE.MODIFIERS operands ;
_LINE = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[0-9T]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Za-z0-9_]+)*)")
_TENSOR = ("HGMMA", "HMMA", "IMMA", "QGMMA", "IGMMA", "BGMMA", "DMMA")
_SHARED = ("LDS", "STS", "LDSM", "STSM")
_GLOBAL = ("LDG", "STG", "LDGSTS", "UTMALDG", "UTMASTG", "UBLKCP")
_SYNC = ("BAR", "SYNCS", "MEMBAR", "WARPGROUP")


def parse(text):
    """The opcodes (with modifiers) of every instruction line of cuobjdump -sass output."""
    return [m.group(1) for m in map(_LINE.match, text.splitlines()) if m]


def describe(ops):
    """One line: instruction count, tensor-core instructions by shape, shared / global / barrier counts,
    the most frequent opcodes."""
    base = collections.Counter(op.split(".")[0] for op in ops)
    tensor = collections.Counter(".".join(op.split(".")[:2]) for op in ops if op.split(".")[0] in _TENSOR)

    def group(names):
        return ", ".join(f"{n} {base[n]}" for n in names if base[n]) or "none"

    top = ", ".join(f"{n} {c}" for n, c in base.most_common(8))
    tens = ", ".join(f"{n} x{c}" for n, c in sorted(tensor.items())) or "none"
    return (f"{len(ops)} instructions; tensor cores: {tens}; shared memory: {group(_SHARED)}; "
            f"global: {group(_GLOBAL)}; barriers and fences: {group(_SYNC)}; most frequent: {top}")


def kernel_summary(kiln, bundle, kernel):
    try:
        return _summary(kiln, bundle, kernel)
    except (OSError, subprocess.SubprocessError):  # (a note that cannot be made must not stop the report)
        return None


def _summary(kiln, bundle, kernel):
    cuobjdump = shutil.which("cuobjdump") or "/usr/local/cuda/bin/cuobjdump"
    if not os.path.exists(cuobjdump):
        return None
    with tempfile.TemporaryDirectory() as d:
        if subprocess.run([kiln, "inspect", bundle, "--images", d], capture_output=True).returncode:
            return None
        cubins = sorted((f for f in os.listdir(d) if f.endswith(".cubin")),
                        key=lambda f: (".sm_90a." not in f, ".sm_90." not in f, f))
        for f in cubins:
            r = subprocess.run([cuobjdump, "-sass", "-fun", kernel, os.path.join(d, f)], capture_output=True, text=True)
            ops = parse(r.stdout) if not r.returncode else []
            if ops:
                return f"SASS of {kernel} ({f.split('.')[1]} cubin, static counts): {describe(ops)}"
    return None
