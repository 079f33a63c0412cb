/* check_bundle.c — the .kiln bundle: round trip through a file, atomic writes, and a reader
 * that refuses every truncation and every flipped byte with an error naming the header, the
 * section table or the section at fault (never a crash), also for hostile content whose
 * checksums were fixed up to match. */
#include "ir.h"
#include "runtime/bundle.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The layout facts the tests need (docs/bundle.md). */
#define HDR 64
#define ENT 56

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static const char *type_name(uint32_t t) {
    static const char *names[] = {"?", "io_signature", "weights", "cubin", "ptx", "launch_plan", "memory_plan", "metadata"};
    return t < 8 ? names[t] : "?";
}

/* A tensor map over 4 rows of 64 fp16 at arena offset 256 (the sample's 1024-byte arena). */
static kiln_tmap_desc sample_tmap(void) {
    kiln_tmap_desc d;
    memset(&d, 0, sizeof d);
    d.mode = KILN_TMAP_TILED, d.rank = 2, d.base = KILN_ARG_ARENA, d.dtype = 6, d.offset = 256, d.swizzle = 3;
    d.dims[0] = 64, d.dims[1] = 4, d.strides[0] = 2, d.strides[1] = 128;
    d.box[0] = 64, d.box[1] = 4, d.estrides[0] = d.estrides[1] = 1;
    return d;
}

/* A small but complete bundle: every section kind, every argument kind. */
static kiln_bundle *make_sample(void) {
    kiln_bundle *b = kiln_bundle_new();
    ck_assert_ptr_nonnull(b);
    int64_t in_dims[4] = {1, 3, 8, 8}, out_dims[2] = {1, 10}, w1_dims[2] = {10, 192}, w2_dims[1] = {10};
    ck_assert_int_eq(kiln_bundle_add_io(b, "input", KILN_F32, 4, in_dims, false), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_io(b, "mask", KILN_F16, 4, in_dims, false), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_io(b, "logits", KILN_F32, 2, out_dims, true), KILN_OK);
    float w1[1920];
    uint16_t w2[10];
    for (int i = 0; i < 1920; i++) w1[i] = (float)i * 0.25f - 100.0f;
    for (int i = 0; i < 10; i++) w2[i] = kiln_f32_to_f16((float)i);
    uint64_t off1, off2;
    ck_assert_int_eq(kiln_bundle_add_weight(b, "fc.weight", KILN_F32, 2, w1_dims, w1, sizeof w1, &off1), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_weight(b, "fc.bias", KILN_F16, 1, w2_dims, w2, sizeof w2, &off2), KILN_OK);
    ck_assert_uint_eq(off1, 0);
    ck_assert_uint_eq(off2 % KILN_BUNDLE_ALIGN, 0);
    uint8_t cubin80[300], cubin90[200];
    memset(cubin80, 0xab, sizeof cubin80);
    memset(cubin90, 0xcd, sizeof cubin90);
    memcpy(cubin80, "\x7f" "ELF", 4);
    memcpy(cubin90, "\x7f" "ELF", 4);
    const char ptx[] = "//\n.version 8.0\n.target sm_90\n.visible .entry k0()\n{\n ret;\n}\n";
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_CUBIN, "sm_80", 0, cubin80, sizeof cubin80), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_CUBIN, "sm_90", 0, cubin90, sizeof cubin90), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_PTX, "compute_90", 0, ptx, sizeof ptx), KILN_OK);
    uint32_t k0, k1;
    ck_assert_int_eq(kiln_bundle_add_kernel(b, "k0", 0, "Conv_0+Relu_1", &k0), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_kernel(b, "k1", 0, "Gemm_2", &k1), KILN_OK);
    uint64_t cpool;
    int64_t strides[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ck_assert_int_eq(kiln_bundle_add_const(b, strides, sizeof strides, &cpool), KILN_OK);
    kiln_bundle_arg a0[] = {{KILN_ARG_INPUT, 8, 0}, {KILN_ARG_INPUT, 8, 1}, {KILN_ARG_ARENA, 8, 256},
                            {KILN_ARG_SCALAR, 4, 0x3f800000u}, {KILN_ARG_BYTES, sizeof strides, cpool}};
    uint8_t tm[KILN_TMAP_DESC_BYTES];
    uint64_t tm_off;
    kiln_tmap_desc td = sample_tmap();
    kiln_tmap_desc_put(&td, tm);
    ck_assert_int_eq(kiln_bundle_add_const(b, tm, sizeof tm, &tm_off), KILN_OK);
    kiln_bundle_arg a1[] = {{KILN_ARG_ARENA, 8, 256}, {KILN_ARG_WEIGHT, 8, off1}, {KILN_ARG_WEIGHT, 8, off2},
                            {KILN_ARG_OUTPUT, 8, 0}, {KILN_ARG_TMAP, KILN_TMAP_BYTES, tm_off}, {KILN_ARG_SYNC, 8, 3}};
    uint32_t g0[3] = {4, 1, 1}, bl0[3] = {256, 1, 1}, g1[3] = {1, 2, 3}, bl1[3] = {32, 4, 1};
    ck_assert_int_eq(kiln_bundle_add_launch(b, k0, g0, bl0, 0, 0, a0, 5), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_launch(b, k1, g1, bl1, 4096, 1, a1, 6), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_arena(b, 1024, 256), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_buffer(b, "Relu_1:0", 256, 768), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_meta(b, "kiln_version", KILN_VERSION_STRING), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_meta(b, "options", "--precision fp16 --arch sm_80,sm_90"), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_meta(b, "tiles", "Gemm_2=64x64x32"), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_meta(b, "source_model_hash", "crc32c:0123abcd"), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_meta(b, "options", "--precision fp16 --arch sm_80,sm_90 -O2"), KILN_OK); /* replaces */
    return b;
}

static void assert_same(const kiln_bundle *a, const kiln_bundle *b) {
    ck_assert_int_eq(a->n_io, b->n_io);
    for (int i = 0; i < a->n_io; i++) {
        ck_assert_str_eq(a->io[i].name, b->io[i].name);
        ck_assert_int_eq(a->io[i].dtype, b->io[i].dtype);
        ck_assert_int_eq(a->io[i].rank, b->io[i].rank);
        ck_assert_int_eq(a->io[i].is_output, b->io[i].is_output);
        ck_assert_mem_eq(a->io[i].dims, b->io[i].dims, sizeof(int64_t) * (size_t)a->io[i].rank);
    }
    ck_assert_int_eq(a->n_weights, b->n_weights);
    for (int i = 0; i < a->n_weights; i++) {
        ck_assert_str_eq(a->weights[i].name, b->weights[i].name);
        ck_assert_int_eq(a->weights[i].dtype, b->weights[i].dtype);
        ck_assert_uint_eq(a->weights[i].offset, b->weights[i].offset);
        ck_assert_uint_eq(a->weights[i].nbytes, b->weights[i].nbytes);
    }
    ck_assert_uint_eq(a->weight_bytes, b->weight_bytes);
    if (a->weight_bytes) ck_assert_mem_eq(a->weight_data, b->weight_data, (size_t)a->weight_bytes);
    ck_assert_int_eq(a->n_images, b->n_images);
    for (int i = 0; i < a->n_images; i++) {
        ck_assert_int_eq(a->images[i].kind, b->images[i].kind);
        ck_assert_str_eq(a->images[i].arch, b->images[i].arch);
        ck_assert_uint_eq(a->images[i].module, b->images[i].module);
        ck_assert_uint_eq(a->images[i].size, b->images[i].size);
        ck_assert_mem_eq(a->images[i].data, b->images[i].data, (size_t)a->images[i].size);
    }
    ck_assert_int_eq(a->n_kernels, b->n_kernels);
    for (int i = 0; i < a->n_kernels; i++) {
        ck_assert_str_eq(a->kernels[i].function, b->kernels[i].function);
        ck_assert_str_eq(a->kernels[i].group, b->kernels[i].group);
        ck_assert_uint_eq(a->kernels[i].module, b->kernels[i].module);
    }
    ck_assert_int_eq(a->n_launches, b->n_launches);
    for (int i = 0; i < a->n_launches; i++) {
        const kiln_bundle_launch *x = &a->launches[i], *y = &b->launches[i];
        ck_assert_uint_eq(x->kernel, y->kernel);
        ck_assert_mem_eq(x->grid, y->grid, sizeof x->grid);
        ck_assert_mem_eq(x->block, y->block, sizeof x->block);
        ck_assert_uint_eq(x->shared_bytes, y->shared_bytes);
        ck_assert_uint_eq(x->stream, y->stream);
        ck_assert_uint_eq(x->n_args, y->n_args);
        for (uint32_t k = 0; k < x->n_args; k++) {
            ck_assert_int_eq(x->args[k].kind, y->args[k].kind);
            ck_assert_uint_eq(x->args[k].size, y->args[k].size);
            ck_assert_uint_eq(x->args[k].value, y->args[k].value);
        }
    }
    ck_assert_uint_eq(a->const_pool_bytes, b->const_pool_bytes);
    if (a->const_pool_bytes) ck_assert_mem_eq(a->const_pool, b->const_pool, (size_t)a->const_pool_bytes);
    ck_assert_uint_eq(a->arena_bytes, b->arena_bytes);
    ck_assert_uint_eq(a->arena_align, b->arena_align);
    ck_assert_int_eq(a->n_buffers, b->n_buffers);
    for (int i = 0; i < a->n_buffers; i++) {
        ck_assert_str_eq(a->buffers[i].name, b->buffers[i].name);
        ck_assert_uint_eq(a->buffers[i].offset, b->buffers[i].offset);
        ck_assert_uint_eq(a->buffers[i].size, b->buffers[i].size);
    }
    ck_assert_int_eq(a->n_meta, b->n_meta);
    for (int i = 0; i < a->n_meta; i++) ck_assert_str_eq(kiln_bundle_get_meta(b, a->meta[i].key), a->meta[i].value);
}

static char tmpdir[64];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln_bundle_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void teardown(void) {
    DIR *d = opendir(tmpdir);
    char p[512];
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(tmpdir);
}

START_TEST(crc32c_known_values) {
    ck_assert_uint_eq(kiln_crc32c(0, "123456789", 9), 0xE3069283u); /* the standard check value */
    ck_assert_uint_eq(kiln_crc32c(0, "", 0), 0);
    uint8_t zeros[32] = {0};
    ck_assert_uint_eq(kiln_crc32c(0, zeros, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    /* incremental == one shot, across the 8-byte fast path */
    const char *s = "The quick brown fox jumps over the lazy dog";
    uint32_t one = kiln_crc32c(0, s, strlen(s));
    ck_assert_uint_eq(kiln_crc32c(kiln_crc32c(0, s, 13), s + 13, strlen(s) - 13), one);
}
END_TEST

START_TEST(round_trip_file) {
    kiln_bundle *b = make_sample();
    char path[128];
    snprintf(path, sizeof path, "%s/m.kiln", tmpdir);
    ck_assert_msg(kiln_bundle_write(b, path) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(count_dir_entries(tmpdir), 1); /* no temporary file left behind */
    kiln_bundle *r = NULL;
    ck_assert_msg(kiln_bundle_read(path, &r) == KILN_OK, "%s", kiln_last_error());
    assert_same(b, r);
    ck_assert_uint_eq((uintptr_t)r->weight_data % 64 == ((uintptr_t)r->file_bytes) % 64, 1);
    /* writing what was read gives the same bytes (the format is deterministic) */
    uint8_t *x, *y;
    size_t nx, ny;
    ck_assert_int_eq(kiln_bundle_write_bytes(b, &x, &nx), KILN_OK);
    ck_assert_int_eq(kiln_bundle_write_bytes(r, &y, &ny), KILN_OK);
    ck_assert_uint_eq(nx, ny);
    ck_assert_mem_eq(x, y, nx);
    free(x);
    free(y);
    /* a read bundle is read-only */
    ck_assert_int_eq(kiln_bundle_add_image(r, KILN_IMAGE_PTX, "compute_80", 0, "x", 2), KILN_ERR_INVALID_ARG);
    /* overwriting replaces atomically */
    ck_assert_int_eq(kiln_bundle_set_meta(b, "precision", "fp16"), KILN_OK);
    ck_assert_int_eq(kiln_bundle_write(b, path), KILN_OK);
    kiln_bundle_free(r);
    ck_assert_int_eq(kiln_bundle_read(path, &r), KILN_OK);
    ck_assert_str_eq(kiln_bundle_get_meta(r, "precision"), "fp16");
    ck_assert_int_eq(count_dir_entries(tmpdir), 1);
    kiln_bundle_free(r);
    kiln_bundle_free(b);
}
END_TEST

START_TEST(empty_bundle_round_trip) {
    kiln_bundle *b = kiln_bundle_new();
    uint8_t *x;
    size_t n;
    ck_assert_int_eq(kiln_bundle_write_bytes(b, &x, &n), KILN_OK);
    kiln_bundle *r;
    ck_assert_msg(kiln_bundle_read_bytes(x, n, "empty", &r) == KILN_OK, "%s", kiln_last_error());
    assert_same(b, r);
    kiln_bundle_free(r);
    kiln_bundle_free(b);
    free(x);
}
END_TEST

/* Metadata values may be long (per-kernel tiles of a model with hundreds of kernels), up to
 * KILN_BUNDLE_MAX_META; names stay under KILN_BUNDLE_MAX_STRING. */
START_TEST(long_metadata_round_trips) {
    kiln_bundle *b = kiln_bundle_new();
    size_t len = 3 * KILN_BUNDLE_MAX_STRING;
    char *v = malloc(KILN_BUNDLE_MAX_META + 1);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < len; i++) v[i] = (char)('a' + i % 26);
    v[len] = 0;
    ck_assert_int_eq(kiln_bundle_set_meta(b, "tiles", v), KILN_OK);
    uint8_t *x;
    size_t n;
    ck_assert_int_eq(kiln_bundle_write_bytes(b, &x, &n), KILN_OK);
    kiln_bundle *r;
    ck_assert_msg(kiln_bundle_read_bytes(x, n, "meta", &r) == KILN_OK, "%s", kiln_last_error());
    ck_assert_str_eq(kiln_bundle_get_meta(r, "tiles"), v);
    memset(v, 'x', KILN_BUNDLE_MAX_META);
    v[KILN_BUNDLE_MAX_META] = 0;
    ck_assert_int_eq(kiln_bundle_set_meta(b, "big", v), KILN_ERR_LIMIT);
    ck_assert_int_eq(kiln_bundle_set_meta(b, v + KILN_BUNDLE_MAX_META - KILN_BUNDLE_MAX_STRING, "k"), KILN_ERR_LIMIT);
    kiln_bundle_free(r);
    kiln_bundle_free(b);
    free(x);
    free(v);
}
END_TEST

START_TEST(write_failures_leave_nothing) {
    kiln_bundle *b = make_sample();
    char path[128];
    snprintf(path, sizeof path, "%s/no/such/dir/m.kiln", tmpdir);
    ck_assert_int_eq(kiln_bundle_write(b, path), KILN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "temporary file"));
    ck_assert_int_eq(count_dir_entries(tmpdir), 0);
    /* an invalid bundle is refused before anything is written */
    uint32_t g[3] = {1, 1, 1}, bl[3] = {2048, 1, 1};
    ck_assert_int_eq(kiln_bundle_add_launch(b, 0, g, bl, 0, 0, NULL, 0), KILN_OK);
    snprintf(path, sizeof path, "%s/m.kiln", tmpdir);
    ck_assert_int_eq(kiln_bundle_write(b, path), KILN_ERR_PARSE);
    ck_assert_msg(strstr(kiln_last_error(), "launch_plan") && strstr(kiln_last_error(), "launch 2"), "%s",
                  kiln_last_error());
    ck_assert_int_eq(count_dir_entries(tmpdir), 0);
    kiln_bundle_free(b);
}
END_TEST

START_TEST(builder_rejects_bad_input) {
    kiln_bundle *b = kiln_bundle_new();
    int64_t dims[2] = {2, 3}, neg[1] = {-1};
    float data[6] = {0};
    ck_assert_int_eq(kiln_bundle_add_io(b, "", KILN_F32, 2, dims, false), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_bundle_add_io(b, "x", KILN_F32, 1, neg, false), KILN_ERR_SHAPE);
    ck_assert_int_eq(kiln_bundle_add_io(b, "x", KILN_STRING, 2, dims, false), KILN_ERR_UNSUPPORTED);
    ck_assert_int_eq(kiln_bundle_add_weight(b, "w", KILN_F32, 2, dims, data, 20, NULL), KILN_ERR_SHAPE);
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_CUBIN, "sm_90_too_long_name", 0, data, 4), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_bundle_set_arena(b, 100, 3), KILN_ERR_INVALID_ARG);
    /* a kernel whose module has no image is caught at write time */
    ck_assert_int_eq(kiln_bundle_add_kernel(b, "k", 7, "g", NULL), KILN_OK);
    uint8_t *x;
    size_t n;
    ck_assert_int_eq(kiln_bundle_write_bytes(b, &x, &n), KILN_ERR_PARSE);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "no image for module 7"));
    kiln_bundle_free(b);
}
END_TEST

/* Which part of the file a byte belongs to, by the (valid) file's own table. */
static void part_of(const uint8_t *f, size_t pos, char *want, size_t cap) {
    uint32_t n = rd32(f + 20);
    if (pos < HDR) {
        snprintf(want, cap, "header");
        return;
    }
    if (pos < HDR + (size_t)n * ENT) {
        snprintf(want, cap, "section table");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = f + HDR + i * ENT;
        uint64_t off = rd64(e + 32), size = rd64(e + 40);
        if (pos < off) { /* padding before section i */
            snprintf(want, cap, "section %u '%s", i, type_name(rd32(e)));
            return;
        }
        if (pos < off + size) {
            snprintf(want, cap, "section %u '%s", i, type_name(rd32(e)));
            return;
        }
    }
    snprintf(want, cap, "header");
}

START_TEST(every_truncation_names_the_part) {
    kiln_bundle *b = make_sample();
    uint8_t *f;
    size_t n;
    ck_assert_int_eq(kiln_bundle_write_bytes(b, &f, &n), KILN_OK);
    kiln_bundle_free(b);
    char want[96];
    for (size_t len = 0; len < n; len++) {
        kiln_bundle *r = (kiln_bundle *)1;
        kiln_status st = kiln_bundle_read_bytes(f, len, "t.kiln", &r);
        ck_assert_msg(st == KILN_ERR_PARSE, "length %zu: status %d", len, st);
        ck_assert_ptr_null(r);
        const char *msg = kiln_last_error();
        /* the cut falls in the header, the table, or section i (or the padding before it) */
        part_of(f, len, want, sizeof want);
        if (len < HDR) snprintf(want, sizeof want, "header: truncated");
        ck_assert_msg(strstr(msg, want) != NULL, "length %zu: wanted '%s' in: %s", len, want, msg);
        ck_assert_msg(strstr(msg, "t.kiln") == msg, "length %zu: %s", len, msg);
        ck_assert_msg(len < HDR || strstr(msg, "truncated"), "length %zu: %s", len, msg);
    }
    free(f);
}
END_TEST

START_TEST(every_flipped_byte_is_refused) {
    kiln_bundle *b = make_sample();
    uint8_t *f;
    size_t n;
    ck_assert_int_eq(kiln_bundle_write_bytes(b, &f, &n), KILN_OK);
    kiln_bundle_free(b);
    uint8_t *g = malloc(n);
    char want[96];
    int per_section_checksum = 0;
    for (size_t pos = 0; pos < n; pos++) {
        { /* one bit per byte, every bit position in turn */
            int bit = (int)(pos % 8);
            memcpy(g, f, n);
            g[pos] ^= (uint8_t)(1u << bit);
            kiln_bundle *r = NULL;
            kiln_status st = kiln_bundle_read_bytes(g, n, "f.kiln", &r);
            ck_assert_msg(st != KILN_OK, "byte %zu bit %d: flipped byte accepted", pos, bit);
            ck_assert_ptr_null(r);
            part_of(f, pos, want, sizeof want);
            ck_assert_msg(strstr(kiln_last_error(), want) != NULL, "byte %zu: wanted '%s' in: %s", pos, want,
                          kiln_last_error());
            if (strstr(kiln_last_error(), "' module") || strstr(kiln_last_error(), "checksum mismatch (corrupted section)"))
                per_section_checksum++;
        }
    }
    ck_assert_int_gt(per_section_checksum, 0);
    free(g);
    free(f);
}
END_TEST

/* Recompute every checksum after an edit, as a forger would. */
static void fix_checksums(uint8_t *f) {
    uint32_t n = rd32(f + 20);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = f + HDR + i * ENT;
        wr32(e + 48, kiln_crc32c(0, f + rd64(e + 32), (size_t)rd64(e + 40)));
    }
    wr32(f + 40, kiln_crc32c(0, f + HDR, (size_t)n * ENT));
    wr32(f + 60, kiln_crc32c(0, f, 60));
}

START_TEST(hostile_content_with_valid_checksums) {
    kiln_bundle *b = make_sample();
    uint8_t *f;
    size_t n;
    ck_assert_int_eq(kiln_bundle_write_bytes(b, &f, &n), KILN_OK);
    kiln_bundle_free(b);
    uint8_t *g = malloc(n);
    uint32_t n_sec = rd32(f + 20);
    srand(1234);
    int refused = 0, accepted = 0;
    for (uint32_t s = 0; s < n_sec; s++) {
        const uint8_t *e = f + HDR + s * ENT;
        uint64_t off = rd64(e + 32), size = rd64(e + 40);
        uint32_t type = rd32(e);
        if (type == 3 || type == 4) continue; /* image bytes are opaque to the reader */
        for (int iter = 0; iter < 3000; iter++) {
            memcpy(g, f, n);
            int edits = 1 + rand() % 4;
            for (int k = 0; k < edits; k++) {
                size_t at = off + (size_t)rand() % size;
                switch (rand() % 3) {
                case 0: g[at] = (uint8_t)rand(); break;
                case 1: g[at] = 0xff; break;
                default: g[at] ^= 0x80; break;
                }
            }
            fix_checksums(g);
            kiln_bundle *r = NULL;
            kiln_status st = kiln_bundle_read_bytes(g, n, "h.kiln", &r);
            if (st == KILN_OK) {
                accepted++; /* an edit that is still a valid bundle: it must write back */
                uint8_t *y;
                size_t ny;
                ck_assert_int_eq(kiln_bundle_write_bytes(r, &y, &ny), KILN_OK);
                free(y);
                kiln_bundle_free(r);
                continue;
            }
            refused++;
            char want[64];
            snprintf(want, sizeof want, "section %u '%s'", s, type_name(type));
            ck_assert_msg(strstr(kiln_last_error(), want), "section %u: %s", s, kiln_last_error());
        }
    }
    ck_assert_int_gt(refused, 1000);
    printf("hostile content: %d refused, %d still valid\n", refused, accepted);
    free(g);
    free(f);
}
END_TEST

/* A sync argument (KILN_ARG_SYNC) names a region the runtime allocates: a number past
 * KILN_SYNC_MAX_REGIONS is refused (a bundle cannot make the runtime allocate much); writing such
 * a bundle fails and writes nothing, a good one round-trips. */
START_TEST(sync_regions_bounded) {
    for (int bad = 0; bad < 2; bad++) {
        kiln_bundle *b = kiln_bundle_new();
        ck_assert_ptr_nonnull(b);
        uint8_t img[64] = "\x7f" "ELF";
        uint32_t k;
        ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_CUBIN, "sm_90", 0, img, sizeof img), KILN_OK);
        ck_assert_int_eq(kiln_bundle_add_kernel(b, "k", 0, "Conv_0", &k), KILN_OK);
        kiln_bundle_arg a[] = {{KILN_ARG_SYNC, 8, bad ? KILN_SYNC_MAX_REGIONS : KILN_SYNC_MAX_REGIONS - 1}};
        uint32_t g[3] = {1, 1, 1}, bl[3] = {32, 1, 1};
        ck_assert_int_eq(kiln_bundle_add_launch(b, k, g, bl, 0, 0, a, 1), KILN_OK);
        uint8_t *f = NULL;
        size_t n = 0;
        kiln_status st = kiln_bundle_write_bytes(b, &f, &n);
        kiln_bundle_free(b);
        if (bad) {
            ck_assert_int_ne(st, KILN_OK);
            ck_assert_msg(strstr(kiln_last_error(), "argument 0 (kind 8) is out of range"), "%s", kiln_last_error());
            continue;
        }
        ck_assert_msg(st == KILN_OK, "%s", kiln_last_error());
        kiln_bundle *r = NULL;
        ck_assert_msg(kiln_bundle_read_bytes(f, n, "s.kiln", &r) == KILN_OK, "%s", kiln_last_error());
        ck_assert_int_eq(r->launches[0].args[0].kind, KILN_ARG_SYNC);
        ck_assert_uint_eq(r->launches[0].args[0].value, KILN_SYNC_MAX_REGIONS - 1);
        kiln_bundle_free(r);
        free(f);
    }
}
END_TEST

/* Tensor-map descriptors (KILN_ARG_TMAP): they round-trip through their bytes, a well-formed one
 * passes, and each malformed one is refused by the check and by the bundle's validation with
 * what is wrong (the runtime hands them to the driver, which must never see an address outside
 * the tensor's allocation). */
START_TEST(tensor_map_descriptors_checked) {
    kiln_tmap_desc d = sample_tmap(), e;
    uint8_t bytes[KILN_TMAP_DESC_BYTES];
    d.lower[0] = -3, d.upper[2] = 7, d.estrides[4] = 5;
    kiln_tmap_desc_put(&d, bytes);
    kiln_tmap_desc_get(bytes, &e);
    ck_assert_mem_eq(&d, &e, sizeof d);
    ck_assert_ptr_null(kiln_tmap_desc_check(&d, 1024, 0));
    d.mode = KILN_TMAP_IM2COL, d.rank = 4, d.dims[1] = 2, d.dims[2] = 2, d.dims[3] = 1, d.strides[2] = 256, d.strides[3] = 512;
    d.box[1] = 4, d.estrides[2] = d.estrides[3] = 2, d.lower[0] = -1, d.upper[1] = -1;
    ck_assert_ptr_null(kiln_tmap_desc_check(&d, 1024, 0));
    static const struct {
        int field;
        const char *want;
    } bad[] = {{0, "unknown mode"}, {1, "rank"}, {2, "base"}, {3, "element type"}, {4, "swizzle"},
               {5, "strides[0]"}, {6, "offset"}, {7, "does not fit"}, {8, "stride is not a multiple of 16"},
               {9, "element stride"}, {10, "channels per pixel"}, {11, "corner"}, {12, "a dimension"},
               {13, "does not fit"}, {14, "stride is not a multiple of 16"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_tmap_desc x = d;
        switch (bad[i].field) {
        case 0: x.mode = 3; break;
        case 1: x.rank = 6; break;
        case 2: x.base = KILN_ARG_INPUT; break;
        case 3: x.dtype = 9; break;
        case 4: x.swizzle = 4; break;
        case 5: x.strides[0] = 4; break;
        case 6: x.offset = 1032; break;
        case 7: x.offset = 768; break; /* the last image's last element past 1024 */
        case 8: x.strides[1] = 100; break;
        case 9: x.estrides[1] = 9; break;
        case 10: x.box[0] = 0; break;
        case 11: x.upper[1] = 40000; break;
        case 12: x.dims[3] = 0; break;
        case 13: x.dims[3] = UINT64_C(1) << 31; break; /* (dims - 1) * stride far past the arena */
        case 14: x.strides[2] = 0; break;            /* (not a division by zero) */
        }
        const char *why = kiln_tmap_desc_check(&x, 1024, 0);
        ck_assert_msg(why && strstr(why, bad[i].want), "case %d: %s", bad[i].field, why ? why : "(accepted)");
    }
    /* in a bundle: validation names the launch, the argument and the fault */
    kiln_bundle *b = make_sample();
    const kiln_bundle_arg *ta = &b->launches[1].args[4];
    ck_assert_int_eq(ta->kind, KILN_ARG_TMAP);
    d = sample_tmap();
    d.dims[1] = 16; /* 16 rows of 128 bytes from 256: past the 1024-byte arena */
    kiln_tmap_desc_put(&d, b->const_pool + ta->value);
    ck_assert_int_ne(kiln_bundle_validate(b), KILN_OK);
    ck_assert_msg(strstr(kiln_last_error(), "launch 1: argument 4: tensor map: the tensor does not fit"), "%s",
                  kiln_last_error());
    kiln_bundle_free(b);
}
END_TEST

START_TEST(forged_counts_do_not_allocate) {
    kiln_bundle *b = make_sample();
    uint8_t *f;
    size_t n;
    ck_assert_int_eq(kiln_bundle_write_bytes(b, &f, &n), KILN_OK);
    kiln_bundle_free(b);
    uint32_t n_sec = rd32(f + 20);
    for (uint32_t s = 0; s < n_sec; s++) {
        const uint8_t *e = f + HDR + s * ENT;
        uint32_t type = rd32(e);
        uint64_t off = rd64(e + 32);
        /* the first count of each table section; weights start with two u64 first */
        size_t at = type == 6 ? 16 : type == 2 ? 16 : 0;
        if (type == 3 || type == 4) continue;
        uint8_t *g = malloc(n);
        memcpy(g, f, n);
        wr32(g + off + at, 0xfffffff0u);
        fix_checksums(g);
        kiln_bundle *r = NULL;
        ck_assert_int_eq(kiln_bundle_read_bytes(g, n, "c.kiln", &r), KILN_ERR_PARSE);
        ck_assert_msg(strstr(kiln_last_error(), type_name(type)) && strstr(kiln_last_error(), "record count"), "%s",
                      kiln_last_error());
        free(g);
    }
    free(f);
}
END_TEST

START_TEST(header_checks) {
    kiln_bundle *b = make_sample();
    uint8_t *f;
    size_t n;
    ck_assert_int_eq(kiln_bundle_write_bytes(b, &f, &n), KILN_OK);
    kiln_bundle_free(b);
    kiln_bundle *r;
    /* not a bundle at all */
    ck_assert_int_eq(kiln_bundle_read_bytes("hello, world, this is a text file and not a kiln bundle at all....", 66,
                                            "x.txt", &r),
                     KILN_ERR_PARSE);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "not a kiln bundle"));
    /* a newer format version (with a valid header checksum) */
    uint8_t *g = malloc(n);
    memcpy(g, f, n);
    wr32(g + 8, 2);
    fix_checksums(g);
    ck_assert_int_eq(kiln_bundle_read_bytes(g, n, "v.kiln", &r), KILN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "format version 2"));
    /* big-endian writer */
    memcpy(g, f, n);
    wr32(g + 12, 0x0D0C0B0Au);
    fix_checksums(g);
    ck_assert_int_eq(kiln_bundle_read_bytes(g, n, "e.kiln", &r), KILN_ERR_PARSE);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "byte-order"));
    /* a section count far beyond the limit */
    memcpy(g, f, n);
    wr32(g + 20, 0x7fffffff);
    wr32(g + 60, kiln_crc32c(0, g, 60)); /* only the header's checksum: the table is as it was */
    ck_assert_int_eq(kiln_bundle_read_bytes(g, n, "s.kiln", &r), KILN_ERR_LIMIT);
    /* trailing garbage */
    uint8_t *h = malloc(n + 64);
    memcpy(h, f, n);
    memset(h + n, 0, 64);
    ck_assert_int_eq(kiln_bundle_read_bytes(h, n + 64, "t.kiln", &r), KILN_ERR_PARSE);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "header: file is"));
    /* an unknown optional section is skipped, an unknown required one refused */
    memcpy(g, f, n);
    uint8_t *e = g + HDR; /* entry 0 is the metadata section; retype it */
    wr32(e, 99);
    wr32(e + 4, 1);
    fix_checksums(g);
    ck_assert_int_eq(kiln_bundle_read_bytes(g, n, "u.kiln", &r), KILN_ERR_PARSE); /* metadata now missing */
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "no 'metadata' section"));
    wr32(e + 4, 0);
    fix_checksums(g);
    ck_assert_int_eq(kiln_bundle_read_bytes(g, n, "u.kiln", &r), KILN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "unknown required section type 99"));
    /* files through the path API */
    char path[128];
    snprintf(path, sizeof path, "%s/cut.kiln", tmpdir);
    FILE *fp = fopen(path, "wb");
    fwrite(f, 1, n / 2, fp);
    fclose(fp);
    ck_assert_int_eq(kiln_bundle_read(path, &r), KILN_ERR_PARSE);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "truncated"));
    ck_assert_int_eq(kiln_bundle_read(tmpdir, &r), KILN_ERR_IO);
    snprintf(path, sizeof path, "%s/missing.kiln", tmpdir);
    ck_assert_int_eq(kiln_bundle_read(path, &r), KILN_ERR_IO);
    free(h);
    free(g);
    free(f);
}
END_TEST

START_TEST(image_selection) {
    kiln_bundle *b = make_sample();
    uint8_t elf[8] = {0x7f, 'E', 'L', 'F'};
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_CUBIN, "sm_90a", 0, elf, sizeof elf), KILN_OK);
    bool jit;
    const kiln_bundle_image *im = kiln_bundle_find_image(b, 0, 90, false, &jit);
    ck_assert(im && strcmp(im->arch, "sm_90") == 0 && !jit);
    im = kiln_bundle_find_image(b, 0, 90, true, &jit);
    ck_assert(im && strcmp(im->arch, "sm_90a") == 0 && !jit);
    im = kiln_bundle_find_image(b, 0, 86, true, &jit); /* sm_80 code runs on sm_86 */
    ck_assert(im && strcmp(im->arch, "sm_80") == 0 && !jit);
    im = kiln_bundle_find_image(b, 0, 100, true, &jit); /* Blackwell: JIT the PTX */
    ck_assert(im && strcmp(im->arch, "compute_90") == 0 && jit);
    im = kiln_bundle_find_image(b, 0, 75, true, &jit); /* Turing: nothing fits */
    ck_assert_ptr_null(im);
    ck_assert_ptr_null(kiln_bundle_find_image(b, 3, 90, true, &jit));
    kiln_bundle_free(b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("bundle");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, crc32c_known_values);
    tcase_add_test(tc, round_trip_file);
    tcase_add_test(tc, empty_bundle_round_trip);
    tcase_add_test(tc, long_metadata_round_trips);
    tcase_add_test(tc, write_failures_leave_nothing);
    tcase_add_test(tc, builder_rejects_bad_input);
    tcase_add_test(tc, every_truncation_names_the_part);
    tcase_add_test(tc, every_flipped_byte_is_refused);
    tcase_add_test(tc, hostile_content_with_valid_checksums);
    tcase_add_test(tc, tensor_map_descriptors_checked);
    tcase_add_test(tc, sync_regions_bounded);
    tcase_add_test(tc, forged_counts_do_not_allocate);
    tcase_add_test(tc, header_checks);
    tcase_add_test(tc, image_selection);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
