/* conformance.c — `kiln conformance --cpu DIR...`: runs ONNX backend test cases
 * (model.onnx + test_data_set_N/input_N.pb, output_N.pb) and "light" model files
 * (NAME.onnx + NAME_output_0.pb, inputs built as the onnx runner builds them) through the
 * CPU evaluator, each case in a child process so that one crash cannot stop the run. */
#include "cli.h"

#include "codegen/codegen.h"
#include "runtime/bundle.h"
#include "runtime/cuda_driver.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void kiln_format_dims(const kiln_tensor *t, char *buf, size_t len) {
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->rank && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)t->dims[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

void kiln_tensor_diff_compute(const kiln_tensor *got, const kiln_tensor *exp, double rtol, double atol,
                              kiln_tensor_diff *d) {
    memset(d, 0, sizeof *d);
    d->worst = -1;
    bool is_float = kiln_dtype_is_float(exp->dtype);
    double worst_excess = 0, num = 0, den = 0;
    int64_t n = got->numel < exp->numel ? got->numel : exp->numel;
    for (int64_t i = 0; i < n; i++) {
        double a = kiln_tensor_get(got, i), e = kiln_tensor_get(exp, i);
        if (is_float) {
            if ((isnan(e) && isnan(a)) || (isinf(e) && a == e)) continue;
            double diff = fabs(a - e), lim = atol + rtol * fabs(e);
            if (isnan(diff)) d->max_abs = NAN; /* sticks: nothing compares greater than NaN */
            else if (diff > d->max_abs) d->max_abs = diff;
            num += (a - e) * (a - e);
            den += e * e;
            if (!(diff <= lim)) {
                double excess = isnan(diff) ? INFINITY : diff - lim;
                if (d->bad++ == 0 || excess > worst_excess) {
                    d->worst = i;
                    worst_excess = excess;
                }
            }
        } else {
            int64_t ai = kiln_tensor_get_i64(got, i), ei = kiln_tensor_get_i64(exp, i);
            num += (a - e) * (a - e);
            den += e * e;
            if (fabs(a - e) > d->max_abs) d->max_abs = fabs(a - e);
            if (ai != ei && d->bad++ == 0) d->worst = i;
        }
    }
    d->rel_l2 = num == 0 ? 0 : (den > 0 ? sqrt(num / den) : INFINITY);
}

bool kiln_tensor_compare(const kiln_tensor *got, const kiln_tensor *exp, double rtol, double atol, char *msg,
                         size_t len) {
    char gd[128], ed[128];
    kiln_format_dims(got, gd, sizeof gd);
    kiln_format_dims(exp, ed, sizeof ed);
    if (got->dtype != exp->dtype) {
        snprintf(msg, len, "dtype %s, expected %s", kiln_dtype_name(got->dtype), kiln_dtype_name(exp->dtype));
        return false;
    }
    if (got->rank != exp->rank || memcmp(got->dims, exp->dims, sizeof(int64_t) * (size_t)got->rank) != 0) {
        snprintf(msg, len, "shape %s, expected %s", gd, ed);
        return false;
    }
    kiln_tensor_diff d;
    kiln_tensor_diff_compute(got, exp, rtol, atol, &d);
    if (!d.bad) return true;
    if (kiln_dtype_is_float(got->dtype))
        snprintf(msg, len, "%lld of %lld elements differ; worst at [%lld]: got %.9g, expected %.9g", (long long)d.bad,
                 (long long)got->numel, (long long)d.worst, kiln_tensor_get(got, d.worst),
                 kiln_tensor_get(exp, d.worst));
    else
        snprintf(msg, len, "%lld of %lld elements differ; first at [%lld]: got %lld, expected %lld", (long long)d.bad,
                 (long long)got->numel, (long long)d.worst, (long long)kiln_tensor_get_i64(got, d.worst),
                 (long long)kiln_tensor_get_i64(exp, d.worst));
    return false;
}

/* ------------------------------------------------------------ cases -- */
typedef enum { CASE_PASS, CASE_FAIL, CASE_UNSUPPORTED } case_result;

typedef struct {
    char *path;   /* case folder, or model file for a light case */
    bool light;
} test_case;

typedef struct {
    test_case *v;
    size_t n, cap;
} case_list;

static bool file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool dir_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void add_case(case_list *l, const char *path, bool light) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        test_case *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n].path = strdup(path);
    l->v[l->n].light = light;
    if (l->v[l->n].path) l->n++;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A light case is NAME.onnx with NAME_output_0.pb beside it. */
static bool is_light_model(const char *path) {
    size_t l = strlen(path);
    if (l < 6 || strcmp(path + l - 5, ".onnx") != 0) return false;
    char out[4096];
    snprintf(out, sizeof out, "%.*s_output_0.pb", (int)(l - 5), path);
    return file_exists(out);
}

static void collect(case_list *l, const char *path, int depth) {
    char buf[4096];
    if (file_exists(path)) {
        if (is_light_model(path)) add_case(l, path, true);
        return;
    }
    snprintf(buf, sizeof buf, "%s/model.onnx", path);
    if (file_exists(buf)) {
        add_case(l, path, false);
        return;
    }
    if (depth > 3) return;
    DIR *d = opendir(path);
    if (!d) return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%s/%s", path, names[i]);
        if (dir_exists(buf) || is_light_model(buf)) collect(l, buf, depth + 1);
        free(names[i]);
    }
    free(names);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

kiln_tensor *kiln_cli_input_tensor(const kiln_graph *g, int i) {
    kiln_dtype dt;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    if (kiln_graph_input_info(g, i, &dt, &rank, dims)) return NULL;
    if (rank < 0) rank = 0;
    for (int d = 0; d < rank; d++)
        if (dims[d] < 0) dims[d] = 1;
    return kiln_tensor_new(dt, rank, dims);
}

/* The onnx runner's dummy input for light models: arange(n)/n as float32, unknown dims 1. */
static kiln_tensor *light_input(const kiln_graph *g, int i) {
    kiln_tensor *t = kiln_cli_input_tensor(g, i);
    for (int64_t k = 0; t && k < t->numel; k++) kiln_tensor_set(t, k, (double)k / (double)t->numel);
    return t;
}

/* When set, every case also runs through the pass pipeline: the optimized graph must match
 * the expected outputs and the unoptimized graph (relative L2 <= opt_rel_l2 per output). */
static const kiln_pipeline_opts *opt_pipeline;
static double opt_rel_l2 = 1e-5;

static double rel_l2(const kiln_tensor *a, const kiln_tensor *e) {
    kiln_tensor_diff d;
    kiln_tensor_diff_compute(a, e, 0, 0, &d);
    return d.rel_l2;
}

/* ----------------------------------------------------------- GPU path -- */
/* --gpu: each case is built as `kiln build` builds a model (static shapes from the case's
 * inputs, the pass pipeline, codegen for this machine's GPU only, cubin without PTX), loaded
 * from memory through the runtime API and run with host bindings. */
#define KILN_GPU_MAX_INPUTS 64
static bool gpu_mode;
static bool gpu_codegen_only; /* --codegen-only: build (codegen + NVRTC) but run nothing: no GPU needed */
static char gpu_arch[16];     /* "sm_90": the device's compute capability, or --arch */

/* The device's arch, or false with a reason (no driver, no device). */
static bool gpu_probe(char *why, size_t len) {
#ifdef KILN_HAVE_CUDA
    const kiln_cuda_driver *cu;
    if (kiln_cuda_driver_get(&cu) != KILN_OK) {
        snprintf(why, len, "%s", kiln_last_error());
        return false;
    }
    int n = 0, major = 0, minor = 0;
    CUdevice dev;
    if (cu->device_get_count(&n) != CUDA_SUCCESS || n < 1) {
        snprintf(why, len, "no CUDA device on this machine");
        return false;
    }
    if (cu->device_get(&dev, 0) != CUDA_SUCCESS ||
        cu->device_get_attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev) != CUDA_SUCCESS ||
        cu->device_get_attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev) != CUDA_SUCCESS) {
        snprintf(why, len, "cannot query CUDA device 0");
        return false;
    }
    snprintf(gpu_arch, sizeof gpu_arch, "sm_%d%d", major, minor);
    return true;
#else
    snprintf(why, len, "kiln was built without CUDA (KILN_CUDA=OFF)");
    return false;
#endif
}

/* gpu_probe in a child process: CUDA must not be initialized in the parent, whose forked
 * case processes each initialize it themselves (CUDA does not survive a fork). */
static bool gpu_probe_forked(char *why, size_t len) {
    int fd[2];
    if (pipe(fd) != 0) return gpu_probe(why, len);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return gpu_probe(why, len);
    }
    if (pid == 0) {
        close(fd[0]);
        char m[600];
        bool ok = gpu_probe(m + 1, sizeof m - 1);
        m[0] = ok ? '1' : '0';
        if (ok) snprintf(m + 1, sizeof m - 1, "%s", gpu_arch);
        ssize_t w = write(fd[1], m, strlen(m));
        (void)w;
        close(fd[1]);
        _exit(0);
    }
    close(fd[1]);
    char buf[600];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd[0], buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd[0]);
    buf[got] = 0;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got < 1) {
        snprintf(why, len, "the GPU probe process failed (status %d)", status);
        return false;
    }
    if (buf[0] == '1') {
        snprintf(gpu_arch, sizeof gpu_arch, "%s", buf + 1);
        return true;
    }
    snprintf(why, len, "%s", buf + 1);
    return false;
}

/* A multi-line library message as one line ("a:\n  b" -> "a: b"). */
static void one_line(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\n') {
            while (r[1] == ' ') r++;
            if (w > s && w[-1] != ' ') *w++ = ' ';
            continue;
        }
        *w++ = *r;
    }
    *w = 0;
}

static case_result gpu_fail(kiln_status st, const char *what, char *msg, size_t len) {
    char e[900];
    snprintf(e, sizeof e, "%s", kiln_last_error());
    one_line(e);
    snprintf(msg, len, "gpu: %s%s", what, e);
    return st == KILN_ERR_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
}

/* Builds g (shapes fixed from ins) for this GPU and runs it; outs[] receive new tensors. */
static case_result gpu_run(const kiln_graph *g0, const kiln_pipeline_opts *po, kiln_tensor *const *ins, int n_in,
                           kiln_tensor **outs, int n_out, bool bake, bool *can_bake, char *msg, size_t len) {
    case_result res = CASE_PASS;
    bool baked[KILN_GPU_MAX_INPUTS] = {false}; /* inputs turned into constants */
    if (n_in > KILN_GPU_MAX_INPUTS) {
        snprintf(msg, len, "gpu: more than %d inputs", KILN_GPU_MAX_INPUTS);
        return CASE_UNSUPPORTED;
    }
    kiln_status st = KILN_OK;
    kiln_graph *g = kiln_graph_clone(g0);
    kiln_bundle *b = NULL;
    kiln_bundle_model *m = NULL;
    kiln_exec_context *ctx = NULL;
    uint8_t *bytes = NULL;
    size_t nbytes = 0;
    if (!g) return gpu_fail(KILN_ERR_OOM, "", msg, len);
    for (int i = 0; !st && i < n_in; i++)
        st = kiln_codegen_fix_shape(g, kiln_graph_input_name(g, i), ins[i]->rank, ins[i]->dims);
    if (st) {
        res = gpu_fail(st, "fixing input shapes: ", msg, len);
        goto done;
    }
    /* Shapes that still depend on input data (axes, shape, repeats, pads... fed as graph
     * inputs) cannot be built statically: bake the case's small integer inputs into the graph
     * as constants, as a user of a static-shape compiler would, and build that. */
    bool dynamic = bake;
    for (int i = 0; i < n_in; i++)
        if (ins[i]->numel <= 64) *can_bake = true;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].rank >= 0 && !g->values[v].data && g->values[v].producer >= 0 &&
            !kiln_value_is_static(&g->values[v]))
            dynamic = true;
    for (int i = 0; dynamic && i < n_in; i++) {
        baked[i] = (ins[i]->dtype == KILN_I64 || ins[i]->dtype == KILN_I32) && ins[i]->numel <= 64;
        /* float inputs that set shapes or build-time values: Resize's roi / scales, Pad's
         * constant_value, Range's start / limit / delta */
        const kiln_value *iv = &g->values[g->inputs[i]];
        for (int u = 0; !baked[i] && ins[i]->numel <= 64 && u < iv->n_users; u++) {
            const kiln_node *un = &g->nodes[iv->users[u]];
            for (int k = 0; k < un->n_inputs; k++)
                if (un->inputs[k] == g->inputs[i] &&
                    ((un->op == KILN_OP_Resize && k > 0) || (un->op == KILN_OP_Pad && k > 0) || un->op == KILN_OP_Range ||
                     (un->op == KILN_OP_OneHot && k == 1)))
                    baked[i] = true;
        }
    }
    if (dynamic) {
        int k = 0;
        for (int i = 0; i < g->n_inputs; i++) {
            int v = g->inputs[i];
            if (baked[i] && !(g->values[v].data = kiln_tensor_clone(ins[i]))) {
                res = gpu_fail(KILN_ERR_OOM, "", msg, len);
                goto done;
            }
            if (!baked[i]) g->inputs[k++] = v;
        }
        g->n_inputs = k;
        if ((st = kiln_graph_infer(g))) {
            res = gpu_fail(st, "baking integer inputs: ", msg, len);
            goto done;
        }
    }
    int n_bound = 0;
    for (int i = 0; i < n_in; i++) n_bound += !baked[i];
    if ((st = kiln_pipeline_run(g, po, NULL, 0, NULL))) {
        res = gpu_fail(st, "optimizing: ", msg, len);
        goto done;
    }
    kiln_codegen_opts co;
    kiln_codegen_opts_init(&co);
    const char *archs[1] = {gpu_arch};
    co.archs = archs;
    co.n_archs = 1;
    co.ptx = false; /* this GPU only: its cubin is all the case needs */
    co.precision = po->ctx.precision;
    if (!(b = kiln_bundle_new())) {
        res = gpu_fail(KILN_ERR_OOM, "", msg, len);
        goto done;
    }
    if ((st = kiln_codegen_build(g, &co, b, NULL))) {
        /* shapes that depend on data (NonZero, NonMaxSuppression...) cannot be built statically */
        res = gpu_fail(st == KILN_ERR_SHAPE ? KILN_ERR_UNSUPPORTED : st, "", msg, len);
        goto done;
    }
    if (gpu_codegen_only) goto done;
    if ((st = kiln_bundle_write_bytes(b, &bytes, &nbytes)) || (st = kiln_bundle_model_open_bytes(bytes, nbytes, NULL, &m)) ||
        (st = kiln_exec_context_new(m, 0, &ctx))) {
        res = gpu_fail(st == KILN_ERR_UNSUPPORTED ? KILN_ERR_INTERNAL : st, "loading the bundle: ", msg, len);
        goto done;
    }
    if (kiln_bundle_model_num_outputs(m) != n_out || kiln_bundle_model_num_inputs(m) != n_bound) {
        snprintf(msg, len, "gpu: the bundle has %d inputs and %d outputs, the model %d and %d",
                 kiln_bundle_model_num_inputs(m), kiln_bundle_model_num_outputs(m), n_bound, n_out);
        res = CASE_FAIL;
        goto done;
    }
    for (int i = 0; !st && i < n_in; i++) {
        if (baked[i]) continue;
        int k = kiln_bundle_model_find_input(m, kiln_graph_input_name(g0, i));
        if (k < 0) {
            snprintf(msg, len, "gpu: the bundle has no input '%s'", kiln_graph_input_name(g0, i));
            res = CASE_FAIL;
            goto done;
        }
        st = kiln_exec_context_bind_input_tensor(ctx, k, ins[i]);
    }
    for (int i = 0; !st && i < n_out; i++) {
        const char *name;
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        int k = kiln_bundle_model_find_output(m, kiln_graph_output_name(g0, i));
        if (k < 0) k = i;
        if ((st = kiln_bundle_model_output_info(m, k, &name, &dt, &rank, dims))) break;
        if (!(outs[i] = kiln_tensor_new(dt, rank, dims))) {
            st = KILN_ERR_OOM;
            break;
        }
        memset(outs[i]->data, 0xff, outs[i]->nbytes); /* poisoned: NaN / -1 where nothing is written */
        st = kiln_exec_context_bind_output_tensor(ctx, k, outs[i]);
    }
    if (st) {
        res = gpu_fail(st == KILN_ERR_UNSUPPORTED ? KILN_ERR_INTERNAL : st, "binding: ", msg, len);
        goto done;
    }
    if ((st = kiln_exec_context_run(ctx, NULL))) res = gpu_fail(KILN_ERR_INTERNAL, "running: ", msg, len);
done:
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
    free(bytes);
    kiln_bundle_free(b);
    kiln_graph_free(g);
    return res;
}

/* Runs one case in this process; writes a one-line reason into msg. */
static case_result run_case(const test_case *tc, double rtol, double atol, char *msg, size_t len) {
    char path[4096];
    kiln_graph *g = NULL;
    if (tc->light) snprintf(path, sizeof path, "%s", tc->path);
    else snprintf(path, sizeof path, "%s/model.onnx", tc->path);
    kiln_status st = kiln_model_load(path, &g);
    if (st) {
        const char *e = kiln_last_error();
        size_t pl = strlen(path); /* the case name is printed already: drop the path prefix */
        if (!strncmp(e, path, pl) && e[pl] == ':') e += pl + 2;
        snprintf(msg, len, "%s", e);
        return st == KILN_ERR_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
    }
    kiln_graph *og = NULL; /* the optimized copy */
    if (opt_pipeline && !gpu_mode) {
        og = kiln_graph_clone(g);
        if (!og || kiln_pipeline_run(og, opt_pipeline, NULL, 0, NULL)) {
            snprintf(msg, len, "optimizing: %s", kiln_last_error());
            kiln_graph_free(og);
            kiln_graph_free(g);
            return CASE_FAIL;
        }
    }
    int n_in = kiln_graph_num_inputs(g), n_out = kiln_graph_num_outputs(g);
    case_result res = CASE_PASS;
    kiln_tensor **ins = calloc((size_t)n_in + 1, sizeof *ins);
    kiln_tensor **outs = calloc((size_t)n_out + 1, sizeof *outs);
    kiln_tensor **exps = calloc((size_t)n_out + 1, sizeof *exps);
    int sets = 0;
    msg[0] = 0;
    for (int set = 0; res == CASE_PASS; set++) {
        char dir[4096];
        if (tc->light) {
            if (set > 0) break;
        } else {
            snprintf(dir, sizeof dir, "%s/test_data_set_%d", tc->path, set);
            if (!dir_exists(dir)) break;
        }
        sets++;
        for (int i = 0; i < n_in; i++) {
            kiln_tensor_free(ins[i]);
            ins[i] = NULL;
        }
        for (int i = 0; i < n_out; i++) {
            kiln_tensor_free(exps[i]);
            exps[i] = NULL;
        }
        if (tc->light) {
            for (int i = 0; i < n_in; i++)
                if (!(ins[i] = light_input(g, i))) {
                    snprintf(msg, len, "cannot build input %d: %s", i, kiln_last_error());
                    res = CASE_FAIL;
                }
            size_t l = strlen(tc->path);
            for (int i = 0; res == CASE_PASS && i < n_out; i++) {
                snprintf(path, sizeof path, "%.*s_output_%d.pb", (int)(l - 5), tc->path, i);
                if (kiln_onnx_read_tensor_file(path, &exps[i], NULL)) {
                    snprintf(msg, len, "%s", kiln_last_error());
                    res = CASE_FAIL;
                }
            }
        } else {
            for (int k = 0; res == CASE_PASS; k++) {
                snprintf(path, sizeof path, "%s/input_%d.pb", dir, k);
                if (!file_exists(path)) break;
                kiln_tensor *t;
                char *name = NULL;
                st = kiln_onnx_read_tensor_file(path, &t, &name);
                if (st) {
                    snprintf(msg, len, "%s", kiln_last_error());
                    res = st == KILN_ERR_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
                    break;
                }
                int slot = -1; /* by name where the file names its input, else by position */
                for (int i = 0; i < n_in && name && *name; i++)
                    if (!strcmp(kiln_graph_input_name(g, i), name)) slot = i;
                if (slot < 0) slot = k;
                free(name);
                if (slot >= n_in || ins[slot]) {
                    kiln_tensor_free(t);
                    if (k >= n_in) continue; /* extra inputs feed initializers (IR v3 style) */
                    snprintf(msg, len, "input file %d does not match a graph input", k);
                    res = CASE_FAIL;
                    break;
                }
                ins[slot] = t;
            }
            for (int i = 0; res == CASE_PASS && i < n_in; i++)
                if (!ins[i]) {
                    snprintf(msg, len, "no data for input '%s'", kiln_graph_input_name(g, i));
                    res = CASE_FAIL;
                }
            for (int i = 0; res == CASE_PASS && i < n_out; i++) {
                snprintf(path, sizeof path, "%s/output_%d.pb", dir, i);
                st = kiln_onnx_read_tensor_file(path, &exps[i], NULL);
                if (st) {
                    snprintf(msg, len, "%s", kiln_last_error());
                    res = st == KILN_ERR_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
                }
            }
        }
        if (res != CASE_PASS) break;
        if (gpu_mode) {
            bool can_bake = false; /* a refused build is retried with integer inputs baked in (axes...) */
            res = gpu_run(g, opt_pipeline, ins, n_in, outs, n_out, false, &can_bake, msg, len);
            if (res == CASE_UNSUPPORTED && can_bake) {
                for (int i = 0; i < n_out; i++) {
                    kiln_tensor_free(outs[i]);
                    outs[i] = NULL;
                }
                res = gpu_run(g, opt_pipeline, ins, n_in, outs, n_out, true, &can_bake, msg, len);
            }
            if (res != CASE_PASS) break;
            for (int i = 0; res == CASE_PASS && !gpu_codegen_only && i < n_out; i++) {
                char why[512];
                if (!kiln_tensor_compare(outs[i], exps[i], rtol, atol, why, sizeof why)) {
                    snprintf(msg, len, "set %d output '%s' on the GPU: %s", set, kiln_graph_output_name(g, i), why);
                    res = CASE_FAIL;
                }
            }
            for (int i = 0; i < n_out; i++) {
                kiln_tensor_free(outs[i]);
                outs[i] = NULL;
            }
            continue;
        }
        st = kiln_graph_run_cpu(g, ins, n_in, outs, n_out);
        if (st) {
            snprintf(msg, len, "%s", kiln_last_error());
            res = st == KILN_ERR_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
            break;
        }
        kiln_tensor **oouts = NULL;
        if (og) {
            oouts = calloc((size_t)n_out + 1, sizeof *oouts);
            if (!oouts || kiln_graph_run_cpu(og, ins, n_in, oouts, n_out)) {
                snprintf(msg, len, "optimized graph: %s", oouts ? kiln_last_error() : "out of memory");
                res = CASE_FAIL;
            }
        }
        for (int i = 0; i < n_out; i++) {
            char why[512];
            if (res == CASE_PASS && !kiln_tensor_compare(outs[i], exps[i], rtol, atol, why, sizeof why)) {
                snprintf(msg, len, "set %d output '%s': %s", set, kiln_graph_output_name(g, i), why);
                res = CASE_FAIL;
            }
            if (res == CASE_PASS && oouts) {
                if (!kiln_tensor_compare(oouts[i], exps[i], rtol, atol, why, sizeof why)) {
                    snprintf(msg, len, "set %d output '%s' after optimization: %s", set, kiln_graph_output_name(g, i),
                             why);
                    res = CASE_FAIL;
                } else if (kiln_dtype_is_float(outs[i]->dtype) && rel_l2(oouts[i], outs[i]) > opt_rel_l2) {
                    snprintf(msg, len, "set %d output '%s': optimized differs from unoptimized, relative L2 %.3g > %.g",
                             set, kiln_graph_output_name(g, i), rel_l2(oouts[i], outs[i]), opt_rel_l2);
                    res = CASE_FAIL;
                } else if (!kiln_dtype_is_float(outs[i]->dtype) &&
                           !kiln_tensor_compare(oouts[i], outs[i], 0, 0, why, sizeof why)) {
                    snprintf(msg, len, "set %d output '%s': optimized differs from unoptimized: %s", set,
                             kiln_graph_output_name(g, i), why);
                    res = CASE_FAIL;
                }
            }
            kiln_tensor_free(outs[i]);
            outs[i] = NULL;
            if (oouts) kiln_tensor_free(oouts[i]);
        }
        free(oouts);
    }
    if (res == CASE_PASS && sets == 0) {
        snprintf(msg, len, "no test_data_set_* folder");
        res = CASE_FAIL;
    }
    for (int i = 0; i < n_in; i++) kiln_tensor_free(ins[i]);
    for (int i = 0; i < n_out; i++) {
        kiln_tensor_free(outs[i]);
        kiln_tensor_free(exps[i]);
    }
    free(ins);
    free(outs);
    free(exps);
    kiln_graph_free(g);
    kiln_graph_free(og);
    return res;
}

/* Runs a case in a child process; a crash or timeout is a FAIL with the reason. */
static case_result run_case_forked(const test_case *tc, double rtol, double atol, int timeout_s, char *msg,
                                   size_t len) {
    int fd[2];
    if (pipe(fd) != 0) return run_case(tc, rtol, atol, msg, len);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return run_case(tc, rtol, atol, msg, len);
    }
    if (pid == 0) {
        close(fd[0]);
        alarm((unsigned)timeout_s);
        char m[1024];
        case_result r = run_case(tc, rtol, atol, m, sizeof m);
        char out[1100];
        int n = snprintf(out, sizeof out, "%d %s", (int)r, m);
        ssize_t w = write(fd[1], out, (size_t)(n < (int)sizeof out ? n : (int)sizeof out - 1));
        (void)w;
        close(fd[1]);
        _exit(0);
    }
    close(fd[1]);
    char buf[1100];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd[0], buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd[0]);
    buf[got] = 0;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(msg, len, sig == SIGALRM ? "timed out after %d s" : "crashed with signal %d (%s)",
                 sig == SIGALRM ? timeout_s : sig, strsignal(sig));
        return CASE_FAIL;
    }
    if (got < 2 || WEXITSTATUS(status) != 0) {
        snprintf(msg, len, "case process exited with status %d", WEXITSTATUS(status));
        return CASE_FAIL;
    }
    snprintf(msg, len, "%s", buf + 2);
    return (case_result)(buf[0] - '0');
}

/* ----------------------------------------------------- per-op tally -- */
typedef struct {
    char name[64];
    int pass, fail, unsup;
} op_tally;

static void tally_ops(const test_case *tc, case_result r, op_tally *t, int *nt, int cap) {
    char path[4096];
    if (tc->light) snprintf(path, sizeof path, "%s", tc->path);
    else snprintf(path, sizeof path, "%s/model.onnx", tc->path);
    uint8_t *buf;
    size_t len;
    if (kiln_read_file(path, KILN_MAX_MODEL_BYTES, &buf, &len)) return;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!mp) return;
    for (size_t i = 0; mp->graph && i < mp->graph->n_node; i++) {
        const char *ot = mp->graph->node[i]->op_type ? mp->graph->node[i]->op_type : "?";
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = mp->graph->node[j]->op_type && !strcmp(mp->graph->node[j]->op_type, ot);
        if (dup) continue;
        int k = 0;
        while (k < *nt && strcmp(t[k].name, ot)) k++;
        if (k == *nt) {
            if (*nt == cap) continue;
            snprintf(t[k].name, sizeof t[k].name, "%s", ot);
            t[k].pass = t[k].fail = t[k].unsup = 0;
            (*nt)++;
        }
        if (r == CASE_PASS) t[k].pass++;
        else if (r == CASE_FAIL) t[k].fail++;
        else t[k].unsup++;
    }
    onnx__model_proto__free_unpacked(mp, NULL);
}

static int cmp_tally(const void *a, const void *b) {
    return strcmp(((const op_tally *)a)->name, ((const op_tally *)b)->name);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: kiln conformance --cpu|--gpu [options] DIR...\n"
            "Runs ONNX backend test cases found under each DIR (folders with model.onnx and\n"
            "test_data_set_*/input_N.pb, output_N.pb; or light model files NAME.onnx with\n"
            "NAME_output_0.pb) on the CPU evaluator and judges each output with\n"
            "|a-e| <= atol + rtol*|e| (exact for integers and bool; shapes and dtypes must match).\n"
            "options:\n"
            "  --cpu            run on the CPU reference evaluator\n"
            "  --gpu            build each case for this machine's GPU (static shapes from its inputs,\n"
            "                   the pass pipeline as `kiln build` runs it, a cubin for this GPU only) and\n"
            "                   run it through the runtime; a node codegen refuses is UNSUPPORTED\n"
            "                   (\"gpu: ...\"). Without a GPU: a SKIP line and exit status 77\n"
            "  --codegen-only   with --gpu: build every case (codegen + NVRTC) but run nothing; needs\n"
            "                   no GPU. PASS then means only that the case builds\n"
            "  --arch sm_XX     with --codegen-only: the architecture to compile for (default sm_90)\n"
            "  --rtol R         relative tolerance (default 1e-3)\n"
            "  --atol A         absolute tolerance (default 1e-5)\n"
            "  --timeout S      seconds per case before it counts as failed (default 600)\n"
            "  --no-fork        run cases in this process (for debugging)\n"
            "  --quiet          print only FAIL lines and the summary\n"
            "  --no-summary     skip the per-op summary\n"
            "  --optimize       also run each case through the pass pipeline (pass options such as\n"
            "                   -O<n>, --passes, --disable-pass apply); the optimized graph must match\n"
            "                   the expected outputs and the unoptimized graph (relative L2 <= 1e-5)\n"
            "The last line is `conformance: P passed, F failed, U unsupported`; the exit status is\n"
            "nonzero when F > 0.\n");
}

int kiln_cmd_conformance(int argc, char **argv) {
    double rtol = 1e-3, atol = 1e-5;
    int timeout_s = 600;
    bool cpu = false, fork_cases = true, quiet = false, summary = true;
    case_list cases = {0};
    kiln_pipeline_opts popts;
    kiln_pipeline_opts_init(&popts);
    bool optimize = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *perr;
        int pr = kiln_cli_pass_option(argc, argv, &i, &popts, &perr);
        if (pr < 0) {
            fprintf(stderr, "kiln conformance: %s: %s\n", a, perr);
            return 2;
        }
        if (pr > 0) continue;
        if (!strcmp(a, "--optimize")) {
            optimize = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--cpu")) {
            cpu = true;
        } else if (!strcmp(a, "--gpu")) {
            gpu_mode = true;
        } else if ((!strcmp(a, "--rtol") || !strcmp(a, "--atol") || !strcmp(a, "--timeout")) && i + 1 < argc) {
            char *end;
            double v = strtod(argv[++i], &end);
            if (*end || v < 0) {
                fprintf(stderr, "kiln conformance: bad value '%s' for %s\n", argv[i], a);
                return 2;
            }
            if (!strcmp(a, "--rtol")) rtol = v;
            else if (!strcmp(a, "--atol")) atol = v;
            else timeout_s = (int)v;
        } else if (!strcmp(a, "--codegen-only")) {
            gpu_codegen_only = true;
        } else if (!strcmp(a, "--arch") && i + 1 < argc) {
            snprintf(gpu_arch, sizeof gpu_arch, "%s", argv[++i]);
        } else if (!strcmp(a, "--no-fork")) {
            fork_cases = false;
        } else if (!strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "--no-summary")) {
            summary = false;
        } else if (a[0] == '-') {
            fprintf(stderr, "kiln conformance: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            size_t before = cases.n;
            if (!file_exists(a) && !dir_exists(a)) {
                fprintf(stderr, "kiln conformance: '%s' does not exist\n", a);
                return 2;
            }
            collect(&cases, a, 0);
            if (cases.n == before) fprintf(stderr, "kiln conformance: no test cases under '%s'\n", a);
        }
    }
    if (cpu == gpu_mode) {
        fprintf(stderr, "kiln conformance: choose one backend: --cpu or --gpu\n");
        usage(stderr);
        return 2;
    }
    if (cases.n == 0) {
        fprintf(stderr, "kiln conformance: no test cases found\n");
        return 2;
    }
    if (optimize || gpu_mode) opt_pipeline = &popts; /* the GPU path always optimizes */
    if (gpu_mode) {
        char why[512];
        if (gpu_codegen_only) {
            if (!gpu_arch[0]) snprintf(gpu_arch, sizeof gpu_arch, "sm_90");
        } else if (!(fork_cases ? gpu_probe_forked(why, sizeof why) : gpu_probe(why, sizeof why))) {
            one_line(why);
            printf("SKIP: conformance --gpu: %s\n", why);
            for (size_t i = 0; i < cases.n; i++) free(cases.v[i].path);
            free(cases.v);
            return 77;
        }
        if (!quiet) printf("conformance --gpu: building for %s\n", gpu_arch);
    }
    int n_pass = 0, n_fail = 0, n_unsup = 0, nt = 0;
    op_tally *tally = calloc(1024, sizeof *tally);
    for (size_t i = 0; i < cases.n; i++) {
        char msg[1024];
        const test_case *tc = &cases.v[i];
        case_result r = fork_cases ? run_case_forked(tc, rtol, atol, timeout_s, msg, sizeof msg)
                                   : run_case(tc, rtol, atol, msg, sizeof msg);
        const char *name = base_name(tc->path);
        if (r == CASE_PASS) {
            n_pass++;
            if (!quiet) printf("PASS %s\n", name);
        } else if (r == CASE_FAIL) {
            n_fail++;
            printf("FAIL %s: %s\n", name, msg);
        } else {
            n_unsup++;
            if (!quiet) printf("UNSUPPORTED %s: %s\n", name, msg);
        }
        fflush(stdout);
        if (tally) tally_ops(tc, r, tally, &nt, 1024);
    }
    if (summary && tally && nt) {
        qsort(tally, (size_t)nt, sizeof *tally, cmp_tally);
        printf("per-op (cases using the op: passed/failed/unsupported):\n");
        for (int k = 0; k < nt; k++)
            printf("  %-28s %4d %4d %4d\n", tally[k].name, tally[k].pass, tally[k].fail, tally[k].unsup);
    }
    free(tally);
    for (size_t i = 0; i < cases.n; i++) free(cases.v[i].path);
    free(cases.v);
    printf("conformance: %d passed, %d failed, %d unsupported\n", n_pass, n_fail, n_unsup);
    return n_fail > 0 ? 1 : 0;
}
