/*
 * tune.c — the choice log, the tuning cache and the GPU tuner (tune.h, docs/tuning.md).
 */
#include "codegen/tune.h"

#include "codegen/nvrtc.h"
#include "runtime/cuda_driver.h"
#include "runtime/runtime.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------- log -- */
void kiln_tune_log_init(kiln_tune_log *l) { memset(l, 0, sizeof *l); }

void kiln_tune_log_free(kiln_tune_log *l) {
    for (int i = 0; i < l->n; i++) {
        kiln_tune_entry *e = &l->e[i];
        free(e->group);
        free(e->signature);
        for (int k = 0; k < e->n; k++) free(e->names[k]);
        free(e->names);
    }
    free(l->e);
    memset(l, 0, sizeof *l);
}

void kiln_tune_log_record(void *ctx, const char *group, const char *signature, const char *const *names, int n,
                          int chosen, kiln_tune_source source) {
    kiln_tune_log *l = ctx;
    if (!l || l->oom || n <= 0) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        kiln_tune_entry *e = realloc(l->e, sizeof *e * (size_t)cap);
        if (!e) {
            l->oom = true;
            return;
        }
        l->e = e;
        l->cap = cap;
    }
    kiln_tune_entry *e = &l->e[l->n];
    memset(e, 0, sizeof *e);
    e->group = strdup(group ? group : "");
    e->signature = strdup(signature ? signature : "");
    e->names = calloc((size_t)n, sizeof *e->names);
    bool ok = e->group && e->signature && e->names;
    for (int k = 0; ok && k < n; k++) ok = (e->names[k] = strdup(names[k])) != NULL;
    e->n = n;
    e->chosen = chosen;
    e->source = source;
    l->n++; /* freed by kiln_tune_log_free even when incomplete */
    if (!ok) l->oom = true;
}

int kiln_tune_log_count(const kiln_tune_log *l, kiln_tune_source source, bool tunable_only) {
    int c = 0;
    for (int i = 0; i < l->n; i++) c += l->e[i].source == source && (!tunable_only || l->e[i].n > 1);
    return c;
}

int kiln_tune_log_signatures(const kiln_tune_log *l) {
    int c = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->e[i].n <= 1) continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = l->e[j].n > 1 && !strcmp(l->e[j].signature, l->e[i].signature);
        c += !seen;
    }
    return c;
}

const char *kiln_tune_source_name(kiln_tune_source s) {
    return s == KILN_TUNE_LOOKUP ? "tuned" : s == KILN_TUNE_FORCED ? "forced" : "heuristic";
}

kiln_status kiln_tune_log_meta(const kiln_tune_log *l, char **out) {
    size_t cap = 1;
    for (int i = 0; i < l->n; i++)
        cap += strlen(l->e[i].group) + strlen(l->e[i].names[l->e[i].chosen]) + 16;
    char *s = malloc(cap);
    if (!s) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    size_t len = 0;
    s[0] = 0;
    for (int i = 0; i < l->n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s=%s@%s;", l->e[i].group, l->e[i].names[l->e[i].chosen],
                                kiln_tune_source_name(l->e[i].source));
    *out = s;
    return KILN_OK;
}

/* ----------------------------------------------------------------- cache -- */
#define CACHE_HEADER "kiln-tuning-cache 1"

void kiln_tune_cache_init(kiln_tune_cache *c) { memset(c, 0, sizeof *c); }

void kiln_tune_cache_free(kiln_tune_cache *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].signature);
        free(c->e[i].choice);
    }
    free(c->e);
    memset(c, 0, sizeof *c);
}

static bool same_dev(const kiln_tune_device *a, const kiln_tune_device *b) {
    return !strcmp(a->gpu, b->gpu) && !strcmp(a->cc, b->cc) && !strcmp(a->nvrtc, b->nvrtc) &&
           !strcmp(a->driver, b->driver);
}

const kiln_tune_cache_entry *kiln_tune_cache_find(const kiln_tune_cache *c, const kiln_tune_device *d,
                                                  const char *signature) {
    for (int i = 0; i < c->n; i++)
        if (same_dev(&c->e[i].dev, d) && !strcmp(c->e[i].signature, signature)) return &c->e[i];
    return NULL;
}

int kiln_tune_cache_foreign(const kiln_tune_cache *c, const kiln_tune_device *d) {
    int n = 0;
    for (int i = 0; i < c->n; i++) n += !same_dev(&c->e[i].dev, d);
    return n;
}

/* A field may hold anything but tab, newline and carriage return, and must not be empty. */
static bool field_ok(const char *s) { return *s && !strpbrk(s, "\t\n\r"); }

kiln_status kiln_tune_cache_put(kiln_tune_cache *c, const kiln_tune_device *d, const char *signature,
                                const char *choice, double us) {
    if (!field_ok(d->gpu) || !field_ok(d->cc) || !field_ok(d->nvrtc) || !field_ok(d->driver) || !field_ok(signature) ||
        !field_ok(choice) || !(us >= 0) || !isfinite(us))
        return kiln_errorf(KILN_ERR_INVALID_ARG, "tuning cache: an empty field, a tab or newline in a field, or a bad time");
    char *sig = strdup(signature), *ch = strdup(choice);
    if (!sig || !ch) {
        free(sig);
        free(ch);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; i < c->n; i++)
        if (same_dev(&c->e[i].dev, d) && !strcmp(c->e[i].signature, signature)) {
            free(c->e[i].signature);
            free(c->e[i].choice);
            c->e[i].signature = sig;
            c->e[i].choice = ch;
            c->e[i].us = us;
            return KILN_OK;
        }
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        kiln_tune_cache_entry *e = realloc(c->e, sizeof *e * (size_t)cap);
        if (!e) {
            free(sig);
            free(ch);
            return kiln_errorf(KILN_ERR_OOM, "out of memory");
        }
        c->e = e;
        c->cap = cap;
    }
    c->e[c->n++] = (kiln_tune_cache_entry){*d, sig, ch, us};
    return KILN_OK;
}

static kiln_status copy_field(char *dst, size_t cap, const char *src, const char *what, int line) {
    if (strlen(src) >= cap) return kiln_errorf(KILN_ERR_PARSE, "%s:%d: field too long", what, line);
    snprintf(dst, cap, "%s", src);
    return KILN_OK;
}

kiln_status kiln_tune_cache_parse(kiln_tune_cache *c, const char *text, size_t len, const char *what) {
    int line = 0;
    bool header = false;
    size_t at = 0;
    while (at < len) {
        size_t end = at;
        while (end < len && text[end] != '\n') end++;
        line++;
        size_t ll = end - at;
        if (ll && text[at + ll - 1] == '\r') ll--;
        char *s = malloc(ll + 1);
        if (!s) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        memcpy(s, text + at, ll);
        s[ll] = 0;
        at = end + 1;
        kiln_status st = KILN_OK;
        if (memchr(s, 0, ll)) st = kiln_errorf(KILN_ERR_PARSE, "%s:%d: a NUL byte", what, line);
        else if (!header) {
            if (strcmp(s, CACHE_HEADER))
                st = kiln_errorf(KILN_ERR_PARSE, "%s:%d: not a kiln tuning cache (the first line must be '%s')", what,
                                 line, CACHE_HEADER);
            header = true;
        } else if (s[0] && s[0] != '#') {
            char *f[8] = {0};
            int nf = 0;
            for (char *p = s; nf < 8;) {
                f[nf++] = p;
                char *t = strchr(p, '\t');
                if (!t) break;
                *t = 0;
                p = t + 1;
            }
            kiln_tune_device d;
            char *endp = NULL;
            double us = 0;
            if (nf != 7) st = kiln_errorf(KILN_ERR_PARSE, "%s:%d: %d tab-separated fields, expected 7", what, line, nf);
            else {
                errno = 0;
                us = strtod(f[6], &endp);
                if (errno || endp == f[6] || *endp || !(us >= 0) || !isfinite(us))
                    st = kiln_errorf(KILN_ERR_PARSE, "%s:%d: time '%s' is not a number of microseconds", what, line, f[6]);
            }
            if (!st) st = copy_field(d.gpu, sizeof d.gpu, f[0], what, line);
            if (!st) st = copy_field(d.cc, sizeof d.cc, f[1], what, line);
            if (!st) st = copy_field(d.nvrtc, sizeof d.nvrtc, f[2], what, line);
            if (!st) st = copy_field(d.driver, sizeof d.driver, f[3], what, line);
            if (!st && kiln_tune_cache_put(c, &d, f[4], f[5], us))
                st = kiln_errorf(KILN_ERR_PARSE, "%s:%d: an empty field", what, line);
        }
        free(s);
        if (st) return st;
    }
    if (!header) return kiln_errorf(KILN_ERR_PARSE, "%s: empty file (expected '%s')", what, CACHE_HEADER);
    return KILN_OK;
}

kiln_status kiln_tune_cache_load(kiln_tune_cache *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return KILN_OK;
        return kiln_errorf(KILN_ERR_IO, "cannot read tuning cache '%s': %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            if (cap >= ((size_t)256 << 20)) {
                free(buf);
                fclose(f);
                return kiln_errorf(KILN_ERR_LIMIT, "tuning cache '%s' is larger than 256 MiB", path);
            }
            char *b2 = realloc(buf, cap * 2);
            if (!b2) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b2;
            cap *= 2;
        }
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    if (err) {
        free(buf);
        return kiln_errorf(KILN_ERR_IO, "cannot read tuning cache '%s'", path);
    }
    kiln_status st = kiln_tune_cache_parse(c, buf, len, path);
    free(buf);
    return st;
}

static int cmp_entry(const void *pa, const void *pb) {
    const kiln_tune_cache_entry *a = pa, *b = pb;
    int r;
    if ((r = strcmp(a->dev.gpu, b->dev.gpu)) || (r = strcmp(a->dev.cc, b->dev.cc)) ||
        (r = strcmp(a->dev.nvrtc, b->dev.nvrtc)) || (r = strcmp(a->dev.driver, b->dev.driver)))
        return r;
    return strcmp(a->signature, b->signature);
}

kiln_status kiln_tune_cache_format(const kiln_tune_cache *c, char **out) {
    kiln_tune_cache_entry *e = malloc(sizeof *e * (size_t)(c->n ? c->n : 1));
    if (!e) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    if (c->n) memcpy(e, c->e, sizeof *e * (size_t)c->n);
    qsort(e, (size_t)c->n, sizeof *e, cmp_entry);
    size_t cap = 256;
    for (int i = 0; i < c->n; i++)
        cap += strlen(e[i].dev.gpu) + strlen(e[i].dev.cc) + strlen(e[i].dev.nvrtc) + strlen(e[i].dev.driver) +
               strlen(e[i].signature) + strlen(e[i].choice) + 48;
    char *s = malloc(cap);
    if (!s) {
        free(e);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    size_t len = (size_t)snprintf(s, cap,
                                  "%s\n# GPU\tcompute capability\tNVRTC\tdriver\tsignature\tchoice\tmicroseconds "
                                  "(docs/tuning.md)\n",
                                  CACHE_HEADER);
    for (int i = 0; i < c->n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s\t%s\t%s\t%s\t%s\t%s\t%.3f\n", e[i].dev.gpu, e[i].dev.cc,
                                e[i].dev.nvrtc, e[i].dev.driver, e[i].signature, e[i].choice, e[i].us);
    free(e);
    *out = s;
    return KILN_OK;
}

kiln_status kiln_tune_cache_save(const kiln_tune_cache *c, const char *path) {
    char *text;
    kiln_status st = kiln_tune_cache_format(c, &text);
    if (st) return st;
    size_t pl = strlen(path) + 32;
    char *tmp = malloc(pl);
    if (!tmp) {
        free(text);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    snprintf(tmp, pl, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    size_t n = strlen(text);
    bool ok = f && fwrite(text, 1, n, f) == n;
    if (f && fclose(f)) ok = false;
    if (ok && rename(tmp, path)) ok = false;
    if (!ok) {
        st = kiln_errorf(KILN_ERR_IO, "cannot write tuning cache '%s': %s", path, strerror(errno));
        remove(tmp);
    }
    free(tmp);
    free(text);
    return st;
}

const char *kiln_tune_answer_lookup(void *ctx, const char *signature) {
    const kiln_tune_answer *a = ctx;
    if (a->force) return a->force;
    if (!a->cache || !a->dev) return NULL;
    const kiln_tune_cache_entry *e = kiln_tune_cache_find(a->cache, a->dev, signature);
    return e ? e->choice : NULL;
}

void kiln_tune_answer_record(void *ctx, const char *group, const char *signature, const char *const *names, int n,
                             int chosen, kiln_tune_source source) {
    kiln_tune_answer *a = ctx;
    /* (with a->force every answer the kernel took came from `--tile`, not from a tuning) */
    if (a->force && source == KILN_TUNE_LOOKUP) source = KILN_TUNE_FORCED;
    if (a->log) kiln_tune_log_record(a->log, group, signature, names, n, chosen, source);
}

/* ---------------------------------------------------------------- device -- */
kiln_status kiln_tune_device_query(kiln_tune_device *d, int ordinal) {
    memset(d, 0, sizeof *d);
#ifndef KILN_HAVE_CUDA
    (void)ordinal;
    return kiln_errorf(KILN_ERR_UNSUPPORTED, "kiln was built without CUDA");
#else
    const kiln_cuda_driver *cu;
    kiln_status st = kiln_cuda_driver_get(&cu);
    if (st) return st;
    CUdevice dev;
    int major = 0, minor = 0, drv = 0, nmaj = 0, nmin = 0;
    KILN_CU_TRY(cu, cuDeviceGet, cu->device_get(&dev, ordinal));
    KILN_CU_TRY(cu, cuDeviceGetName, cu->device_get_name(d->gpu, (int)sizeof d->gpu, dev));
    KILN_CU_TRY(cu, cuDeviceGetAttribute,
                cu->device_get_attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
    KILN_CU_TRY(cu, cuDeviceGetAttribute,
                cu->device_get_attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
    KILN_CU_TRY(cu, cuDriverGetVersion, cu->driver_get_version(&drv));
    if ((st = kiln_nvrtc_version(&nmaj, &nmin))) return st;
    for (char *p = d->gpu; *p; p++)
        if (*p == '\t' || *p == '\n' || *p == '\r') *p = ' ';
    if (!d->gpu[0]) snprintf(d->gpu, sizeof d->gpu, "unknown GPU");
    snprintf(d->cc, sizeof d->cc, "%d.%d", major, minor);
    snprintf(d->nvrtc, sizeof d->nvrtc, "%d.%d", nmaj, nmin);
    snprintf(d->driver, sizeof d->driver, "%d", drv);
    return KILN_OK;
#endif
}

/* ----------------------------------------------------------------- tuner -- */
void kiln_tune_opts_init(kiln_tune_opts *o) {
    memset(o, 0, sizeof *o);
    o->iterations = 20;
    o->warmup = 3;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = n > 0 ? (int)(n > 64 ? 64 : n) : 1;
}

/* The tuner builds the whole model once per candidate index k ("variant k": every signature
 * being tuned uses its k-th candidate, or its heuristic pick when it has fewer), times each
 * variant layer by layer with CUDA events, and gives each signature the candidate whose layers
 * took the least time summed over its layers. Timing in the model keeps each layer's real
 * inputs, neighbours and cache state; identical signatures share one decision. */
typedef struct tune_sig {
    const kiln_tune_entry *e; /* first log entry with this signature (names, heuristic) */
    double *total;            /* per candidate: summed median ms over the signature's layers */
    int *timed;               /* per candidate: layers measured */
} tune_sig;

typedef struct variant {
    const kiln_graph *g;
    kiln_codegen_opts co;
    tune_sig *sigs;
    int n_sigs, k;
    const kiln_tune_cache *cache;
    const kiln_tune_device *dev;
    kiln_tune_log log;
    kiln_bundle *b;
    uint8_t *bytes;
    size_t len;
    kiln_status st;
    char err[1024];
} variant;

static const char *variant_lookup(void *ctx, const char *signature) {
    variant *v = ctx;
    for (int i = 0; i < v->n_sigs; i++)
        if (!strcmp(v->sigs[i].e->signature, signature))
            return v->k < v->sigs[i].e->n ? v->sigs[i].e->names[v->k] : NULL;
    const kiln_tune_cache_entry *e = kiln_tune_cache_find(v->cache, v->dev, signature);
    return e ? e->choice : NULL;
}

static void variant_record(void *ctx, const char *group, const char *signature, const char *const *names, int n,
                           int chosen, kiln_tune_source source) {
    variant *v = ctx;
    kiln_tune_log_record(&v->log, group, signature, names, n, chosen, source);
}

static void *variant_build(void *arg) {
    variant *v = arg;
    v->co.tune_lookup = variant_lookup;
    v->co.tune_record = variant_record;
    v->co.tune_ctx = v;
    v->b = kiln_bundle_new();
    v->st = v->b ? kiln_codegen_build(v->g, &v->co, v->b, NULL) : kiln_errorf(KILN_ERR_OOM, "out of memory");
    if (!v->st && v->log.oom) v->st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    if (v->st) snprintf(v->err, sizeof v->err, "%s", kiln_last_error()); /* the message is thread-local */
    return NULL;
}

/* The heuristic build's whole module, compiled beside the candidate sets (kiln_codegen_opts.split_base:
 * each set compiles only the kernels that differ from it) */
typedef struct base_job {
    kiln_codegen_base *base;
    const kiln_codegen_opts *co;
    kiln_status st;
    char err[1024];
} base_job;
static void *base_compile(void *arg) {
    base_job *j = arg;
    kiln_nvrtc_output out;
    memset(&out, 0, sizeof out);
    j->st = kiln_codegen_compile(j->co, "tune_base", j->base->source, &out);
    if (!j->st && out.n_images > 0) {
        j->base->images = calloc((size_t)out.n_images, sizeof *j->base->images);
        if (!j->base->images) j->st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        for (int i = 0; !j->st && i < out.n_images; i++) { /* (takes the images' data) */
            struct kiln_codegen_base_image *bi = &j->base->images[j->base->n_images++];
            bi->is_ptx = out.images[i].is_ptx;
            snprintf(bi->arch, sizeof bi->arch, "%s", out.images[i].arch);
            bi->data = out.images[i].data, bi->size = out.images[i].size;
            out.images[i].data = NULL;
        }
    }
    if (j->st) snprintf(j->err, sizeof j->err, "%s", kiln_last_error());
    kiln_nvrtc_output_free(&out);
    return NULL;
}

typedef struct worker {
    variant *v;
    int n, *next;
    pthread_mutex_t *mu;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    for (;;) {
        pthread_mutex_lock(w->mu);
        int i = (*w->next)++;
        pthread_mutex_unlock(w->mu);
        if (i >= w->n) return NULL;
        variant_build(&w->v[i]);
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seeded random inputs (uniform in [-1, 1) for floats, small values for integers). */
static kiln_status random_inputs(const kiln_bundle_model *m, kiln_exec_context *ctx, void ***bufs) {
    int n = kiln_bundle_model_num_inputs(m);
    *bufs = calloc((size_t)(n ? n : 1), sizeof **bufs);
    if (!*bufs) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < n; i++) {
        const char *name;
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        kiln_status st = kiln_bundle_model_input_info(m, i, &name, &dt, &rank, dims);
        if (st) return st;
        uint64_t numel = 1;
        for (int d = 0; d < rank; d++) numel *= (uint64_t)dims[d];
        size_t es = kiln_dtype_size(dt);
        uint8_t *p = malloc(numel * es + 1);
        if (!p) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        (*bufs)[i] = p;
        for (uint64_t k = 0; k < numel; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            float x = (float)((double)(seed >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
            if (dt == KILN_F32) memcpy(p + k * 4, &x, 4);
            else if (dt == KILN_F16) {
                uint16_t h = kiln_f32_to_f16(x);
                memcpy(p + k * 2, &h, 2);
            } else memset(p + k * es, 0, es); /* indices and masks: 0 is always in range */
        }
        if ((st = kiln_exec_context_bind_input(ctx, i, p, dt, rank, dims, KILN_MEM_HOST))) return st;
    }
    return KILN_OK;
}

/* Runs variant v on the GPU and adds its layers' median times to the signatures' totals. */
static kiln_status time_variant(variant *v, const kiln_tune_opts *o) {
    kiln_bundle_model_options mo = {o->device, 0};
    kiln_bundle_model *m = NULL;
    kiln_exec_context *ctx = NULL;
    void **in = NULL, **out = NULL;
    float *ms = NULL, *col = NULL;
    int n_in = 0, n_out = 0;
    kiln_status st = kiln_bundle_model_open_bytes(v->bytes, v->len, &mo, &m);
    if (!st) st = kiln_exec_context_new(m, KILN_EXEC_NO_GRAPH, &ctx);
    if (!st) {
        n_in = kiln_bundle_model_num_inputs(m);
        st = random_inputs(m, ctx, &in);
    }
    if (!st) {
        n_out = kiln_bundle_model_num_outputs(m);
        out = calloc((size_t)(n_out ? n_out : 1), sizeof *out);
        if (!out) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; !st && i < n_out; i++) {
        const char *name;
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        uint64_t numel = 1;
        st = kiln_bundle_model_output_info(m, i, &name, &dt, &rank, dims);
        for (int d = 0; !st && d < rank; d++) numel *= (uint64_t)dims[d];
        if (!st && !(out[i] = malloc(numel * kiln_dtype_size(dt) + 1))) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        if (!st) st = kiln_exec_context_bind_output(ctx, i, out[i], dt, rank, dims, KILN_MEM_HOST);
    }
    int nl = m ? kiln_bundle_model_num_layers(m) : 0, iters = o->iterations > 0 ? o->iterations : 1;
    if (!st) {
        ms = malloc(sizeof *ms * (size_t)(nl ? nl : 1) * (size_t)iters);
        col = malloc(sizeof *col * (size_t)iters);
        if (!ms || !col) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    for (int it = 0; !st && it < o->warmup; it++) st = kiln_exec_context_profile(ctx, NULL, ms);
    for (int it = 0; !st && it < iters; it++) st = kiln_exec_context_profile(ctx, NULL, ms + (size_t)it * (size_t)nl);
    const kiln_bundle *b = m ? kiln_bundle_model_bundle(m) : NULL;
    for (int l = 0; !st && l < nl; l++) {
        /* the layer's signature: the log entry of its group (layer names are group names, with
         * "@output" added for duplicates) */
        const char *lname = b->layers[l].name;
        const kiln_tune_entry *e = NULL;
        for (int j = 0; j < v->log.n && !e; j++) {
            size_t gl = strlen(v->log.e[j].group);
            if (!strncmp(lname, v->log.e[j].group, gl) && (lname[gl] == 0 || lname[gl] == '@')) e = &v->log.e[j];
        }
        if (!e) continue;
        for (int s = 0; s < v->n_sigs; s++) {
            tune_sig *ts = &v->sigs[s];
            if (strcmp(ts->e->signature, e->signature) || v->k >= ts->e->n) continue;
            for (int it = 0; it < iters; it++) col[it] = ms[(size_t)it * (size_t)nl + (size_t)l];
            qsort(col, (size_t)iters, sizeof *col, cmp_float);
            ts->total[v->k] += (double)col[iters / 2];
            ts->timed[v->k]++;
        }
    }
    free(ms);
    free(col);
    for (int i = 0; in && i < n_in; i++) free(in[i]);
    for (int i = 0; out && i < n_out; i++) free(out[i]);
    free(in);
    free(out);
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
    return st;
}

static void progress(FILE *f, bool tty, int done, int total, const char *what) {
    if (!f) return;
    if (tty) {
        int w = 30, filled = total ? done * w / total : w;
        fprintf(f, "\rautotune [");
        for (int i = 0; i < w; i++) fputc(i < filled ? '#' : '.', f);
        fprintf(f, "] %d/%d %-40.40s", done, total, what);
        if (done == total) fputc('\n', f);
    } else {
        fprintf(f, "autotune: %s\n", what);
    }
    fflush(f);
}

kiln_status kiln_tune_run(const kiln_graph *g, const kiln_codegen_opts *co, const kiln_tune_opts *o,
                          const kiln_tune_device *dev, kiln_tune_cache *cache, kiln_tune_summary *sum) {
    double t0 = now_s();
    memset(sum, 0, sizeof *sum);
    bool tty = o->progress && isatty(fileno(o->progress));
    /* 1. what is tunable: codegen without NVRTC, recording every choice */
    kiln_tune_log rec;
    kiln_tune_log_init(&rec);
    kiln_codegen_opts c0 = *co;
    c0.compile = false;
    c0.tune_lookup = NULL;
    c0.tune_record = kiln_tune_log_record;
    c0.tune_ctx = &rec;
    kiln_bundle *b0 = kiln_bundle_new();
    kiln_status st = b0 ? kiln_codegen_build(g, &c0, b0, NULL) : kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_bundle_free(b0);
    if (!st && rec.oom) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    tune_sig *sigs = calloc((size_t)(rec.n ? rec.n : 1), sizeof *sigs);
    int n_sigs = 0, max_n = 0;
    if (!st && !sigs) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int i = 0; !st && i < rec.n; i++) {
        const kiln_tune_entry *e = &rec.e[i];
        if (e->n <= 1 || e->source == KILN_TUNE_FORCED) continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = rec.e[j].n > 1 && !strcmp(rec.e[j].signature, e->signature);
        if (seen) continue;
        sum->signatures++;
        const kiln_tune_cache_entry *ce = kiln_tune_cache_find(cache, dev, e->signature);
        bool known = false;
        for (int k = 0; ce && k < e->n && !known; k++) known = !strcmp(e->names[k], ce->choice);
        if (known) {
            sum->from_cache++;
            continue;
        }
        sigs[n_sigs].e = e;
        sigs[n_sigs].total = calloc((size_t)e->n, sizeof(double));
        sigs[n_sigs].timed = calloc((size_t)e->n, sizeof(int));
        if (!sigs[n_sigs].total || !sigs[n_sigs].timed) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        n_sigs++;
        if (e->n > max_n) max_n = e->n;
    }
    if (!st && o->progress && sum->signatures) {
        if (!n_sigs)
            fprintf(o->progress, "autotune: %d tunable kernel signatures, all answered by the tuning cache: nothing timed\n",
                    sum->signatures);
        else
            fprintf(o->progress, "autotune: %d tunable kernel signatures, %d from the tuning cache, %d to time (%d variants, "
                    "compiling on %d threads)\n", sum->signatures, sum->from_cache, n_sigs, max_n, o->threads);
    }
    /* 2. compile the variants in parallel */
    variant *vs = NULL;
    kiln_codegen_base base;
    memset(&base, 0, sizeof base);
    base_job bj;
    memset(&bj, 0, sizeof bj);
    pthread_t bth;
    bool base_started = false;
    if (!st && n_sigs) {
        vs = calloc((size_t)max_n, sizeof *vs);
        if (!vs) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        /* only this GPU's cubin when the build targets it: a fraction of the NVRTC time */
        char native[24];
        const char *one[1] = {native};
        int maj = 0, min = 0;
        bool only_native = false;
        if (sscanf(dev->cc, "%d.%d", &maj, &min) == 2) {
            /* the architecture-specific target (sm_90a) when the build has it: the runtime loads
             * that cubin on this GPU, and its candidate lists (wgmma tiles) are the build's */
            snprintf(native, sizeof native, "sm_%d%da", maj, min);
            for (int i = 0; i < co->n_archs; i++) only_native |= !strcmp(co->archs[i], native);
            if (!only_native) {
                snprintf(native, sizeof native, "sm_%d%d", maj, min);
                for (int i = 0; i < co->n_archs; i++) only_native |= !strcmp(co->archs[i], native);
            }
        }
        for (int k = 0; vs && k < max_n; k++) {
            vs[k] = (variant){.g = g, .co = *co, .sigs = sigs, .n_sigs = n_sigs, .k = k, .cache = cache, .dev = dev};
            vs[k].co.compile = true;
            if (only_native) {
                vs[k].co.archs = one;
                vs[k].co.n_archs = 1;
                vs[k].co.ptx = false;
            }
            kiln_tune_log_init(&vs[k].log);
        }
        /* the heuristic build's kernels: codegen here, its NVRTC beside the sets (which compile only
         * the kernels that differ from it); KILN_TUNE_SPLIT=0: every set compiles its whole module */
        const char *se = getenv("KILN_TUNE_SPLIT");
        const bool split = vs && !(se && !strcmp(se, "0"));
        if (split) {
            variant bv = vs[0];
            bv.k = INT_MAX; /* (no set has that candidate: the heuristic's picks) */
            bv.co.compile = false;
            bv.co.base_out = &base;
            kiln_tune_log_init(&bv.log);
            variant_build(&bv);
            if (bv.st) st = kiln_errorf(bv.st, "autotune: the heuristic build: %s", bv.err);
            kiln_tune_log_free(&bv.log);
            kiln_bundle_free(bv.b);
            for (int k = 0; !st && k < max_n; k++) vs[k].co.split_base = &base;
            bj = (base_job){.base = &base, .co = &vs[0].co};
            if (!st) base_started = !pthread_create(&bth, NULL, base_compile, &bj);
            if (!st && !base_started) base_compile(&bj); /* (no thread: compile it first) */
        }
        const double tc0 = now_s();
        int nt = o->threads < 1 ? 1 : o->threads > max_n ? max_n : o->threads, next = 0, started = 0;
        pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        pthread_t th[64];
        worker w = {vs, max_n, &next, &mu};
        if (!st) {
            for (; started < nt && started < 64; started++)
                if (pthread_create(&th[started], NULL, worker_main, &w)) break;
            if (!started) worker_main(&w); /* no thread could start: build here */
            for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
        }
        if (base_started) pthread_join(bth, NULL);
        if (!st && split && bj.st) st = kiln_errorf(bj.st, "autotune: compiling the heuristic build: %s", bj.err);
        /* a set that compiled only its own kernels runs the rest from the heuristic build's module 0 */
        for (int k = 0; vs && !st && k < max_n; k++) {
            if (vs[k].st) continue;
            bool has0 = false;
            for (int i = 0; i < vs[k].b->n_images && !has0; i++) has0 = vs[k].b->images[i].module == 0;
            for (int i = 0; !has0 && !vs[k].st && i < base.n_images; i++)
                vs[k].st = kiln_bundle_add_image(vs[k].b, base.images[i].is_ptx ? KILN_IMAGE_PTX : KILN_IMAGE_CUBIN,
                                                 base.images[i].arch, 0, base.images[i].data, base.images[i].size);
            if (!vs[k].st) vs[k].st = kiln_bundle_write_bytes(vs[k].b, &vs[k].bytes, &vs[k].len);
            if (vs[k].st) snprintf(vs[k].err, sizeof vs[k].err, "%s", kiln_last_error());
        }
        for (int k = 0; vs && !st && k < max_n; k++)
            if (vs[k].st) st = kiln_errorf(vs[k].st, "autotune: building candidate set %d: %s", k, vs[k].err);
        /* 3. time them, one at a time */
        const double tt0 = now_s();
        sum->compile_seconds = tt0 - tc0;
        for (int k = 0; vs && !st && k < max_n; k++) {
            char what[80];
            snprintf(what, sizeof what, "timing candidate set %d of %d", k + 1, max_n);
            progress(o->progress, tty, k, max_n, what);
            st = time_variant(&vs[k], o);
            if (st) st = kiln_error_prefix(st, "autotune: timing candidate set %d", k);
            sum->candidates++;
        }
        if (!st) progress(o->progress, tty, max_n, max_n, "timed");
        sum->timing_seconds = now_s() - tt0;
    }
    /* 4. the fastest candidate per signature goes into the cache */
    for (int s = 0; !st && s < n_sigs; s++) {
        const kiln_tune_entry *e = sigs[s].e;
        int best = -1;
        for (int k = 0; k < e->n; k++)
            if (sigs[s].timed[k] && (best < 0 || sigs[s].total[k] < sigs[s].total[best])) best = k;
        if (best < 0) best = e->chosen; /* no layer measured (cannot happen for a launched kernel) */
        double us = sigs[s].timed[best] ? 1000.0 * sigs[s].total[best] / sigs[s].timed[best] : 0.0;
        st = kiln_tune_cache_put(cache, dev, e->signature, e->names[best], us);
        sum->tuned++;
        sum->changed += best != e->chosen;
        if (!st && o->progress)
            fprintf(o->progress, "autotune: %s: %s (%.1f us; heuristic %s %.1f us)\n", e->signature, e->names[best], us,
                    e->names[e->chosen],
                    sigs[s].timed[e->chosen] ? 1000.0 * sigs[s].total[e->chosen] / sigs[s].timed[e->chosen] : 0.0);
    }
    for (int k = 0; vs && k < max_n; k++) {
        kiln_tune_log_free(&vs[k].log);
        kiln_bundle_free(vs[k].b);
        free(vs[k].bytes);
    }
    free(vs);
    kiln_codegen_base_free(&base);
    for (int s = 0; sigs && s < n_sigs; s++) {
        free(sigs[s].total);
        free(sigs[s].timed);
    }
    free(sigs);
    kiln_tune_log_free(&rec);
    sum->seconds = now_s() - t0;
    return st;
}

/* ----------------------------------------------------------- layer costs -- */
static uint64_t value_bytes(const kiln_graph *g, int v) {
    if (v < 0 || v >= g->n_values) return 0;
    const kiln_value *val = &g->values[v];
    uint64_t n = kiln_dtype_size(val->dtype);
    for (int d = 0; d < val->rank; d++) n *= val->dims[d] > 0 ? (uint64_t)val->dims[d] : 0;
    return n;
}

static uint64_t value_numel(const kiln_graph *g, int v) {
    if (v < 0 || v >= g->n_values) return 0;
    uint64_t n = 1;
    for (int d = 0; d < g->values[v].rank; d++) n *= g->values[v].dims[d] > 0 ? (uint64_t)g->values[v].dims[d] : 0;
    return n;
}

/* Multiply-adds x 2 of a Conv / ConvTranspose / Gemm / MatMul node of graph g, else 0. */
static uint64_t node_flops(const kiln_graph *g, const kiln_node *n) {
    if (n->n_inputs < 2 || n->n_outputs < 1 || n->inputs[0] < 0 || n->inputs[1] < 0 || n->outputs[0] < 0) return 0;
    const kiln_value *a = &g->values[n->inputs[0]], *w = &g->values[n->inputs[1]];
    uint64_t y = value_numel(g, n->outputs[0]);
    if (n->op == KILN_OP_Conv) {
        uint64_t k = w->rank >= 1 && w->dims[0] > 0 ? (uint64_t)w->dims[0] : 1;
        return 2 * y * (value_numel(g, n->inputs[1]) / k);
    }
    if (n->op == KILN_OP_Gemm) {
        int64_t kd = kiln_attr_int(n, "transA", 0) ? (a->rank >= 2 ? a->dims[0] : 1) : a->dims[a->rank - 1];
        return 2 * y * (kd > 0 ? (uint64_t)kd : 0);
    }
    if (n->op == KILN_OP_MatMul && a->rank >= 1) return 2 * y * (a->dims[a->rank - 1] > 0 ? (uint64_t)a->dims[a->rank - 1] : 0);
    return 0;
}

/* Bytes of value v that Conv c (of graph g) reads as its x: a kernel smaller than its stride (the
 * strided 1x1 convs of ResNet's downsample paths) touches only P * R of the rows and Q * S of the
 * columns; otherwise all of v. */
static uint64_t conv_x_bytes(const kiln_graph *g, const kiln_node *c, int v) {
    const uint64_t full = value_bytes(g, v);
    if (c->op != KILN_OP_Conv || c->n_inputs < 2 || c->inputs[0] != v || c->inputs[1] < 0 || c->n_outputs < 1 ||
        c->outputs[0] < 0)
        return full;
    const kiln_value *x = &g->values[v], *w = &g->values[c->inputs[1]], *y = &g->values[c->outputs[0]];
    if (x->rank != 4 || w->rank != 4 || y->rank != 4 || x->dims[2] <= 0 || x->dims[3] <= 0) return full;
    const int64_t *st = NULL, *dl = NULL;
    const int ns = kiln_attr_ints(c, "strides", &st), nd = kiln_attr_ints(c, "dilations", &dl);
    double frac = 1.0;
    for (int i = 0; i < 2; i++) {
        const int64_t s = ns == 2 ? st[i] : 1, d = nd == 2 ? dl[i] : 1, k = w->dims[2 + i], o = y->dims[2 + i],
                      in = x->dims[2 + i];
        if (d == 1 && k > 0 && k < s && o > 0 && o * k < in) frac *= (double)(o * k) / (double)in;
    }
    return (uint64_t)((double)full * frac);
}

/* Bytes input k of node n reads (a fused group: through the one body node that reads it, when
 * that is a Conv). */
static uint64_t input_bytes(const kiln_graph *g, const kiln_node *n, int k) {
    const int v = n->inputs[k];
    if (n->op == KILN_OP_Conv) return conv_x_bytes(g, n, v);
    if (n->op != KILN_OP_Fused || !n->body || k >= n->body->n_inputs) return value_bytes(g, v);
    const kiln_graph *b = n->body;
    const int bv = b->inputs[k];
    const kiln_node *reader = NULL;
    int readers = 0;
    for (int i = 0; i < b->n_nodes; i++)
        for (int j = 0; j < b->nodes[i].n_inputs; j++)
            if (b->nodes[i].inputs[j] == bv) readers++, reader = &b->nodes[i];
    const uint64_t full_b = value_bytes(b, bv);
    if (readers != 1 || reader->op != KILN_OP_Conv || !full_b) return value_bytes(g, v);
    return (uint64_t)((double)value_bytes(g, v) * ((double)conv_x_bytes(b, reader, bv) / (double)full_b));
}

kiln_status kiln_tune_layer_costs(const kiln_graph *g, char **out) {
    size_t cap = 64, len = 0;
    for (int i = 0; i < g->n_nodes; i++) cap += 64 + (g->nodes[i].name ? strlen(g->nodes[i].name) : 0) +
                                                  (g->nodes[i].n_outputs > 0 && g->nodes[i].outputs[0] >= 0 && g->values[g->nodes[i].outputs[0]].name
                                                       ? strlen(g->values[g->nodes[i].outputs[0]].name)
                                                       : 0);
    char *s = malloc(cap);
    if (!s) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    s[0] = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        if (kiln_node_is_view(n)) continue;
        uint64_t flops = 0, bytes = 0;
        if (n->op == KILN_OP_Fused && n->body) {
            for (int k = 0; k < n->body->n_nodes; k++) flops += node_flops(n->body, &n->body->nodes[k]);
        } else {
            flops = node_flops(g, n);
        }
        for (int k = 0; k < n->n_inputs; k++) bytes += input_bytes(g, n, k);
        for (int k = 0; k < n->n_outputs; k++) bytes += value_bytes(g, n->outputs[k]);
        /* the layer name codegen gives: the node's name, else its first output's */
        const char *name = n->name && *n->name ? n->name
                           : n->n_outputs > 0 && n->outputs[0] >= 0 && g->values[n->outputs[0]].name ? g->values[n->outputs[0]].name
                                                                                                   : NULL;
        if (!name || strpbrk(name, "=;,")) continue; /* cannot be written unambiguously */
        len += (size_t)snprintf(s + len, cap - len, "%s=%llu,%llu;", name, (unsigned long long)flops,
                                (unsigned long long)bytes);
    }
    *out = s;
    return KILN_OK;
}

bool kiln_tune_layer_cost_find(const char *costs, const char *layer, uint64_t *flops, uint64_t *bytes) {
    if (!costs || !layer) return false;
    size_t ll = strcspn(layer, "@"); /* "@output" marks a duplicate group name */
    for (const char *p = costs; *p;) {
        const char *eq = strchr(p, '='), *semi = strchr(p, ';');
        if (!eq || !semi || eq > semi) return false;
        if ((size_t)(eq - p) == ll && !strncmp(p, layer, ll)) {
            unsigned long long f, b;
            if (sscanf(eq + 1, "%llu,%llu", &f, &b) != 2) return false;
            *flops = f;
            *bytes = b;
            return true;
        }
        p = semi + 1;
    }
    return false;
}
