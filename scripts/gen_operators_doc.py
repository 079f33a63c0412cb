#!/usr/bin/env python3
"""Regenerates docs/operators.md from ir/op_table.def (and the ONNX schema versions from
the onnx package, a test-only dependency). Run after adding ops: scripts/gen_operators_doc.py"""
import collections
import os
import re

import onnx.defs

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rows = []
for line in open(os.path.join(root, "ir", "op_table.def")):
    m = re.match(r'KILN_OP\((\w+),\s*"(\w+)",\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*(\w+),\s*(\w+)\)', line)
    if m:
        rows.append(m.groups())

versions = collections.defaultdict(set)
for s in onnx.defs.get_all_schemas_with_history():
    if s.domain in ("", "ai.onnx"):
        versions[s.name].add(s.since_version)

FLOATS = "f16 bf16 f32 f64"
NUMERIC = "f16 bf16 f32 f64 i8-i64 u8-u64"
ALL = "all (bool, ints, floats)"
family_dtypes = {"elementwise": FLOATS, "reduce": FLOATS, "nn": FLOATS, "shape": ALL, "index": ALL,
                 "nlp": FLOATS, "quant": "see notes", "fused": "those of its body"}
dtype_override = {
    "Abs": NUMERIC, "Neg": "signed ints, floats", "Sign": NUMERIC, "Ceil": FLOATS, "Not": "bool",
    "And": "bool", "Or": "bool", "Xor": "bool", "BitwiseNot": "ints", "BitwiseAnd": "ints",
    "BitwiseOr": "ints", "BitwiseXor": "ints", "BitShift": "unsigned ints", "IsNaN": FLOATS + " -> bool",
    "IsInf": FLOATS + " -> bool", "Equal": ALL + " -> bool", "Greater": NUMERIC + " -> bool",
    "GreaterOrEqual": NUMERIC + " -> bool", "Less": NUMERIC + " -> bool", "LessOrEqual": NUMERIC + " -> bool",
    "Add": NUMERIC, "Sub": NUMERIC, "Mul": NUMERIC, "Div": NUMERIC, "Mod": NUMERIC, "Pow": NUMERIC,
    "Max": NUMERIC, "Min": NUMERIC, "Sum": NUMERIC, "Clip": NUMERIC, "Relu": "signed ints, floats",
    "Identity": ALL, "Cast": ALL, "CastLike": ALL, "Where": ALL, "Dropout": FLOATS,
    "ReduceMax": NUMERIC, "ReduceMin": NUMERIC, "ReduceSum": NUMERIC, "ReduceProd": NUMERIC,
    "ArgMax": NUMERIC + " -> i64", "ArgMin": NUMERIC + " -> i64", "CumSum": NUMERIC, "TopK": NUMERIC,
    "MatMul": NUMERIC, "Shape": ALL + " -> i64", "Size": ALL + " -> i64", "Range": "i16-i64, f32, f64",
    "NonZero": ALL + " -> i64", "Resize": NUMERIC, "OneHot": NUMERIC,
}
notes = {
    "Cast": "float8/float4/int4/string targets unsupported",
    "CastLike": "float8/float4/int4/string unsupported",
    "Dropout": "inference form; training_mode with ratio > 0 is unsupported (random)",
    "BatchNormalization": "inference only (training_mode=1 unsupported)",
    "Softmax": "opset < 13 2-D coercion kept as kiln_coerce_2d", "LogSoftmax": "as Softmax", "Hardmax": "as Softmax",
    "Resize": "also imports Upsample (7-9); nearest/linear/cubic, all coordinate modes, antialias",
    "Constant": "becomes a constant value at import; sparse_value and strings unsupported",
    "Conv": "1-D/2-D/3-D, groups, dilations, auto_pad; fast f32 path",
    "Einsum": "any equation incl. ellipsis", "Pad": "constant/reflect/edge/wrap, axes input",
    "ScatterElements": "also imports the deprecated Scatter", "Split": "split input or num_outputs",
    "Fused": "kiln's own: a fusion group owning its sub-graph (made by passes, never imported)",
    "Add": "opset < 7 broadcast/axis rewritten", "PRelu": "opset < 7 slope along axis 1 rewritten",
}
out = [
    "# Operator support matrix",
    "",
    "Generated from `ir/op_table.def` by `scripts/gen_operators_doc.py`; a test checks that every op of",
    "the table is listed here. *Opsets* are the ONNX versions of the op's schema; kiln's importer maps each",
    "of them onto the IR form (the newest). Limits that hold for every op: rank <= 8; dtypes among",
    "f16 bf16 f32 f64 i8 i16 i32 i64 u8 u16 u32 u64 bool (no string, complex, float8, int4).",
    "fp16/bf16 compute through fp32 on the CPU evaluator. Kind is the fusion pattern kind used by passes.",
    "",
    "| ONNX op | IR name | opsets | kind | inputs | outputs | dtypes | notes |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
]
for op, name, mi, ma, mo, mao, kind, fam in sorted(rows, key=lambda r: r[0].lower()):
    arity = lambda a, b: (f"{a}+" if b == "-1" else (a if a == b else f"{a}-{b}"))
    vs = ", ".join(str(v) for v in sorted(versions.get(op, []))) or "-"
    dt = dtype_override.get(op, family_dtypes.get(fam, ""))
    out.append(f"| {op} | `{name}` | {vs} | {kind.lower().replace('_', '-')} | {arity(mi, ma)} | "
               f"{arity(mo, mao)} | {dt} | {notes.get(op, '')} |")
out += ["", f"{len(rows)} ops. Also imported: Upsample (as Resize), Scatter (as ScatterElements).", ""]
open(os.path.join(root, "docs", "operators.md"), "w").write("\n".join(out))
print(f"docs/operators.md: {len(rows)} ops")
