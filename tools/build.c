/* build.c — `kiln build`: ONNX model -> optimized graph -> CUDA C -> NVRTC -> .kiln bundle. */
#include "cli.h"

#include "codegen/codegen.h"
#include "codegen/nvrtc.h"
#include "runtime/cuda_driver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_ARCHS 8
#define MAX_SHAPES 16

static void usage(FILE *f) {
    fprintf(f,
            "usage: kiln build MODEL.onnx -o M.kiln [--precision fp32|tf32|fp16] [--arch LIST] [--shape NAME=DIMS]...\n"
            "                  [-O<n>] [--passes a,b] [--disable-pass X] [--emit-cuda DIR]\n"
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
            "  --emit-cuda DIR    also write the generated CUDA source to DIR/MODEL.cu\n");
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

void kiln_cli_gpu_pass_options(kiln_pipeline_opts *o, char *buf, size_t len) {
    if (o->ctx.precision == KILN_PREC_FP32) return;
    snprintf(buf, len, "%s%sselect-layout", o->disabled ? o->disabled : "", o->disabled ? "," : "");
    o->disabled = buf;
}

int kiln_cmd_build(int argc, char **argv) {
    const char *model = NULL, *out_path = NULL, *emit_dir = NULL, *arch_list = NULL;
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
    char *cuda = NULL;
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

    /* metadata */
    size_t len = 0;
    char hash[64] = "", opts[2048] = "", created[64] = "";
    if (kiln_read_file(model, KILN_MAX_MODEL_BYTES, &bytes, &len) == KILN_OK)
        snprintf(hash, sizeof hash, "fnv1a64:%016llx", (unsigned long long)fnv1a64(bytes, len));
    size_t ol = (size_t)snprintf(opts, sizeof opts, "kiln build");
    for (int i = 0; i < argc && ol < sizeof opts; i++)
        ol += (size_t)snprintf(opts + ol, sizeof opts - ol, " %s", argv[i]);
    time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv)) strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    if (kiln_bundle_set_meta(b, "kiln_version", KILN_VERSION_STRING) || kiln_bundle_set_meta(b, "options", opts) ||
        kiln_bundle_set_meta(b, "precision", co.precision == KILN_PREC_TF32   ? "tf32"
                                             : co.precision == KILN_PREC_FP16 ? "fp16"
                                                                               : "fp32") ||
        (hash[0] && kiln_bundle_set_meta(b, "source_model_hash", hash)) ||
        (created[0] && kiln_bundle_set_meta(b, "created", created)) || kiln_bundle_write(b, out_path)) {
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
    free(bytes);
    free(cuda);
    kiln_bundle_free(b);
    kiln_graph_free(g);
    return rc;
}
