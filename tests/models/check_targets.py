#!/usr/bin/env python3
"""Check the optimization targets of issue #3 against a `kiln optimize --report` JSON.

usage: check_targets.py resnet|mobilenet|report MODEL.onnx REPORT.json KERNELS

  KERNELS: K from the last line `optimize: N nodes -> K kernels` that kiln optimize printed.

resnet (light_resnet50 and the generated torchvision-shaped ResNet-50):
  - no BatchNormalization left (top level or inside a fused group)
  - no Shape / Gather / Unsqueeze / Concat left
  - every Conv whose output (through BatchNormalization) feeds an activation shares a fused
    group with that activation, downstream of it
  - every residual Add/Sum (two run-time operands, one of them from a Conv) shares a group
    with a Conv upstream of it, and the activation after it is in that group too
  - at most 60 kernels
mobilenet (the generated MobileNetV2):
  - no BatchNormalization left
  - no standalone Clip; every Clip inside a group that holds a Conv
  - no standalone elementwise kernels (top-level elementwise/broadcast ops, or fused groups of
    elementwise/broadcast ops only)

report (any model): the report is consistent (histograms add up to the node and kernel
  counts, fused entries match the Fused nodes, body edges point backwards).

The expected counts come from the original model, so every failure line says how far off
the optimized graph is ("12 BatchNormalization nodes left", "kernels 161 > 60", ...).
Exit status: 0 all targets met, 1 some missed, 2 bad input.
"""
import json
import sys

ACTIVATIONS = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSwish", "HardSigmoid", "Gelu", "Tanh", "Elu", "Selu",
               "Softplus", "Mish", "PRelu", "ThresholdedRelu", "Celu"}
RESIDUAL = {"Add", "Sum"}
CONVS = {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv"}
MAX_KERNELS = 60
EXTERNAL, CONST, OMITTED = -1, -2, -3


# ------------------------------------------------------------------ original model ----
def expected_from_model(path):
    """(convs followed by an activation, residual adds, residual adds followed by an activation)."""
    import onnx

    m = onnx.load(path, load_external_data=False)
    g = m.graph
    consts = {i.name for i in g.initializer}
    consts |= {o for n in g.node if n.op_type in ("Constant", "ConstantOfShape") for o in n.output}
    users = {}
    for n in g.node:
        for v in n.input:
            users.setdefault(v, []).append(n)
    producer = {o: n for n in g.node for o in n.output}

    def next_after_bn(n):
        """The node after n, skipping a single-use BatchNormalization/Identity chain."""
        while True:
            u = users.get(n.output[0], [])
            if len(u) != 1:
                return None
            if u[0].op_type in ("BatchNormalization", "Identity"):
                n = u[0]
                continue
            return u[0]

    def from_conv(v):
        n = producer.get(v)
        while n is not None and n.op_type in ("BatchNormalization", "Identity"):
            n = producer.get(n.input[0])
        return n is not None and n.op_type in CONVS

    conv_act = sum(1 for n in g.node if n.op_type in CONVS and (nx := next_after_bn(n)) is not None
                   and nx.op_type in ACTIVATIONS)
    res = res_act = 0
    for n in g.node:
        runtime = [v for v in n.input if v and v not in consts]
        if n.op_type in RESIDUAL and len(runtime) >= 2 and any(from_conv(v) for v in runtime):
            res += 1
            u = users.get(n.output[0], [])
            res_act += len(u) == 1 and u[0].op_type in ACTIVATIONS
    return conv_act, res, res_act


# ------------------------------------------------------------------- report walking ----
def all_ops(report):
    """Histogram of every op, top level and inside fused groups (nested too)."""
    hist = {k: v for k, v in report["ops"].items() if k != "Fused"}

    def walk(group):
        for b in group["body"]:
            if "fused" in b:
                walk(b["fused"])
            else:
                hist[b["op"]] = hist.get(b["op"], 0) + 1

    for grp in report["fused"]:
        walk(grp)
    return hist


def groups(report):
    """Every fused group, nested ones included."""
    out = []

    def walk(group):
        out.append(group)
        for b in group["body"]:
            if "fused" in b:
                walk(b["fused"])

    for grp in report["fused"]:
        walk(grp)
    return out


def downstream(body, start):
    """Indices of body nodes reachable from body[start] (start excluded); body is topological."""
    reach = {start}
    for i in range(start + 1, len(body)):
        if any(f in reach for f in body[i]["from"] if f >= 0):
            reach.add(i)
    reach.discard(start)
    return reach


def is_residual(body, i, chain):
    """body[i] is an Add/Sum with a run-time operand that does not come from chain."""
    b = body[i]
    if b["op"] not in RESIDUAL:
        return False
    return any(f == EXTERNAL or (f >= 0 and f not in chain) for f in b["from"])


def conv_group_counts(report):
    conv_act = res = res_act = 0
    for grp in groups(report):
        body = grp["body"]
        res_nodes = set()
        for ci, b in enumerate(body):
            if b["op"] not in CONVS:
                continue
            d = downstream(body, ci)
            chain = d | {ci}
            after_res = set()
            for i in sorted(d):
                if is_residual(body, i, chain) or any(f in after_res for f in body[i]["from"] if f >= 0):
                    after_res.add(i)
                    if body[i]["op"] in RESIDUAL and is_residual(body, i, chain):
                        res_nodes.add(i)
            conv_act += any(body[i]["op"] in ACTIVATIONS and i not in after_res for i in d)
        res += len(res_nodes)
        res_act += sum(1 for r in res_nodes if any(body[i]["op"] in ACTIVATIONS for i in downstream(body, r)))
    return conv_act, res, res_act


# -------------------------------------------------------------------------- targets ----
def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def check_resnet(model, report, kernels):
    res = []
    hist = all_ops(report)
    bn = hist.get("BatchNormalization", 0)
    res.append((bn == 0, f"{plural(bn, 'BatchNormalization node')} left" if bn else "no BatchNormalization left"))
    for op in ("Shape", "Gather", "Unsqueeze", "Concat"):
        k = hist.get(op, 0)
        res.append((k == 0, f"{plural(k, op + ' node')} left" if k else f"no {op} left"))
    e_act, e_res, e_res_act = expected_from_model(model)
    f_act, f_res, f_res_act = conv_group_counts(report)
    res.append((f_act >= e_act, f"convs fused with their activation: {f_act} of {e_act}"))
    res.append((f_res >= e_res, f"residual Adds fused into a conv group: {f_res} of {e_res}"))
    res.append((f_res_act >= e_res_act, f"activations after a residual Add fused into that group: {f_res_act} of "
                                        f"{e_res_act}"))
    top_conv = sum(report["ops"].get(c, 0) for c in CONVS)
    top_act = sum(report["ops"].get(a, 0) for a in ACTIVATIONS)
    info = f"(top level: {plural(top_conv, 'unfused Conv')}, {plural(top_act, 'unfused activation')})"
    res.append((kernels <= MAX_KERNELS, f"kernels {kernels} {'<=' if kernels <= MAX_KERNELS else '>'} {MAX_KERNELS}"))
    return res, info


def check_mobilenet(model, report, kernels):
    res = []
    hist = all_ops(report)
    bn = hist.get("BatchNormalization", 0)
    res.append((bn == 0, f"{plural(bn, 'BatchNormalization node')} left" if bn else "no BatchNormalization left"))
    clip_top = report["ops"].get("Clip", 0)
    res.append((clip_top == 0, f"{plural(clip_top, 'standalone Clip')} (not in a fused group)" if clip_top
                else "no standalone Clip"))
    clip_noconv = sum(sum(1 for b in grp["body"] if b["op"] == "Clip") for grp in groups(report)
                      if not any(b["op"] in CONVS for b in grp["body"]))
    res.append((clip_noconv == 0, f"{plural(clip_noconv, 'Clip')} in fused groups without a Conv" if clip_noconv
                else "every fused Clip shares its group with a Conv"))
    # standalone elementwise kernels: top-level elementwise/broadcast kernels, or fused groups
    # made of elementwise/broadcast ops only
    ew_top = report["kernel_kinds"].get("elementwise", 0) + report["kernel_kinds"].get("broadcast", 0)
    ew_groups = sum(1 for grp in report["fused"]
                    if grp["body"] and all(b["op_kind"] in ("elementwise", "broadcast") for b in grp["body"]))
    n = ew_top + ew_groups
    bn_top = report["ops"].get("BatchNormalization", 0)
    res.append((n == 0, f"{plural(n, 'standalone elementwise kernel')} ({ew_top} top-level elementwise/broadcast "
                        f"ops{f' incl. {bn_top} BatchNormalization' if bn_top else ''}, {ew_groups} elementwise-only "
                        "groups)" if n else "no standalone elementwise kernels"))
    return res, f"({kernels} kernels)"


def check_report(model, report, kernels):
    """The report is internally consistent (what the other profiles rely on)."""
    res = []

    def total(h):
        return sum(h.values())

    res.append((report["kernels"] == kernels, f"report kernels {report['kernels']}, optimize: line {kernels}"))
    res.append((total(report["ops"]) == report["nodes_after"],
                f"ops histogram sums to {total(report['ops'])}, nodes_after {report['nodes_after']}"))
    res.append((total(report["ops_before"]) == report["nodes_before"],
                f"ops_before histogram sums to {total(report['ops_before'])}, nodes_before {report['nodes_before']}"))
    res.append((total(report["kernel_kinds"]) == kernels,
                f"kernel_kinds sum to {total(report['kernel_kinds'])}, kernels {kernels}"))
    nf = report["ops"].get("Fused", 0)
    res.append((nf == len(report["fused"]) == report["kernel_kinds"].get("fused", 0),
                f"{nf} Fused nodes, {len(report['fused'])} fused entries, {report['kernel_kinds'].get('fused', 0)} "
                "fused kernels"))
    bad = []
    for grp in groups(report):
        body = grp["body"]
        if grp["body_ops"] != [b["op"] for b in body]:
            bad.append(f"{grp['name']}: body_ops disagree with body")
        for i, b in enumerate(body):
            if any(f >= i or f < OMITTED for f in b["from"]):
                bad.append(f"{grp['name']}: body node {i} ({b['op']}) has an edge from {b['from']}")
        if not body:
            bad.append(f"{grp['name']}: empty body")
    res.append((not bad, "; ".join(bad[:5]) if bad else f"{len(groups(report))} fused groups well-formed"))
    return res, f"({report['nodes_before']} nodes -> {kernels} kernels, {len(report['fused'])} fused groups)"


def main(argv):
    profiles = {"resnet": check_resnet, "mobilenet": check_mobilenet, "report": check_report}
    if len(argv) != 5 or argv[1] not in profiles:
        print(__doc__.strip())
        return 2
    profile, model, report_file, kernels = argv[1], argv[2], argv[3], int(argv[4])
    with open(report_file) as f:
        report = json.load(f)
    for key in ("ops", "ops_before", "kernel_kinds", "fused", "kernels", "nodes_before", "nodes_after"):
        if key not in report:
            print(f"FAIL: the report {report_file} has no '{key}' (kiln optimize --report too old?)")
            return 2
    results, info = profiles[profile](model, report, kernels)
    missed = [msg for ok, msg in results if not ok]
    for ok, msg in results:
        print(f"  {'ok  ' if ok else 'MISS'}  {msg}")
    print(f"  {info}")
    if missed:
        what = "checks failed" if profile == "report" else "targets missed"
        print(f"FAIL: {len(missed)} of {len(results)} {what}: " + "; ".join(missed))
        return 1
    print(f"OK: all {len(results)} {'checks passed' if profile == 'report' else 'targets met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
