/* bundle_cmds.c — the CLI commands that work on compiled bundles (.kiln): run, bench, inspect,
 * compare. They use the public runtime API (include/kiln.h) plus runtime/runtime.h. */
#include "cli.h"
#include "codegen/codegen.h"
#include "runtime/bundle.h"
#include "runtime/cuda_driver.h"
#include "runtime/runtime.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define fail kiln_cli_fail

bool kiln_cli_is_bundle(const char *path) {
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".kiln")) return true;
    static const unsigned char magic[8] = {0x89, 'K', 'I', 'L', 'N', '\r', '\n', 0x1a};
    unsigned char head[8];
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool yes = fread(head, 1, 8, f) == 8 && !memcmp(head, magic, 8);
    fclose(f);
    return yes;
}

static bool parse_u64(const char *s, uint64_t *v) {
    char *end;
    errno = 0;
    if (!*s || *s == '-') return false;
    *v = strtoull(s, &end, 10);
    return !*end && !errno;
}

static bool parse_double(const char *s, double *v) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return *s && !*end && !errno && *v >= 0;
}

/* Host tensors for every input (from --input files, else seeded random) and output of m. */
typedef struct io_set {
    kiln_tensor **in, **out;
    int n_in, n_out;
} io_set;

static void io_set_free(io_set *s) {
    for (int i = 0; s->in && i < s->n_in; i++) kiln_tensor_free(s->in[i]);
    for (int i = 0; s->out && i < s->n_out; i++) kiln_tensor_free(s->out[i]);
    free(s->in);
    free(s->out);
}

static int make_io(const char *cmd, const kiln_bundle_model *m, const char **names, const char **files, int n_given,
                   uint64_t seed, io_set *s) {
    s->n_in = kiln_bundle_model_num_inputs(m);
    s->n_out = kiln_bundle_model_num_outputs(m);
    s->in = calloc((size_t)s->n_in + 1, sizeof *s->in);
    s->out = calloc((size_t)s->n_out + 1, sizeof *s->out);
    if (!s->in || !s->out) return fail(cmd, "out of memory");
    char msg[1024];
    for (int k = 0; k < n_given; k++) {
        int slot = kiln_bundle_model_find_input(m, names[k]);
        if (slot < 0) {
            snprintf(msg, sizeof msg, "the bundle has no input named '%s'", names[k]);
            return fail(cmd, msg);
        }
        kiln_tensor_free(s->in[slot]);
        s->in[slot] = NULL;
        if (kiln_npy_read(files[k], &s->in[slot])) return fail(cmd, kiln_last_error());
    }
    uint64_t state = seed;
    for (int i = 0; i < s->n_in + s->n_out; i++) {
        bool out = i >= s->n_in;
        kiln_tensor **t = out ? &s->out[i - s->n_in] : &s->in[i];
        if (*t) continue;
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        if (out) kiln_bundle_model_output_info(m, i - s->n_in, NULL, &dt, &rank, dims);
        else kiln_bundle_model_input_info(m, i, NULL, &dt, &rank, dims);
        if (!(*t = kiln_tensor_new(dt, rank, dims))) return fail(cmd, kiln_last_error());
        if (!out) kiln_cli_fill_random(*t, &state);
    }
    return 0;
}

/* Write every output as DIR/NAME.npy, all or nothing: temporary files first, then renames; on
 * any failure the temporary files are removed and no output file is left. */
static int write_outputs(const char *cmd, const kiln_bundle_model *m, const io_set *s, const char *dir) {
    struct stat sb;
    char msg[4200];
    if (stat(dir, &sb) != 0 && mkdir(dir, 0777) != 0) {
        snprintf(msg, sizeof msg, "cannot create output folder '%s': %s", dir, strerror(errno));
        return fail(cmd, msg);
    }
    int rc = 0, written = 0;
    char(*tmp)[4096] = calloc((size_t)s->n_out + 1, sizeof *tmp);
    char(*fin)[4096] = calloc((size_t)s->n_out + 1, sizeof *fin);
    if (!tmp || !fin) rc = fail(cmd, "out of memory");
    for (int i = 0; !rc && i < s->n_out; i++) {
        const char *name;
        char fname[256];
        kiln_bundle_model_output_info(m, i, &name, NULL, NULL, NULL);
        kiln_cli_safe_name(name, fname, sizeof fname);
        snprintf(fin[i], sizeof fin[i], "%s/%s.npy", dir, fname);
        snprintf(tmp[i], sizeof tmp[i], "%s/.%s.npy.tmp.%ld", dir, fname, (long)getpid());
        if (kiln_npy_write(tmp[i], s->out[i])) rc = fail(cmd, kiln_last_error());
        else written = i + 1;
    }
    for (int i = 0; !rc && i < s->n_out; i++)
        if (rename(tmp[i], fin[i]) != 0) {
            snprintf(msg, sizeof msg, "cannot write '%s': %s", fin[i], strerror(errno));
            rc = fail(cmd, msg);
        }
    if (rc)
        for (int i = 0; i < written; i++) unlink(tmp[i]);
    free(tmp);
    free(fin);
    return rc;
}

/* --------------------------------------------------------------------------- run -- */
static void usage_run(FILE *f) {
    fprintf(f,
            "usage: kiln run M.kiln [--input NAME=FILE.npy]... [--output-dir DIR] [--seed N] [--device N]\n"
            "                       [--streams N]\n"
            "Runs a compiled bundle on the GPU. Inputs not given get seeded random values (as kiln run\n"
            "--cpu makes them). Prints one line per output (dtype, shape, min/max/mean); with\n"
            "--output-dir writes each output as NAME.npy (all of them, or none on an error). --streams N\n"
            "runs independent branches on up to N streams (default 1).\n");
}

int kiln_cmd_run_bundle(int argc, char **argv) {
    const char *path = NULL, *out_dir = NULL, *names[64], *files[64];
    int n_given = 0;
    uint64_t seed = 0, device = 0, streams = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_run(stdout);
            return 0;
        } else if (!strcmp(a, "--input") && i + 1 < argc) {
            char *spec = argv[++i], *eq = strchr(spec, '=');
            if (!eq || eq == spec || !eq[1]) return fail("run", "--input takes NAME=FILE.npy");
            if (n_given == 64) return fail("run", "too many --input options");
            *eq = 0;
            names[n_given] = spec;
            files[n_given++] = eq + 1;
        } else if (!strcmp(a, "--output-dir") && i + 1 < argc) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &seed)) return fail("run", "--seed takes a non-negative integer");
        } else if (!strcmp(a, "--device") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &device) || device > 1024) return fail("run", "--device takes a GPU number");
        } else if (!strcmp(a, "--streams") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &streams) || streams < 1 || streams > KILN_MAX_STREAMS)
                return fail("run", "--streams takes a count from 1 to 16");
        } else if (a[0] == '-') {
            fprintf(stderr, "kiln run: unknown option or missing value: '%s'\n", a);
            usage_run(stderr);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            return fail("run", "more than one bundle given");
        }
    }
    if (!path) {
        usage_run(stderr);
        return 2;
    }
    kiln_bundle_model_options opts = {.device = (int)device};
    kiln_bundle_model *m = NULL;
    kiln_exec_context *ctx = NULL;
    io_set s = {0};
    int rc = 0;
    if (kiln_bundle_model_open(path, &opts, &m)) return fail("run", kiln_last_error());
    if (kiln_bundle_model_used_jit(m)) fprintf(stderr, "kiln run: note: %s\n", kiln_bundle_model_image_info(m));
    if ((rc = make_io("run", m, names, files, n_given, seed, &s))) goto done;
    if (kiln_exec_context_new(m, 0, &ctx) || kiln_exec_context_set_streams(ctx, (int)streams)) {
        rc = fail("run", kiln_last_error());
        goto done;
    }
    if (streams > 1) printf("streams: %d used (of %d allowed)\n", kiln_exec_context_streams_used(ctx), (int)streams);
    for (int i = 0; !rc && i < s.n_in; i++)
        if (kiln_exec_context_bind_input_tensor(ctx, i, s.in[i])) rc = fail("run", kiln_last_error());
    for (int i = 0; !rc && i < s.n_out; i++)
        if (kiln_exec_context_bind_output_tensor(ctx, i, s.out[i])) rc = fail("run", kiln_last_error());
    if (!rc && kiln_exec_context_run(ctx, NULL)) rc = fail("run", kiln_last_error());
    if (rc) goto done;
    for (int i = 0; i < s.n_out; i++) {
        const char *name;
        kiln_bundle_model_output_info(m, i, &name, NULL, NULL, NULL);
        kiln_cli_print_stats(name, s.out[i]);
    }
    if (out_dir) rc = write_outputs("run", m, &s, out_dir);
done:
    io_set_free(&s);
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
    return rc;
}

/* ------------------------------------------------------------------------- bench -- */
static void usage_bench(FILE *f) {
    fprintf(f,
            "usage: kiln bench M.kiln [--iterations N] [--warmup N] [--no-graph] [--no-pdl] [--streams N] [--device N]\n"
            "Runs the bundle N times (default 100, after 10 warm-up runs) with inputs and outputs in\n"
            "GPU memory, timing each run with CUDA events; prints latency p50/p90/p99/mean, throughput\n"
            "(samples/s: the first input's first dim per run) and GPU memory used. --no-graph launches\n"
            "kernel by kernel instead of replaying a CUDA graph. --streams N runs independent branches on up\n"
            "to N streams (default 1; the graph then has parallel branches). --no-pdl launches every kernel\n"
            "plainly, without programmatic dependent launch (sm_90+: docs/runtime.md; same as KILN_PDL=0).\n"
            "  --profile            then run the plan layer by layer (no graph, CUDA events around each layer)\n"
            "                       the same number of times and print per layer: group, op, tiles, median us,\n"
            "                       %% of the sum, FLOPs, bytes, TFLOP/s, GB/s (docs/tuning.md)\n"
            "  --profile-repeat R   with --profile: launch each conv / GEMM layer R times back to back between\n"
            "                       its events and report the mean (no per-launch gap; for timing only)\n"
            "  --ceilings T,G       with --profile: also the fraction of T TFLOP/s and G GB/s reached\n"
            "  --profile-json FILE  with --profile: also write the table as JSON\n");
}

static int cmp_float(const void *a, const void *b);

/* The value of "name=VALUE;" in a "k=v;k=v;" metadata string into buf ("" when absent); a layer
 * name with "@output" appended matches its group. */
static const char *meta_item(const char *meta, const char *name, char *buf, size_t len) {
    buf[0] = 0;
    if (!meta) return buf;
    size_t nl = strcspn(name, "@");
    for (const char *p = meta; *p;) {
        const char *eq = strchr(p, '='), *semi = strchr(p, ';');
        if (!eq || !semi || eq > semi) break;
        if ((size_t)(eq - p) == nl && !strncmp(p, name, nl)) {
            size_t vl = (size_t)(semi - eq - 1);
            snprintf(buf, len, "%.*s", (int)(vl < len ? vl : len - 1), eq + 1);
            return buf;
        }
        p = semi + 1;
    }
    return buf;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

#ifdef KILN_HAVE_CUDA
/* `kiln bench --profile`: per-layer medians of `iters` profiled runs (after `warmup`). */
static int bench_profile(kiln_bundle_model *m, kiln_exec_context *ctx, CUstream stream, uint64_t iters, uint64_t warmup,
                         int repeat, double whole_ms, const double *ceil, const char *json_path) {
    const kiln_bundle *b = kiln_bundle_model_bundle(m);
    int nl = b->n_layers;
    if (!nl) return fail("bench", "--profile: the bundle has no layer table (rebuild it)");
    float *ms = malloc(sizeof *ms * (size_t)nl * iters), *col = malloc(sizeof *col * iters);
    double *med = malloc(sizeof *med * (size_t)nl);
    int *rep = malloc(sizeof *rep * (size_t)nl);
    int rc = 0;
    if (!ms || !col || !med || !rep) rc = fail("bench", "out of memory");
    /* --profile-repeat: conv / GEMM layers (FLOPs in layer_costs) launched `repeat` times back to back */
    const char *tiles = kiln_bundle_get_meta(b, "tiles"), *costs = kiln_bundle_get_meta(b, "layer_costs");
    for (int l = 0; !rc && l < nl; l++) {
        char cost[64];
        unsigned long long f = 0, by = 0;
        rep[l] = repeat > 1 && *meta_item(costs, b->layers[l].name, cost, sizeof cost) &&
                         sscanf(cost, "%llu,%llu", &f, &by) == 2 && f > 0
                     ? repeat
                     : 1;
    }
    for (uint64_t it = 0; !rc && it < warmup; it++)
        if (kiln_exec_context_profile_repeat(ctx, stream, ms, rep)) rc = fail("bench", kiln_last_error());
    for (uint64_t it = 0; !rc && it < iters; it++)
        if (kiln_exec_context_profile_repeat(ctx, stream, ms + it * (uint64_t)nl, rep))
            rc = fail("bench", kiln_last_error());
    double total = 0;
    for (int l = 0; !rc && l < nl; l++) {
        for (uint64_t it = 0; it < iters; it++) col[it] = ms[it * (uint64_t)nl + (uint64_t)l];
        qsort(col, iters, sizeof *col, cmp_float);
        med[l] = col[iters / 2];
        total += med[l];
    }
    FILE *jf = NULL;
    if (!rc && json_path && !(jf = fopen(json_path, "w"))) rc = fail("bench", "--profile-json: cannot write the file");
    if (!rc) {
        printf("profile: %d layers, median of %llu runs layer by layer (no graph)", nl, (unsigned long long)iters);
        if (repeat > 1) printf("; conv / GEMM layers: the mean of %d launches back to back", repeat);
        printf("\n");
        printf("%-32s %-28s %-22s %10s %6s %12s %12s %8s %8s%s\n", "layer", "op", "tiles", "us", "%", "FLOPs", "bytes",
               "TFLOP/s", "GB/s", ceil ? "  %peakF  %peakB" : "");
        if (jf) {
            fprintf(jf, "{\"layers\": [");
        }
        for (int l = 0; l < nl; l++) {
            const kiln_bundle_layer *ly = &b->layers[l];
            char tile[160], cost[64];
            unsigned long long flops = 0, bytes = 0;
            meta_item(tiles, ly->name, tile, sizeof tile);
            if (*meta_item(costs, ly->name, cost, sizeof cost) && sscanf(cost, "%llu,%llu", &flops, &bytes) != 2)
                flops = bytes = 0;
            double us = med[l] * 1000.0, tf = us > 0 ? (double)flops / us * 1e-6 : 0, gb = us > 0 ? (double)bytes / us * 1e-3 : 0;
            printf("%-32.32s %-28.28s %-22.22s %10.2f %6.2f %12llu %12llu %8.2f %8.1f", ly->name, ly->op,
                   tile[0] ? tile : "-", us, total > 0 ? 100.0 * med[l] / total : 0.0, flops, bytes, tf, gb);
            if (ceil) printf("  %6.1f%% %6.1f%%", 100.0 * tf / ceil[0], 100.0 * gb / ceil[1]);
            printf("\n");
            if (jf) {
                fprintf(jf, "%s\n  {\"layer\": ", l ? "," : "");
                json_str(jf, ly->name);
                fprintf(jf, ", \"op\": ");
                json_str(jf, ly->op);
                fprintf(jf, ", \"tiles\": ");
                json_str(jf, tile);
                fprintf(jf, ", \"us\": %.3f, \"flops\": %llu, \"bytes\": %llu, \"tflops\": %.4f, \"gbps\": %.3f", us,
                        flops, bytes, tf, gb);
                if (ceil) fprintf(jf, ", \"frac_tflops\": %.4f, \"frac_gbps\": %.4f", tf / ceil[0], gb / ceil[1]);
                /* the layer's first launch (its main kernel; a split-K sum or a copy may follow) */
                kiln_launch_resources lr;
                if (ly->n_launches > 0 && kiln_bundle_model_launch_resources(m, (int)ly->first_launch, &lr) == KILN_OK) {
                    const kiln_bundle_kernel *kk = &b->kernels[b->launches[ly->first_launch].kernel];
                    fprintf(jf,
                            ", \"launch\": {\"grid_blocks\": %llu, \"threads\": %d, \"registers\": %d, "
                            "\"shared_bytes\": %llu, \"blocks_per_sm\": %d, \"module\": %u, \"kernel\": ",
                            (unsigned long long)lr.grid_blocks, lr.threads, lr.registers,
                            (unsigned long long)lr.shared_bytes, lr.blocks_per_sm, kk->module);
                    json_str(jf, kk->function);
                    fprintf(jf, "}");
                }
                fprintf(jf, "}");
            }
        }
        printf("profile: layers sum %.4f ms, whole run p50 %.4f ms\n", total, whole_ms);
        if (jf) {
            fprintf(jf, "\n], \"layers_sum_ms\": %.4f, \"whole_run_p50_ms\": %.4f, \"repeat\": %d}\n", total, whole_ms,
                    repeat);
            if (fclose(jf)) rc = fail("bench", "--profile-json: cannot write the file");
            jf = NULL;
        }
    }
    if (jf) fclose(jf);
    free(ms);
    free(col);
    free(med);
    free(rep);
    return rc;
}
#endif

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int kiln_cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    uint64_t iters = 100, warmup = 10, device = 0, streams = 1;
    bool no_graph = false, no_pdl = false, profile = false;
    uint64_t repeat = 1;
    const char *json_path = NULL;
    double ceil[2] = {0, 0};
    bool have_ceil = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_bench(stdout);
            return 0;
        } else if (!strcmp(a, "--iterations") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &iters) || iters < 1 || iters > 10000000)
                return fail("bench", "--iterations takes a count from 1 to 10000000");
        } else if (!strcmp(a, "--warmup") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &warmup) || warmup > 10000000)
                return fail("bench", "--warmup takes a count up to 10000000");
        } else if (!strcmp(a, "--device") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &device) || device > 1024) return fail("bench", "--device takes a GPU number");
        } else if (!strcmp(a, "--streams") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &streams) || streams < 1 || streams > KILN_MAX_STREAMS)
                return fail("bench", "--streams takes a count from 1 to 16");
        } else if (!strcmp(a, "--no-graph")) {
            no_graph = true;
        } else if (!strcmp(a, "--no-pdl")) {
            no_pdl = true;
        } else if (!strcmp(a, "--profile")) {
            profile = true;
        } else if (!strcmp(a, "--profile-repeat") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &repeat) || repeat < 1 || repeat > 1000)
                return fail("bench", "--profile-repeat takes a count from 1 to 1000");
            profile = true;
        } else if (!strcmp(a, "--profile-json") && i + 1 < argc) {
            json_path = argv[++i];
            profile = true;
        } else if (!strcmp(a, "--ceilings") && i + 1 < argc) {
            char *end;
            ceil[0] = strtod(argv[++i], &end);
            if (*end == ',') ceil[1] = strtod(end + 1, &end);
            if (*end || !(ceil[0] > 0) || !(ceil[1] > 0)) return fail("bench", "--ceilings takes TFLOPS,GBPS, e.g. 990,3350");
            have_ceil = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "kiln bench: unknown option or missing value: '%s'\n", a);
            usage_bench(stderr);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            return fail("bench", "more than one bundle given");
        }
    }
    if (!path) {
        usage_bench(stderr);
        return 2;
    }
#ifndef KILN_HAVE_CUDA
    (void)profile;
    (void)repeat;
    (void)json_path;
    (void)have_ceil;
    return fail("bench", "kiln was built without CUDA (KILN_CUDA=OFF)");
#else
    const kiln_cuda_driver *cu = NULL;
    kiln_bundle_model_options opts = {.device = (int)device};
    kiln_bundle_model *m = NULL;
    kiln_exec_context *ctx = NULL;
    io_set s = {0};
    CUdeviceptr *dev_io = NULL;
    CUstream stream = NULL;
    CUevent e0 = NULL, e1 = NULL;
    float *ms = NULL;
    int rc = 0, n_io = 0;
    size_t free0 = 0, free1 = 0, total = 0;
    /* memory before: opening the model creates the context, so measure after a driver probe */
    {
        kiln_cuda_device probe;
        if (kiln_cuda_device_open((int)device, &probe)) {
            /* opening the model says the same, after checking the file (a bad file first) */
            if (kiln_bundle_model_open(path, &opts, &m)) return fail("bench", kiln_last_error());
            kiln_bundle_model_free(m);
            return fail("bench", "the GPU went away");
        }
        probe.drv->mem_get_info(&free0, &total);
        /* keep the primary context retained until the model holds it, so it is not rebuilt */
        if (kiln_bundle_model_open(path, &opts, &m)) {
            kiln_cuda_device_close(&probe);
            return fail("bench", kiln_last_error());
        }
        kiln_cuda_device_close(&probe);
    }
    kiln_cuda_driver_get(&cu);
#define BCU(name, expr)                                                                        \
    do {                                                                                       \
        if (!rc && kiln_cuda_check(cu, (expr), #name)) rc = fail("bench", kiln_last_error());  \
    } while (0)
    if (kiln_bundle_model_used_jit(m)) fprintf(stderr, "kiln bench: note: %s\n", kiln_bundle_model_image_info(m));
    if ((rc = make_io("bench", m, NULL, NULL, 0, 0, &s))) goto done;
    if (kiln_exec_context_new(m, (no_graph ? KILN_EXEC_NO_GRAPH : 0) | (no_pdl ? KILN_EXEC_NO_PDL : 0), &ctx) ||
        kiln_exec_context_set_streams(ctx, (int)streams)) {
        rc = fail("bench", kiln_last_error());
        goto done;
    }
    n_io = s.n_in + s.n_out;
    dev_io = calloc((size_t)n_io + 1, sizeof *dev_io);
    ms = calloc(iters, sizeof *ms);
    if (!dev_io || !ms) rc = fail("bench", "out of memory");
    uint64_t io_bytes = 0;
    for (int i = 0; !rc && i < n_io; i++) {
        kiln_tensor *t = i < s.n_in ? s.in[i] : s.out[i - s.n_in];
        io_bytes += t->nbytes;
        if (t->nbytes) BCU(cuMemAlloc, cu->mem_alloc(&dev_io[i], t->nbytes));
        if (i < s.n_in && t->nbytes) BCU(cuMemcpyHtoD, cu->memcpy_htod(dev_io[i], t->data, t->nbytes));
        if (rc) break;
        kiln_status st = i < s.n_in ? kiln_exec_context_bind_input(ctx, i, (void *)(uintptr_t)dev_io[i], t->dtype,
                                                                   t->rank, t->dims, KILN_MEM_DEVICE)
                                    : kiln_exec_context_bind_output(ctx, i - s.n_in, (void *)(uintptr_t)dev_io[i],
                                                                    t->dtype, t->rank, t->dims, KILN_MEM_DEVICE);
        if (st) rc = fail("bench", kiln_last_error());
    }
    BCU(cuStreamCreate, cu->stream_create(&stream, CU_STREAM_NON_BLOCKING));
    BCU(cuEventCreate, cu->event_create(&e0, CU_EVENT_DEFAULT));
    BCU(cuEventCreate, cu->event_create(&e1, CU_EVENT_DEFAULT));
    /* at least one warm-up run, so that the graph is captured before timing */
    for (uint64_t w = 0; !rc && w < (warmup ? warmup : 1); w++)
        if (kiln_exec_context_run(ctx, stream)) rc = fail("bench", kiln_last_error());
    BCU(cuStreamSynchronize, cu->stream_synchronize(stream));
    BCU(cuMemGetInfo, cu->mem_get_info(&free1, &total));
    for (uint64_t it = 0; !rc && it < iters; it++) {
        BCU(cuEventRecord, cu->event_record(e0, stream));
        if (!rc && kiln_exec_context_run(ctx, stream)) rc = fail("bench", kiln_last_error());
        BCU(cuEventRecord, cu->event_record(e1, stream));
        BCU(cuEventSynchronize, cu->event_synchronize(e1));
        BCU(cuEventElapsedTime, cu->event_elapsed_time(&ms[it], e0, e1));
    }
    if (!rc) {
        double sum = 0;
        for (uint64_t it = 0; it < iters; it++) sum += ms[it];
        qsort(ms, iters, sizeof *ms, cmp_float);
#define PCT(p) ms[(size_t)((double)(iters - 1) * (p) + 0.5)]
        int64_t batch = s.n_in && s.in[0]->rank ? s.in[0]->dims[0] : 1;
        int64_t replays = 0;
        kiln_exec_context_runs(ctx, &replays);
        printf("bundle %s on %s\n", path, kiln_bundle_model_image_info(m));
        printf("mode: %s%s, %llu iterations after %llu warm-up, %d stream%s used (of %d allowed)\n",
               no_graph ? "kernel launches (--no-graph)" : "CUDA graph replay",
               no_pdl ? ", plain launches (--no-pdl)" : "", (unsigned long long)iters,
               (unsigned long long)warmup, kiln_exec_context_streams_used(ctx),
               kiln_exec_context_streams_used(ctx) == 1 ? "" : "s", (int)streams);
        printf("latency ms: p50 %.4f  p90 %.4f  p99 %.4f  mean %.4f  min %.4f  max %.4f\n", PCT(0.5), PCT(0.9),
               PCT(0.99), sum / (double)iters, ms[0], ms[iters - 1]);
        printf("throughput: %.1f runs/s, %.1f samples/s (batch %lld, at p50)\n", 1000.0 / PCT(0.5),
               1000.0 * (double)batch / PCT(0.5), (long long)batch);
        printf("GPU memory: weights %.2f MB, arena + staging %.2f MB, bench I/O %.2f MB; device free memory "
               "went down by %.2f MB (incl. CUDA context, modules)\n",
               (double)kiln_bundle_model_weight_bytes(m) / 1e6, (double)kiln_exec_context_device_bytes(ctx) / 1e6,
               (double)io_bytes / 1e6, free0 > free1 ? (double)(free0 - free1) / 1e6 : 0.0);
        if (profile)
            rc = bench_profile(m, ctx, stream, iters, warmup, (int)repeat, PCT(0.5), have_ceil ? ceil : NULL, json_path);
    }
done:
    if (cu) {
        if (stream) cu->stream_synchronize(stream);
        for (int i = 0; dev_io && i < n_io; i++)
            if (dev_io[i]) cu->mem_free(dev_io[i]);
        if (e0) cu->event_destroy(e0);
        if (e1) cu->event_destroy(e1);
        if (stream) cu->stream_destroy(stream);
    }
    free(dev_io);
    free(ms);
    io_set_free(&s);
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
    return rc;
#undef BCU
#endif
}

/* ----------------------------------------------------------------------- inspect -- */
/* --images DIR: each image as DIR/module<M>.<arch>.cubin (or .ptx, without its NUL), written to a .part
 * file and renamed, so that a failed write leaves no partial image; the arch comes from the file, so
 * only [A-Za-z0-9_] names are written (no path can escape DIR). */
static int write_images(const kiln_bundle *b, const char *dir) {
    for (int i = 0; i < b->n_images; i++) {
        const kiln_bundle_image *im = &b->images[i];
        char msg[600], name[4096], part[4120];
        bool ok = im->arch[0] != 0;
        for (const char *c = im->arch; c < im->arch + sizeof im->arch && *c; c++)
            ok = ok && ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_');
        if (!ok) {
            snprintf(msg, sizeof msg, "image %d: its architecture name is not a plain name (letters, digits, '_')", i);
            return fail("inspect", msg);
        }
        const bool ptx = im->kind == KILN_IMAGE_PTX;
        const uint64_t size = ptx && im->size > 0 ? im->size - 1 : im->size;
        const int len = snprintf(name, sizeof name, "%s/module%u.%.16s.%s", dir, im->module, im->arch, ptx ? "ptx" : "cubin");
        if (len < 0 || (size_t)len >= sizeof name) return fail("inspect", "--images: the folder's path is too long");
        snprintf(part, sizeof part, "%s.part", name);
        FILE *f = fopen(part, "wb");
        if (!f) {
            snprintf(msg, sizeof msg, "--images: cannot create '%.500s': %s", part, strerror(errno));
            return fail("inspect", msg);
        }
        const bool wrote = fwrite(im->data, 1, (size_t)size, f) == (size_t)size;
        if (fclose(f) != 0 || !wrote || rename(part, name) != 0) {
            remove(part);
            snprintf(msg, sizeof msg, "--images: cannot write '%.500s'", name);
            return fail("inspect", msg);
        }
        printf("wrote %s (%llu bytes)\n", name, (unsigned long long)size);
    }
    return 0;
}

int kiln_cmd_inspect_bundle(int argc, char **argv) {
    const char *path = NULL, *images = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: kiln inspect M.kiln [--images DIR]\nPrints a bundle's header facts, metadata, I/O, images per "
                   "architecture, kernels with their groups, the launch plan, arena and weights (no GPU needed).\n"
                   "  --images DIR  also write each compiled image to DIR (an existing folder) as\n"
                   "                module<M>.<arch>.cubin or .ptx, for cuobjdump / nvdisasm\n");
            return 0;
        } else if (!strcmp(argv[i], "--images")) {
            if (i + 1 >= argc) return fail("inspect", "--images needs a folder");
            images = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kiln inspect: unknown option for a bundle: '%s'\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            return fail("inspect", "more than one bundle given");
        }
    }
    if (!path) return fail("inspect", "no bundle given");
    struct stat sb;
    if (images && (stat(images, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
        char msg[600];
        snprintf(msg, sizeof msg, "--images: '%.500s' is not an existing folder", images);
        return fail("inspect", msg);
    }
    kiln_bundle *b = NULL;
    if (kiln_bundle_read(path, &b)) return fail("inspect", kiln_last_error());
    kiln_bundle_describe(b, path, stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0, stdout);
    const int rc = images ? write_images(b, images) : 0;
    kiln_bundle_free(b);
    return rc;
}

/* ----------------------------------------------------------------------- compare -- */
/* --per-layer, CPU side: the optimized graph the bundle was built from, rebuilt by running
 * the pipeline with the build options recorded in the bundle's metadata, evaluated on the CPU
 * keeping every node's outputs (by value id). */
typedef struct cpu_layers {
    kiln_graph *g;
    kiln_tensor **val; /* per value id of g: the CPU result, or NULL */
} cpu_layers;

static void cpu_layers_free(cpu_layers *c) {
    for (int v = 0; c->val && c->g && v < c->g->n_values; v++) kiln_tensor_free(c->val[v]);
    free(c->val);
    kiln_graph_free(c->g);
    memset(c, 0, sizeof *c);
}

static void keep_outputs(void *user, const kiln_graph *g, int node_index, kiln_tensor *const *outs, int n_out) {
    cpu_layers *c = user;
    const kiln_node *n = &g->nodes[node_index];
    for (int i = 0; i < n_out && i < n->n_outputs; i++) {
        int v = n->outputs[i];
        if (v < 0 || !outs[i] || c->val[v]) continue;
        c->val[v] = kiln_tensor_clone(outs[i]); /* NULL on OOM: that layer reports "no CPU value" */
    }
}

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Rebuild: same shapes and pass options as `kiln build` got (the `options` metadata, split at
 * spaces), then the pipeline; says whether the model file is the one the bundle was built from. */
static int rebuild_optimized(const char *onnx, const kiln_bundle *b, kiln_tensor *const *ins, int n_in,
                             cpu_layers *c) {
    char msg[4400];
    const char *want = kiln_bundle_get_meta(b, "source_model_hash"), *opts = kiln_bundle_get_meta(b, "options");
    uint8_t *bytes = NULL;
    size_t len = 0;
    char have[64] = "";
    if (kiln_read_file(onnx, KILN_MAX_MODEL_BYTES, &bytes, &len) == KILN_OK)
        snprintf(have, sizeof have, "fnv1a64:%016llx", (unsigned long long)fnv1a64(bytes, len));
    free(bytes);
    if (!want) printf("per-layer: the bundle records no source model hash; assuming %s is its model\n", onnx);
    else if (!strcmp(want, have)) printf("per-layer: source model hash %s matches the bundle's\n", have);
    else
        printf("per-layer: WARNING: %s has hash %s but the bundle was built from a model with %s: layers may not "
               "correspond\n", onnx, have[0] ? have : "(unreadable)", want);
    if (kiln_model_load(onnx, &c->g)) return fail("compare", kiln_last_error());
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", opts ? opts : "");
    char *argv[256];
    int argc = 0;
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && argc < 256; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    for (int i = (argc >= 2 && !strcmp(argv[0], "kiln") && !strcmp(argv[1], "build")) ? 2 : 0; i < argc; i++) {
        const char *err;
        int r = kiln_cli_pass_option(argc, argv, &i, &po, &err);
        if (r < 0) {
            snprintf(msg, sizeof msg, "the bundle's build options '%s': %s", opts, err);
            return fail("compare", msg);
        }
        if (r > 0) continue;
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--arch") || !strcmp(argv[i], "--emit-cuda") ||
             !strcmp(argv[i], "--tuning-cache")) && i + 1 < argc) {
            i++;
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            char *spec = argv[++i], *eq = strrchr(spec, '=');
            int rank;
            int64_t dims[KILN_MAX_RANK];
            if (!eq || eq == spec) continue;
            *eq = 0;
            if (kiln_codegen_parse_dims(eq + 1, &rank, dims) || kiln_codegen_fix_shape(c->g, spec, rank, dims))
                return fail("compare", kiln_last_error());
        } /* else the model path or an option that does not change the graph */
    }
    po.dump_after = NULL;
    char disabled[512];
    kiln_cli_gpu_pass_options(&po, disabled, sizeof disabled); /* as kiln build ran them */
    if (kiln_pipeline_run(c->g, &po, NULL, 0, NULL)) return fail("compare", kiln_last_error());
    if (!(c->val = calloc((size_t)c->g->n_values + 1, sizeof *c->val))) return fail("compare", "out of memory");
    int n_out = kiln_graph_num_outputs(c->g);
    kiln_tensor **outs = calloc((size_t)n_out + 1, sizeof *outs);
    if (!outs) return fail("compare", "out of memory");
    kiln_status st = kiln_graph_run_cpu_ex(c->g, ins, n_in, outs, n_out, keep_outputs, c);
    for (int i = 0; i < n_out; i++) kiln_tensor_free(outs[i]);
    free(outs);
    if (st) return fail("compare", kiln_last_error());
    /* every layer value must exist in the rebuilt graph with the recorded shape */
    int missing = 0, total = 0;
    for (int l = 0; l < b->n_layers; l++)
        for (int k = 0; k < b->layers[l].n_values; k++) {
            const kiln_bundle_layer_value *e = &b->layers[l].values[k];
            int v = kiln_graph_find_value(c->g, e->name);
            const kiln_tensor *t = v >= 0 ? c->val[v] : NULL;
            bool ok = t && t->dtype == e->dtype && t->rank == e->rank;
            for (int d = 0; ok && d < e->rank; d++) ok = t->dims[d] == e->dims[d];
            total++;
            if (!ok && missing++ < 5)
                printf("per-layer: layer %d '%s': value '%s' %s in the rebuilt graph\n", l, b->layers[l].name, e->name,
                       v < 0 ? "does not exist" : t ? "has another dtype or shape" : "has no CPU value");
        }
    printf("per-layer: rebuilt the optimized graph (options: %s): %d layers, %d of %d values found\n",
           opts ? opts : "none recorded", b->n_layers, total - missing, total);
    return 0;
}

/* Per value of g: true when it is float16 / bfloat16 or computed from such a value (nodes in
 * order: a producer comes before its users). NULL when out of memory (no floor then). */
static bool *half_values(const kiln_graph *g) {
    bool *h = calloc((size_t)g->n_values + 1, sizeof *h);
    if (!h) return NULL;
    for (int v = 0; v < g->n_values; v++) h[v] = g->values[v].dtype == KILN_F16 || g->values[v].dtype == KILN_BF16;
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln_node *nd = &g->nodes[i];
        bool any = false;
        for (int k = 0; k < nd->n_inputs; k++) any = any || (nd->inputs[k] >= 0 && h[nd->inputs[k]]);
        for (int k = 0; k < nd->n_outputs && any; k++)
            if (nd->outputs[k] >= 0) h[nd->outputs[k]] = true;
    }
    return h;
}

/* The default tolerance for one value: a value that is float16 / bfloat16 or computed from one
 * carries fp16's precision at best (rounded by the CPU and the GPU at different points of a fused
 * chain), so it gets at least the fp16 bundle's 1e-2 / 1e-2 whatever the bundle's precision (an
 * fp32 bundle of a model with fp16 tensors). Tolerances given on the command line apply as they
 * are. */
static void value_tol(bool half, bool given, double rtol, double atol, double *rt, double *at) {
    *rt = !given && half ? fmax(rtol, 1e-2) : rtol;
    *at = !given && half ? fmax(atol, 1e-2) : atol;
}

/* --per-layer, GPU side: one line per layer against the CPU values. */
typedef struct layer_cmp {
    const cpu_layers *cpu;
    double rtol, atol;
    bool tol_given; /* --rtol / --atol: no fp16 floor (value_tol) */
    const bool *half; /* half_values(cpu->g), or NULL */
    int n, failed, first_bad;
    char first_name[256];
} layer_cmp;

static int compare_layer(void *user, const kiln_layer_info *li) {
    layer_cmp *lc = user;
    bool ok = true, any = false;
    double max_abs = 0, rel = 0;
    char note[512] = "";
    for (int k = 0; k < li->n_values; k++) {
        const kiln_layer_value *e = &li->values[k];
        int v = kiln_graph_find_value(lc->cpu->g, e->name);
        const kiln_tensor *c = v >= 0 ? lc->cpu->val[v] : NULL;
        if (!c) {
            snprintf(note, sizeof note, " (no CPU value for '%s')", e->name);
            continue;
        }
        kiln_tensor q = {.dtype = e->dtype, .rank = e->rank, .numel = 1, .nbytes = e->nbytes, .data = (void *)e->host};
        for (int d = 0; d < e->rank; d++) {
            q.dims[d] = e->dims[d];
            q.numel *= e->dims[d];
        }
        /* select-layout stored this value NHWC: back to the logical NCHW order of the CPU's */
        void *nchw = NULL;
        if (lc->cpu->g->values[v].layout == KILN_LAYOUT_NHWC && e->rank == 4 && q.numel > 0 &&
            (size_t)q.numel * kiln_dtype_size(q.dtype) <= (size_t)e->nbytes && (nchw = malloc((size_t)e->nbytes))) {
            const int64_t N = e->dims[0], C = e->dims[1], HW = e->dims[2] * e->dims[3];
            const size_t es = kiln_dtype_size(q.dtype);
            for (int64_t n = 0; n < N; n++)
                for (int64_t ch = 0; ch < C; ch++)
                    for (int64_t p = 0; p < HW; p++)
                        memcpy((char *)nchw + (size_t)((n * C + ch) * HW + p) * es,
                               (const char *)e->host + (size_t)((n * HW + p) * C + ch) * es, es);
            q.data = nchw;
        }
        if (c->dtype != q.dtype || c->numel != q.numel) {
            ok = false;
            snprintf(note, sizeof note, " ('%s': dtype or element count differs from the CPU's)", e->name);
            free(nchw);
            continue;
        }
        any = true;
        kiln_tensor_diff df;
        double rt, at;
        value_tol(lc->half && lc->half[v], lc->tol_given, lc->rtol, lc->atol, &rt, &at);
        kiln_tensor_diff_compute(&q, c, rt, at, &df);
        if (df.max_abs > max_abs || df.max_abs != df.max_abs) max_abs = df.max_abs;
        if (df.rel_l2 > rel || df.rel_l2 != df.rel_l2) rel = df.rel_l2;
        if (df.bad) {
            ok = false;
            snprintf(note, sizeof note, " ('%s': %lld of %lld elements out of tolerance; worst at %lld: gpu %.9g cpu %.9g)",
                     e->name, (long long)df.bad, (long long)c->numel, (long long)df.worst,
                     kiln_tensor_get(&q, df.worst), kiln_tensor_get(c, df.worst));
        }
        free(nchw);
    }
    const char *verdict = !ok ? "FAIL" : any ? "PASS" : "SKIP";
    printf("  %3d %-36s %-28s max abs %-10.3g rel L2 %-10.3g %s%s\n", li->index, li->name, li->op, max_abs, rel, verdict,
           note);
    lc->n++;
    if (!ok) {
        if (!lc->failed) {
            lc->first_bad = li->index;
            snprintf(lc->first_name, sizeof lc->first_name, "%s", li->name);
        }
        lc->failed++;
    }
    return 0;
}

static void usage_compare(FILE *f) {
    fprintf(f,
            "usage: kiln compare MODEL.onnx M.kiln [--per-layer] [--rtol R] [--atol A] [--rel-l2 X] [--seed N]\n"
            "                    [--device N]\n"
            "Runs the CPU evaluator on MODEL.onnx and the bundle on the GPU with the same seeded inputs\n"
            "(as kiln run makes them) and prints, per output, the max abs error, the relative L2 error\n"
            "and PASS/FAIL: PASS when every element has |gpu - cpu| <= atol + rtol * |cpu| (and no NaN\n"
            "where the CPU has none). The GPU outputs are poisoned (NaN) before the run, so unwritten\n"
            "elements fail. Defaults by the bundle's precision: fp32 rtol 1e-4 atol 1e-5, tf32 5e-3/5e-3,\n"
            "fp16 1e-2/1e-2; an output (or --per-layer value) computed from float16 or bfloat16 values\n"
            "gets at least 1e-2/1e-2 in any bundle unless --rtol or --atol is given. --rel-l2 X judges\n"
            "each output by its relative L2 error instead, ||gpu - cpu|| / ||cpu|| <= X (a NaN fails), as\n"
            "accuracy bounds for tf32/fp16 are stated; elements out of rtol/atol are still counted. Exit\n"
            "status 1 on FAIL.\n"
            "--per-layer also rebuilds the optimized graph the bundle was built from (the build options in its\n"
            "metadata; a different source model is reported), evaluates it on the CPU keeping every\n"
            "intermediate, runs the bundle layer by layer and prints one line per layer (name, op, max abs,\n"
            "rel L2, PASS/FAIL), then 'first divergence: LAYER' or 'all N layers match'.\n");
}

int kiln_cmd_compare(int argc, char **argv) {
    const char *onnx = NULL, *path = NULL;
    double rtol = -1, atol = -1, rel_l2_max = -1;
    bool *half = NULL, *lhalf = NULL; /* half_values of the model's graph and of --per-layer's */
    uint64_t seed = 0, device = 0;
    bool per_layer = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_compare(stdout);
            return 0;
        } else if (!strcmp(a, "--per-layer")) {
            per_layer = true;
        } else if (!strcmp(a, "--rtol") && i + 1 < argc) {
            if (!parse_double(argv[++i], &rtol)) return fail("compare", "--rtol takes a non-negative number");
        } else if (!strcmp(a, "--atol") && i + 1 < argc) {
            if (!parse_double(argv[++i], &atol)) return fail("compare", "--atol takes a non-negative number");
        } else if (!strcmp(a, "--rel-l2") && i + 1 < argc) {
            if (!parse_double(argv[++i], &rel_l2_max)) return fail("compare", "--rel-l2 takes a non-negative number");
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &seed)) return fail("compare", "--seed takes a non-negative integer");
        } else if (!strcmp(a, "--device") && i + 1 < argc) {
            if (!parse_u64(argv[++i], &device) || device > 1024) return fail("compare", "--device takes a GPU number");
        } else if (a[0] == '-') {
            fprintf(stderr, "kiln compare: unknown option or missing value: '%s'\n", a);
            usage_compare(stderr);
            return 2;
        } else if (!onnx) {
            onnx = a;
        } else if (!path) {
            path = a;
        } else {
            return fail("compare", "takes MODEL.onnx and M.kiln");
        }
    }
    if (!onnx || !path) {
        usage_compare(stderr);
        return 2;
    }
    kiln_graph *g = NULL;
    kiln_bundle_model *m = NULL;
    kiln_exec_context *ctx = NULL;
    kiln_tensor **ins = NULL, **cpu = NULL, **gpu = NULL;
    int n_in = 0, n_out = 0, rc = 0;
    char msg[1024];
    cpu_layers cl = {0};
    if (kiln_model_load(onnx, &g)) return fail("compare", kiln_last_error());
    /* Inputs: seeded random, shaped as the bundle was built (its --shape fixed dynamic dims). */
    n_in = kiln_graph_num_inputs(g);
    n_out = kiln_graph_num_outputs(g);
    ins = calloc((size_t)n_in + 1, sizeof *ins);
    if (!ins) {
        rc = fail("compare", "out of memory");
        goto done;
    }
    {
        kiln_bundle *pb = NULL;
        uint64_t state = seed;
        if (kiln_bundle_read(path, &pb)) rc = fail("compare", kiln_last_error());
        for (int i = 0; !rc && i < n_in; i++) {
            const char *name = kiln_graph_input_name(g, i);
            const kiln_bundle_io *io = NULL;
            for (int k = 0; k < pb->n_io && !io; k++)
                if (!pb->io[k].is_output && !strcmp(pb->io[k].name, name)) io = &pb->io[k];
            if (!io) {
                snprintf(msg, sizeof msg, "the bundle has no input named '%s'", name);
                rc = fail("compare", msg);
            } else if (!(ins[i] = kiln_tensor_new(io->dtype, io->rank, io->dims))) {
                rc = fail("compare", kiln_last_error());
            } else {
                kiln_cli_fill_random(ins[i], &state);
            }
        }
        /* --per-layer: the CPU side first; it needs no GPU, and a mismatch is worth knowing early */
        if (!rc && per_layer && !pb->n_layers && pb->n_launches)
            rc = fail("compare", "--per-layer: the bundle has no layer table (built by an older kiln): rebuild it");
        if (!rc && per_layer) rc = rebuild_optimized(onnx, pb, ins, n_in, &cl);
        kiln_bundle_free(pb);
        if (rc) goto done;
    }
    kiln_bundle_model_options opts = {.device = (int)device};
    if (kiln_bundle_model_open(path, &opts, &m)) {
        rc = fail("compare", kiln_last_error());
        goto done;
    }
    if (kiln_bundle_model_used_jit(m)) fprintf(stderr, "kiln compare: note: %s\n", kiln_bundle_model_image_info(m));
    const char *prec = kiln_bundle_get_meta(kiln_bundle_model_bundle(m), "precision");
    double dr = 1e-4, da = 1e-5;
    if (prec && !strcmp(prec, "tf32")) dr = da = 5e-3;
    if (prec && !strcmp(prec, "fp16")) dr = da = 1e-2;
    const bool tol_given = rtol >= 0 || atol >= 0;
    if (rtol < 0) rtol = dr;
    if (atol < 0) atol = da;
    cpu = calloc((size_t)n_out + 1, sizeof *cpu);
    gpu = calloc((size_t)n_out + 1, sizeof *gpu);
    if (!cpu || !gpu) {
        rc = fail("compare", "out of memory");
        goto done;
    }
    if (n_in != kiln_bundle_model_num_inputs(m) || n_out != kiln_bundle_model_num_outputs(m)) {
        snprintf(msg, sizeof msg, "the model has %d inputs and %d outputs, the bundle %d and %d", n_in, n_out,
                 kiln_bundle_model_num_inputs(m), kiln_bundle_model_num_outputs(m));
        rc = fail("compare", msg);
        goto done;
    }
    if (kiln_exec_context_new(m, KILN_EXEC_POISON, &ctx)) {
        rc = fail("compare", kiln_last_error());
        goto done;
    }
    for (int i = 0; i < n_in && !rc; i++) {
        const char *name = kiln_graph_input_name(g, i);
        int slot = kiln_bundle_model_find_input(m, name);
        if (slot < 0) {
            snprintf(msg, sizeof msg, "the bundle has no input named '%s'", name);
            rc = fail("compare", msg);
        } else if (kiln_exec_context_bind_input_tensor(ctx, slot, ins[i])) {
            rc = fail("compare", kiln_last_error());
        }
    }
    for (int i = 0; i < n_out && !rc; i++) {
        const char *name = kiln_graph_output_name(g, i);
        int slot = kiln_bundle_model_find_output(m, name);
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        if (slot < 0) {
            snprintf(msg, sizeof msg, "the bundle has no output named '%s'", name);
            rc = fail("compare", msg);
        } else if (kiln_bundle_model_output_info(m, slot, NULL, &dt, &rank, dims) ||
                   !(gpu[i] = kiln_tensor_new(dt, rank, dims)) || kiln_exec_context_bind_output_tensor(ctx, slot, gpu[i])) {
            rc = fail("compare", kiln_last_error());
        } else {
            memset(gpu[i]->data, 0xff, gpu[i]->nbytes); /* NaN for floats: unwritten elements show */
        }
    }
    if (!rc && kiln_graph_run_cpu(g, ins, n_in, cpu, n_out)) rc = fail("compare", kiln_last_error());
    if (!rc && kiln_exec_context_run(ctx, NULL)) rc = fail("compare", kiln_last_error());
    if (rc) goto done;
    printf("compare %s (CPU evaluator) vs %s on %s, seed %llu, rtol %g atol %g", onnx, path,
           kiln_bundle_model_image_info(m), (unsigned long long)seed, rtol, atol);
    if (rel_l2_max >= 0) printf(", judged by rel L2 <= %g", rel_l2_max);
    printf("\n");
    int failed = 0;
    half = half_values(g);
    for (int i = 0; i < n_out; i++) {
        const kiln_tensor *c = cpu[i], *q = gpu[i];
        bool ok = c->numel == q->numel;
        kiln_tensor_diff df;
        double rt, at;
        value_tol(half && half[g->outputs[i]], tol_given, rtol, atol, &rt, &at);
        kiln_tensor_diff_compute(q, c, rt, at, &df);
        int64_t bad = df.bad, first_bad = df.worst;
        double max_abs = df.max_abs, rel = df.rel_l2;
        ok = ok && (rel_l2_max >= 0 ? rel <= rel_l2_max : bad == 0); /* rel is NaN when an output is NaN */
        failed += !ok;
        char dims[160];
        kiln_format_dims(c, dims, sizeof dims);
        printf("  %-32s %s %s  max abs %.3g  rel L2 %.3g  %s", kiln_graph_output_name(g, i), kiln_dtype_name(q->dtype),
               dims, max_abs, rel, ok ? "PASS" : "FAIL");
        if (rt != rtol || at != atol) printf(" (from fp16 values: rtol %g atol %g)", rt, at);
        if (c->numel != q->numel) printf(" (element counts differ: %lld vs %lld)", (long long)c->numel, (long long)q->numel);
        else if (rel_l2_max >= 0 && !ok)
            printf(" (rel L2 above %g)", rel_l2_max);
        if (c->numel == q->numel && bad)
            printf(" (%lld of %lld elements out of tolerance; worst at %lld: gpu %.9g cpu %.9g)", (long long)bad,
                   (long long)c->numel, (long long)first_bad, kiln_tensor_get(q, first_bad), kiln_tensor_get(c, first_bad));
        printf("\n");
    }
    printf("%s\n", failed ? "FAIL" : "PASS");
    rc = failed ? 1 : 0;
    if (per_layer) {
        lhalf = half_values(cl.g);
        layer_cmp lc = {.cpu = &cl, .rtol = rtol, .atol = atol, .tol_given = tol_given, .half = lhalf};
        printf("per-layer (%d layers, each value right after the launches that finalize it):\n",
               kiln_bundle_model_num_layers(m));
        if (kiln_exec_context_run_layers(ctx, NULL, 1, compare_layer, &lc)) {
            rc = fail("compare", kiln_last_error());
            goto done;
        }
        if (lc.failed) printf("first divergence: %s (layer %d; %d of %d layers fail)\n", lc.first_name, lc.first_bad,
                              lc.failed, lc.n);
        else printf("all %d layers match\n", lc.n);
        if (lc.failed) rc = 1;
    }
done:
    free(half);
    free(lhalf);
    cpu_layers_free(&cl);
    for (int i = 0; ins && i < n_in; i++) kiln_tensor_free(ins[i]);
    for (int i = 0; cpu && i < n_out; i++) kiln_tensor_free(cpu[i]);
    for (int i = 0; gpu && i < n_out; i++) kiln_tensor_free(gpu[i]);
    free(ins);
    free(cpu);
    free(gpu);
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
    kiln_graph_free(g);
    return rc;
}
