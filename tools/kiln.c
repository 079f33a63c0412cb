/* kiln.c — the `kiln` command-line tool. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage_main(FILE *f) {
    fprintf(f,
            "kiln %s — an open GPU graph compiler for ONNX models\n"
            "usage: kiln [--limit NAME=VALUE[,...]] <command> [options]\n"
            "commands:\n"
            "  run --cpu MODEL.onnx   evaluate a model on the CPU reference evaluator\n"
            "  run M.kiln             run a compiled bundle on the GPU\n"
            "  bench M.kiln           GPU latency percentiles, throughput, memory\n"
            "  compare MODEL.onnx M.kiln  CPU evaluator vs bundle on the same seeded inputs\n"
            "  inspect MODEL.onnx     inputs/outputs, op histogram, parameters, unsupported ops\n"
            "  inspect M.kiln         a bundle's header, archs, kernels, arena and weights\n"
            "  optimize MODEL.onnx    run the graph passes and report what each did\n"
            "  build MODEL.onnx       compile the model for the GPU into a .kiln bundle\n"
            "  conformance --cpu DIR  run ONNX backend test cases\n"
            "  version                print the version\n"
            "Every command has --help.\n"
            "--limit (or the KILN_LIMITS environment variable) bounds what an input file may make kiln\n"
            "allocate: file-bytes, tensor-bytes, initializer-bytes, nodes, values, nesting-depth;\n"
            "values take K/M/G/T suffixes, e.g. --limit tensor-bytes=1G,nodes=100000.\n",
            KILN_VERSION_STRING);
}

int kiln_cli_fail(const char *cmd, const char *what) {
    fprintf(stderr, "kiln %s: %s\n", cmd, what);
    return 1;
}
#define fail kiln_cli_fail

/* --------------------------------------------------------------- run -- */
static void usage_run(FILE *f) {
    fprintf(f,
            "usage: kiln run --cpu MODEL.onnx [--input NAME=FILE.npy]... [--output-dir DIR] [--seed N]\n"
            "       kiln run M.kiln [same options]   (on the GPU; see kiln run M.kiln --help)\n"
            "Evaluates the model on the CPU reference evaluator. Inputs come from .npy files; any\n"
            "input not given gets seeded random values (floats uniform in [-1, 1), integers in [0, 10),\n"
            "bool coin flips; unknown dims are 1). Prints one line per output with shape, dtype and\n"
            "min/max/mean, and with --output-dir writes each output as NAME.npy (characters other\n"
            "than letters, digits, '-', '_' and '.' in NAME become '_').\n");
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64: reproducible across platforms */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void kiln_cli_fill_random(kiln_tensor *t, uint64_t *seed) {
    for (int64_t k = 0; t && k < t->numel; k++) {
        double u = (double)(rng_next(seed) >> 11) / 9007199254740992.0; /* [0, 1) */
        if (kiln_dtype_is_float(t->dtype)) kiln_tensor_set(t, k, 2.0 * u - 1.0);
        else if (t->dtype == KILN_BOOL) kiln_tensor_set(t, k, u < 0.5);
        else kiln_tensor_set(t, k, floor(u * 10.0));
    }
}

kiln_tensor *kiln_cli_random_input(const kiln_graph *g, int i, uint64_t *seed) {
    kiln_tensor *t = kiln_cli_input_tensor(g, i);
    kiln_cli_fill_random(t, seed);
    return t;
}

void kiln_cli_safe_name(const char *in, char *out, size_t len) {
    size_t o = 0;
    for (; *in && o + 1 < len; in++) {
        char c = *in;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || (c == '.' && o > 0);
        out[o++] = ok ? c : '_';
    }
    if (o == 0) out[o++] = '_';
    out[o] = 0;
}

void kiln_cli_print_stats(const char *name, const kiln_tensor *t) {
    char dims[160];
    kiln_format_dims(t, dims, sizeof dims);
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    int64_t nans = 0; /* non-finite values are computed with, not refused: say how many NaNs */
    for (int64_t k = 0; k < t->numel; k++) {
        double v = kiln_tensor_get(t, k);
        if (isnan(v)) nans++;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        sum += v;
    }
    if (nans == t->numel) mn = mx = NAN;
    if (t->numel && nans)
        printf("%s: %s %s min %.6g max %.6g mean %.6g (%lld NaN)\n", name, kiln_dtype_name(t->dtype), dims, mn, mx,
               sum / (double)t->numel, (long long)nans);
    else if (t->numel)
        printf("%s: %s %s min %.6g max %.6g mean %.6g\n", name, kiln_dtype_name(t->dtype), dims, mn, mx,
               sum / (double)t->numel);
    else
        printf("%s: %s %s (empty)\n", name, kiln_dtype_name(t->dtype), dims);
}

static int cmd_run(int argc, char **argv) {
    const char *model = NULL, *out_dir = NULL;
    bool cpu = false;
    uint64_t seed = 0;
    const char *in_names[64];
    const char *in_files[64];
    int n_given = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_run(stdout);
            return 0;
        } else if (!strcmp(a, "--cpu")) {
            cpu = true;
        } else if (!strcmp(a, "--input") && i + 1 < argc) {
            char *spec = argv[++i], *eq = strchr(spec, '=');
            if (!eq || eq == spec || !eq[1]) return fail("run", "--input takes NAME=FILE.npy");
            if (n_given == 64) return fail("run", "too many --input options");
            *eq = 0;
            in_names[n_given] = spec;
            in_files[n_given++] = eq + 1;
        } else if (!strcmp(a, "--output-dir") && i + 1 < argc) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            char *end;
            errno = 0;
            seed = strtoull(argv[++i], &end, 10);
            if (*end || errno) return fail("run", "--seed takes a non-negative integer");
        } else if (a[0] == '-') {
            fprintf(stderr, "kiln run: unknown option or missing value: '%s'\n", a);
            usage_run(stderr);
            return 2;
        } else if (!model) {
            model = a;
        } else {
            return fail("run", "more than one model given");
        }
    }
    if (!model) {
        usage_run(stderr);
        return 2;
    }
    if (!cpu) return fail("run", "an ONNX model runs with --cpu (on the CPU evaluator); bundles (.kiln) run on the GPU");
    kiln_graph *g = NULL;
    if (kiln_model_load(model, &g)) return fail("run", kiln_last_error());
    int n_in = kiln_graph_num_inputs(g), n_out = kiln_graph_num_outputs(g), rc = 0;
    kiln_tensor **ins = calloc((size_t)n_in + 1, sizeof *ins);
    kiln_tensor **outs = calloc((size_t)n_out + 1, sizeof *outs);
    if (!ins || !outs) {
        rc = fail("run", "out of memory");
        goto done;
    }
    for (int k = 0; k < n_given; k++) {
        int slot = -1;
        for (int i = 0; i < n_in; i++)
            if (!strcmp(kiln_graph_input_name(g, i), in_names[k])) slot = i;
        if (slot < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "the model has no input named '%s'", in_names[k]);
            rc = fail("run", msg);
            goto done;
        }
        kiln_tensor_free(ins[slot]);
        if (kiln_npy_read(in_files[k], &ins[slot])) {
            rc = fail("run", kiln_last_error());
            goto done;
        }
    }
    uint64_t state = seed;
    for (int i = 0; i < n_in; i++) {
        if (ins[i]) continue;
        if (!(ins[i] = kiln_cli_random_input(g, i, &state))) {
            rc = fail("run", kiln_last_error());
            goto done;
        }
    }
    if (kiln_graph_run_cpu(g, ins, n_in, outs, n_out)) {
        rc = fail("run", kiln_last_error());
        goto done;
    }
    if (out_dir) {
        struct stat sb;
        if (stat(out_dir, &sb) != 0 && mkdir(out_dir, 0777) != 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "cannot create output folder '%s': %s", out_dir, strerror(errno));
            rc = fail("run", msg);
            goto done;
        }
    }
    for (int i = 0; i < n_out; i++) {
        kiln_cli_print_stats(kiln_graph_output_name(g, i), outs[i]);
        if (out_dir) {
            char fname[256], path[4096];
            kiln_cli_safe_name(kiln_graph_output_name(g, i), fname, sizeof fname);
            snprintf(path, sizeof path, "%s/%s.npy", out_dir, fname);
            if (kiln_npy_write(path, outs[i])) {
                rc = fail("run", kiln_last_error());
                goto done;
            }
        }
    }
done:
    for (int i = 0; ins && i < n_in; i++) kiln_tensor_free(ins[i]);
    for (int i = 0; outs && i < n_out; i++) kiln_tensor_free(outs[i]);
    free(ins);
    free(outs);
    kiln_graph_free(g);
    return rc;
}

/* ----------------------------------------------------------- inspect -- */
static void usage_inspect(FILE *f) {
    fprintf(f,
            "usage: kiln inspect MODEL.onnx [--dot FILE] [--print]\n"
            "Prints inputs and outputs with shapes, an op histogram, the parameter count and bytes,\n"
            "and lists unsupported ops. --dot writes a Graphviz graph; --print prints kiln's IR.\n");
}

/* For a model kiln cannot import: what the protobuf says, with unsupported ops marked. */
static int inspect_raw(const char *model) {
    char why[1024];
    snprintf(why, sizeof why, "%s", kiln_last_error());
    uint8_t *buf;
    size_t len;
    if (kiln_read_file(model, KILN_MAX_MODEL_BYTES, &buf, &len)) return fail("inspect", kiln_last_error());
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!mp || !mp->graph) {
        if (mp) onnx__model_proto__free_unpacked(mp, NULL);
        return fail("inspect", why);
    }
    const Onnx__GraphProto *gp = mp->graph;
    printf("model %s: graph '%s', %zu nodes (kiln cannot import it; listing what the file declares)\n", model,
           gp->name ? gp->name : "", gp->n_node);
    for (size_t i = 0; i < gp->n_input; i++) printf("  input  %s\n", gp->input[i]->name ? gp->input[i]->name : "");
    for (size_t i = 0; i < gp->n_output; i++)
        printf("  output %s\n", gp->output[i]->name ? gp->output[i]->name : "");
    printf("ops:\n");
    for (size_t i = 0; i < gp->n_node; i++) {
        const char *ot = gp->node[i]->op_type ? gp->node[i]->op_type : "";
        const char *dom = gp->node[i]->domain ? gp->node[i]->domain : "";
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = gp->node[j]->op_type && !strcmp(gp->node[j]->op_type, ot) && gp->node[j]->domain &&
                   !strcmp(gp->node[j]->domain, dom);
        if (seen) continue;
        int count = 0;
        for (size_t j = i; j < gp->n_node; j++)
            count += gp->node[j]->op_type && !strcmp(gp->node[j]->op_type, ot);
        bool known = (!*dom || !strcmp(dom, "ai.onnx")) && kiln_importer_find(ot);
        printf("  %-24s %d%s\n", ot, count, known ? "" : "   (unsupported)");
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    fprintf(stderr, "kiln inspect: %s\n", why);
    return 1;
}

static int cmd_inspect(int argc, char **argv) {
    const char *model = NULL, *dot = NULL;
    bool print = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_inspect(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--dot") && i + 1 < argc) {
            dot = argv[++i];
        } else if (!strcmp(argv[i], "--print")) {
            print = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kiln inspect: unknown option '%s'\n", argv[i]);
            usage_inspect(stderr);
            return 2;
        } else if (!model) {
            model = argv[i];
        } else {
            return fail("inspect", "more than one model given");
        }
    }
    if (!model) {
        usage_inspect(stderr);
        return 2;
    }
    kiln_graph *g = NULL;
    kiln_status st = kiln_model_load(model, &g);
    if (st == KILN_ERR_UNSUPPORTED) return inspect_raw(model);
    if (st) return fail("inspect", kiln_last_error());
    char buf[256];
    printf("model %s: graph '%s', opset %lld, %d nodes\n", model, g->name, (long long)g->opset, g->n_nodes);
    for (int i = 0; i < g->n_inputs; i++) {
        kiln_value_format_type(g, &g->values[g->inputs[i]], buf, sizeof buf);
        printf("  input  %s: %s\n", g->values[g->inputs[i]].name, buf);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        kiln_value_format_type(g, &g->values[g->outputs[i]], buf, sizeof buf);
        printf("  output %s: %s\n", g->values[g->outputs[i]].name, buf);
    }
    int64_t params = 0, bytes = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].data && (g->values[v].flags & KILN_VALUE_INITIALIZER)) {
            params += g->values[v].data->numel;
            bytes += (int64_t)g->values[v].data->nbytes;
        }
    printf("parameters: %lld (%.2f MB)\n", (long long)params, (double)bytes / 1e6);
    int hist[KILN_OP_COUNT] = {0};
    for (int ni = 0; ni < g->n_nodes; ni++) hist[g->nodes[ni].op]++;
    printf("ops:\n");
    for (int op = 0; op < KILN_OP_COUNT; op++)
        if (hist[op]) printf("  %-24s %d\n", kiln_op_table[op].onnx_type, hist[op]);
    printf("unsupported ops: none\n");
    int rc = 0;
    if (print) kiln_graph_print(g, stdout);
    if (dot) {
        FILE *f = fopen(dot, "w");
        if (!f || kiln_graph_write_dot(g, f) || fclose(f)) rc = fail("inspect", "writing the dot file failed");
    }
    kiln_graph_free(g);
    return rc;
}

/* KILN_LIMITS, then each --limit before the command; returns how many arguments they took, or
 * -1 after printing why a spec is bad. */
static int apply_limits(int argc, char **argv) {
    kiln_limits l;
    kiln_limits_get(&l);
    const char *env = getenv("KILN_LIMITS");
    if (env && *env && kiln_limits_parse(env, &l) != KILN_OK) {
        fprintf(stderr, "kiln: KILN_LIMITS: %s\n", kiln_last_error());
        return -1;
    }
    int used = 0;
    while (1 + used < argc && !strcmp(argv[1 + used], "--limit")) {
        if (2 + used >= argc) {
            fprintf(stderr, "kiln: --limit needs NAME=VALUE[,...]\n");
            return -1;
        }
        if (kiln_limits_parse(argv[2 + used], &l) != KILN_OK) {
            fprintf(stderr, "kiln: --limit: %s\n", kiln_last_error());
            return -1;
        }
        used += 2;
    }
    if (kiln_limits_set(&l) != KILN_OK) {
        fprintf(stderr, "kiln: --limit: %s\n", kiln_last_error());
        return -1;
    }
    return used;
}

int main(int argc, char **argv) {
    int used = apply_limits(argc, argv);
    if (used < 0) return 2;
    if (used) { /* drop the global options: argv[1] is the command again */
        argv[used] = argv[0];
        argv += used;
        argc -= used;
    }
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage_main(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("kiln %s\n", KILN_VERSION_STRING);
        return 0;
    }
    if (!strcmp(cmd, "run") || !strcmp(cmd, "inspect")) {
        /* a bundle (by its magic) goes to the GPU runtime; --cpu or an ONNX file to the evaluator */
        bool cpu = false, bundle = false;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--cpu")) cpu = true;
            else if (argv[i][0] != '-' && !bundle && kiln_cli_is_bundle(argv[i])) bundle = true;
        }
        if (bundle && !cpu)
            return !strcmp(cmd, "run") ? kiln_cmd_run_bundle(argc - 2, argv + 2) : kiln_cmd_inspect_bundle(argc - 2, argv + 2);
        return !strcmp(cmd, "run") ? cmd_run(argc - 2, argv + 2) : cmd_inspect(argc - 2, argv + 2);
    }
    if (!strcmp(cmd, "bench")) return kiln_cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "compare")) return kiln_cmd_compare(argc - 2, argv + 2);
    if (!strcmp(cmd, "conformance")) return kiln_cmd_conformance(argc - 2, argv + 2);
    if (!strcmp(cmd, "optimize")) return kiln_cmd_optimize(argc - 2, argv + 2);
    if (!strcmp(cmd, "build")) return kiln_cmd_build(argc - 2, argv + 2);
    fprintf(stderr, "kiln: unknown command '%s'\n", cmd);
    usage_main(stderr);
    return 2;
}
