/* bundle.c — the .kiln bundle: building, validation, atomic writing, checked reading.
 * The byte layout is documented in docs/bundle.md; keep the two in step. */
#include "runtime/bundle.h"

#include "ir.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ CRC32C -- */
/* Slicing-by-8 over the reflected Castagnoli polynomial: weights are hundreds of MB, and the
 * byte-at-a-time loop would make loading a bundle noticeably slow. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t kiln_crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
              crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^
              crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--) crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

/* ------------------------------------------------------------ file layout -- */
static const uint8_t bundle_magic[8] = {0x89, 'K', 'I', 'L', 'N', '\r', '\n', 0x1a};
#define BYTE_ORDER_MARK 0x0A0B0C0Du
#define HEADER_BYTES 64u
#define ENTRY_BYTES 56u
#define SECTION_OPTIONAL 1u

enum section_type {
    SEC_IO = 1,
    SEC_WEIGHTS = 2,
    SEC_CUBIN = 3,
    SEC_PTX = 4,
    SEC_LAUNCH = 5,
    SEC_MEMORY = 6,
    SEC_META = 7,
    SEC_LAYERS = 8, /* optional: written with the optional flag, so older readers skip it */
};
#define SEC_LAST SEC_LAYERS

static const char *section_type_name(uint32_t t) {
    switch (t) {
    case SEC_IO: return "io_signature";
    case SEC_WEIGHTS: return "weights";
    case SEC_CUBIN: return "cubin";
    case SEC_PTX: return "ptx";
    case SEC_LAUNCH: return "launch_plan";
    case SEC_MEMORY: return "memory_plan";
    case SEC_META: return "metadata";
    case SEC_LAYERS: return "layers";
    default: return "unknown";
    }
}

typedef struct section_entry {
    uint32_t type, flags, aux;
    char tag[17];
    uint64_t offset, size;
    uint32_t crc;
    char label[64]; /* "section 3 'cubin sm_90 module 0'" for messages */
} section_entry;

static void entry_label(section_entry *e, int index) {
    if (e->type == SEC_CUBIN || e->type == SEC_PTX)
        snprintf(e->label, sizeof e->label, "section %d '%s %s module %u'", index, section_type_name(e->type),
                 e->tag, e->aux);
    else
        snprintf(e->label, sizeof e->label, "section %d '%s'", index, section_type_name(e->type));
}

/* ------------------------------------------------------------- byte writer -- */
typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} wbuf;

static void w_reserve(wbuf *w, size_t extra) {
    if (w->oom) return;
    if (extra > SIZE_MAX - w->len) {
        w->oom = true;
        return;
    }
    size_t need = w->len + extra;
    if (need <= w->cap) return;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *np = realloc(w->p, cap);
    if (!np) {
        w->oom = true;
        return;
    }
    w->p = np;
    w->cap = cap;
}
static void w_bytes(wbuf *w, const void *d, size_t n) {
    w_reserve(w, n);
    if (w->oom || n == 0) return;
    memcpy(w->p + w->len, d, n);
    w->len += n;
}
static void w_zeros(wbuf *w, size_t n) {
    w_reserve(w, n);
    if (w->oom) return;
    memset(w->p + w->len, 0, n);
    w->len += n;
}
static void put_u32_at(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64_at(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void w_u32(wbuf *w, uint32_t v) {
    uint8_t b[4];
    put_u32_at(b, v);
    w_bytes(w, b, 4);
}
static void w_u64(wbuf *w, uint64_t v) {
    uint8_t b[8];
    put_u64_at(b, v);
    w_bytes(w, b, 8);
}
static void w_str(wbuf *w, const char *s) {
    size_t n = strlen(s);
    w_u32(w, (uint32_t)n);
    w_bytes(w, s, n);
}
static void w_align(wbuf *w, size_t a) {
    if (w->len % a) w_zeros(w, a - w->len % a);
}

/* ------------------------------------------------------------- byte reader -- */
typedef struct rbuf {
    const uint8_t *p, *end;
    const char *label; /* the section, for messages */
    const char *what;  /* the file */
    kiln_status st;
} rbuf;

static uint32_t get_u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64_at(const uint8_t *p) { return (uint64_t)get_u32_at(p) | (uint64_t)get_u32_at(p + 4) << 32; }

static size_t r_left(const rbuf *r) { return (size_t)(r->end - r->p); }

static bool r_fail(rbuf *r, kiln_status code, const char *why) {
    if (r->st == KILN_OK) r->st = kiln_errorf(code, "%s: %s: %s", r->what, r->label, why);
    return false;
}
static bool r_need(rbuf *r, size_t n) {
    if (r->st != KILN_OK) return false;
    if (r_left(r) < n) return r_fail(r, KILN_ERR_PARSE, "truncated content (a record runs past the section's end)");
    return true;
}
static uint32_t r_u32(rbuf *r) {
    if (!r_need(r, 4)) return 0;
    uint32_t v = get_u32_at(r->p);
    r->p += 4;
    return v;
}
static uint64_t r_u64(rbuf *r) {
    if (!r_need(r, 8)) return 0;
    uint64_t v = get_u64_at(r->p);
    r->p += 8;
    return v;
}
/* A count of records that each take at least min_bytes: bounded by what is left, so that a
 * forged count cannot make us allocate more than the section holds. */
static int r_count(rbuf *r, size_t min_bytes, int max) {
    uint32_t n = r_u32(r);
    if (r->st != KILN_OK) return 0;
    if (n > (uint32_t)max || (uint64_t)n * min_bytes > r_left(r)) {
        r_fail(r, KILN_ERR_PARSE, "record count larger than the section can hold");
        return 0;
    }
    return (int)n;
}
static char *r_str_max(rbuf *r, uint32_t max) {
    uint32_t n = r_u32(r);
    if (r->st != KILN_OK) return NULL;
    if (n == 0 || n >= max) {
        r_fail(r, KILN_ERR_PARSE, n == 0 ? "empty string" : "string longer than the limit");
        return NULL;
    }
    if (!r_need(r, n)) return NULL;
    if (memchr(r->p, 0, n)) {
        r_fail(r, KILN_ERR_PARSE, "string with a NUL byte");
        return NULL;
    }
    char *s = malloc(n + 1);
    if (!s) {
        r_fail(r, KILN_ERR_OOM, "out of memory");
        return NULL;
    }
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    return s;
}
static char *r_str(rbuf *r) { return r_str_max(r, KILN_BUNDLE_MAX_STRING); }

/* ---------------------------------------------------------------- building -- */
kiln_bundle *kiln_bundle_new(void) {
    kiln_bundle *b = calloc(1, sizeof *b);
    if (!b) kiln_errorf(KILN_ERR_OOM, "out of memory");
    else b->arena_align = 256;
    return b;
}

void kiln_bundle_free(kiln_bundle *b) {
    if (!b) return;
    for (int i = 0; i < b->n_io; i++) free(b->io[i].name);
    for (int i = 0; i < b->n_weights; i++) free(b->weights[i].name);
    for (int i = 0; i < b->n_kernels; i++) {
        free(b->kernels[i].function);
        free(b->kernels[i].group);
    }
    for (int i = 0; i < b->n_launches; i++) free(b->launches[i].args);
    for (int i = 0; i < b->n_buffers; i++) free(b->buffers[i].name);
    for (int i = 0; i < b->n_layers; i++) {
        kiln_bundle_layer *l = &b->layers[i];
        free(l->name);
        free(l->op);
        for (int v = 0; v < l->n_values; v++) free(l->values[v].name);
        free(l->values);
        free(l->deps);
    }
    free(b->layers);
    for (int i = 0; i < b->n_meta; i++) {
        free(b->meta[i].key);
        free(b->meta[i].value);
    }
    if (!b->file_bytes) { /* a read bundle's images and weights live in file_bytes */
        for (int i = 0; i < b->n_images; i++) free(b->images[i].data);
        free(b->weight_data);
    }
    free(b->io);
    free(b->weights);
    free(b->images);
    free(b->kernels);
    free(b->launches);
    free(b->const_pool);
    free(b->buffers);
    free(b->meta);
    free(b->file_bytes);
    free(b);
}

/* Make room for one more element of an array with count n and capacity *cap. */
static bool grow(void **arr, int n, int *cap, size_t elem) {
    if (n < *cap) return true;
    if (n >= 1 << 28) return false;
    int nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}
#define GROW(b, arr, n, cap) grow((void **)&(b)->arr, (b)->n, &(b)->cap, sizeof *(b)->arr)

static kiln_status check_name(const char *what, const char *s) {
    if (!s || !*s) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: empty %s", what);
    if (strlen(s) >= KILN_BUNDLE_MAX_STRING)
        return kiln_errorf(KILN_ERR_LIMIT, "bundle: %s longer than %d bytes", what, KILN_BUNDLE_MAX_STRING - 1);
    return KILN_OK;
}

static kiln_status check_shape(const char *what, const char *name, kiln_dtype dt, int rank, const int64_t *dims) {
    if (kiln_dtype_size(dt) == 0)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "bundle: %s '%s': unsupported dtype %d", what, name, (int)dt);
    if (rank < 0 || rank > KILN_MAX_RANK || (rank > 0 && !dims))
        return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: %s '%s': bad rank %d", what, name, rank);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0 || dims[i] > (INT64_C(1) << 40))
            return kiln_errorf(KILN_ERR_SHAPE, "bundle: %s '%s': dim %d is %lld (static shapes only)", what, name, i,
                               (long long)dims[i]);
    return KILN_OK;
}

kiln_status kiln_bundle_add_io(kiln_bundle *b, const char *name, kiln_dtype dt, int rank, const int64_t *dims,
                               bool is_output) {
    if (!b) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL bundle");
    kiln_status st = check_name("I/O name", name);
    if (st == KILN_OK) st = check_shape(is_output ? "output" : "input", name, dt, rank, dims);
    if (st != KILN_OK) return st;
    if (!GROW(b, io, n_io, cap_io)) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_bundle_io *e = &b->io[b->n_io];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    e->dtype = dt;
    e->rank = rank;
    for (int i = 0; i < rank; i++) e->dims[i] = dims[i];
    e->is_output = is_output;
    b->n_io++;
    return KILN_OK;
}

/* Append n bytes at an aligned offset of a growable blob. */
static kiln_status blob_append(uint8_t **blob, uint64_t *len, uint64_t *cap, const void *data, uint64_t n,
                               uint64_t align, uint64_t *offset) {
    uint64_t at = (*len + align - 1) / align * align;
    if (n > KILN_BUNDLE_MAX_FILE_BYTES || at + n > KILN_BUNDLE_MAX_FILE_BYTES)
        return kiln_errorf(KILN_ERR_LIMIT, "bundle: more than %llu bytes of data",
                           (unsigned long long)KILN_BUNDLE_MAX_FILE_BYTES);
    if (at + n > *cap) {
        uint64_t nc = *cap ? *cap : 4096;
        while (nc < at + n) nc *= 2;
        uint8_t *p = realloc(*blob, (size_t)nc);
        if (!p) return kiln_errorf(KILN_ERR_OOM, "out of memory (%llu bytes)", (unsigned long long)nc);
        *blob = p;
        *cap = nc;
    }
    memset(*blob + *len, 0, (size_t)(at - *len));
    if (n) memcpy(*blob + at, data, (size_t)n);
    *len = at + n;
    if (offset) *offset = at;
    return KILN_OK;
}

static bool checked_numel(int rank, const int64_t *dims, uint64_t elem, uint64_t *bytes) {
    uint64_t n = elem;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return false;
        if (dims[i] != 0 && n > UINT64_MAX / (uint64_t)dims[i]) return false;
        n *= (uint64_t)dims[i];
    }
    *bytes = n;
    return true;
}

kiln_status kiln_bundle_add_weight(kiln_bundle *b, const char *name, kiln_dtype dt, int rank, const int64_t *dims,
                                   const void *data, uint64_t nbytes, uint64_t *offset) {
    if (!b || (nbytes && !data)) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL argument");
    if (b->file_bytes) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: a bundle read from a file is read-only");
    kiln_status st = check_name("weight name", name);
    if (st == KILN_OK) st = check_shape("weight", name, dt, rank, dims);
    if (st != KILN_OK) return st;
    uint64_t want;
    if (!checked_numel(rank, dims, kiln_dtype_size(dt), &want) || want != nbytes)
        return kiln_errorf(KILN_ERR_SHAPE, "bundle: weight '%s': %llu bytes given for its shape", name,
                           (unsigned long long)nbytes);
    if (!GROW(b, weights, n_weights, cap_weights)) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_bundle_weight *w = &b->weights[b->n_weights];
    memset(w, 0, sizeof *w);
    st = blob_append(&b->weight_data, &b->weight_bytes, &b->cap_weight_data, data, nbytes, KILN_BUNDLE_ALIGN,
                     &w->offset);
    if (st != KILN_OK) return st;
    if (!(w->name = strdup(name))) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    w->dtype = dt;
    w->rank = rank;
    for (int i = 0; i < rank; i++) w->dims[i] = dims[i];
    w->nbytes = nbytes;
    if (offset) *offset = w->offset;
    b->n_weights++;
    return KILN_OK;
}

kiln_status kiln_bundle_add_image(kiln_bundle *b, kiln_image_kind kind, const char *arch, uint32_t module,
                                  const void *data, uint64_t size) {
    if (!b || !arch || !data || size == 0) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: empty image");
    if (b->file_bytes) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: a bundle read from a file is read-only");
    if (kind != KILN_IMAGE_CUBIN && kind != KILN_IMAGE_PTX)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: bad image kind %d", (int)kind);
    if (strlen(arch) >= sizeof b->images[0].arch)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: architecture name '%s' too long", arch);
    if (size > KILN_BUNDLE_MAX_FILE_BYTES) return kiln_errorf(KILN_ERR_LIMIT, "bundle: image too large");
    if (!GROW(b, images, n_images, cap_images)) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_bundle_image *im = &b->images[b->n_images];
    memset(im, 0, sizeof *im);
    if (!(im->data = malloc((size_t)size))) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    memcpy(im->data, data, (size_t)size);
    im->size = size;
    im->kind = kind;
    im->module = module;
    snprintf(im->arch, sizeof im->arch, "%s", arch);
    b->n_images++;
    return KILN_OK;
}

kiln_status kiln_bundle_add_kernel(kiln_bundle *b, const char *function, uint32_t module, const char *group,
                                   uint32_t *index) {
    if (!b) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL bundle");
    kiln_status st = check_name("kernel function", function);
    if (st == KILN_OK) st = check_name("kernel group", group);
    if (st != KILN_OK) return st;
    if (!GROW(b, kernels, n_kernels, cap_kernels)) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_bundle_kernel *k = &b->kernels[b->n_kernels];
    k->function = strdup(function);
    k->group = strdup(group);
    k->module = module;
    if (!k->function || !k->group) {
        free(k->function);
        free(k->group);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    if (index) *index = (uint32_t)b->n_kernels;
    b->n_kernels++;
    return KILN_OK;
}

kiln_status kiln_bundle_add_const(kiln_bundle *b, const void *data, uint64_t size, uint64_t *offset) {
    if (!b || !data || size == 0) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: empty constant");
    return blob_append(&b->const_pool, &b->const_pool_bytes, &b->cap_const_pool, data, size, 8, offset);
}

/* ---- TMA tensor map descriptors (KILN_ARG_TMAP) ---- */

void kiln_tmap_desc_put(const kiln_tmap_desc *d, uint8_t out[KILN_TMAP_DESC_BYTES]) {
    uint8_t *p = out;
    put_u32_at(p, d->mode), put_u32_at(p + 4, d->rank), put_u32_at(p + 8, d->base), put_u32_at(p + 12, d->dtype);
    put_u64_at(p + 16, d->offset);
    p += 24;
    for (int i = 0; i < 5; i++, p += 8) put_u64_at(p, d->dims[i]);
    for (int i = 0; i < 5; i++, p += 8) put_u64_at(p, d->strides[i]);
    for (int i = 0; i < 5; i++, p += 4) put_u32_at(p, d->box[i]);
    for (int i = 0; i < 5; i++, p += 4) put_u32_at(p, d->estrides[i]);
    for (int i = 0; i < 3; i++, p += 4) put_u32_at(p, (uint32_t)d->lower[i]);
    for (int i = 0; i < 3; i++, p += 4) put_u32_at(p, (uint32_t)d->upper[i]);
    put_u32_at(p, d->swizzle), put_u32_at(p + 4, d->reserved);
}

void kiln_tmap_desc_get(const uint8_t in[KILN_TMAP_DESC_BYTES], kiln_tmap_desc *d) {
    const uint8_t *p = in;
    d->mode = get_u32_at(p), d->rank = get_u32_at(p + 4), d->base = get_u32_at(p + 8), d->dtype = get_u32_at(p + 12);
    d->offset = get_u64_at(p + 16);
    p += 24;
    for (int i = 0; i < 5; i++, p += 8) d->dims[i] = get_u64_at(p);
    for (int i = 0; i < 5; i++, p += 8) d->strides[i] = get_u64_at(p);
    for (int i = 0; i < 5; i++, p += 4) d->box[i] = get_u32_at(p);
    for (int i = 0; i < 5; i++, p += 4) d->estrides[i] = get_u32_at(p);
    for (int i = 0; i < 3; i++, p += 4) d->lower[i] = (int32_t)get_u32_at(p);
    for (int i = 0; i < 3; i++, p += 4) d->upper[i] = (int32_t)get_u32_at(p);
    d->swizzle = get_u32_at(p), d->reserved = get_u32_at(p + 4);
}

const char *kiln_tmap_desc_check(const kiln_tmap_desc *d, uint64_t arena_bytes, uint64_t weight_bytes) {
    if (d->mode != KILN_TMAP_TILED && d->mode != KILN_TMAP_IM2COL) return "unknown mode";
    if (d->rank < (d->mode == KILN_TMAP_IM2COL ? 3u : 2u) || d->rank > 5) return "rank out of range";
    if (d->base != KILN_ARG_ARENA && d->base != KILN_ARG_WEIGHT) return "base is neither the arena nor the weights";
    if (d->dtype != 6 && d->dtype != 7) return "element type is neither fp16 (6) nor fp32 (7)";
    if (d->swizzle > 3 || d->reserved) return "bad swizzle or reserved field";
    const uint64_t elem = d->dtype == 6 ? 2 : 4, size = d->base == KILN_ARG_ARENA ? arena_bytes : weight_bytes;
    if (d->strides[0] != elem) return "strides[0] is not the element size";
    /* the last element the map can address (overflow-checked) */
    uint64_t last = d->offset;
    if (last > size || d->offset % 16) return "offset outside its allocation or not 16-byte aligned";
    for (uint32_t i = 0; i < d->rank; i++) {
        if (d->dims[i] < 1 || d->dims[i] > (1ull << 32)) return "a dimension is out of range";
        if (i > 0 && (d->strides[i] < 16 || d->strides[i] % 16 || d->strides[i] >= (1ull << 40))) return "a stride is not a multiple of 16 below 2^40";
        if (d->estrides[i] < 1 || d->estrides[i] > 8) return "an element stride is out of 1..8";
        if (d->dims[i] - 1 > size / d->strides[i]) return "the tensor does not fit its allocation";
        const uint64_t step = (d->dims[i] - 1) * d->strides[i];
        if (last > size - step) return "the tensor does not fit its allocation";
        last += step;
    }
    if (elem > size - last) return "the tensor does not fit its allocation";
    if (d->mode == KILN_TMAP_TILED) {
        for (uint32_t i = 0; i < d->rank; i++)
            if (d->box[i] < 1 || d->box[i] > 256) return "a box size is out of 1..256";
    } else {
        if (d->box[0] < 1 || d->box[0] > 256 || d->box[1] < 1 || d->box[1] > 1024) return "bad channels per pixel or pixels per column";
        for (uint32_t i = 0; i + 2 < d->rank; i++)
            if (d->lower[i] < -32768 || d->lower[i] > 32767 || d->upper[i] < -32768 || d->upper[i] > 32767)
                return "a pixel box corner is out of range";
    }
    return NULL;
}

kiln_status kiln_bundle_add_launch(kiln_bundle *b, uint32_t kernel, const uint32_t grid[3], const uint32_t block[3],
                                   uint32_t shared_bytes, uint32_t stream, const kiln_bundle_arg *args,
                                   uint32_t n_args) {
    if (!b || !grid || !block || (n_args && !args)) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL argument");
    if (n_args > KILN_BUNDLE_MAX_ARGS)
        return kiln_errorf(KILN_ERR_LIMIT, "bundle: launch with %u arguments (limit %d)", n_args, KILN_BUNDLE_MAX_ARGS);
    if (!GROW(b, launches, n_launches, cap_launches)) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_bundle_launch *l = &b->launches[b->n_launches];
    memset(l, 0, sizeof *l);
    if (n_args) {
        if (!(l->args = malloc(n_args * sizeof *args))) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        memcpy(l->args, args, n_args * sizeof *args);
    }
    l->kernel = kernel;
    memcpy(l->grid, grid, sizeof l->grid);
    memcpy(l->block, block, sizeof l->block);
    l->shared_bytes = shared_bytes;
    l->stream = stream;
    l->n_args = n_args;
    b->n_launches++;
    return KILN_OK;
}

kiln_status kiln_bundle_set_arena(kiln_bundle *b, uint64_t bytes, uint64_t align) {
    if (!b) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL bundle");
    if (align == 0 || (align & (align - 1)) || align > 4096)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: arena alignment %llu is not a power of two <= 4096",
                           (unsigned long long)align);
    b->arena_bytes = bytes;
    b->arena_align = align;
    return KILN_OK;
}

kiln_status kiln_bundle_add_buffer(kiln_bundle *b, const char *name, uint64_t offset, uint64_t size) {
    if (!b) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL bundle");
    kiln_status st = check_name("buffer name", name);
    if (st != KILN_OK) return st;
    if (!GROW(b, buffers, n_buffers, cap_buffers)) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_bundle_buffer *e = &b->buffers[b->n_buffers];
    if (!(e->name = strdup(name))) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    e->offset = offset;
    e->size = size;
    b->n_buffers++;
    return KILN_OK;
}

kiln_status kiln_bundle_add_layer(kiln_bundle *b, const char *name, const char *op, uint32_t first_launch,
                                  uint32_t n_launches, const kiln_bundle_layer_value *values, int n_values,
                                  const uint32_t *deps, int n_deps) {
    if (!b || n_values < 0 || n_deps < 0 || (n_values && !values) || (n_deps && !deps))
        return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: bad layer arguments");
    kiln_status st = check_name("layer name", name);
    if (st == KILN_OK) st = check_name("layer op", op);
    if (st == KILN_OK && n_values > KILN_BUNDLE_MAX_LAYER_VALUES)
        st = kiln_errorf(KILN_ERR_LIMIT, "bundle: layer '%s' finalizes %d values (limit %d)", name, n_values,
                         KILN_BUNDLE_MAX_LAYER_VALUES);
    for (int v = 0; st == KILN_OK && v < n_values; v++) {
        st = check_name("layer value name", values[v].name);
        if (st == KILN_OK)
            st = check_shape("layer value", values[v].name, values[v].dtype, values[v].rank, values[v].dims);
    }
    if (st != KILN_OK) return st;
    if (!GROW(b, layers, n_layers, cap_layers)) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_bundle_layer *l = &b->layers[b->n_layers];
    memset(l, 0, sizeof *l);
    l->name = strdup(name);
    l->op = strdup(op);
    l->values = calloc((size_t)n_values + 1, sizeof *l->values);
    l->deps = calloc((size_t)n_deps + 1, sizeof *l->deps);
    bool ok = l->name && l->op && l->values && l->deps;
    for (int v = 0; ok && v < n_values; v++) {
        l->values[v] = values[v];
        ok = (l->values[v].name = strdup(values[v].name)) != NULL;
        l->n_values = v + 1;
    }
    if (ok && n_deps) memcpy(l->deps, deps, (size_t)n_deps * sizeof *deps);
    l->n_deps = n_deps;
    l->first_launch = first_launch;
    l->n_launches = n_launches;
    b->n_layers++; /* freed with the bundle even when incomplete */
    return ok ? KILN_OK : kiln_errorf(KILN_ERR_OOM, "out of memory");
}

kiln_status kiln_bundle_set_meta(kiln_bundle *b, const char *key, const char *value) {
    if (!b) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL bundle");
    kiln_status st = check_name("metadata key", key);
    if (st == KILN_OK && (!value || !*value))
        st = kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: empty metadata value");
    if (st == KILN_OK && strlen(value) >= KILN_BUNDLE_MAX_META)
        st = kiln_errorf(KILN_ERR_LIMIT, "bundle: metadata value longer than %d bytes", KILN_BUNDLE_MAX_META - 1);
    if (st != KILN_OK) return st;
    char *v = strdup(value);
    if (!v) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < b->n_meta; i++)
        if (strcmp(b->meta[i].key, key) == 0) {
            free(b->meta[i].value);
            b->meta[i].value = v;
            return KILN_OK;
        }
    char *k = strdup(key);
    if (!k || !GROW(b, meta, n_meta, cap_meta)) {
        free(k);
        free(v);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    b->meta[b->n_meta].key = k;
    b->meta[b->n_meta].value = v;
    b->n_meta++;
    return KILN_OK;
}

const char *kiln_bundle_get_meta(const kiln_bundle *b, const char *key) {
    if (!b || !key) return NULL;
    for (int i = 0; i < b->n_meta; i++)
        if (strcmp(b->meta[i].key, key) == 0) return b->meta[i].value;
    return NULL;
}

/* -------------------------------------------------------------- validation -- */
/* "sm_90" / "sm_90a" for cubins, "compute_90" for PTX: the number, or -1. */
static int arch_number(const char *arch, kiln_image_kind kind, bool *specific) {
    const char *prefix = kind == KILN_IMAGE_CUBIN ? "sm_" : "compute_";
    size_t pl = strlen(prefix);
    if (strncmp(arch, prefix, pl) != 0) return -1;
    const char *p = arch + pl;
    int n = 0, digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++) n = n * 10 + (*p - '0');
    *specific = false;
    if (*p == 'a') {
        *specific = true;
        p++;
    }
    if (digits < 2 || *p) return -1;
    return n;
}

static kiln_status invalid(const char *where, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kiln_status invalid(const char *where, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln_errorf(KILN_ERR_PARSE, "%s: %s", where, msg);
}

/* The checks by section, so that a reader can name the section whose content is wrong. */
static kiln_status validate_io(const kiln_bundle *b, const char *where) {
    for (int i = 0; i < b->n_io; i++) {
        const kiln_bundle_io *e = &b->io[i];
        if (check_shape(e->is_output ? "output" : "input", e->name, e->dtype, e->rank, e->dims) != KILN_OK)
            return invalid(where, "%s", kiln_last_error());
        for (int j = 0; j < i; j++)
            if (strcmp(b->io[j].name, e->name) == 0 && b->io[j].is_output == e->is_output)
                return invalid(where, "duplicate %s '%s'", e->is_output ? "output" : "input", e->name);
    }
    return KILN_OK;
}

static kiln_status validate_weights(const kiln_bundle *b, const char *where) {
    for (int i = 0; i < b->n_weights; i++) {
        const kiln_bundle_weight *w = &b->weights[i];
        uint64_t bytes;
        if (check_shape("weight", w->name, w->dtype, w->rank, w->dims) != KILN_OK)
            return invalid(where, "%s", kiln_last_error());
        if (!checked_numel(w->rank, w->dims, kiln_dtype_size(w->dtype), &bytes) || bytes != w->nbytes)
            return invalid(where, "weight '%s': byte count does not match its shape", w->name);
        if (w->offset % KILN_BUNDLE_ALIGN || w->offset > b->weight_bytes || w->nbytes > b->weight_bytes - w->offset)
            return invalid(where, "weight '%s': bytes outside the weights blob", w->name);
    }
    return KILN_OK;
}

static kiln_status validate_image(const kiln_bundle *b, int i, const char *where) {
    const kiln_bundle_image *im = &b->images[i];
    bool specific;
    if (im->kind != KILN_IMAGE_CUBIN && im->kind != KILN_IMAGE_PTX) return invalid(where, "bad image kind");
    if (arch_number(im->arch, im->kind, &specific) < 0 || (im->kind == KILN_IMAGE_PTX && specific))
        return invalid(where, "bad architecture '%s' for a %s", im->arch, im->kind == KILN_IMAGE_PTX ? "PTX" : "cubin");
    if (im->kind == KILN_IMAGE_CUBIN && (im->size < 4 || memcmp(im->data, "\x7f" "ELF", 4) != 0))
        return invalid(where, "cubin is not an ELF image");
    if (im->kind == KILN_IMAGE_PTX && (im->size == 0 || im->data[im->size - 1] != 0))
        return invalid(where, "PTX is not NUL-terminated");
    for (int j = 0; j < i; j++)
        if (b->images[j].kind == im->kind && b->images[j].module == im->module && strcmp(b->images[j].arch, im->arch) == 0)
            return invalid(where, "second image for %s module %u", im->arch, im->module);
    return KILN_OK;
}

static kiln_status validate_launch(const kiln_bundle *b, const char *where) {
    for (int i = 0; i < b->n_kernels; i++) {
        bool found = false;
        for (int j = 0; j < b->n_images && !found; j++) found = b->images[j].module == b->kernels[i].module;
        if (!found)
            return invalid(where, "kernel %d '%s': no image for module %u", i, b->kernels[i].function,
                           b->kernels[i].module);
    }
    int n_in = 0, n_out = 0;
    for (int i = 0; i < b->n_io; i++) {
        if (b->io[i].is_output) n_out++;
        else n_in++;
    }
    for (int i = 0; i < b->n_launches; i++) {
        const kiln_bundle_launch *l = &b->launches[i];
        if (l->kernel >= (uint32_t)b->n_kernels) return invalid(where, "launch %d: kernel %u does not exist", i, l->kernel);
        uint64_t threads = (uint64_t)l->block[0] * l->block[1] * l->block[2];
        if (!l->grid[0] || !l->grid[1] || !l->grid[2] || !threads || threads > 1024 || l->grid[1] > 65535 ||
            l->grid[2] > 65535 || l->block[2] > 64)
            return invalid(where, "launch %d: bad grid or block dimensions", i);
        if (l->n_args > KILN_BUNDLE_MAX_ARGS) return invalid(where, "launch %d: too many arguments", i);
        for (uint32_t a = 0; a < l->n_args; a++) {
            const kiln_bundle_arg *g = &l->args[a];
            bool ok;
            switch (g->kind) {
            case KILN_ARG_ARENA: ok = g->size == 8 && g->value <= b->arena_bytes; break;
            case KILN_ARG_WEIGHT: ok = g->size == 8 && g->value <= b->weight_bytes; break;
            case KILN_ARG_INPUT: ok = g->size == 8 && g->value < (uint64_t)n_in; break;
            case KILN_ARG_OUTPUT: ok = g->size == 8 && g->value < (uint64_t)n_out; break;
            case KILN_ARG_SCALAR: ok = g->size >= 1 && g->size <= 8; break;
            case KILN_ARG_BYTES:
                ok = g->size >= 1 && g->size <= 4096 && g->value <= b->const_pool_bytes &&
                     g->size <= b->const_pool_bytes - g->value;
                break;
            case KILN_ARG_TMAP:
                ok = g->size == KILN_TMAP_BYTES && g->value <= b->const_pool_bytes &&
                     KILN_TMAP_DESC_BYTES <= b->const_pool_bytes - g->value;
                if (ok) {
                    kiln_tmap_desc d;
                    kiln_tmap_desc_get(b->const_pool + g->value, &d);
                    const char *why = kiln_tmap_desc_check(&d, b->arena_bytes, b->weight_bytes);
                    if (why) return invalid(where, "launch %d: argument %u: tensor map: %s", i, a, why);
                }
                break;
            case KILN_ARG_SYNC: ok = g->size == 8 && g->value < KILN_SYNC_MAX_REGIONS; break;
            default: ok = false;
            }
            if (!ok) return invalid(where, "launch %d: argument %u (kind %d) is out of range", i, a, (int)g->kind);
        }
    }
    return KILN_OK;
}

static kiln_status validate_memory(const kiln_bundle *b, const char *where) {
    if (b->arena_align == 0 || (b->arena_align & (b->arena_align - 1)) || b->arena_align > 4096)
        return invalid(where, "arena alignment %llu is not a power of two <= 4096", (unsigned long long)b->arena_align);
    for (int i = 0; i < b->n_buffers; i++) {
        const kiln_bundle_buffer *e = &b->buffers[i];
        if (e->offset > b->arena_bytes || e->size > b->arena_bytes - e->offset)
            return invalid(where, "buffer '%s' lies outside the %llu-byte arena", e->name,
                           (unsigned long long)b->arena_bytes);
    }
    return KILN_OK;
}

static kiln_status validate_meta(const kiln_bundle *b, const char *where) {
    for (int i = 0; i < b->n_meta; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(b->meta[i].key, b->meta[j].key) == 0) return invalid(where, "duplicate key '%s'", b->meta[i].key);
    return KILN_OK;
}

/* Layers partition the launch plan in order; deps point backwards, ascending; every value's
 * bytes lie inside its arena range or binding (same dtype and shape as the binding). */
static kiln_status validate_layers(const kiln_bundle *b, const char *where) {
    uint32_t next = 0;
    for (int i = 0; i < b->n_layers; i++) {
        const kiln_bundle_layer *l = &b->layers[i];
        if (l->first_launch != next || l->n_launches > (uint32_t)b->n_launches - next)
            return invalid(where, "layer %d '%s': launches %u..+%u do not follow the previous layer's (%u) inside the "
                           "%d-launch plan", i, l->name, l->first_launch, l->n_launches, next, b->n_launches);
        next += l->n_launches;
        for (int d = 0; d < l->n_deps; d++)
            if (l->deps[d] >= (uint32_t)i || (d && l->deps[d] <= l->deps[d - 1]))
                return invalid(where, "layer %d '%s': dependencies must be earlier layers, ascending", i, l->name);
        for (int v = 0; v < l->n_values; v++) {
            const kiln_bundle_layer_value *e = &l->values[v];
            uint64_t bytes;
            if (check_shape("layer value", e->name, e->dtype, e->rank, e->dims) != KILN_OK ||
                !checked_numel(e->rank, e->dims, kiln_dtype_size(e->dtype), &bytes))
                return invalid(where, "layer %d '%s': %s", i, l->name, kiln_last_error());
            bool ok = false;
            if (e->where == KILN_ARG_ARENA) {
                ok = e->at <= b->arena_bytes && bytes <= b->arena_bytes - e->at;
            } else if (e->where == KILN_ARG_INPUT || e->where == KILN_ARG_OUTPUT) {
                bool out = e->where == KILN_ARG_OUTPUT;
                uint64_t k = 0;
                for (int j = 0; j < b->n_io && !ok; j++) {
                    if (b->io[j].is_output != out) continue;
                    if (k++ != e->at) continue;
                    uint64_t io_bytes;
                    ok = checked_numel(b->io[j].rank, b->io[j].dims, kiln_dtype_size(b->io[j].dtype), &io_bytes) &&
                         io_bytes == bytes;
                }
            }
            if (!ok)
                return invalid(where, "layer %d '%s': value '%s' (place kind %d, at %llu) lies outside its storage", i,
                               l->name, e->name, (int)e->where, (unsigned long long)e->at);
        }
    }
    if (b->n_layers && next != (uint32_t)b->n_launches)
        return invalid(where, "the layers cover %u of %d launches", next, b->n_launches);
    return KILN_OK;
}

kiln_status kiln_bundle_validate(const kiln_bundle *b) {
    if (!b) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL bundle");
    kiln_status st = validate_io(b, "bundle: io_signature");
    if (st == KILN_OK) st = validate_weights(b, "bundle: weights");
    for (int i = 0; i < b->n_images && st == KILN_OK; i++) st = validate_image(b, i, "bundle: image");
    if (st == KILN_OK) st = validate_launch(b, "bundle: launch_plan");
    if (st == KILN_OK) st = validate_memory(b, "bundle: memory_plan");
    if (st == KILN_OK) st = validate_meta(b, "bundle: metadata");
    if (st == KILN_OK) st = validate_layers(b, "bundle: layers");
    if (st != KILN_OK) kiln_error_prefix(st, "invalid bundle");
    return st;
}

/* ----------------------------------------------------------------- writing -- */
static void enc_io(const kiln_bundle *b, wbuf *w) {
    w_u32(w, (uint32_t)b->n_io);
    for (int i = 0; i < b->n_io; i++) {
        const kiln_bundle_io *e = &b->io[i];
        w_str(w, e->name);
        w_u32(w, (uint32_t)e->dtype);
        w_u32(w, (uint32_t)e->rank);
        w_u32(w, e->is_output ? 1 : 0);
        for (int d = 0; d < e->rank; d++) w_u64(w, (uint64_t)e->dims[d]);
    }
}

static void enc_weights(const kiln_bundle *b, wbuf *w) {
    wbuf t = {0};
    w_u32(&t, (uint32_t)b->n_weights);
    for (int i = 0; i < b->n_weights; i++) {
        const kiln_bundle_weight *e = &b->weights[i];
        w_str(&t, e->name);
        w_u32(&t, (uint32_t)e->dtype);
        w_u32(&t, (uint32_t)e->rank);
        for (int d = 0; d < e->rank; d++) w_u64(&t, (uint64_t)e->dims[d]);
        w_u64(&t, e->offset);
        w_u64(&t, e->nbytes);
    }
    /* the blob starts aligned within the section, hence in the file */
    uint64_t blob_at = (16 + t.len + KILN_BUNDLE_ALIGN - 1) / KILN_BUNDLE_ALIGN * KILN_BUNDLE_ALIGN;
    w_u64(w, blob_at);
    w_u64(w, b->weight_bytes);
    w_bytes(w, t.p, t.len);
    w->oom |= t.oom;
    free(t.p);
    w_align(w, KILN_BUNDLE_ALIGN);
    w_bytes(w, b->weight_data, (size_t)b->weight_bytes);
}

static void enc_launch(const kiln_bundle *b, wbuf *w) {
    w_u32(w, (uint32_t)b->n_kernels);
    for (int i = 0; i < b->n_kernels; i++) {
        w_str(w, b->kernels[i].function);
        w_u32(w, b->kernels[i].module);
        w_str(w, b->kernels[i].group);
    }
    w_u32(w, (uint32_t)b->n_launches);
    for (int i = 0; i < b->n_launches; i++) {
        const kiln_bundle_launch *l = &b->launches[i];
        w_u32(w, l->kernel);
        for (int d = 0; d < 3; d++) w_u32(w, l->grid[d]);
        for (int d = 0; d < 3; d++) w_u32(w, l->block[d]);
        w_u32(w, l->shared_bytes);
        w_u32(w, l->stream);
        w_u32(w, l->n_args);
        for (uint32_t a = 0; a < l->n_args; a++) {
            w_u32(w, (uint32_t)l->args[a].kind);
            w_u32(w, l->args[a].size);
            w_u64(w, l->args[a].value);
        }
    }
    w_u64(w, b->const_pool_bytes);
    w_bytes(w, b->const_pool, (size_t)b->const_pool_bytes);
}

static void enc_layers(const kiln_bundle *b, wbuf *w) {
    w_u32(w, (uint32_t)b->n_layers);
    for (int i = 0; i < b->n_layers; i++) {
        const kiln_bundle_layer *l = &b->layers[i];
        w_str(w, l->name);
        w_str(w, l->op);
        w_u32(w, l->first_launch);
        w_u32(w, l->n_launches);
        w_u32(w, (uint32_t)l->n_values);
        for (int v = 0; v < l->n_values; v++) {
            const kiln_bundle_layer_value *e = &l->values[v];
            w_str(w, e->name);
            w_u32(w, (uint32_t)e->dtype);
            w_u32(w, (uint32_t)e->rank);
            for (int d = 0; d < e->rank; d++) w_u64(w, (uint64_t)e->dims[d]);
            w_u32(w, (uint32_t)e->where);
            w_u64(w, e->at);
        }
        w_u32(w, (uint32_t)l->n_deps);
        for (int d = 0; d < l->n_deps; d++) w_u32(w, l->deps[d]);
    }
}

static void enc_memory(const kiln_bundle *b, wbuf *w) {
    w_u64(w, b->arena_bytes);
    w_u64(w, b->arena_align);
    w_u32(w, (uint32_t)b->n_buffers);
    for (int i = 0; i < b->n_buffers; i++) {
        w_str(w, b->buffers[i].name);
        w_u64(w, b->buffers[i].offset);
        w_u64(w, b->buffers[i].size);
    }
}

static void enc_meta(const kiln_bundle *b, wbuf *w) {
    w_u32(w, (uint32_t)b->n_meta);
    for (int i = 0; i < b->n_meta; i++) {
        w_str(w, b->meta[i].key);
        w_str(w, b->meta[i].value);
    }
}

kiln_status kiln_bundle_write_bytes(const kiln_bundle *b, uint8_t **out, size_t *len) {
    if (!b || !out || !len) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL argument");
    *out = NULL;
    *len = 0;
    kiln_status st = kiln_bundle_validate(b);
    if (st != KILN_OK) return st;

    int n_tables = b->n_layers ? 6 : 5; /* the layers section only when there are layers */
    int n_sec = n_tables + b->n_images;
    if (n_sec > KILN_BUNDLE_MAX_SECTIONS)
        return kiln_errorf(KILN_ERR_LIMIT, "bundle: %d sections (limit %d)", n_sec, KILN_BUNDLE_MAX_SECTIONS);
    wbuf w = {0};
    w_zeros(&w, HEADER_BYTES + (size_t)n_sec * ENTRY_BYTES);
    w_align(&w, KILN_BUNDLE_ALIGN);
    uint8_t *entries = calloc((size_t)n_sec, ENTRY_BYTES);
    if (!entries) {
        free(w.p);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    /* Sections in a fixed order: small tables first, so that `kiln inspect` reads little. */
    int s = 0;
    for (int k = 0; k < n_sec; k++) {
        uint32_t type, aux = 0;
        const char *tag = "";
        uint32_t flags = 0;
        if (k < n_tables) {
            static const uint32_t order[6] = {SEC_META, SEC_IO, SEC_MEMORY, SEC_LAUNCH, SEC_LAYERS, SEC_WEIGHTS};
            type = order[k + (n_tables == 5 && k >= 4)];
            if (type == SEC_LAYERS) flags = SECTION_OPTIONAL;
        } else if (k < n_tables + b->n_images) {
            const kiln_bundle_image *im = &b->images[k - n_tables];
            type = im->kind == KILN_IMAGE_CUBIN ? SEC_CUBIN : SEC_PTX;
            aux = im->module;
            tag = im->arch;
        } else {
            break;
        }
        w_align(&w, KILN_BUNDLE_ALIGN);
        size_t start = w.len;
        switch (type) {
        case SEC_META: enc_meta(b, &w); break;
        case SEC_IO: enc_io(b, &w); break;
        case SEC_MEMORY: enc_memory(b, &w); break;
        case SEC_LAUNCH: enc_launch(b, &w); break;
        case SEC_WEIGHTS: enc_weights(b, &w); break;
        case SEC_LAYERS: enc_layers(b, &w); break;
        default: w_bytes(&w, b->images[k - n_tables].data, (size_t)b->images[k - n_tables].size); break;
        }
        if (w.oom) break;
        uint8_t *e = entries + (size_t)s * ENTRY_BYTES;
        put_u32_at(e, type);
        put_u32_at(e + 4, flags);
        put_u32_at(e + 8, aux);
        memcpy(e + 16, tag, strlen(tag));
        put_u64_at(e + 32, start);
        put_u64_at(e + 40, w.len - start);
        put_u32_at(e + 48, kiln_crc32c(0, w.p + start, w.len - start));
        s++;
    }
    n_sec = s;
    if (w.oom) {
        free(w.p);
        free(entries);
        return kiln_errorf(KILN_ERR_OOM, "out of memory serialising the bundle");
    }
    uint8_t *h = w.p;
    memcpy(h, bundle_magic, 8);
    put_u32_at(h + 8, KILN_BUNDLE_VERSION);
    put_u32_at(h + 12, BYTE_ORDER_MARK);
    put_u32_at(h + 16, HEADER_BYTES);
    put_u32_at(h + 20, (uint32_t)n_sec);
    put_u64_at(h + 24, HEADER_BYTES);
    put_u64_at(h + 32, w.len);
    memcpy(h + HEADER_BYTES, entries, (size_t)n_sec * ENTRY_BYTES);
    put_u32_at(h + 40, kiln_crc32c(0, entries, (size_t)n_sec * ENTRY_BYTES));
    put_u32_at(h + 44, 0);
    put_u32_at(h + 60, kiln_crc32c(0, h, 60));
    free(entries);
    *out = w.p;
    *len = w.len;
    return KILN_OK;
}

kiln_status kiln_bundle_write(const kiln_bundle *b, const char *path) {
    if (!path) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL path");
    uint8_t *bytes;
    size_t len;
    kiln_status st = kiln_bundle_write_bytes(b, &bytes, &len);
    if (st != KILN_OK) return st;
    /* Write beside the target and rename: readers never see a half-written bundle, and a
     * failed write leaves an existing bundle intact. */
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) {
        free(bytes);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        free(bytes);
        return st;
    }
    size_t done = 0;
    while (done < len && st == KILN_OK) {
        ssize_t n = write(fd, bytes + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) st = kiln_errorf(KILN_ERR_IO, "%s: write failed: %s", tmp, n < 0 ? strerror(errno) : "no progress");
        else done += (size_t)n;
    }
    if (st == KILN_OK && fsync(fd) != 0) st = kiln_errorf(KILN_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    /* mkstemp makes the file 0600; a bundle is an ordinary output file */
    if (st == KILN_OK) {
        mode_t mask = umask(0);
        umask(mask);
        if (fchmod(fd, 0666 & ~mask) != 0) st = kiln_errorf(KILN_ERR_IO, "%s: chmod failed: %s", tmp, strerror(errno));
    }
    if (close(fd) != 0 && st == KILN_OK) st = kiln_errorf(KILN_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == KILN_OK && rename(tmp, path) != 0)
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
    if (st != KILN_OK) unlink(tmp);
    free(tmp);
    free(bytes);
    return st;
}

/* ----------------------------------------------------------------- reading -- */
static bool r_shape(rbuf *r, kiln_dtype *dt, int *rank, int64_t *dims) {
    *dt = (kiln_dtype)r_u32(r);
    uint32_t rk = r_u32(r);
    if (r->st != KILN_OK) return false;
    if (rk > KILN_MAX_RANK) return r_fail(r, KILN_ERR_PARSE, "rank above the limit");
    *rank = (int)rk;
    for (uint32_t d = 0; d < rk; d++) dims[d] = (int64_t)r_u64(r);
    return r->st == KILN_OK;
}

static void dec_io(kiln_bundle *b, rbuf *r) {
    int n = r_count(r, 16, 1 << 20);
    if (r->st != KILN_OK) return;
    if (n && !(b->io = calloc((size_t)n, sizeof *b->io))) {
        r_fail(r, KILN_ERR_OOM, "out of memory");
        return;
    }
    for (int i = 0; i < n && r->st == KILN_OK; i++) {
        kiln_bundle_io *e = &b->io[i];
        e->name = r_str(r);
        if (!e->name) return;
        b->n_io++;
        e->dtype = (kiln_dtype)r_u32(r);
        uint32_t rank = r_u32(r), out = r_u32(r);
        if (r->st != KILN_OK) return;
        if (rank > KILN_MAX_RANK || out > 1) {
            r_fail(r, KILN_ERR_PARSE, rank > KILN_MAX_RANK ? "rank above the limit" : "bad is_output flag");
            return;
        }
        e->rank = (int)rank;
        e->is_output = out == 1;
        for (uint32_t d = 0; d < rank; d++) e->dims[d] = (int64_t)r_u64(r);
    }
}

static void dec_weights(kiln_bundle *b, rbuf *r, const uint8_t *section_start) {
    uint64_t blob_at = r_u64(r), blob_bytes = r_u64(r);
    int n = r_count(r, 29, 1 << 24);
    if (r->st != KILN_OK) return;
    if (n && !(b->weights = calloc((size_t)n, sizeof *b->weights))) {
        r_fail(r, KILN_ERR_OOM, "out of memory");
        return;
    }
    for (int i = 0; i < n && r->st == KILN_OK; i++) {
        kiln_bundle_weight *e = &b->weights[i];
        e->name = r_str(r);
        if (!e->name) return;
        b->n_weights++;
        r_shape(r, &e->dtype, &e->rank, e->dims);
        e->offset = r_u64(r);
        e->nbytes = r_u64(r);
    }
    if (r->st != KILN_OK) return;
    uint64_t section_len = (uint64_t)(r->end - section_start), table_end = (uint64_t)(r->p - section_start);
    if (blob_at % KILN_BUNDLE_ALIGN || blob_at < table_end || blob_at > section_len ||
        blob_bytes != section_len - blob_at) {
        r_fail(r, KILN_ERR_PARSE, "weights blob offset or size inconsistent with the section");
        return;
    }
    for (const uint8_t *p = r->p; p < section_start + blob_at; p++)
        if (*p) {
            r_fail(r, KILN_ERR_PARSE, "nonzero padding before the weights blob");
            return;
        }
    b->weight_data = (uint8_t *)section_start + blob_at;
    b->weight_bytes = blob_bytes;
    r->p = r->end;
}

static void dec_launch(kiln_bundle *b, rbuf *r) {
    int n = r_count(r, 12, 1 << 24);
    if (r->st != KILN_OK) return;
    if (n && !(b->kernels = calloc((size_t)n, sizeof *b->kernels))) {
        r_fail(r, KILN_ERR_OOM, "out of memory");
        return;
    }
    for (int i = 0; i < n && r->st == KILN_OK; i++) {
        kiln_bundle_kernel *k = &b->kernels[i];
        k->function = r_str(r);
        k->module = r_u32(r);
        k->group = r_str(r);
        if (k->function || k->group) b->n_kernels++;
    }
    if (r->st != KILN_OK) return;
    n = r_count(r, 40, 1 << 24);
    if (r->st != KILN_OK) return;
    if (n && !(b->launches = calloc((size_t)n, sizeof *b->launches))) {
        r_fail(r, KILN_ERR_OOM, "out of memory");
        return;
    }
    for (int i = 0; i < n && r->st == KILN_OK; i++) {
        kiln_bundle_launch *l = &b->launches[i];
        l->kernel = r_u32(r);
        for (int d = 0; d < 3; d++) l->grid[d] = r_u32(r);
        for (int d = 0; d < 3; d++) l->block[d] = r_u32(r);
        l->shared_bytes = r_u32(r);
        l->stream = r_u32(r);
        int na = r_count(r, 16, KILN_BUNDLE_MAX_ARGS);
        if (r->st != KILN_OK) return;
        b->n_launches++;
        if (na && !(l->args = calloc((size_t)na, sizeof *l->args))) {
            r_fail(r, KILN_ERR_OOM, "out of memory");
            return;
        }
        l->n_args = (uint32_t)na;
        for (int a = 0; a < na; a++) {
            l->args[a].kind = (kiln_arg_kind)r_u32(r);
            l->args[a].size = r_u32(r);
            l->args[a].value = r_u64(r);
        }
    }
    uint64_t pool = r_u64(r);
    if (r->st != KILN_OK) return;
    if (pool != r_left(r)) {
        r_fail(r, KILN_ERR_PARSE, "constant pool size does not match the section's end");
        return;
    }
    if (pool) {
        if (!(b->const_pool = malloc((size_t)pool))) {
            r_fail(r, KILN_ERR_OOM, "out of memory");
            return;
        }
        memcpy(b->const_pool, r->p, (size_t)pool);
        r->p += pool;
    }
    b->const_pool_bytes = pool;
}

static void dec_layers(kiln_bundle *b, rbuf *r) {
    int n = r_count(r, 26, 1 << 24);
    if (r->st != KILN_OK) return;
    if (n && !(b->layers = calloc((size_t)n, sizeof *b->layers))) {
        r_fail(r, KILN_ERR_OOM, "out of memory");
        return;
    }
    for (int i = 0; i < n && r->st == KILN_OK; i++) {
        kiln_bundle_layer *l = &b->layers[i];
        b->n_layers++; /* freed with the bundle from here on */
        l->name = r_str(r);
        l->op = r_str(r);
        l->first_launch = r_u32(r);
        l->n_launches = r_u32(r);
        int nv = r_count(r, 25, KILN_BUNDLE_MAX_LAYER_VALUES);
        if (r->st != KILN_OK) return;
        if (!(l->values = calloc((size_t)nv + 1, sizeof *l->values))) {
            r_fail(r, KILN_ERR_OOM, "out of memory");
            return;
        }
        for (int v = 0; v < nv && r->st == KILN_OK; v++) {
            kiln_bundle_layer_value *e = &l->values[v];
            e->name = r_str(r);
            if (!e->name) return;
            l->n_values++;
            if (!r_shape(r, &e->dtype, &e->rank, e->dims)) return;
            e->where = (kiln_arg_kind)r_u32(r);
            e->at = r_u64(r);
        }
        int nd = r_count(r, 4, 1 << 24);
        if (r->st != KILN_OK) return;
        if (!(l->deps = calloc((size_t)nd + 1, sizeof *l->deps))) {
            r_fail(r, KILN_ERR_OOM, "out of memory");
            return;
        }
        for (int d = 0; d < nd; d++) l->deps[d] = r_u32(r);
        l->n_deps = nd;
    }
}

static void dec_memory(kiln_bundle *b, rbuf *r) {
    b->arena_bytes = r_u64(r);
    b->arena_align = r_u64(r);
    int n = r_count(r, 20, 1 << 24);
    if (r->st != KILN_OK) return;
    if (n && !(b->buffers = calloc((size_t)n, sizeof *b->buffers))) {
        r_fail(r, KILN_ERR_OOM, "out of memory");
        return;
    }
    for (int i = 0; i < n && r->st == KILN_OK; i++) {
        kiln_bundle_buffer *e = &b->buffers[i];
        e->name = r_str(r);
        if (!e->name) return;
        b->n_buffers++;
        e->offset = r_u64(r);
        e->size = r_u64(r);
    }
}

static void dec_meta(kiln_bundle *b, rbuf *r) {
    int n = r_count(r, 10, 1 << 16);
    if (r->st != KILN_OK) return;
    if (n && !(b->meta = calloc((size_t)n, sizeof *b->meta))) {
        r_fail(r, KILN_ERR_OOM, "out of memory");
        return;
    }
    for (int i = 0; i < n && r->st == KILN_OK; i++) {
        b->meta[i].key = r_str(r);
        b->meta[i].value = r_str_max(r, KILN_BUNDLE_MAX_META);
        if (b->meta[i].key || b->meta[i].value) b->n_meta++;
    }
}

/* Parse the bytes in b->file_bytes (owned by b). */
static kiln_status parse(kiln_bundle *b, size_t len, const char *what) {
    const uint8_t *f = b->file_bytes;
    if (len < HEADER_BYTES)
        return kiln_errorf(KILN_ERR_PARSE, "%s: header: truncated (%zu of %u bytes)%s", what, len, HEADER_BYTES,
                           len >= 8 && memcmp(f, bundle_magic, 8) == 0 ? "" : "; not a kiln bundle");
    if (memcmp(f, bundle_magic, 8) != 0)
        return kiln_errorf(KILN_ERR_PARSE, "%s: header: bad magic: not a kiln bundle", what);
    if (get_u32_at(f + 60) != kiln_crc32c(0, f, 60))
        return kiln_errorf(KILN_ERR_PARSE, "%s: header: checksum mismatch (corrupted header)", what);
    if (get_u32_at(f + 12) != BYTE_ORDER_MARK)
        return kiln_errorf(KILN_ERR_PARSE, "%s: header: byte-order marker 0x%08x, expected 0x%08x", what,
                           get_u32_at(f + 12), BYTE_ORDER_MARK);
    uint32_t version = get_u32_at(f + 8);
    if (version != KILN_BUNDLE_VERSION)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s: header: format version %u; this kiln reads version %d", what,
                           version, KILN_BUNDLE_VERSION);
    uint32_t n_sec = get_u32_at(f + 20);
    uint64_t table_at = get_u64_at(f + 24), file_bytes = get_u64_at(f + 32);
    bool reserved_zero = get_u32_at(f + 44) == 0;
    for (int i = 48; i < 60; i++) reserved_zero &= f[i] == 0;
    if (get_u32_at(f + 16) != HEADER_BYTES || table_at != HEADER_BYTES || !reserved_zero)
        return kiln_errorf(KILN_ERR_PARSE, "%s: header: unexpected header size, table offset or flags", what);
    if (n_sec < 1 || n_sec > KILN_BUNDLE_MAX_SECTIONS)
        return kiln_errorf(KILN_ERR_LIMIT, "%s: header: %u sections (limit %d)", what, n_sec, KILN_BUNDLE_MAX_SECTIONS);
    uint64_t table_end = table_at + (uint64_t)n_sec * ENTRY_BYTES;
    if (table_end > len)
        return kiln_errorf(KILN_ERR_PARSE, "%s: section table: truncated (needs %llu bytes, file has %zu)", what,
                           (unsigned long long)table_end, len);
    if (get_u32_at(f + 40) != kiln_crc32c(0, f + table_at, (size_t)(table_end - table_at)))
        return kiln_errorf(KILN_ERR_PARSE, "%s: section table: checksum mismatch (corrupted table)", what);

    section_entry *sec = calloc(n_sec, sizeof *sec);
    if (!sec) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_status st = KILN_OK;
    uint64_t prev_end = table_end;
    for (uint32_t i = 0; i < n_sec && st == KILN_OK; i++) {
        const uint8_t *e = f + table_at + (size_t)i * ENTRY_BYTES;
        section_entry *s = &sec[i];
        s->type = get_u32_at(e);
        s->flags = get_u32_at(e + 4);
        s->aux = get_u32_at(e + 8);
        memcpy(s->tag, e + 16, 16);
        s->tag[16] = '\0';
        s->offset = get_u64_at(e + 32);
        s->size = get_u64_at(e + 40);
        s->crc = get_u32_at(e + 48);
        bool tag_ok = strlen(s->tag) < 16 && get_u32_at(e + 12) == 0 && get_u32_at(e + 52) == 0;
        for (size_t k = strlen(s->tag); k < 16; k++) tag_ok &= e[16 + k] == 0;
        for (const char *c = s->tag; *c; c++) tag_ok &= (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
        if (!tag_ok) snprintf(s->tag, sizeof s->tag, "?");
        entry_label(s, (int)i);
        if (!tag_ok || (s->flags & ~SECTION_OPTIONAL))
            st = kiln_errorf(KILN_ERR_PARSE, "%s: %s: malformed table entry", what, s->label);
        else if (s->offset % KILN_BUNDLE_ALIGN || s->offset < prev_end)
            st = kiln_errorf(KILN_ERR_PARSE, "%s: %s: misplaced (offset %llu)", what, s->label,
                             (unsigned long long)s->offset);
        else if (s->offset > len || s->size > len - s->offset)
            st = kiln_errorf(KILN_ERR_PARSE, "%s: %s: truncated (the section ends at byte %llu, the file has %zu)",
                             what, s->label, (unsigned long long)(s->offset + s->size), len);
        else {
            for (uint64_t k = prev_end; k < s->offset && st == KILN_OK; k++)
                if (f[k]) st = kiln_errorf(KILN_ERR_PARSE, "%s: %s: nonzero padding before it", what, s->label);
            prev_end = s->offset + s->size;
        }
    }
    if (st == KILN_OK && (prev_end != file_bytes || file_bytes != len))
        st = kiln_errorf(KILN_ERR_PARSE, "%s: header: file is %zu bytes, header says %llu, sections end at %llu%s",
                         what, len, (unsigned long long)file_bytes, (unsigned long long)prev_end,
                         len < file_bytes ? " (truncated)" : "");
    for (uint32_t i = 0; i < n_sec && st == KILN_OK; i++)
        if (kiln_crc32c(0, f + sec[i].offset, (size_t)sec[i].size) != sec[i].crc)
            st = kiln_errorf(KILN_ERR_PARSE, "%s: %s: checksum mismatch (corrupted section)", what, sec[i].label);

    /* Decode. Each required table appears exactly once; images any number of times. */
    int seen[SEC_LAST + 1] = {0};
    int n_images = 0;
    for (uint32_t i = 0; i < n_sec && st == KILN_OK; i++) {
        if (sec[i].type >= 1 && sec[i].type <= SEC_LAST) seen[sec[i].type]++;
        if (sec[i].type == SEC_CUBIN || sec[i].type == SEC_PTX) n_images++;
        if (sec[i].type < 1 || sec[i].type > SEC_LAST) {
            if (!(sec[i].flags & SECTION_OPTIONAL))
                st = kiln_errorf(KILN_ERR_UNSUPPORTED, "%s: %s: unknown required section type %u (a newer kiln wrote it?)",
                                 what, sec[i].label, sec[i].type);
        } else if (seen[sec[i].type] > 1 && sec[i].type != SEC_CUBIN && sec[i].type != SEC_PTX) {
            st = kiln_errorf(KILN_ERR_PARSE, "%s: %s: appears twice", what, sec[i].label);
        }
    }
    static const uint32_t required[] = {SEC_IO, SEC_WEIGHTS, SEC_LAUNCH, SEC_MEMORY, SEC_META};
    for (size_t k = 0; k < sizeof required / sizeof required[0] && st == KILN_OK; k++)
        if (!seen[required[k]])
            st = kiln_errorf(KILN_ERR_PARSE, "%s: section table: no '%s' section", what, section_type_name(required[k]));
    if (st == KILN_OK && n_images && !(b->images = calloc((size_t)n_images, sizeof *b->images)))
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");

    for (uint32_t i = 0; i < n_sec && st == KILN_OK; i++) {
        const section_entry *s = &sec[i];
        const uint8_t *start = f + s->offset;
        rbuf r = {start, start + s->size, s->label, what, KILN_OK};
        switch (s->type) {
        case SEC_IO: dec_io(b, &r); break;
        case SEC_WEIGHTS: dec_weights(b, &r, start); break;
        case SEC_LAUNCH: dec_launch(b, &r); break;
        case SEC_MEMORY: dec_memory(b, &r); break;
        case SEC_META: dec_meta(b, &r); break;
        case SEC_LAYERS: dec_layers(b, &r); break;
        case SEC_CUBIN:
        case SEC_PTX: {
            kiln_bundle_image *im = &b->images[b->n_images++];
            im->kind = s->type == SEC_CUBIN ? KILN_IMAGE_CUBIN : KILN_IMAGE_PTX;
            snprintf(im->arch, sizeof im->arch, "%s", s->tag);
            im->module = s->aux;
            im->data = (uint8_t *)start;
            im->size = s->size;
            r.p = r.end;
            char where[160];
            snprintf(where, sizeof where, "%s: %s", what, s->label);
            r.st = validate_image(b, b->n_images - 1, where);
            break;
        }
        default: r.p = r.end; break; /* optional, unknown: skipped */
        }
        if (r.st == KILN_OK && r.p != r.end)
            r_fail(&r, KILN_ERR_PARSE, "trailing bytes after the last record");
        st = r.st;
    }
    /* Semantic checks, each naming the section whose content is at fault. */
    char where[160];
    const char *names[] = {"io_signature", "weights", "launch_plan", "memory_plan", "metadata"};
    for (int k = 0; k < 5 && st == KILN_OK; k++) {
        int idx = -1;
        for (uint32_t i = 0; i < n_sec; i++)
            if (sec[i].type == required[k]) idx = (int)i;
        snprintf(where, sizeof where, "%s: section %d '%s'", what, idx, names[k]);
        switch (required[k]) {
        case SEC_IO: st = validate_io(b, where); break;
        case SEC_WEIGHTS: st = validate_weights(b, where); break;
        case SEC_LAUNCH: st = validate_launch(b, where); break;
        case SEC_MEMORY: st = validate_memory(b, where); break;
        default: st = validate_meta(b, where); break;
        }
    }
    for (uint32_t i = 0; i < n_sec && st == KILN_OK; i++)
        if (sec[i].type == SEC_LAYERS) {
            snprintf(where, sizeof where, "%s: section %u 'layers'", what, i);
            st = validate_layers(b, where);
        }
    free(sec);
    return st;
}

kiln_status kiln_bundle_read_bytes(const void *data, size_t len, const char *what, kiln_bundle **out) {
    if (!out) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL output");
    *out = NULL;
    if (!data && len) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL data");
    if (!what) what = "bundle";
    if (len > KILN_BUNDLE_MAX_FILE_BYTES)
        return kiln_errorf(KILN_ERR_LIMIT, "%s: %zu bytes is above the bundle size limit", what, len);
    kiln_bundle *b = kiln_bundle_new();
    if (!b) return KILN_ERR_OOM;
    b->file_bytes = malloc(len ? len : 1);
    if (!b->file_bytes) {
        kiln_bundle_free(b);
        return kiln_errorf(KILN_ERR_OOM, "%s: out of memory (%zu bytes)", what, len);
    }
    if (len) memcpy(b->file_bytes, data, len);
    kiln_status st = parse(b, len, what);
    if (st != KILN_OK) {
        kiln_bundle_free(b);
        return st;
    }
    *out = b;
    return KILN_OK;
}

kiln_status kiln_bundle_read(const char *path, kiln_bundle **out) {
    if (!out || !path) return kiln_errorf(KILN_ERR_INVALID_ARG, "bundle: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kiln_errorf(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return kiln_errorf(KILN_ERR_IO, "%s: not a regular file", path);
    }
    /* The allocation is bounded by the file's real size, never by what its header claims. */
    if ((uint64_t)sb.st_size > KILN_BUNDLE_MAX_FILE_BYTES) {
        close(fd);
        return kiln_errorf(KILN_ERR_LIMIT, "%s: %lld bytes is above the bundle size limit", path, (long long)sb.st_size);
    }
    size_t len = (size_t)sb.st_size;
    kiln_bundle *b = kiln_bundle_new();
    if (!b || !(b->file_bytes = malloc(len ? len : 1))) {
        close(fd);
        kiln_bundle_free(b);
        return kiln_errorf(KILN_ERR_OOM, "%s: out of memory (%zu bytes)", path, len);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (uint8_t *)b->file_bytes + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (got != len) {
        kiln_bundle_free(b);
        return kiln_errorf(KILN_ERR_IO, "%s: read %zu of %zu bytes", path, got, len);
    }
    kiln_status st = parse(b, len, path);
    if (st != KILN_OK) {
        kiln_bundle_free(b);
        return st;
    }
    *out = b;
    return KILN_OK;
}

/* ---------------------------------------------------------------- lookups -- */
const kiln_bundle_image *kiln_bundle_find_image(const kiln_bundle *b, uint32_t module, int cc,
                                                bool allow_arch_specific, bool *is_jit) {
    if (is_jit) *is_jit = false;
    if (!b) return NULL;
    /* A cubin runs on its own major version at the same or a higher minor (sm_80 on sm_86);
     * an "a" cubin only on exactly its arch. Prefer the closest. */
    const kiln_bundle_image *best = NULL, *ptx = NULL;
    int best_n = -1, ptx_n = -1;
    for (int i = 0; i < b->n_images; i++) {
        const kiln_bundle_image *im = &b->images[i];
        if (im->module != module) continue;
        bool specific;
        int n = arch_number(im->arch, im->kind, &specific);
        if (n < 0) continue;
        if (im->kind == KILN_IMAGE_CUBIN) {
            bool ok = specific ? (allow_arch_specific && n == cc) : (n / 10 == cc / 10 && n <= cc);
            if (ok && (n > best_n || (n == best_n && specific))) {
                best = im;
                best_n = n;
            }
        } else if (n <= cc && n > ptx_n) {
            ptx = im;
            ptx_n = n;
        }
    }
    if (best) return best;
    if (ptx && is_jit) *is_jit = true;
    return ptx;
}
