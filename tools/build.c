/* build.c — `kiln build`: ONNX model -> optimized graph -> CUDA C -> NVRTC -> .kiln bundle. */
#include "cli.h"

#include "codegen/codegen.h"
#include "codegen/nvrtc.h"
#include "codegen/tune.h"
#include "runtime/cuda_driver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARCHS 8
#define MAX_SHAPES 16

static void usage(FILE *f) {
    fprintf(f,
            "usage: kiln build MODEL.onnx -o M.kiln [--precision fp32|tf32|fp16] [--arch LIST] [--shape NAME=DIMS]...\n"
            "                  [-O<n>] [--passes a,b] [--disable-pass X] [--emit-cuda DIR]\n"
            "                  [--autotune | --no-autotune] [--tuning-cache FILE] [--tile NAME]\n"
            "Compiles the model for the GPU into one bundle file (written atomically): the graph passes of\n"
            "`kiln optimize`, CUDA C for every kernel, NVRTC cubins for each architecture plus PTX of the\n"
            "newest, the launch plan, the weights, the memory plan and build metadata. No GPU is needed.\n"
            "  -o FILE            the bundle to write\n"
            "  --precision P      fp32 (FFMA), tf32 or fp16 (convolutions and matrix products on tensor\n"
            "                     cores with fp32 accumulation; fp16 also stores their weights as fp16)\n"
            "  --arch LIST        comma-separated sm_XX (default: this machine's GPU, else sm_90; an\n"
            "                     H100/H200 gets sm_90,sm_90a: sm_90a adds wgmma fp16 convolutions),\n"
            "                     e.g. sm_80,sm_86,sm_89,sm_90,sm_90a\n"
            "  --shape NAME=DIMS  fix the dims of input NAME, e.g. input=1x3x224x224 (needed for dynamic dims)\n"
            "  --emit-cuda DIR    also write the generated CUDA source to DIR/MODEL.cu\n"
            "  --autotune         time every candidate tile of every tunable kernel on this machine's GPU\n"
            "                     and keep the fastest (default when a GPU is present and KILN_AUTOTUNE\n"
            "                     is not 0; docs/tuning.md)\n"
            "  --no-autotune      use the per-architecture heuristic's tiles\n"
            "  --tuning-cache F   read and update the tuning cache F: kernels it answers for this GPU,\n"
            "                     compute capability, NVRTC and driver are not timed again\n"
            "  --tile NAME        every tunable kernel with candidate NAME uses it, e.g. 16x64x32/16x16\n"
            "                     (no autotuning; for tests and experiments)\n"
            "Builds are deterministic (same model, options and tuning cache: the same bytes); SOURCE_DATE_EPOCH\n"
            "(seconds) adds a 'created' metadata entry.\n");
}

static int fail(const char *what) { return kiln_cli_fail("build", what); }

/* "sm_86" for this machine's GPU ("sm_90,sm_90a" on compute capability 9.0) when a driver and
 * a device are there, else NULL. */
static const char *native_arch(char *buf, size_t len) {
#ifdef KILN_HAVE_CUDA
    const kiln_cuda_driver *cu;
    if (kiln_cuda_driver_get(&cu) != KILN_OK) return NULL;
    CUdevice dev;
    int major = 0, minor = 0;
    if (cu->device_get(&dev, 0) != CUDA_SUCCESS ||
        cu->device_get_attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev) != CUDA_SUCCESS ||
        cu->device_get_attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev) != CUDA_SUCCESS)
        return NULL;
    /* compute capability 9.0: also an sm_90a cubin (wgmma tiles, kernels/conv_wgmma.cuh), which
     * the runtime prefers on such a GPU; the sm_90 cubin and the PTX keep the bundle portable */
    if (major == 9 && minor == 0) snprintf(buf, len, "sm_90,sm_90a");
    else snprintf(buf, len, "sm_%d%d", major, minor);
    return buf;
#else
    (void)buf;
    (void)len;
    return NULL;
#endif
}

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Every pass runs for the GPU now: select-layout's NHWC regions (tf32/fp16 around tensor-core
 * convolutions; its cost model keeps fp32 NCHW) are what codegen emits, conversions included.
 * Kept as the one place a GPU build would adjust the pipeline (kiln compare replays it). */
void kiln_cli_gpu_pass_options(kiln_pipeline_opts *o, char *buf, size_t len) {
    (void)o;
    if (len) buf[0] = 0;
}

int kiln_cmd_build(int argc, char **argv) {
    const char *model = NULL, *out_path = NULL, *emit_dir = NULL, *arch_list = NULL, *cache_path = NULL;
    const char *force_tile = NULL;
    int autotune = -1; /* -1: when a GPU is present */
    const char *shape_specs[MAX_SHAPES];
    int n_shapes = 0;
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *err;
        int r = kiln_cli_pass_option(argc, argv, &i, &po, &err);
        if (r < 0) {
            fprintf(stderr, "kiln build: %s: %s\n", a, err);
            return 2;
        }
        if (r > 0) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--arch") && i + 1 < argc) {
            arch_list = argv[++i];
        } else if (!strcmp(a, "--autotune")) {
            autotune = 1;
        } else if (!strcmp(a, "--no-autotune")) {
            autotune = 0;
        } else if (!strcmp(a, "--tuning-cache") && i + 1 < argc) {
            cache_path = argv[++i];
        } else if (!strcmp(a, "--tile") && i + 1 < argc) {
            force_tile = argv[++i];
            autotune = 0;
        } else if (!strcmp(a, "--emit-cuda") && i + 1 < argc) {
            emit_dir = argv[++i];
        } else if (!strcmp(a, "--shape") && i + 1 < argc) {
            if (n_shapes == MAX_SHAPES) return fail("too many --shape options");
            shape_specs[n_shapes++] = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "kiln build: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!model) {
            model = a;
        } else {
            return fail("more than one model given");
        }
    }
    if (!model || !out_path) {
        usage(stderr);
        return 2;
    }
    if (po.ctx.precision == KILN_PREC_INT8) return fail("--precision: int8 is not implemented yet (fp32, tf32, fp16)");
    char disabled[512];
    kiln_cli_gpu_pass_options(&po, disabled, sizeof disabled);

    /* architectures */
    char arch_buf[256], native[16];
    const char *archs[MAX_ARCHS];
    int n_archs = 0;
    if (!arch_list) arch_list = native_arch(native, sizeof native);
    if (!arch_list) arch_list = "sm_90";
    snprintf(arch_buf, sizeof arch_buf, "%s", arch_list);
    for (char *save = NULL, *tok = strtok_r(arch_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int num;
        bool specific;
        if (kiln_nvrtc_parse_arch(tok, &num, &specific) || strncmp(tok, "sm_", 3)) {
            char msg[300];
            snprintf(msg, sizeof msg, "--arch: '%s' is not an architecture like sm_80 or sm_90", tok);
            return fail(msg);
        }
        if (n_archs == MAX_ARCHS) return fail("--arch: too many architectures");
        archs[n_archs++] = tok;
    }
    if (!n_archs) return fail("--arch: empty list");

    kiln_graph *g = NULL;
    kiln_bundle *b = NULL;
    char *cuda = NULL, *tune_meta = NULL, *costs = NULL;
    kiln_tune_log tlog;
    kiln_tune_log_init(&tlog);
    kiln_tune_cache cache;
    kiln_tune_cache_init(&cache);
    kiln_tune_device dev;
    memset(&dev, 0, sizeof dev);
    bool have_gpu = native_arch(native, sizeof native) != NULL;
    if (autotune < 0) { /* KILN_AUTOTUNE=0 makes the heuristic the default (test scripts that build many models) */
        const char *env = getenv("KILN_AUTOTUNE");
        autotune = env && !strcmp(env, "0") ? 0 : have_gpu;
    }
    if (autotune && !have_gpu) return fail("--autotune needs a GPU on this machine (use --no-autotune)");
    if (autotune && kiln_tune_device_query(&dev, 0)) return fail(kiln_last_error());
    uint8_t *bytes = NULL;
    int rc = 0;
    if (kiln_model_load(model, &g)) {
        rc = fail(kiln_last_error());
        goto done;
    }
    for (int k = 0; k < n_shapes; k++) {
        char spec[512];
        snprintf(spec, sizeof spec, "%s", shape_specs[k]);
        char *eq = strrchr(spec, '=');
        int rank;
        int64_t dims[KILN_MAX_RANK];
        if (!eq || eq == spec) {
            rc = fail("--shape takes NAME=DIMS, e.g. input=1x3x224x224");
            goto done;
        }
        *eq = 0;
        if (kiln_codegen_parse_dims(eq + 1, &rank, dims) || kiln_codegen_fix_shape(g, spec, rank, dims)) {
            rc = fail(kiln_last_error());
            goto done;
        }
    }
    if (kiln_pipeline_run(g, &po, NULL, 0, NULL)) {
        rc = fail(kiln_last_error());
        goto done;
    }
    kiln_codegen_opts co;
    kiln_codegen_opts_init(&co);
    co.archs = archs;
    co.n_archs = n_archs;
    co.precision = po.ctx.precision;
    /* tuning: the cache, then timing what it does not answer */
    if (cache_path && kiln_tune_cache_load(&cache, cache_path)) {
        rc = fail(kiln_last_error());
        goto done;
    }
    kiln_tune_answer answer = {autotune ? &cache : NULL, autotune ? &dev : NULL, &tlog, force_tile};
    if (autotune) {
        int foreign = kiln_tune_cache_foreign(&cache, &dev);
        if (foreign)
            fprintf(stderr, "kiln build: note: tuning cache %s: %d entries for another GPU, compute capability, NVRTC or "
                    "driver are kept but not used\n", cache_path, foreign);
        kiln_tune_opts to;
        kiln_tune_opts_init(&to);
        to.progress = stderr;
        kiln_tune_summary sum;
        if (kiln_tune_run(g, &co, &to, &dev, &cache, &sum)) {
            rc = fail(kiln_last_error());
            goto done;
        }
        if (sum.tuned)
            fprintf(stderr, "autotune: %d kernel signatures tuned on %s (compute capability %s), %d candidate sets timed, "
                    "%.1f s (building the sets %.1f s, timing them %.1f s); %d chose another tile than the heuristic; "
                    "%d from the tuning cache\n", sum.tuned, dev.gpu, dev.cc, sum.candidates, sum.seconds,
                    sum.compile_seconds, sum.timing_seconds, sum.changed, sum.from_cache);
        if (sum.tuned && cache_path && kiln_tune_cache_save(&cache, cache_path)) {
            rc = fail(kiln_last_error());
            goto done;
        }
    } else if (cache_path) {
        fprintf(stderr, "kiln build: note: --tuning-cache is not used without autotuning (no GPU or --no-autotune)\n");
    }
    co.tune_lookup = kiln_tune_answer_lookup;
    co.tune_record = kiln_tune_answer_record;
    co.tune_ctx = &answer;
    b = kiln_bundle_new();
    if (!b) {
        rc = fail("out of memory");
        goto done;
    }
    kiln_status st = kiln_codegen_build(g, &co, b, &cuda);
    if (emit_dir && cuda) { /* written also when compilation failed: that is when people read it */
        struct stat sb;
        char path[4096];
        if (stat(emit_dir, &sb) != 0 && mkdir(emit_dir, 0777) != 0) {
            snprintf(path, sizeof path, "cannot create folder '%s': %s", emit_dir, strerror(errno));
            rc = fail(path);
            goto done;
        }
        snprintf(path, sizeof path, "%s/%s", emit_dir, base_name(model));
        char *dot = strrchr(path, '.');
        if (dot && dot > strrchr(path, '/')) *dot = 0;
        strncat(path, ".cu", sizeof path - strlen(path) - 1);
        FILE *f = fopen(path, "w");
        if (!f || fputs(cuda, f) < 0 || fclose(f)) {
            if (f) fclose(f);
            char msg[4200];
            snprintf(msg, sizeof msg, "cannot write '%s'", path);
            rc = fail(msg);
            goto done;
        }
        printf("wrote %s\n", path);
    }
    if (st) {
        rc = fail(kiln_last_error());
        goto done;
    }
    if (tlog.oom || kiln_tune_log_meta(&tlog, &tune_meta) || kiln_tune_layer_costs(g, &costs)) {
        rc = fail(tlog.oom ? "out of memory" : kiln_last_error());
        goto done;
    }
    {
        int tunable = kiln_tune_log_count(&tlog, KILN_TUNE_HEURISTIC, true) + kiln_tune_log_count(&tlog, KILN_TUNE_LOOKUP, true) +
                      kiln_tune_log_count(&tlog, KILN_TUNE_FORCED, true);
        int heur = kiln_tune_log_count(&tlog, KILN_TUNE_HEURISTIC, true);
        if (tunable)
            printf("tuning: %d of %d tunable kernels used heuristic choices (for %s%s), %d tuned, %d forced (--tile or kiln_tile)\n",
                   heur, tunable, archs[0], n_archs > 1 ? " and the other --arch targets" : "",
                   kiln_tune_log_count(&tlog, KILN_TUNE_LOOKUP, true), kiln_tune_log_count(&tlog, KILN_TUNE_FORCED, true));
    }

    /* metadata */
    size_t len = 0;
    char hash[64] = "", opts[2048] = "", created[64] = "";
    if (kiln_read_file(model, KILN_MAX_MODEL_BYTES, &bytes, &len) == KILN_OK)
        snprintf(hash, sizeof hash, "fnv1a64:%016llx", (unsigned long long)fnv1a64(bytes, len));
    size_t ol = (size_t)snprintf(opts, sizeof opts, "kiln build");
    /* Deterministic builds: the output path is left out of the recorded options and there is no
     * build time unless SOURCE_DATE_EPOCH gives one, so that the same model, options and tuning
     * cache give a byte-identical bundle. */
    for (int i = 0; i < argc && ol < sizeof opts; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            i++;
            continue;
        }
        ol += (size_t)snprintf(opts + ol, sizeof opts - ol, " %s", argv[i]);
    }
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        char *end;
        long long v = strtoll(sde, &end, 10);
        time_t when = (time_t)v;
        struct tm tmv;
        if (!*end && v >= 0 && gmtime_r(&when, &tmv)) strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    }
    if (kiln_bundle_set_meta(b, "kiln_version", KILN_VERSION_STRING) || kiln_bundle_set_meta(b, "options", opts) ||
        kiln_bundle_set_meta(b, "precision", co.precision == KILN_PREC_TF32   ? "tf32"
                                             : co.precision == KILN_PREC_FP16 ? "fp16"
                                                                               : "fp32") ||
        (hash[0] && kiln_bundle_set_meta(b, "source_model_hash", hash)) ||
        (created[0] && kiln_bundle_set_meta(b, "created", created)) ||
        (tune_meta[0] && kiln_bundle_set_meta(b, "tune", tune_meta)) ||
        (costs[0] && kiln_bundle_set_meta(b, "layer_costs", costs)) || kiln_bundle_write(b, out_path)) {
        rc = fail(kiln_last_error());
        goto done;
    }
    uint64_t image_bytes = 0;
    for (int i = 0; i < b->n_images; i++) image_bytes += b->images[i].size;
    printf("built %s: %d kernels, %d launches, archs", out_path, b->n_kernels, b->n_launches);
    for (int i = 0; i < n_archs; i++) printf(" %s", archs[i]);
    printf(" + PTX, weights %.2f MB, arena %.2f MB, images %.2f MB\n", (double)b->weight_bytes / 1e6,
           (double)b->arena_bytes / 1e6, (double)image_bytes / 1e6);
done:
    free(tune_meta);
    free(costs);
    kiln_tune_log_free(&tlog);
    kiln_tune_cache_free(&cache);
    free(bytes);
    free(cuda);
    kiln_bundle_free(b);
    kiln_graph_free(g);
    return rc;
}
