/* nvrtc.c — NVRTC wrapper: one program per architecture, cubins + PTX, logs in errors. */
#include "codegen/nvrtc.h"

#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kiln_status kiln_nvrtc_parse_arch(const char *arch, int *number, bool *arch_specific) {
    int n = 0, digits = 0;
    const char *p = NULL;
    if (arch && strncmp(arch, "sm_", 3) == 0) p = arch + 3;
    else if (arch && strncmp(arch, "compute_", 8) == 0) p = arch + 8;
    if (!p) return kiln_errorf(KILN_ERR_INVALID_ARG, "bad GPU architecture '%s' (expected e.g. sm_90)", arch ? arch : "(null)");
    for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++) n = n * 10 + (*p - '0');
    bool a = false;
    if (*p == 'a') { a = true; p++; }
    if (digits < 2 || *p != '\0' || n < 50)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "bad GPU architecture '%s' (expected e.g. sm_90)", arch);
    if (number) *number = n;
    if (arch_specific) *arch_specific = a;
    return KILN_OK;
}

#ifndef KILN_HAVE_CUDA

kiln_status kiln_nvrtc_compile(const kiln_nvrtc_request *rq, kiln_nvrtc_output *out) {
    if (out) memset(out, 0, sizeof *out);
    return kiln_errorf(KILN_ERR_UNSUPPORTED, "kiln was built without CUDA (KILN_CUDA=OFF): cannot compile '%s'",
                       rq && rq->name ? rq->name : "kernel");
}

kiln_status kiln_nvrtc_version(int *major, int *minor) {
    return kiln_errorf(KILN_ERR_UNSUPPORTED, "kiln was built without CUDA (KILN_CUDA=OFF)");
}

void kiln_nvrtc_output_free(kiln_nvrtc_output *out) {
    if (out) memset(out, 0, sizeof *out);
}

#else

#include <nvrtc.h>
#include <pthread.h>
#include <unistd.h>

#ifndef KILN_CUDA_INCLUDE_DIR
#define KILN_CUDA_INCLUDE_DIR "/usr/local/cuda/include"
#endif

static kiln_status nvrtc_fail(nvrtcResult r, const char *call, const char *what) {
    return kiln_errorf(r == NVRTC_ERROR_OUT_OF_MEMORY ? KILN_ERR_OOM : KILN_ERR_INTERNAL,
                       "%s failed for %s: %s (%d)", call, what, nvrtcGetErrorString(r), (int)r);
}

#define NVRTC_TRY(call, what, expr)                                                            \
    do {                                                                                       \
        nvrtcResult nv_r_ = (expr);                                                            \
        if (nv_r_ != NVRTC_SUCCESS) {                                                          \
            st = nvrtc_fail(nv_r_, #call, what);                                               \
            goto done;                                                                         \
        }                                                                                      \
    } while (0)

kiln_status kiln_nvrtc_version(int *major, int *minor) {
    int a = 0, b = 0;
    nvrtcResult r = nvrtcVersion(&a, &b);
    if (r != NVRTC_SUCCESS) return nvrtc_fail(r, "nvrtcVersion", "the version query");
    if (major) *major = a;
    if (minor) *minor = b;
    return KILN_OK;
}

/* The toolkit's include directory (cuda_fp16.h lives there; NVRTC does not carry it). */
static const char *cuda_include_dir(void) {
    const char *env = getenv("KILN_CUDA_INCLUDE");
    char probe[1024];
    const char *cands[] = {env, KILN_CUDA_INCLUDE_DIR, "/usr/local/cuda/include"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!cands[i] || !*cands[i]) continue;
        snprintf(probe, sizeof probe, "%s/cuda_fp16.h", cands[i]);
        if (access(probe, R_OK) == 0) return cands[i];
    }
    return NULL;
}

/* The first `max_lines` lines of a log, for an error message. */
static void log_head(const char *log, int max_lines, char *buf, size_t cap) {
    size_t n = 0;
    int lines = 0;
    buf[0] = '\0';
    if (!log) return;
    for (const char *p = log; *p && n + 1 < cap; p++) {
        if (*p == '\n') {
            if (++lines >= max_lines) break;
            buf[n++] = '|';
            continue;
        }
        buf[n++] = *p;
    }
    buf[n] = '\0';
}

static bool is_supported(int number, const int *supported, int n_supported) {
    for (int i = 0; i < n_supported; i++)
        if (supported[i] == number) return true;
    return false;
}

/* Compile rq once for `arch` ("sm_90" cubin or "compute_90" PTX) into *img. */
static kiln_status compile_one(const kiln_nvrtc_request *rq, const char *arch, bool ptx,
                               const char *include_dir, kiln_nvrtc_image *img, char **log_out,
                               kiln_nvrtc_output *names_out) {
    kiln_status st = KILN_OK;
    nvrtcProgram prog = NULL;
    char what[192], file_name[160], arch_opt[48], include_opt[1100];
    const char **opts = NULL;
    const char **hnames = NULL, **hsrcs = NULL;
    snprintf(what, sizeof what, "'%s' (%s)", rq->name, arch);
    snprintf(file_name, sizeof file_name, "%s.cu", rq->name);

    if (rq->n_headers > 0) {
        hnames = malloc((size_t)rq->n_headers * sizeof *hnames);
        hsrcs = malloc((size_t)rq->n_headers * sizeof *hsrcs);
        if (!hnames || !hsrcs) {
            st = kiln_errorf(KILN_ERR_OOM, "out of memory compiling %s", what);
            goto done;
        }
        for (int i = 0; i < rq->n_headers; i++) {
            hnames[i] = rq->headers[i].name;
            hsrcs[i] = rq->headers[i].source;
        }
    }
    NVRTC_TRY(nvrtcCreateProgram, what,
              nvrtcCreateProgram(&prog, rq->source, file_name, rq->n_headers, hsrcs, hnames));
    for (int i = 0; i < rq->n_name_exprs; i++)
        NVRTC_TRY(nvrtcAddNameExpression, what, nvrtcAddNameExpression(prog, rq->name_exprs[i]));

    /* KILN_NVRTC_DEFINES="A=1,B" adds -DA=1 -DB to every compile: a developer's switch for kernel
       experiments (the kernels' KILN_EXP_* macros); it is in no tuning-cache key. */
    char defs[16][64];
    int n_defs = 0;
    for (const char *p = getenv("KILN_NVRTC_DEFINES"); p && *p && n_defs < 16;) {
        size_t len = strcspn(p, ",");
        if (len > 0 && len < sizeof defs[0] - 2) snprintf(defs[n_defs++], sizeof defs[0], "-D%.*s", (int)len, p);
        p += len + (p[len] == ',');
    }
    int n_opts = 0;
    opts = malloc((size_t)(4 + 16 + rq->n_options) * sizeof *opts);
    if (!opts) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory compiling %s", what);
        goto done;
    }
    snprintf(arch_opt, sizeof arch_opt, "--gpu-architecture=%s", arch);
    opts[n_opts++] = arch_opt;
    opts[n_opts++] = "-std=c++17";
    if (include_dir) {
        snprintf(include_opt, sizeof include_opt, "-I%s", include_dir);
        opts[n_opts++] = include_opt;
    }
    for (int i = 0; i < rq->n_options; i++) opts[n_opts++] = rq->options[i];
    for (int i = 0; i < n_defs; i++) opts[n_opts++] = defs[i];

    nvrtcResult cr = nvrtcCompileProgram(prog, n_opts, opts);
    size_t log_size = 0;
    NVRTC_TRY(nvrtcGetProgramLogSize, what, nvrtcGetProgramLogSize(prog, &log_size));
    char *log = malloc(log_size + 1);
    if (!log) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory compiling %s", what);
        goto done;
    }
    log[0] = '\0';
    nvrtcResult lr = log_size > 0 ? nvrtcGetProgramLog(prog, log) : NVRTC_SUCCESS;
    log[log_size] = '\0';
    free(*log_out);
    *log_out = log;
    NVRTC_TRY(nvrtcGetProgramLog, what, lr);
    if (cr != NVRTC_SUCCESS) {
        char head[640];
        log_head(log, 6, head, sizeof head);
        st = kiln_errorf(KILN_ERR_UNSUPPORTED, "NVRTC could not compile %s: %s: %s%s", what,
                         nvrtcGetErrorString(cr), head,
                         include_dir ? "" : " (CUDA include directory not found: set KILN_CUDA_INCLUDE)");
        goto done;
    }

    size_t size = 0;
    if (ptx) NVRTC_TRY(nvrtcGetPTXSize, what, nvrtcGetPTXSize(prog, &size));
    else NVRTC_TRY(nvrtcGetCUBINSize, what, nvrtcGetCUBINSize(prog, &size));
    if (size == 0) {
        st = kiln_errorf(KILN_ERR_INTERNAL, "NVRTC produced an empty %s for %s", ptx ? "PTX" : "cubin", what);
        goto done;
    }
    img->data = malloc(size);
    if (!img->data) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory for the %zu-byte image of %s", size, what);
        goto done;
    }
    if (ptx) NVRTC_TRY(nvrtcGetPTX, what, nvrtcGetPTX(prog, (char *)img->data));
    else NVRTC_TRY(nvrtcGetCUBIN, what, nvrtcGetCUBIN(prog, (char *)img->data));
    img->size = size;
    img->is_ptx = ptx;
    snprintf(img->arch, sizeof img->arch, "%s", arch);

    if (names_out && rq->n_name_exprs > 0) {
        names_out->lowered_names = calloc((size_t)rq->n_name_exprs, sizeof(char *));
        if (!names_out->lowered_names) {
            st = kiln_errorf(KILN_ERR_OOM, "out of memory compiling %s", what);
            goto done;
        }
        names_out->n_lowered_names = rq->n_name_exprs;
        for (int i = 0; i < rq->n_name_exprs; i++) {
            const char *lowered = NULL;
            NVRTC_TRY(nvrtcGetLoweredName, what, nvrtcGetLoweredName(prog, rq->name_exprs[i], &lowered));
            names_out->lowered_names[i] = strdup(lowered);
            if (!names_out->lowered_names[i]) {
                st = kiln_errorf(KILN_ERR_OOM, "out of memory compiling %s", what);
                goto done;
            }
        }
    }

done:
    if (st != KILN_OK) {
        free(img->data);
        img->data = NULL;
        img->size = 0;
    }
    if (prog) {
        nvrtcResult dr = nvrtcDestroyProgram(&prog);
        if (dr != NVRTC_SUCCESS && st == KILN_OK) st = nvrtc_fail(dr, "nvrtcDestroyProgram", what);
    }
    free(opts);
    free(hnames);
    free(hsrcs);
    return st;
}

void kiln_nvrtc_output_free(kiln_nvrtc_output *out) {
    if (!out) return;
    for (int i = 0; i < out->n_images; i++) free(out->images[i].data);
    free(out->images);
    for (int i = 0; i < out->n_lowered_names; i++) free(out->lowered_names[i]);
    free(out->lowered_names);
    free(out->log);
    memset(out, 0, sizeof *out);
}

typedef struct compile_job {
    const kiln_nvrtc_request *rq;
    const char *include_dir;
    char arch[24];
    bool ptx;
    kiln_nvrtc_output *names_out;
    kiln_nvrtc_image img;
    char *log;
    kiln_status st;
    char err[1024]; /* (error messages are thread-local) */
} compile_job;
static void *compile_job_main(void *arg) {
    compile_job *j = arg;
    j->st = compile_one(j->rq, j->arch, j->ptx, j->include_dir, &j->img, &j->log, j->names_out);
    if (j->st != KILN_OK) snprintf(j->err, sizeof j->err, "%s", kiln_last_error());
    return NULL;
}

kiln_status kiln_nvrtc_compile(const kiln_nvrtc_request *rq, kiln_nvrtc_output *out) {
    if (!out) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_nvrtc_compile: NULL output");
    memset(out, 0, sizeof *out);
    if (!rq || !rq->name || !rq->source || rq->n_archs < 1 || !rq->archs || rq->n_headers < 0 ||
        (rq->n_headers > 0 && !rq->headers) || rq->n_options < 0 || (rq->n_options > 0 && !rq->options) ||
        rq->n_name_exprs < 0 || (rq->n_name_exprs > 0 && !rq->name_exprs))
        return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_nvrtc_compile: incomplete request%s%s",
                           rq && rq->name ? " for " : "", rq && rq->name ? rq->name : "");
    if (strlen(rq->name) > 120)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_nvrtc_compile: kernel name longer than 120 bytes");

    /* Validate every arch before compiling anything: a typo should not cost a compile. */
    int n_sup = 0;
    nvrtcResult r = nvrtcGetNumSupportedArchs(&n_sup);
    if (r != NVRTC_SUCCESS) return nvrtc_fail(r, "nvrtcGetNumSupportedArchs", rq->name);
    int *sup = malloc((size_t)(n_sup > 0 ? n_sup : 1) * sizeof *sup);
    if (!sup) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    r = nvrtcGetSupportedArchs(sup);
    if (r != NVRTC_SUCCESS) {
        free(sup);
        return nvrtc_fail(r, "nvrtcGetSupportedArchs", rq->name);
    }
    int ptx_number = -1, ptx_specific = -1;
    for (int i = 0; i < rq->n_archs; i++) {
        int number;
        bool specific;
        kiln_status st = kiln_nvrtc_parse_arch(rq->archs[i], &number, &specific);
        if (st == KILN_OK && strncmp(rq->archs[i], "sm_", 3) != 0)
            st = kiln_errorf(KILN_ERR_INVALID_ARG, "bad GPU architecture '%s' (cubins need sm_XX)", rq->archs[i]);
        if (st == KILN_OK && !is_supported(number, sup, n_sup))
            st = kiln_errorf(KILN_ERR_UNSUPPORTED, "this NVRTC cannot compile for %s", rq->archs[i]);
        if (st != KILN_OK) {
            free(sup);
            return st;
        }
        if (!specific && number > ptx_number) ptx_number = number;
        if (specific && number > ptx_specific) ptx_specific = number;
    }
    free(sup);
    if (ptx_number < 0) ptx_number = ptx_specific; /* only "a" archs: PTX of the base arch */

    const char *include_dir = cuda_include_dir();
    int n_images = rq->n_archs + (rq->ptx ? 1 : 0);
    out->images = calloc((size_t)n_images, sizeof *out->images);
    compile_job *jobs = calloc((size_t)n_images, sizeof *jobs);
    pthread_t *th = calloc((size_t)n_images, sizeof *th);
    bool *started = calloc((size_t)n_images, sizeof *started);
    if (!out->images || !jobs || !th || !started) {
        free(jobs), free(th), free(started);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    /* one NVRTC program per image, compiled at once in threads (NVRTC documents concurrent use of
     * distinct programs as safe): a build's wall time is then its slowest architecture's, not the sum */
    for (int i = 0; i < n_images; i++) {
        jobs[i].rq = rq, jobs[i].include_dir = include_dir, jobs[i].ptx = i >= rq->n_archs;
        jobs[i].names_out = i == 0 ? out : NULL;
        if (i < rq->n_archs) snprintf(jobs[i].arch, sizeof jobs[i].arch, "%s", rq->archs[i]);
        else snprintf(jobs[i].arch, sizeof jobs[i].arch, "compute_%d", ptx_number);
    }
    for (int i = 1; i < n_images; i++) started[i] = !pthread_create(&th[i], NULL, compile_job_main, &jobs[i]);
    compile_job_main(&jobs[0]);
    for (int i = 1; i < n_images; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else compile_job_main(&jobs[i]); /* (no thread: here) */
    }
    /* in order: the first failure is the error (with its log), else every image and the last log */
    kiln_status st = KILN_OK;
    for (int i = 0; i < n_images; i++) {
        if (st == KILN_OK && jobs[i].st != KILN_OK) {
            st = kiln_errorf(jobs[i].st, "%s", jobs[i].err);
            free(out->log);
            out->log = jobs[i].log;
            jobs[i].log = NULL;
        }
        if (jobs[i].st == KILN_OK) out->images[out->n_images++] = jobs[i].img;
        if (st == KILN_OK && i == n_images - 1) {
            free(out->log);
            out->log = jobs[i].log;
            jobs[i].log = NULL;
        }
        free(jobs[i].log);
    }
    free(jobs), free(th), free(started);
    if (st != KILN_OK) {
        char *log = out->log;
        out->log = NULL;
        kiln_nvrtc_output_free(out);
        out->log = log;
    }
    return st;
}

#endif /* KILN_HAVE_CUDA */
