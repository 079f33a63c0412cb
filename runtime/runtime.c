/* runtime.c — kiln's GPU runtime: open a bundle on a GPU, execution contexts, runs with CUDA
 * graph capture and replay (public API: include/kiln.h; internal extras: runtime/runtime.h). */
#include "runtime/runtime.h"

#include "codegen/nvrtc.h"
#include "ir.h"
#include "runtime/cuda_driver.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kiln_bundle_model {
    kiln_bundle *b;
    int n_in, n_out;
    int *in_io, *out_io; /* input / output number -> index in b->io */
    bool jit;
    char info[512];
#ifdef KILN_HAVE_CUDA
    kiln_cuda_device dev;
    const kiln_cuda_driver *cu;
    CUmodule *modules;
    int n_modules;
    CUfunction *funcs; /* per bundle kernel */
    bool pdl;          /* launch with programmatic stream serialization (launch_range) */
    CUdeviceptr weights;
#endif
};

/* ------------------------------------------------------------ queries (no GPU needed) -- */

static uint64_t io_nbytes(const kiln_bundle_io *io) {
    uint64_t n = kiln_dtype_size(io->dtype);
    for (int d = 0; d < io->rank; d++) n *= (uint64_t)io->dims[d];
    return n;
}

static void format_shape(kiln_dtype dt, int rank, const int64_t *dims, char *buf, size_t len) {
    size_t o = (size_t)snprintf(buf, len, "%s [", kiln_dtype_name(dt));
    for (int d = 0; d < rank && o < len; d++) o += (size_t)snprintf(buf + o, len - o, d ? ",%lld" : "%lld", (long long)dims[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

int kiln_bundle_model_num_inputs(const kiln_bundle_model *m) { return m ? m->n_in : 0; }
int kiln_bundle_model_num_outputs(const kiln_bundle_model *m) { return m ? m->n_out : 0; }
int kiln_bundle_model_used_jit(const kiln_bundle_model *m) { return m && m->jit; }
const char *kiln_bundle_model_image_info(const kiln_bundle_model *m) { return m ? m->info : ""; }
uint64_t kiln_bundle_model_weight_bytes(const kiln_bundle_model *m) { return m ? m->b->weight_bytes : 0; }
uint64_t kiln_bundle_model_arena_bytes(const kiln_bundle_model *m) { return m ? m->b->arena_bytes : 0; }
const kiln_bundle *kiln_bundle_model_bundle(const kiln_bundle_model *m) { return m ? m->b : NULL; }
int kiln_bundle_model_num_layers(const kiln_bundle_model *m) { return m ? m->b->n_layers : 0; }

kiln_status kiln_bundle_model_launch_resources(const kiln_bundle_model *m, int launch, kiln_launch_resources *out) {
    if (!m || !out) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_bundle_model_launch_resources: NULL argument");
    if (launch < 0 || (uint64_t)launch >= (uint64_t)m->b->n_launches)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "launch %d does not exist (the plan has %llu)", launch,
                           (unsigned long long)m->b->n_launches);
#ifndef KILN_HAVE_CUDA
    return kiln_errorf(KILN_ERR_UNSUPPORTED, "kiln was built without CUDA");
#else
    const kiln_bundle_launch *la = &m->b->launches[launch];
    const kiln_cuda_driver *cu = m->cu;
    CUfunction f = m->funcs[la->kernel];
    int regs = 0, static_smem = 0, blocks = 0;
    const int threads = (int)(la->block[0] * la->block[1] * la->block[2]);
    KILN_CU_TRY(cu, cuCtxSetCurrent, cu->ctx_set_current(m->dev.ctx));
    KILN_CU_TRY(cu, cuFuncGetAttribute, cu->func_get_attribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, f));
    KILN_CU_TRY(cu, cuFuncGetAttribute, cu->func_get_attribute(&static_smem, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f));
    KILN_CU_TRY(cu, cuOccupancyMaxActiveBlocksPerMultiprocessor,
                cu->occupancy_max_active_blocks(&blocks, f, threads, la->shared_bytes));
    *out = (kiln_launch_resources){.threads = threads,
                                   .registers = regs,
                                   .blocks_per_sm = blocks,
                                   .grid_blocks = (uint64_t)la->grid[0] * la->grid[1] * la->grid[2],
                                   .shared_bytes = (uint64_t)static_smem + la->shared_bytes};
    return KILN_OK;
#endif
}

static kiln_status io_info(const kiln_bundle_model *m, bool output, int i, const char **name, kiln_dtype *dt,
                           int *rank, int64_t dims[KILN_MAX_RANK]) {
    int n = output ? (m ? m->n_out : 0) : (m ? m->n_in : 0);
    if (!m || i < 0 || i >= n)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "%s %d does not exist (the model has %d)", output ? "output" : "input",
                           i, n);
    const kiln_bundle_io *io = &m->b->io[output ? m->out_io[i] : m->in_io[i]];
    if (name) *name = io->name;
    if (dt) *dt = io->dtype;
    if (rank) *rank = io->rank;
    if (dims) memcpy(dims, io->dims, sizeof io->dims);
    return KILN_OK;
}

kiln_status kiln_bundle_model_input_info(const kiln_bundle_model *m, int i, const char **name, kiln_dtype *dt,
                                         int *rank, int64_t dims[KILN_MAX_RANK]) {
    return io_info(m, false, i, name, dt, rank, dims);
}
kiln_status kiln_bundle_model_output_info(const kiln_bundle_model *m, int i, const char **name, kiln_dtype *dt,
                                          int *rank, int64_t dims[KILN_MAX_RANK]) {
    return io_info(m, true, i, name, dt, rank, dims);
}

static int find_io(const kiln_bundle_model *m, bool output, const char *name) {
    if (!m || !name) return -1;
    int n = output ? m->n_out : m->n_in;
    for (int i = 0; i < n; i++)
        if (!strcmp(m->b->io[output ? m->out_io[i] : m->in_io[i]].name, name)) return i;
    return -1;
}
int kiln_bundle_model_find_input(const kiln_bundle_model *m, const char *name) { return find_io(m, false, name); }
int kiln_bundle_model_find_output(const kiln_bundle_model *m, const char *name) { return find_io(m, true, name); }

/* ------------------------------------------------------------------------ describe -- */

static const char *arg_kind_name(kiln_arg_kind k) {
    switch (k) {
    case KILN_ARG_ARENA: return "arena";
    case KILN_ARG_WEIGHT: return "weight";
    case KILN_ARG_INPUT: return "input";
    case KILN_ARG_OUTPUT: return "output";
    case KILN_ARG_SCALAR: return "scalar";
    case KILN_ARG_BYTES: return "bytes";
    case KILN_ARG_TMAP: return "tmap";
    case KILN_ARG_SYNC: return "sync";
    }
    return "?";
}

void kiln_bundle_describe(const kiln_bundle *b, const char *what, uint64_t file_bytes, FILE *f) {
    if (!b || !f) return;
    fprintf(f, "bundle %s: format version %d", what ? what : "", KILN_BUNDLE_VERSION);
    if (file_bytes) fprintf(f, ", %llu bytes", (unsigned long long)file_bytes);
    fprintf(f, "\n");
    fprintf(f, "metadata:\n");
    for (int i = 0; i < b->n_meta; i++) fprintf(f, "  %s: %s\n", b->meta[i].key, b->meta[i].value);
    char shape[256];
    for (int pass = 0; pass < 2; pass++) {
        int k = 0;
        for (int i = 0; i < b->n_io; i++) {
            const kiln_bundle_io *io = &b->io[i];
            if (io->is_output != (pass == 1)) continue;
            format_shape(io->dtype, io->rank, io->dims, shape, sizeof shape);
            fprintf(f, "  %s %d %s: %s\n", pass ? "output" : "input ", k++, io->name, shape);
        }
    }
    /* architectures: one line per arch, with how many modules it covers */
    fprintf(f, "images (%d):\n", b->n_images);
    for (int i = 0; i < b->n_images; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = b->images[j].kind == b->images[i].kind && !strcmp(b->images[j].arch, b->images[i].arch);
        if (seen) continue;
        int mods = 0;
        uint64_t bytes = 0;
        for (int j = i; j < b->n_images; j++)
            if (b->images[j].kind == b->images[i].kind && !strcmp(b->images[j].arch, b->images[i].arch)) {
                mods++;
                bytes += b->images[j].size;
            }
        fprintf(f, "  %-6s %-12s %d module%s, %llu bytes\n", b->images[i].kind == KILN_IMAGE_PTX ? "ptx" : "cubin",
                b->images[i].arch, mods, mods == 1 ? "" : "s", (unsigned long long)bytes);
    }
    fprintf(f, "kernels (%d):\n", b->n_kernels);
    for (int k = 0; k < b->n_kernels; k++) {
        int launches = 0;
        for (int l = 0; l < b->n_launches; l++) launches += b->launches[l].kernel == (uint32_t)k;
        fprintf(f, "  %3d %-32s module %u, group %s, %d launch%s\n", k, b->kernels[k].function, b->kernels[k].module,
                b->kernels[k].group, launches, launches == 1 ? "" : "es");
    }
    fprintf(f, "launch plan (%d launches, constant pool %llu bytes):\n", b->n_launches,
            (unsigned long long)b->const_pool_bytes);
    for (int l = 0; l < b->n_launches; l++) {
        const kiln_bundle_launch *la = &b->launches[l];
        fprintf(f, "  %3d %s grid (%u,%u,%u) block (%u,%u,%u) smem %u stream %u args", l,
                la->kernel < (uint32_t)b->n_kernels ? b->kernels[la->kernel].function : "?", la->grid[0],
                la->grid[1], la->grid[2], la->block[0], la->block[1], la->block[2], la->shared_bytes, la->stream);
        for (uint32_t a = 0; a < la->n_args; a++)
            fprintf(f, " %s:%llu", arg_kind_name(la->args[a].kind), (unsigned long long)la->args[a].value);
        fprintf(f, "\n");
    }
    if (b->n_layers) fprintf(f, "layers (%d; launches, finalized values, dependencies):\n", b->n_layers);
    else fprintf(f, "layers: none (no per-layer table: one stream, no per-layer compare)\n");
    for (int i = 0; i < b->n_layers; i++) {
        const kiln_bundle_layer *l = &b->layers[i];
        fprintf(f, "  %3d %s (%s) launches %u..%u", i, l->name, l->op, l->first_launch,
                l->first_launch + l->n_launches - (l->n_launches ? 1 : 0));
        for (int v = 0; v < l->n_values; v++) {
            const kiln_bundle_layer_value *e = &l->values[v];
            format_shape(e->dtype, e->rank, e->dims, shape, sizeof shape);
            fprintf(f, "%s%s %s @%s:%llu", v ? ", " : " -> ", e->name, shape, arg_kind_name(e->where),
                    (unsigned long long)e->at);
        }
        fprintf(f, " after");
        if (!l->n_deps) fprintf(f, " -");
        for (int d = 0; d < l->n_deps; d++) fprintf(f, "%s%u", d ? "," : " ", l->deps[d]);
        fprintf(f, "\n");
    }
    if (b->n_layers) {
        kiln_stream_plan p;
        if (kiln_stream_plan_init(&p, b, KILN_MAX_STREAMS) == KILN_OK) {
            fprintf(f, "streams: at most %d used (--streams %d), %d cross-stream waits\n", p.n_streams, KILN_MAX_STREAMS,
                    p.wait_at[p.n_layers]);
            kiln_stream_plan_free(&p);
        }
    }
    fprintf(f, "arena: %llu bytes (align %llu), %d buffers\n", (unsigned long long)b->arena_bytes,
            (unsigned long long)b->arena_align, b->n_buffers);
    fprintf(f, "weights: %d tensors, %llu bytes\n", b->n_weights, (unsigned long long)b->weight_bytes);
}

/* -------------------------------------------------------------- stream plan (no GPU) -- */

void kiln_stream_plan_free(kiln_stream_plan *p) {
    if (!p) return;
    free(p->stream);
    free(p->wait_at);
    free(p->waits);
    free(p->signal);
    memset(p, 0, sizeof *p);
}

/* Greedy list scheduling in plan order with vector clocks: a layer continues the stream whose
 * last layer it depends on (the latest such), else takes an unused stream (a new branch runs
 * in parallel), else the stream whose last layer is oldest. It waits for each dependency on
 * another stream unless what its stream already waited for implies it (clock[s][t]: the
 * latest layer of stream t known finished on stream s). */
kiln_status kiln_stream_plan_init(kiln_stream_plan *p, const kiln_bundle *b, int max_streams) {
    memset(p, 0, sizeof *p);
    if (!b || max_streams < 1 || max_streams > KILN_MAX_STREAMS)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "streams: %d is not in 1..%d", max_streams, KILN_MAX_STREAMS);
    int n = b->n_layers, ns = max_streams;
    size_t n_waits = 0;
    for (int l = 0; l < n; l++) {
        n_waits += (size_t)b->layers[l].n_deps;
        for (int d = 0; d < b->layers[l].n_deps; d++)
            if (b->layers[l].deps[d] >= (uint32_t)l)
                return kiln_errorf(KILN_ERR_INVALID_ARG, "streams: layer %d depends on layer %u, not an earlier one", l,
                                   b->layers[l].deps[d]);
    }
    p->n_layers = n;
    p->stream = calloc((size_t)n + 1, sizeof *p->stream);
    p->wait_at = calloc((size_t)n + 1, sizeof *p->wait_at);
    p->waits = calloc(n_waits + 1, sizeof *p->waits);
    p->signal = calloc((size_t)n + 1, sizeof *p->signal);
    int *clock = malloc(sizeof(int) * (size_t)(n + ns) * (size_t)ns); /* per layer, then per stream */
    int *tail = malloc(sizeof(int) * (size_t)ns);
    if (!p->stream || !p->wait_at || !p->waits || !p->signal || !clock || !tail) {
        free(clock);
        free(tail);
        kiln_stream_plan_free(p);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    int *sclock = clock + (size_t)n * (size_t)ns;
    for (int i = 0; i < ns * ns; i++) sclock[i] = -1;
    for (int t = 0; t < ns; t++) tail[t] = -1;
    int used = 1, w = 0;
    for (int l = 0; l < n; l++) {
        const kiln_bundle_layer *ly = &b->layers[l];
        int s = -1;
        for (int d = 0; d < ly->n_deps; d++) {
            int t = p->stream[ly->deps[d]];
            if (tail[t] == (int)ly->deps[d] && (s < 0 || tail[t] > tail[s])) s = t;
        }
        if (s < 0) {
            for (int t = 0; t < ns && s < 0; t++)
                if (tail[t] < 0) s = t;
        }
        if (s < 0) {
            s = 0;
            for (int t = 1; t < ns; t++)
                if (tail[t] < tail[s]) s = t;
        }
        if (s + 1 > used) used = s + 1;
        int *vc = sclock + (size_t)s * (size_t)ns;
        p->wait_at[l] = w;
        for (int d = ly->n_deps - 1; d >= 0; d--) { /* latest first: its clock implies more */
            int k = (int)ly->deps[d], t = p->stream[k];
            if (t == s || vc[t] >= k) continue;
            p->waits[w++] = k;
            p->signal[k] = 1;
            const int *kc = clock + (size_t)k * (size_t)ns;
            for (int u = 0; u < ns; u++)
                if (kc[u] > vc[u]) vc[u] = kc[u];
        }
        vc[s] = l;
        memcpy(clock + (size_t)l * (size_t)ns, vc, sizeof(int) * (size_t)ns);
        p->stream[l] = s;
        tail[s] = l;
    }
    p->wait_at[n] = w;
    p->n_streams = used;
    free(clock);
    free(tail);
    return KILN_OK;
}

/* --------------------------------------------------------------------------- model -- */

void kiln_bundle_model_free(kiln_bundle_model *m) {
    if (!m) return;
#ifdef KILN_HAVE_CUDA
    if (m->cu) {
        /* Errors while tearing down cannot be reported to anyone; the context stays usable. */
        m->cu->ctx_set_current(m->dev.ctx);
        if (m->weights) m->cu->mem_free(m->weights);
        for (int i = 0; i < m->n_modules; i++)
            if (m->modules[i]) m->cu->module_unload(m->modules[i]);
        kiln_cuda_device_close(&m->dev);
    }
    free(m->modules);
    free(m->funcs);
#endif
    free(m->in_io);
    free(m->out_io);
    kiln_bundle_free(m->b);
    free(m);
}

#ifdef KILN_HAVE_CUDA
/* Load every module the kernels use and look up the kernels; says in m->info what was loaded. */
static kiln_status load_modules(kiln_bundle_model *m, const kiln_bundle_model_options *opts) {
    const kiln_cuda_driver *cu = m->cu;
    const kiln_bundle *b = m->b;
    int cc = m->dev.cc_major * 10 + m->dev.cc_minor;
    int n_mod = 0;
    for (int k = 0; k < b->n_kernels; k++)
        if ((int)b->kernels[k].module + 1 > n_mod) n_mod = (int)b->kernels[k].module + 1;
    m->modules = calloc((size_t)n_mod + 1, sizeof *m->modules);
    m->funcs = calloc((size_t)b->n_kernels + 1, sizeof *m->funcs);
    if (!m->modules || !m->funcs) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    m->n_modules = n_mod;
    char archs[128] = "";
    /* Programmatic dependent launch needs the kernels' wait (meta "pdl": kiln::pdl_enter), an image
     * compiled for sm_90+ (below, the call is empty) and a GPU that has it; KILN_PDL=0 turns it off. */
    const char *pdl_meta = kiln_bundle_get_meta(b, "pdl"), *pdl_env = getenv("KILN_PDL");
    m->pdl = cc >= 90 && pdl_meta && !strcmp(pdl_meta, "1") && !(pdl_env && !strcmp(pdl_env, "0"));
    for (int mod = 0; mod < n_mod; mod++) {
        bool used = false;
        for (int k = 0; k < b->n_kernels && !used; k++) used = b->kernels[k].module == (uint32_t)mod;
        if (!used) continue;
        bool jit = false;
        const kiln_bundle_image *im = NULL;
        if (opts && opts->force_ptx) {
            bool dummy;
            im = kiln_bundle_find_image(b, (uint32_t)mod, cc, true, &dummy);
            if (im && im->kind == KILN_IMAGE_CUBIN) { /* find the PTX the fallback would pick */
                im = NULL;
                int best = -1;
                for (int i = 0; i < b->n_images; i++) {
                    int n;
                    bool spec;
                    if (b->images[i].module != (uint32_t)mod || b->images[i].kind != KILN_IMAGE_PTX) continue;
                    if (kiln_nvrtc_parse_arch(b->images[i].arch, &n, &spec) != KILN_OK) continue;
                    if (n <= cc && n > best) {
                        best = n;
                        im = &b->images[i];
                    }
                }
            }
            jit = im != NULL;
        } else {
            im = kiln_bundle_find_image(b, (uint32_t)mod, cc, true, &jit);
        }
        if (!im) {
            char have[256] = "";
            size_t o = 0;
            for (int i = 0; i < b->n_images && o < sizeof have; i++)
                if (b->images[i].module == (uint32_t)mod)
                    o += (size_t)snprintf(have + o, sizeof have - o, "%s%s", o ? ", " : "", b->images[i].arch);
            return kiln_errorf(KILN_ERR_UNSUPPORTED,
                               "the bundle has no %simage of module %d that runs on %s (sm_%d); it has: %s",
                               opts && opts->force_ptx ? "PTX " : "", mod, m->dev.name, cc, o ? have : "none");
        }
        kiln_status st = kiln_cuda_module_load(cu, im->data, &m->modules[mod]);
        if (st != KILN_OK)
            return kiln_error_prefix(st, "loading module %d (%s %s)", mod, im->kind == KILN_IMAGE_PTX ? "PTX" : "cubin",
                                     im->arch);
        if (jit) m->jit = true;
        int an = 0;
        bool aspec;
        if (kiln_nvrtc_parse_arch(im->arch, &an, &aspec) != KILN_OK || an < 90) m->pdl = false;
        if (!strstr(archs, im->arch) && strlen(archs) + strlen(im->arch) + 16 < sizeof archs) {
            if (archs[0]) strcat(archs, ", ");
            strcat(archs, im->kind == KILN_IMAGE_PTX ? "PTX " : "cubin ");
            strcat(archs, im->arch);
        }
    }
    for (int k = 0; k < b->n_kernels; k++) {
        const kiln_bundle_kernel *kn = &b->kernels[k];
        CUresult r = cu->module_get_function(&m->funcs[k], m->modules[kn->module], kn->function);
        if (r != CUDA_SUCCESS)
            return kiln_error_prefix(kiln_cuda_check(cu, r, "cuModuleGetFunction"), "kernel %d '%s' (group %s)", k,
                                     kn->function, kn->group);
    }
    /* Launches beyond the default 48 KiB of dynamic shared memory must opt in per function. */
    for (int l = 0; l < b->n_launches; l++) {
        const kiln_bundle_launch *la = &b->launches[l];
        if (la->shared_bytes <= 48 * 1024) continue;
        CUresult r = cu->func_set_attribute(m->funcs[la->kernel], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                            (int)la->shared_bytes);
        if (r != CUDA_SUCCESS)
            return kiln_error_prefix(kiln_cuda_check(cu, r, "cuFuncSetAttribute"),
                                     "launch %d asks for %u bytes of shared memory", l, la->shared_bytes);
    }
    snprintf(m->info, sizeof m->info, "%s (sm_%d): %d module%s, %s%s%s", m->dev.name, cc, n_mod, n_mod == 1 ? "" : "s",
             archs[0] ? archs : "no kernels", m->jit ? " (JIT-compiled from PTX)" : "",
             m->pdl ? ", programmatic dependent launch" : "");
    return KILN_OK;
}
#endif

static kiln_status model_from_bundle(kiln_bundle *b, const char *what, const kiln_bundle_model_options *opts,
                                     kiln_bundle_model **out) {
    kiln_bundle_model *m = calloc(1, sizeof *m);
    if (!m) {
        kiln_bundle_free(b);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    m->b = b;
    m->in_io = calloc((size_t)b->n_io + 1, sizeof *m->in_io);
    m->out_io = calloc((size_t)b->n_io + 1, sizeof *m->out_io);
    if (!m->in_io || !m->out_io) {
        kiln_bundle_model_free(m);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; i < b->n_io; i++) {
        if (b->io[i].is_output) m->out_io[m->n_out++] = i;
        else m->in_io[m->n_in++] = i;
    }
#ifndef KILN_HAVE_CUDA
    kiln_bundle_model_free(m);
    return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s: cannot run a bundle: kiln was built without CUDA (KILN_CUDA=OFF)",
                       what);
#else
    kiln_status st = kiln_cuda_device_open(opts ? opts->device : 0, &m->dev);
    if (st != KILN_OK) {
        kiln_bundle_model_free(m);
        return kiln_error_prefix(st, "%s: cannot run the bundle", what);
    }
    m->cu = m->dev.drv;
    st = load_modules(m, opts);
    if (st == KILN_OK && b->weight_bytes) {
        /* weights once per model, shared by every context */
        st = kiln_cuda_check(m->cu, m->cu->mem_alloc(&m->weights, b->weight_bytes), "cuMemAlloc (weights)");
        if (st == KILN_OK)
            st = kiln_cuda_check(m->cu, m->cu->memcpy_htod(m->weights, b->weight_data, b->weight_bytes),
                                 "cuMemcpyHtoD (weights)");
    }
    if (st != KILN_OK) {
        kiln_status s2 = kiln_error_prefix(st, "%s", what);
        kiln_bundle_model_free(m);
        return s2;
    }
    *out = m;
    return KILN_OK;
#endif
}

kiln_status kiln_bundle_model_open(const char *path, const kiln_bundle_model_options *opts, kiln_bundle_model **out) {
    if (!path || !out) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_bundle_model_open: NULL argument");
    *out = NULL;
    kiln_bundle *b = NULL;
    kiln_status st = kiln_bundle_read(path, &b);
    if (st != KILN_OK) return st;
    return model_from_bundle(b, path, opts, out);
}

kiln_status kiln_bundle_model_open_bytes(const void *data, size_t len, const kiln_bundle_model_options *opts,
                                         kiln_bundle_model **out) {
    if (!data || !out) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_bundle_model_open_bytes: NULL argument");
    *out = NULL;
    kiln_bundle *b = NULL;
    kiln_status st = kiln_bundle_read_bytes(data, len, "bundle", &b);
    if (st != KILN_OK) return st;
    return model_from_bundle(b, "bundle", opts, out);
}

/* ------------------------------------------------------------------------- context -- */

typedef struct binding {
    const void *ptr;
    kiln_mem_kind mem;
    bool bound;
    uint64_t nbytes, staging_off;
} binding;

/* A launch argument whose value is only known at run time (a bound input or output). */
typedef struct patch {
    size_t at; /* byte offset into argbuf */
    bool output;
    int index;
} patch;

struct kiln_exec_context {
    const kiln_bundle_model *m;
    unsigned flags;
    binding *in, *out;
    uint8_t *argbuf;  /* every launch's argument values, 16-byte slots */
    void **params;    /* per launch, n_args pointers into argbuf */
    size_t *param_at; /* launch -> first entry in params */
    patch *patches;
    int n_patches;
    int64_t runs, replays;
#ifdef KILN_HAVE_CUDA
    CUdeviceptr arena_alloc, arena, staging;
    uint64_t arena_alloc_bytes, staging_bytes;
    CUdeviceptr sync; /* KILN_ARG_SYNC regions, zeroed once */
    CUstream own;
    CUgraph graph;
    CUgraphExec exec;
    CUdeviceptr *captured; /* the I/O pointers baked into exec */
    /* multi-stream execution (kiln_exec_context_set_streams): streams[0] is unused (the run's
     * stream), streams[1..] the context's own; one event per layer others wait for */
    CUstream streams[KILN_MAX_STREAMS];
    CUevent fork, join[KILN_MAX_STREAMS];
    CUevent *layer_events;
#endif
    int n_streams; /* asked for; plan.n_streams are used */
    kiln_stream_plan plan;
    uint8_t *host_scratch; /* run_layers: host copies of a layer's values */
    size_t host_scratch_bytes;
};

int64_t kiln_exec_context_runs(const kiln_exec_context *ctx, int64_t *graph_replays) {
    if (graph_replays) *graph_replays = ctx ? ctx->replays : 0;
    return ctx ? ctx->runs : 0;
}

uint64_t kiln_exec_context_device_bytes(const kiln_exec_context *ctx) {
#ifdef KILN_HAVE_CUDA
    return ctx ? ctx->arena_alloc_bytes + ctx->staging_bytes : 0;
#else
    (void)ctx;
    return 0;
#endif
}

#ifdef KILN_HAVE_CUDA
/* Streams and events of the multi-stream plan (the context must be current). */
static void free_streams(kiln_exec_context *ctx) {
    const kiln_cuda_driver *cu = ctx->m->cu;
    for (int t = 0; t < KILN_MAX_STREAMS; t++) {
        if (ctx->streams[t]) {
            cu->stream_synchronize(ctx->streams[t]);
            cu->stream_destroy(ctx->streams[t]);
        }
        if (ctx->join[t]) cu->event_destroy(ctx->join[t]);
        ctx->streams[t] = NULL;
        ctx->join[t] = NULL;
    }
    if (ctx->fork) cu->event_destroy(ctx->fork);
    ctx->fork = NULL;
    for (int l = 0; ctx->layer_events && l < ctx->plan.n_layers; l++)
        if (ctx->layer_events[l]) cu->event_destroy(ctx->layer_events[l]);
    free(ctx->layer_events);
    ctx->layer_events = NULL;
}
#endif

void kiln_exec_context_free(kiln_exec_context *ctx) {
    if (!ctx) return;
#ifdef KILN_HAVE_CUDA
    const kiln_cuda_driver *cu = ctx->m->cu;
    if (cu) {
        cu->ctx_set_current(ctx->m->dev.ctx);
        free_streams(ctx);
        if (ctx->exec) cu->graph_exec_destroy(ctx->exec);
        if (ctx->graph) cu->graph_destroy(ctx->graph);
        if (ctx->own) {
            cu->stream_synchronize(ctx->own);
            cu->stream_destroy(ctx->own);
        }
        if (ctx->arena_alloc) cu->mem_free(ctx->arena_alloc);
        if (ctx->staging) cu->mem_free(ctx->staging);
        if (ctx->sync) cu->mem_free(ctx->sync);
    }
    free(ctx->captured);
#endif
    free(ctx->in);
    free(ctx->out);
    free(ctx->argbuf);
    free(ctx->params);
    free(ctx->param_at);
    free(ctx->patches);
    free(ctx->host_scratch);
    kiln_stream_plan_free(&ctx->plan);
    free(ctx);
}

#ifdef KILN_HAVE_CUDA
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }
/* argument slots are 16-byte aligned, tensor maps 64 (CUtensorMap's alignment) */
static size_t slot_bytes(const kiln_bundle_arg *a) { return a->kind == KILN_ARG_TMAP ? 128 + 64 : round16(a->size); }

/* The L2 promotion of a map's loads: 128 bytes unless KILN_TMAP_L2_IM2COL / KILN_TMAP_L2_TILED (0, 64, 128 or
 * 256) say otherwise, a developer's switch for memory experiments (docs/runtime.md). */
static CUtensorMapL2promotion tmap_l2_promotion(bool im2col) {
    const char *e = getenv(im2col ? "KILN_TMAP_L2_IM2COL" : "KILN_TMAP_L2_TILED");
    int v = e ? atoi(e) : 128;
    return v == 0 ? CU_TENSOR_MAP_L2_PROMOTION_NONE
           : v == 64 ? CU_TENSOR_MAP_L2_PROMOTION_L2_64B
           : v == 256 ? CU_TENSOR_MAP_L2_PROMOTION_L2_256B
                      : CU_TENSOR_MAP_L2_PROMOTION_L2_128B;
}

/* A KILN_ARG_TMAP argument: the tensor map of descriptor d over this context's arena or the
 * weights, into out (128 bytes). Before compute capability 9.0 no kernel can use a tensor map (the
 * kernels that take one run a fallback that ignores it there): zeros. */
static kiln_status encode_tmap(kiln_exec_context *ctx, const kiln_tmap_desc *d, int launch, uint32_t arg, uint8_t *out) {
    const kiln_cuda_driver *cu = ctx->m->cu;
    memset(out, 0, KILN_TMAP_BYTES);
    if (ctx->m->dev.cc_major < 9) return KILN_OK;
    CUtensorMap map;
    memset(&map, 0, sizeof map);
    void *addr = (void *)(uintptr_t)((d->base == KILN_ARG_ARENA ? (uint64_t)ctx->arena : (uint64_t)ctx->m->weights) + d->offset);
    cuuint64_t dims[5], strides[4];
    cuuint32_t box[5], es[5];
    int lo[3], hi[3];
    for (int i = 0; i < 5; i++) dims[i] = d->dims[i], box[i] = d->box[i], es[i] = d->estrides[i];
    for (int i = 0; i < 4; i++) strides[i] = d->strides[i + 1]; /* the driver takes dims 1..rank-1 */
    for (int i = 0; i < 3; i++) lo[i] = d->lower[i], hi[i] = d->upper[i];
    CUresult r;
    const char *fn;
    if (d->mode == KILN_TMAP_TILED) {
        fn = "cuTensorMapEncodeTiled";
        r = cu->tensor_map_encode_tiled(&map, (CUtensorMapDataType)d->dtype, d->rank, addr, dims, strides, box, es,
                                        CU_TENSOR_MAP_INTERLEAVE_NONE, (CUtensorMapSwizzle)d->swizzle,
                                        tmap_l2_promotion(false), CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    } else {
        fn = "cuTensorMapEncodeIm2col";
        r = cu->tensor_map_encode_im2col(&map, (CUtensorMapDataType)d->dtype, d->rank, addr, dims, strides, lo, hi,
                                         box[0], box[1], es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                         (CUtensorMapSwizzle)d->swizzle, tmap_l2_promotion(true),
                                         CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    }
    if (r != CUDA_SUCCESS) {
        kiln_cuda_check(cu, r, fn);
        return kiln_errorf(KILN_ERR_INVALID_ARG, "launch %d, argument %u: the bundle's tensor map was refused: %s", launch,
                           arg, kiln_last_error());
    }
    _Static_assert(sizeof(CUtensorMap) == KILN_TMAP_BYTES, "CUtensorMap size");
    memcpy(out, &map, KILN_TMAP_BYTES);
    return KILN_OK;
}

/* Lay out every launch's arguments once: pointers into the arena and weights are final now;
 * input/output pointers are patched in at each run. */
static kiln_status build_args(kiln_exec_context *ctx) {
    const kiln_bundle *b = ctx->m->b;
    size_t bytes = 0, n_params = 0, n_patch = 0;
    for (int l = 0; l < b->n_launches; l++)
        for (uint32_t a = 0; a < b->launches[l].n_args; a++) {
            bytes += slot_bytes(&b->launches[l].args[a]);
            n_params++;
            kiln_arg_kind k = b->launches[l].args[a].kind;
            n_patch += k == KILN_ARG_INPUT || k == KILN_ARG_OUTPUT;
        }
    ctx->argbuf = calloc(bytes + 16, 1);
    ctx->params = calloc(n_params + 1, sizeof *ctx->params);
    ctx->param_at = calloc((size_t)b->n_launches + 1, sizeof *ctx->param_at);
    ctx->patches = calloc(n_patch + 1, sizeof *ctx->patches);
    if (!ctx->argbuf || !ctx->params || !ctx->param_at || !ctx->patches)
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    size_t at = 0, p = 0;
    for (int l = 0; l < b->n_launches; l++) {
        const kiln_bundle_launch *la = &b->launches[l];
        ctx->param_at[l] = p;
        for (uint32_t a = 0; a < la->n_args; a++) {
            const kiln_bundle_arg *arg = &la->args[a];
            uint8_t *slot = ctx->argbuf + at;
            if (arg->kind == KILN_ARG_TMAP) slot += (64 - ((uintptr_t)slot & 63)) & 63;
            uint64_t v = 0;
            switch (arg->kind) {
            case KILN_ARG_ARENA: v = (uint64_t)ctx->arena + arg->value; break;
            case KILN_ARG_WEIGHT: v = (uint64_t)ctx->m->weights + arg->value; break;
            case KILN_ARG_SYNC: v = (uint64_t)ctx->sync + arg->value * KILN_SYNC_REGION_BYTES; break;
            case KILN_ARG_INPUT:
            case KILN_ARG_OUTPUT:
                ctx->patches[ctx->n_patches++] = (patch){at, arg->kind == KILN_ARG_OUTPUT, (int)arg->value};
                break;
            case KILN_ARG_SCALAR: v = arg->value; break;
            case KILN_ARG_BYTES: memcpy(slot, b->const_pool + arg->value, arg->size); break;
            case KILN_ARG_TMAP: {
                kiln_tmap_desc d;
                kiln_tmap_desc_get(b->const_pool + arg->value, &d);
                kiln_status st = encode_tmap(ctx, &d, l, a, slot);
                if (st) return st;
                break;
            }
            }
            /* little-endian: the low `size` bytes of v are the value (pointers are 8) */
            if (arg->kind != KILN_ARG_BYTES && arg->kind != KILN_ARG_TMAP) memcpy(slot, &v, arg->size);
            ctx->params[p++] = slot;
            at += slot_bytes(arg);
        }
    }
    return KILN_OK;
}
#endif

kiln_status kiln_exec_context_new(const kiln_bundle_model *m, unsigned flags, kiln_exec_context **out) {
    if (!m || !out) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_exec_context_new: NULL argument");
    *out = NULL;
#ifndef KILN_HAVE_CUDA
    (void)flags;
    return kiln_errorf(KILN_ERR_UNSUPPORTED, "kiln was built without CUDA");
#else
    kiln_exec_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    ctx->m = m;
    ctx->flags = flags;
    ctx->n_streams = 1;
    ctx->in = calloc((size_t)m->n_in + 1, sizeof *ctx->in);
    ctx->out = calloc((size_t)m->n_out + 1, sizeof *ctx->out);
    ctx->captured = calloc((size_t)(m->n_in + m->n_out) + 1, sizeof *ctx->captured);
    kiln_status st = KILN_OK;
    if (!ctx->in || !ctx->out || !ctx->captured) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    const kiln_cuda_driver *cu = m->cu;
    if (st == KILN_OK) st = kiln_cuda_check(cu, cu->ctx_set_current(m->dev.ctx), "cuCtxSetCurrent");
    /* One arena; cuMemAlloc aligns to 256 bytes, so a larger arena_align needs slack. */
    uint64_t align = m->b->arena_align ? m->b->arena_align : 1;
    if (st == KILN_OK && m->b->arena_bytes) {
        ctx->arena_alloc_bytes = m->b->arena_bytes + (align > 256 ? align : 0);
        st = kiln_cuda_check(cu, cu->mem_alloc(&ctx->arena_alloc, ctx->arena_alloc_bytes), "cuMemAlloc (arena)");
        if (st == KILN_OK) ctx->arena = (ctx->arena_alloc + align - 1) & ~(CUdeviceptr)(align - 1);
        else ctx->arena_alloc_bytes = 0;
    }
    /* Staging for host-bound I/O: every input and output at a 256-byte aligned offset. */
    uint64_t staging = 0;
    for (int i = 0; i < m->n_in + m->n_out; i++) {
        binding *bd = i < m->n_in ? &ctx->in[i] : &ctx->out[i - m->n_in];
        bd->nbytes = io_nbytes(&m->b->io[i < m->n_in ? m->in_io[i] : m->out_io[i - m->n_in]]);
        bd->staging_off = staging;
        staging += (bd->nbytes + 255) & ~(uint64_t)255;
    }
    if (st == KILN_OK && staging) {
        st = kiln_cuda_check(cu, cu->mem_alloc(&ctx->staging, staging), "cuMemAlloc (I/O staging)");
        if (st == KILN_OK) ctx->staging_bytes = staging;
    }
    /* the sync regions the launches name (KILN_ARG_SYNC), zeroed: their kernels leave them so */
    uint64_t n_sync = 0;
    for (int l = 0; l < m->b->n_launches; l++)
        for (uint32_t a = 0; a < m->b->launches[l].n_args; a++)
            if (m->b->launches[l].args[a].kind == KILN_ARG_SYNC && m->b->launches[l].args[a].value >= n_sync)
                n_sync = m->b->launches[l].args[a].value + 1;
    if (st == KILN_OK && n_sync) {
        st = kiln_cuda_check(cu, cu->mem_alloc(&ctx->sync, n_sync * KILN_SYNC_REGION_BYTES), "cuMemAlloc (sync flags)");
        if (st == KILN_OK)
            st = kiln_cuda_check(cu, cu->memset_d8_async(ctx->sync, 0, n_sync * KILN_SYNC_REGION_BYTES, NULL),
                                 "cuMemsetD8Async (sync flags)");
        if (st == KILN_OK) st = kiln_cuda_check(cu, cu->stream_synchronize(NULL), "cuStreamSynchronize");
    }
    if (st == KILN_OK) st = build_args(ctx);
    if (st != KILN_OK) {
        kiln_exec_context_free(ctx);
        return st;
    }
    *out = ctx;
    return KILN_OK;
#endif
}

static kiln_status bind(kiln_exec_context *ctx, bool output, int i, const void *ptr, kiln_dtype dt, int rank,
                        const int64_t *dims, kiln_mem_kind mem) {
    const char *what = output ? "output" : "input";
    if (!ctx) return kiln_errorf(KILN_ERR_INVALID_ARG, "bind %s: NULL context", what);
    const kiln_bundle_model *m = ctx->m;
    int n = output ? m->n_out : m->n_in;
    if (i < 0 || i >= n) return kiln_errorf(KILN_ERR_INVALID_ARG, "%s %d does not exist (the model has %d)", what, i, n);
    const kiln_bundle_io *io = &m->b->io[output ? m->out_io[i] : m->in_io[i]];
    if (mem != KILN_MEM_HOST && mem != KILN_MEM_DEVICE)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "%s '%s': unknown memory kind %d", what, io->name, (int)mem);
    bool same = dt == io->dtype && rank == io->rank && (rank == 0 || dims);
    for (int d = 0; same && d < rank; d++) same = dims[d] == io->dims[d];
    if (!same) {
        char want[256], got[256];
        format_shape(io->dtype, io->rank, io->dims, want, sizeof want);
        if (rank < 0 || rank > KILN_MAX_RANK || (rank > 0 && !dims)) snprintf(got, sizeof got, "rank %d", rank);
        else format_shape(dt, rank, dims, got, sizeof got);
        return kiln_errorf(KILN_ERR_SHAPE, "%s '%s': the bundle was built for %s, got %s", what, io->name, want, got);
    }
    binding *bd = output ? &ctx->out[i] : &ctx->in[i];
    if (!ptr && bd->nbytes)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "%s '%s': NULL pointer", what, io->name);
    /* kernels read and write graph inputs and outputs in vectors of up to 32 bytes */
    if (mem == KILN_MEM_DEVICE && ((uintptr_t)ptr % 32))
        return kiln_errorf(KILN_ERR_INVALID_ARG, "%s '%s': device pointer %p is not 32-byte aligned (cudaMalloc gives 256)",
                           what, io->name, ptr);
    bd->ptr = ptr;
    bd->mem = mem;
    bd->bound = true;
    return KILN_OK;
}

kiln_status kiln_exec_context_bind_input(kiln_exec_context *ctx, int i, const void *ptr, kiln_dtype dt, int rank,
                                         const int64_t *dims, kiln_mem_kind mem) {
    return bind(ctx, false, i, ptr, dt, rank, dims, mem);
}
kiln_status kiln_exec_context_bind_output(kiln_exec_context *ctx, int i, void *ptr, kiln_dtype dt, int rank,
                                          const int64_t *dims, kiln_mem_kind mem) {
    return bind(ctx, true, i, ptr, dt, rank, dims, mem);
}
kiln_status kiln_exec_context_bind_input_tensor(kiln_exec_context *ctx, int i, const kiln_tensor *t) {
    if (!t) return kiln_errorf(KILN_ERR_INVALID_ARG, "bind input %d: NULL tensor", i);
    return bind(ctx, false, i, t->data, t->dtype, t->rank, t->dims, KILN_MEM_HOST);
}
kiln_status kiln_exec_context_bind_output_tensor(kiln_exec_context *ctx, int i, kiln_tensor *t) {
    if (!t) return kiln_errorf(KILN_ERR_INVALID_ARG, "bind output %d: NULL tensor", i);
    return bind(ctx, true, i, t->data, t->dtype, t->rank, t->dims, KILN_MEM_HOST);
}

#ifdef KILN_HAVE_CUDA
static CUdeviceptr device_ptr(const kiln_exec_context *ctx, const binding *bd) {
    return bd->mem == KILN_MEM_DEVICE ? (CUdeviceptr)(uintptr_t)bd->ptr : ctx->staging + bd->staging_off;
}

/* Launches [first, first + count) of the plan, in order, on s. With programmatic dependent
 * launch (m->pdl, kernels/kiln_common.cuh) a launch whose predecessor in s is one of our kernels
 * (every one after the first; the first when after_kernel) may start before that kernel has
 * finished: each kernel waits for it in griddepcontrol.wait. Only right after a kernel: after a
 * copy, an event record or an event wait the launch stays a plain one. */
static kiln_status launch_range(kiln_exec_context *ctx, CUstream s, int first, int count, bool after_kernel) {
    const kiln_bundle *b = ctx->m->b;
    const kiln_cuda_driver *cu = ctx->m->cu;
    const bool pdl = ctx->m->pdl && !(ctx->flags & KILN_EXEC_NO_PDL);
    for (int l = first; l < first + count; l++) {
        const kiln_bundle_launch *la = &b->launches[l];
        CUresult r;
        const char *call = "cuLaunchKernel";
        if (pdl && (l > first || after_kernel)) {
            CUlaunchAttribute at;
            memset(&at, 0, sizeof at);
            at.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
            at.value.programmaticStreamSerializationAllowed = 1;
            CUlaunchConfig lc;
            memset(&lc, 0, sizeof lc);
            lc.gridDimX = la->grid[0], lc.gridDimY = la->grid[1], lc.gridDimZ = la->grid[2];
            lc.blockDimX = la->block[0], lc.blockDimY = la->block[1], lc.blockDimZ = la->block[2];
            lc.sharedMemBytes = la->shared_bytes;
            lc.hStream = s;
            lc.attrs = &at;
            lc.numAttrs = 1;
            r = cu->launch_kernel_ex(&lc, ctx->m->funcs[la->kernel], ctx->params + ctx->param_at[l], NULL);
            call = "cuLaunchKernelEx";
        } else {
            r = cu->launch_kernel(ctx->m->funcs[la->kernel], la->grid[0], la->grid[1], la->grid[2], la->block[0],
                                  la->block[1], la->block[2], la->shared_bytes, s, ctx->params + ctx->param_at[l], NULL);
        }
        if (r != CUDA_SUCCESS)
            return kiln_error_prefix(kiln_cuda_check(cu, r, call), "launch %d (kernel %s, group %s)", l,
                                     b->kernels[la->kernel].function, b->kernels[la->kernel].group);
    }
    return KILN_OK;
}

/* Every launch of the plan. One stream: in order on s. Several (the plan of
 * kiln_exec_context_set_streams): stream 0 is s; the others are forked from s by an event,
 * wait for their layers' cross-stream dependencies on the layers' events and are joined back
 * into s at the end, so that a capture on s records the branches as parallel graph nodes. */
static kiln_status launch_all(kiln_exec_context *ctx, CUstream s) {
    const kiln_bundle *b = ctx->m->b;
    const kiln_cuda_driver *cu = ctx->m->cu;
    const kiln_stream_plan *p = &ctx->plan;
    if (ctx->n_streams <= 1 || p->n_streams <= 1) return launch_range(ctx, s, 0, b->n_launches, false);
    CUstream st[KILN_MAX_STREAMS];
    st[0] = s;
    for (int t = 1; t < p->n_streams; t++) st[t] = ctx->streams[t];
    KILN_CU_TRY(cu, cuEventRecord, cu->event_record(ctx->fork, s));
    for (int t = 1; t < p->n_streams; t++) KILN_CU_TRY(cu, cuStreamWaitEvent, cu->stream_wait_event(st[t], ctx->fork, 0));
    kiln_status res = KILN_OK;
    bool after_kernel[KILN_MAX_STREAMS] = {false}; /* the stream's last operation is one of our launches */
    for (int l = 0; l < p->n_layers && res == KILN_OK; l++) {
        CUstream ls = st[p->stream[l]];
        for (int k = p->wait_at[l]; k < p->wait_at[l + 1] && res == KILN_OK; k++) {
            res = kiln_cuda_check(cu, cu->stream_wait_event(ls, ctx->layer_events[p->waits[k]], 0), "cuStreamWaitEvent");
            after_kernel[p->stream[l]] = false;
        }
        if (res == KILN_OK)
            res = launch_range(ctx, ls, (int)b->layers[l].first_launch, (int)b->layers[l].n_launches,
                               after_kernel[p->stream[l]]);
        after_kernel[p->stream[l]] = b->layers[l].n_launches > 0 || after_kernel[p->stream[l]];
        if (res == KILN_OK && p->signal[l]) {
            res = kiln_cuda_check(cu, cu->event_record(ctx->layer_events[l], ls), "cuEventRecord");
            after_kernel[p->stream[l]] = false;
        }
    }
    /* join even after a failure, so that a capture on s can end cleanly */
    for (int t = 1; t < p->n_streams; t++) {
        kiln_status j = kiln_cuda_check(cu, cu->event_record(ctx->join[t], st[t]), "cuEventRecord");
        if (j == KILN_OK) j = kiln_cuda_check(cu, cu->stream_wait_event(s, ctx->join[t], 0), "cuStreamWaitEvent");
        if (res == KILN_OK) res = j;
    }
    return res;
}

static void drop_graph(kiln_exec_context *ctx) {
    const kiln_cuda_driver *cu = ctx->m->cu;
    if (ctx->exec) cu->graph_exec_destroy(ctx->exec);
    if (ctx->graph) cu->graph_destroy(ctx->graph);
    ctx->exec = NULL;
    ctx->graph = NULL;
}

static kiln_status capture(kiln_exec_context *ctx, CUstream s) {
    const kiln_cuda_driver *cu = ctx->m->cu;
    drop_graph(ctx);
    KILN_CU_TRY(cu, cuStreamBeginCapture, cu->stream_begin_capture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    kiln_status st = launch_all(ctx, s);
    CUgraph g = NULL;
    /* always end the capture, so that the stream is usable again after a failure */
    kiln_status st2 = kiln_cuda_check(cu, cu->stream_end_capture(s, &g), "cuStreamEndCapture");
    if (st == KILN_OK) st = st2;
    if (st != KILN_OK) {
        if (g) cu->graph_destroy(g);
        return kiln_error_prefix(st, "capturing the CUDA graph");
    }
    ctx->graph = g;
    st = kiln_cuda_check(cu, cu->graph_instantiate(&ctx->exec, g, 0), "cuGraphInstantiateWithFlags");
    if (st != KILN_OK) {
        ctx->exec = NULL;
        drop_graph(ctx);
        return st;
    }
    return KILN_OK;
}
#endif

#ifdef KILN_HAVE_CUDA
/* The per-layer debug run: layer by layer on s, synchronizing after each and telling cb. */
static kiln_status run_layers_on(kiln_exec_context *ctx, CUstream s, int copy, kiln_layer_callback cb, void *user) {
    const kiln_bundle *b = ctx->m->b;
    const kiln_cuda_driver *cu = ctx->m->cu;
    kiln_layer_value vals[KILN_BUNDLE_MAX_LAYER_VALUES];
    for (int l = 0; l < b->n_layers; l++) {
        const kiln_bundle_layer *ly = &b->layers[l];
        kiln_status st = launch_range(ctx, s, (int)ly->first_launch, (int)ly->n_launches, false);
        if (st == KILN_OK) st = kiln_cuda_check(cu, cu->stream_synchronize(s), "cuStreamSynchronize");
        if (st != KILN_OK) return kiln_error_prefix(st, "layer %d '%s'", l, ly->name);
        size_t total = 0;
        for (int v = 0; v < ly->n_values; v++) {
            const kiln_bundle_layer_value *e = &ly->values[v];
            uint64_t bytes = kiln_dtype_size(e->dtype);
            for (int d = 0; d < e->rank; d++) bytes *= (uint64_t)e->dims[d];
            CUdeviceptr at = e->where == KILN_ARG_ARENA ? ctx->arena + e->at
                             : e->where == KILN_ARG_INPUT ? device_ptr(ctx, &ctx->in[e->at])
                                                          : device_ptr(ctx, &ctx->out[e->at]);
            vals[v] = (kiln_layer_value){e->name, e->dtype, e->rank, e->dims, (uint64_t)at, NULL, (size_t)bytes};
            total += (bytes + 63) & ~(uint64_t)63;
        }
        if (copy && total > ctx->host_scratch_bytes) {
            uint8_t *h = realloc(ctx->host_scratch, total);
            if (!h) return kiln_errorf(KILN_ERR_OOM, "out of memory (%zu bytes for layer '%s')", total, ly->name);
            ctx->host_scratch = h;
            ctx->host_scratch_bytes = total;
        }
        size_t off = 0;
        for (int v = 0; copy && v < ly->n_values; v++) {
            vals[v].host = ctx->host_scratch + off;
            if (vals[v].nbytes)
                KILN_CU_TRY(cu, cuMemcpyDtoH,
                            cu->memcpy_dtoh(ctx->host_scratch + off, (CUdeviceptr)vals[v].device_ptr, vals[v].nbytes));
            off += (vals[v].nbytes + 63) & ~(size_t)63;
        }
        kiln_layer_info info = {l, ly->name, ly->op, (int)ly->first_launch, (int)ly->n_launches, ly->n_values, vals};
        if (cb && cb(user, &info)) return KILN_OK; /* the caller stops the run */
    }
    return KILN_OK;
}
#endif

#ifdef KILN_HAVE_CUDA
/* The profile run: layer by layer on s (no graph, no synchronization between layers), a CUDA
 * event before and after each layer; layer_ms[l] = the time between layer l's two events. Each
 * includes the gap before the layer's first launch (~2-3 us on an H100: ResNet-50 b32's 54
 * layers summed 1.12 ms against a 0.95 ms graph replay). repeat (may be NULL): layer l runs
 * repeat[l] times back to back between its events and layer_ms[l] is the mean, which spreads
 * that gap over the launches. (Queuing the layers behind a stream wait first, so that the host's
 * launch rate could not pace the GPU, changed nothing measurable on an H100 at batch 1 or 32.) */
static int reps(const int *repeat, int l) { return repeat && repeat[l] > 1 ? repeat[l] : 1; }
static kiln_status profile_on(kiln_exec_context *ctx, CUstream s, float *layer_ms, const int *repeat) {
    const kiln_bundle *b = ctx->m->b;
    const kiln_cuda_driver *cu = ctx->m->cu;
    int n = b->n_layers;
    CUevent *ev = calloc(2 * (size_t)n + 1, sizeof *ev);
    if (!ev) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_status st = KILN_OK;
    int made = 0;
    for (; made < 2 * n && st == KILN_OK; made++)
        st = kiln_cuda_check(cu, cu->event_create(&ev[made], 0), "cuEventCreate");
    if (st != KILN_OK) made--; /* the failed one holds nothing */
    for (int l = 0; l < n && st == KILN_OK; l++) {
        st = kiln_cuda_check(cu, cu->event_record(ev[2 * l], s), "cuEventRecord");
        /* a repeat follows its own launches the way the layer follows its predecessor in a run:
         * programmatically where the run launches it so (every layer after the first kernel) */
        for (int k = 0; k < reps(repeat, l) && st == KILN_OK; k++)
            st = launch_range(ctx, s, (int)b->layers[l].first_launch, (int)b->layers[l].n_launches,
                              k > 0 && b->layers[l].first_launch > 0);
        if (st == KILN_OK) st = kiln_cuda_check(cu, cu->event_record(ev[2 * l + 1], s), "cuEventRecord");
    }
    if (st == KILN_OK && n > 0) st = kiln_cuda_check(cu, cu->event_synchronize(ev[2 * n - 1]), "cuEventSynchronize");
    for (int l = 0; l < n && st == KILN_OK; l++) {
        st = kiln_cuda_check(cu, cu->event_elapsed_time(&layer_ms[l], ev[2 * l], ev[2 * l + 1]), "cuEventElapsedTime");
        layer_ms[l] /= (float)reps(repeat, l);
    }
    for (int k = 0; k < made; k++) cu->event_destroy(ev[k]);
    free(ev);
    return st;
}
#endif

static kiln_status run_impl(kiln_exec_context *ctx, void *stream, bool debug, int copy, kiln_layer_callback cb,
                            void *user, float *layer_ms, const int *repeat) {
    if (!ctx) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_exec_context_run: NULL context");
    const kiln_bundle_model *m = ctx->m;
    for (int i = 0; i < m->n_in; i++)
        if (!ctx->in[i].bound)
            return kiln_errorf(KILN_ERR_INVALID_ARG, "input %d '%s' is not bound", i, m->b->io[m->in_io[i]].name);
    for (int i = 0; i < m->n_out; i++)
        if (!ctx->out[i].bound)
            return kiln_errorf(KILN_ERR_INVALID_ARG, "output %d '%s' is not bound", i, m->b->io[m->out_io[i]].name);
#ifndef KILN_HAVE_CUDA
    (void)stream;
    (void)debug;
    (void)copy;
    (void)cb;
    (void)user;
    (void)layer_ms;
    (void)repeat;
    return kiln_errorf(KILN_ERR_UNSUPPORTED, "kiln was built without CUDA");
#else
    const kiln_cuda_driver *cu = m->cu;
    if (debug && !m->b->n_layers && m->b->n_launches)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "the bundle has no layer table (built by an older kiln): rebuild it");
    KILN_CU_TRY(cu, cuCtxSetCurrent, cu->ctx_set_current(m->dev.ctx));
    CUstream s = (CUstream)stream;
    bool wait = false;
    if (!s) {
        /* the legacy default stream cannot be captured: use a stream of our own */
        if (!ctx->own) KILN_CU_TRY(cu, cuStreamCreate, cu->stream_create(&ctx->own, CU_STREAM_NON_BLOCKING));
        s = ctx->own;
        wait = true;
    }
    /* resolve the I/O pointers and patch them into the arguments */
    bool changed = false;
    for (int i = 0; i < m->n_in + m->n_out; i++) {
        const binding *bd = i < m->n_in ? &ctx->in[i] : &ctx->out[i - m->n_in];
        CUdeviceptr p = device_ptr(ctx, bd);
        if (p != ctx->captured[i]) changed = true;
        ctx->captured[i] = p;
    }
    for (int k = 0; k < ctx->n_patches; k++) {
        const patch *pt = &ctx->patches[k];
        CUdeviceptr p = device_ptr(ctx, pt->output ? &ctx->out[pt->index] : &ctx->in[pt->index]);
        uint64_t v = (uint64_t)p;
        memcpy(ctx->argbuf + pt->at, &v, sizeof v);
    }
    if (ctx->flags & KILN_EXEC_POISON) {
        if (ctx->arena_alloc)
            KILN_CU_TRY(cu, cuMemsetD8Async, cu->memset_d8_async(ctx->arena_alloc, 0xff, ctx->arena_alloc_bytes, s));
        for (int i = 0; i < m->n_out; i++)
            if (ctx->out[i].mem == KILN_MEM_HOST && ctx->out[i].nbytes)
                KILN_CU_TRY(cu, cuMemsetD8Async,
                            cu->memset_d8_async(device_ptr(ctx, &ctx->out[i]), 0xff, ctx->out[i].nbytes, s));
    }
    for (int i = 0; i < m->n_in; i++) {
        const binding *bd = &ctx->in[i];
        if (bd->mem == KILN_MEM_HOST && bd->nbytes)
            KILN_CU_TRY(cu, cuMemcpyHtoDAsync, cu->memcpy_htod_async(device_ptr(ctx, bd), bd->ptr, bd->nbytes, s));
    }
    kiln_status st;
    bool use_graph = !debug && !(ctx->flags & KILN_EXEC_NO_GRAPH) && ctx->runs >= 1 && m->b->n_launches > 0;
    if (layer_ms) {
        st = profile_on(ctx, s, layer_ms, repeat);
        if (changed) drop_graph(ctx);
    } else if (debug) {
        st = run_layers_on(ctx, s, copy, cb, user);
        if (changed) drop_graph(ctx);
    } else if (use_graph) {
        /* the graph bakes the argument values in: capture again when a pointer changed */
        st = (!ctx->exec || changed) ? capture(ctx, s) : KILN_OK;
        if (st == KILN_OK) st = kiln_cuda_check(cu, cu->graph_launch(ctx->exec, s), "cuGraphLaunch");
        if (st == KILN_OK) ctx->replays++;
    } else {
        st = launch_all(ctx, s);
        if (changed) drop_graph(ctx);
    }
    if (st != KILN_OK) return st;
    for (int i = 0; i < m->n_out; i++) {
        const binding *bd = &ctx->out[i];
        if (bd->mem != KILN_MEM_HOST) continue;
        wait = true;
        if (bd->nbytes)
            KILN_CU_TRY(cu, cuMemcpyDtoHAsync,
                        cu->memcpy_dtoh_async((void *)bd->ptr, device_ptr(ctx, bd), bd->nbytes, s));
    }
    if (wait) {
        st = kiln_cuda_check(cu, cu->stream_synchronize(s), "cuStreamSynchronize");
        if (st != KILN_OK) return kiln_error_prefix(st, "running the bundle");
    }
    ctx->runs++;
    return KILN_OK;
#endif
}

kiln_status kiln_exec_context_run(kiln_exec_context *ctx, void *stream) {
    return run_impl(ctx, stream, false, 0, NULL, NULL, NULL, NULL);
}

kiln_status kiln_exec_context_profile_repeat(kiln_exec_context *ctx, void *stream, float *layer_ms, const int *repeat) {
    if (!layer_ms) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_exec_context_profile: NULL layer_ms");
    if (ctx && !ctx->m->b->n_layers && ctx->m->b->n_launches)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "the bundle has no layer table (built by an older kiln): rebuild it");
    for (int l = 0; ctx && repeat && l < ctx->m->b->n_layers; l++)
        if (repeat[l] < 1 || repeat[l] > 1000)
            return kiln_errorf(KILN_ERR_INVALID_ARG, "profile: layer %d repeat %d is not in 1..1000", l, repeat[l]);
    return run_impl(ctx, stream, true, 0, NULL, NULL, layer_ms, repeat);
}

kiln_status kiln_exec_context_profile(kiln_exec_context *ctx, void *stream, float *layer_ms) {
    return kiln_exec_context_profile_repeat(ctx, stream, layer_ms, NULL);
}

kiln_status kiln_exec_context_run_layers(kiln_exec_context *ctx, void *stream, int copy_to_host,
                                         kiln_layer_callback cb, void *user) {
    return run_impl(ctx, stream, true, copy_to_host, cb, user, NULL, NULL);
}

kiln_status kiln_exec_context_set_streams(kiln_exec_context *ctx, int n_streams) {
    if (!ctx) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_exec_context_set_streams: NULL context");
    if (n_streams < 1 || n_streams > KILN_MAX_STREAMS)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "streams: %d is not in 1..%d", n_streams, KILN_MAX_STREAMS);
    const kiln_bundle *b = ctx->m->b;
    if (n_streams > 1 && !b->n_layers && b->n_launches)
        return kiln_errorf(KILN_ERR_UNSUPPORTED,
                           "streams: the bundle has no layer table with dependencies (built by an older kiln): rebuild it");
#ifndef KILN_HAVE_CUDA
    return kiln_errorf(KILN_ERR_UNSUPPORTED, "kiln was built without CUDA");
#else
    const kiln_cuda_driver *cu = ctx->m->cu;
    KILN_CU_TRY(cu, cuCtxSetCurrent, cu->ctx_set_current(ctx->m->dev.ctx));
    drop_graph(ctx); /* the next run captures the new launch order */
    free_streams(ctx);
    kiln_stream_plan_free(&ctx->plan);
    ctx->n_streams = 1;
    if (n_streams == 1) return KILN_OK;
    kiln_status st = kiln_stream_plan_init(&ctx->plan, b, n_streams);
    if (st == KILN_OK && !(ctx->layer_events = calloc((size_t)b->n_layers + 1, sizeof *ctx->layer_events)))
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    if (st == KILN_OK) st = kiln_cuda_check(cu, cu->event_create(&ctx->fork, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    for (int t = 1; st == KILN_OK && t < ctx->plan.n_streams; t++) {
        st = kiln_cuda_check(cu, cu->stream_create(&ctx->streams[t], CU_STREAM_NON_BLOCKING), "cuStreamCreate");
        if (st == KILN_OK) st = kiln_cuda_check(cu, cu->event_create(&ctx->join[t], CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    }
    for (int l = 0; st == KILN_OK && l < b->n_layers; l++)
        if (ctx->plan.signal[l])
            st = kiln_cuda_check(cu, cu->event_create(&ctx->layer_events[l], CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    if (st != KILN_OK) {
        free_streams(ctx);
        kiln_stream_plan_free(&ctx->plan);
        return st;
    }
    ctx->n_streams = n_streams;
    return KILN_OK;
#endif
}

int kiln_exec_context_streams_used(const kiln_exec_context *ctx) {
    return ctx && ctx->n_streams > 1 && ctx->plan.n_streams > 1 ? ctx->plan.n_streams : 1;
}
