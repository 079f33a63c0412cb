/*
 * bundle.h — the `.kiln` bundle: everything the GPU runtime needs to run one compiled model,
 * in one file (format: docs/bundle.md).
 *
 * A kiln_bundle is an in-memory bundle that owns all it points to. Build one with the
 * kiln_bundle_add_* / kiln_bundle_set_* functions (they copy their arguments), write it with
 * kiln_bundle_write (atomically: a temporary file in the same directory, then rename), and
 * read it back with kiln_bundle_read, which validates everything before returning: magic,
 * version, byte order, the section table, every section's bounds and CRC32C, and the content
 * of each section. Every error names the header, the section table or the section at fault.
 *
 *     kiln_bundle *b = kiln_bundle_new();
 *     int64_t dims[4] = {1, 3, 224, 224};
 *     kiln_bundle_add_io(b, "input", KILN_F32, 4, dims, false);
 *     kiln_bundle_add_image(b, KILN_IMAGE_CUBIN, "sm_90", 0, cubin, cubin_size);
 *     kiln_bundle_set_meta(b, "kiln_version", KILN_VERSION_STRING);
 *     if (kiln_bundle_write(b, "m.kiln") != KILN_OK) puts(kiln_last_error());
 *     kiln_bundle_free(b);
 *     if (kiln_bundle_read("m.kiln", &b) != KILN_OK) puts(kiln_last_error());
 *
 * Limits (a hostile file cannot make the reader allocate more than its own size plus the
 * decoded tables, whose entry counts are checked against the bytes present): files up to
 * KILN_BUNDLE_MAX_FILE_BYTES, KILN_BUNDLE_MAX_SECTIONS sections, strings up to
 * KILN_BUNDLE_MAX_STRING bytes, launch arguments up to KILN_BUNDLE_MAX_ARGS per launch.
 *
 * Thread safety: a bundle may be read from several threads; building one is single-threaded.
 */
#ifndef KILN_BUNDLE_H
#define KILN_BUNDLE_H

#include "kiln.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KILN_BUNDLE_VERSION 1
#define KILN_BUNDLE_MAX_FILE_BYTES (64ull << 30) /* 64 GiB */
#define KILN_BUNDLE_MAX_SECTIONS 1024
#define KILN_BUNDLE_MAX_STRING 4096
#define KILN_BUNDLE_MAX_META (1 << 20) /* a metadata value (per-kernel tiles of a large model) */
#define KILN_BUNDLE_MAX_ARGS 256
#define KILN_BUNDLE_MAX_LAYER_VALUES 1024 /* values one layer finalizes */
#define KILN_BUNDLE_ALIGN 64 /* every section starts at a multiple of this */

/* One graph input or output: its name, dtype and static shape. */
typedef struct kiln_bundle_io {
    char *name;
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    bool is_output;
} kiln_bundle_io;

/* One weight: already transformed (folded, laid out, cast) at build time; its bytes live at
 * `offset` in the weights blob, which is copied to the GPU as one allocation. */
typedef struct kiln_bundle_weight {
    char *name;
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    uint64_t offset; /* in the blob, a multiple of KILN_BUNDLE_ALIGN */
    uint64_t nbytes;
} kiln_bundle_weight;

typedef enum kiln_image_kind { KILN_IMAGE_CUBIN = 1, KILN_IMAGE_PTX = 2 } kiln_image_kind;

/* A compiled module for one architecture ("sm_90" cubin, "compute_90" PTX). Module `module`
 * is the same source compiled for each arch; a kernel names its module and function. */
typedef struct kiln_bundle_image {
    kiln_image_kind kind;
    char arch[16];
    uint32_t module;
    uint8_t *data; /* PTX includes its terminating NUL */
    uint64_t size;
} kiln_bundle_image;

typedef struct kiln_bundle_kernel {
    char *function; /* symbol in the module */
    uint32_t module;
    char *group;    /* the fused group it computes (for inspect / per-layer compare) */
} kiln_bundle_kernel;

/* Where a launch argument's value comes from at run time. */
typedef enum kiln_arg_kind {
    KILN_ARG_ARENA = 1,  /* device pointer: activation arena + value (byte offset) */
    KILN_ARG_WEIGHT = 2, /* device pointer: weights allocation + value (byte offset) */
    KILN_ARG_INPUT = 3,  /* device pointer bound to graph input number value */
    KILN_ARG_OUTPUT = 4, /* device pointer bound to graph output number value */
    KILN_ARG_SCALAR = 5, /* `size` (1..8) little-endian bytes of value, by value */
    KILN_ARG_BYTES = 6,  /* `size` bytes from the launch plan's constant pool at value */
    KILN_ARG_TMAP = 7,   /* a TMA tensor map (size 128, by value) the runtime encodes when it lays out
                          * the launches, from the kiln_tmap_desc at const_pool + value */
    KILN_ARG_SYNC = 8    /* device pointer: region value of the context's sync area (KILN_SYNC_REGION_BYTES
                          * each, zeroed when the context is made; a kernel leaves its region zero again:
                          * the flags of stream-K's cross-block sums) */
} kiln_arg_kind;
#define KILN_SYNC_REGION_BYTES 4096 /* 1024 u32 flags: one per block of a grid up to 1024 */
#define KILN_SYNC_MAX_REGIONS 4096  /* (16 MiB: a bound on what a bundle can make the runtime allocate) */

/* KILN_ARG_TMAP: what the runtime passes to cuTensorMapEncodeTiled / cuTensorMapEncodeIm2col
 * (the map holds a device address, so it cannot be made at build time). Stored in the constant
 * pool as KILN_TMAP_DESC_BYTES little-endian bytes (kiln_tmap_desc_put / _get), fields in this
 * order. Dimensions innermost first, as the driver takes them. */
#define KILN_TMAP_TILED 1
#define KILN_TMAP_IM2COL 2
#define KILN_TMAP_BYTES 128     /* the CUtensorMap the kernel parameter holds */
#define KILN_TMAP_DESC_BYTES 176
typedef struct kiln_tmap_desc {
    uint32_t mode;       /* KILN_TMAP_TILED or KILN_TMAP_IM2COL */
    uint32_t rank;       /* 2..5 (im2col: 3..5) */
    uint32_t base;       /* KILN_ARG_ARENA or KILN_ARG_WEIGHT: the tensor's allocation */
    uint32_t dtype;      /* CUtensorMapDataType (6 = fp16) */
    uint64_t offset;     /* byte offset of element 0 in that allocation */
    uint64_t dims[5];    /* elements per dimension */
    uint64_t strides[5]; /* bytes between consecutive indices of dimension i (strides[0]: the element size) */
    uint32_t box[5];     /* tiled: box size per dimension; im2col: box[0] channels per pixel, box[1] pixels per column */
    uint32_t estrides[5]; /* element (traversal) strides: the convolution's stride for the spatial dims */
    int32_t lower[3], upper[3]; /* im2col: the pixel box corners of the spatial dims (rank - 2 each) */
    uint32_t swizzle;    /* CUtensorMapSwizzle: 0 none, 1 32 B, 2 64 B, 3 128 B */
    uint32_t reserved;   /* 0 */
} kiln_tmap_desc;
void kiln_tmap_desc_put(const kiln_tmap_desc *d, uint8_t out[KILN_TMAP_DESC_BYTES]);
void kiln_tmap_desc_get(const uint8_t in[KILN_TMAP_DESC_BYTES], kiln_tmap_desc *d);
/* NULL when d is well formed for a bundle with these allocation sizes (every element it can
 * address inside its allocation); else what is wrong. */
const char *kiln_tmap_desc_check(const kiln_tmap_desc *d, uint64_t arena_bytes, uint64_t weight_bytes);

typedef struct kiln_bundle_arg {
    kiln_arg_kind kind;
    uint32_t size; /* bytes the kernel parameter occupies */
    uint64_t value;
} kiln_bundle_arg;

typedef struct kiln_bundle_launch {
    uint32_t kernel;
    uint32_t grid[3], block[3];
    uint32_t shared_bytes;
    uint32_t stream; /* 0 today; independent branches may get their own streams later */
    uint32_t n_args;
    kiln_bundle_arg *args;
} kiln_bundle_launch;

/* One placed buffer of the memory plan (value name, byte range in the arena). */
typedef struct kiln_bundle_buffer {
    char *name;
    uint64_t offset, size;
} kiln_bundle_buffer;

/* One value a layer finalizes: its IR name, dtype and static shape, and where the launches put
 * it: `where` is KILN_ARG_ARENA (at = byte offset in the arena), KILN_ARG_INPUT or
 * KILN_ARG_OUTPUT (at = the binding's number). */
typedef struct kiln_bundle_layer_value {
    char *name;
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    kiln_arg_kind where;
    uint64_t at;
} kiln_bundle_layer_value;

/* One layer: the launches [first_launch, first_launch + n_launches) of one graph node (they run
 * in order), the values they finalize (readable right after its last launch, before a later
 * layer may overwrite their memory), and the earlier layers it depends on (producers of what it
 * reads, earlier readers and writers of the memory it writes), ascending, transitively reduced.
 * Layers partition the launch plan in order. Optional: a bundle without them runs on one stream
 * and has no per-layer debugging. */
typedef struct kiln_bundle_layer {
    char *name;       /* the group / node name */
    char *op;         /* the op or fused-group kind, e.g. "Conv" or "conv_epilogue[Conv+Relu]" */
    uint32_t first_launch, n_launches;
    kiln_bundle_layer_value *values; int n_values;
    uint32_t *deps;   int n_deps;
} kiln_bundle_layer;

typedef struct kiln_bundle_meta {
    char *key, *value;
} kiln_bundle_meta;

typedef struct kiln_bundle {
    kiln_bundle_io *io;          int n_io;
    kiln_bundle_weight *weights; int n_weights;
    uint8_t *weight_data;        uint64_t weight_bytes;
    kiln_bundle_image *images;   int n_images;
    kiln_bundle_kernel *kernels; int n_kernels;
    kiln_bundle_launch *launches; int n_launches;
    uint8_t *const_pool;         uint64_t const_pool_bytes; /* KILN_ARG_BYTES values */
    uint64_t arena_bytes, arena_align;
    kiln_bundle_buffer *buffers; int n_buffers;
    kiln_bundle_meta *meta;      int n_meta;
    kiln_bundle_layer *layers;   int n_layers; /* optional section 'layers' (0: none) */
    /* private: storage */
    int cap_io, cap_weights, cap_images, cap_kernels, cap_launches, cap_buffers, cap_meta, cap_layers;
    uint64_t cap_weight_data, cap_const_pool;
    void *file_bytes; /* reader: the file; images and weight_data point into it */
} kiln_bundle;

kiln_bundle *kiln_bundle_new(void);
void kiln_bundle_free(kiln_bundle *b);

/* Building. Each copies what it is given; names must be non-empty and shorter than
 * KILN_BUNDLE_MAX_STRING. */
kiln_status kiln_bundle_add_io(kiln_bundle *b, const char *name, kiln_dtype dt, int rank,
                               const int64_t *dims, bool is_output);
/* Appends the bytes to the weights blob at the next aligned offset (returned in *offset). */
kiln_status kiln_bundle_add_weight(kiln_bundle *b, const char *name, kiln_dtype dt, int rank,
                                   const int64_t *dims, const void *data, uint64_t nbytes,
                                   uint64_t *offset);
kiln_status kiln_bundle_add_image(kiln_bundle *b, kiln_image_kind kind, const char *arch,
                                  uint32_t module, const void *data, uint64_t size);
kiln_status kiln_bundle_add_kernel(kiln_bundle *b, const char *function, uint32_t module,
                                   const char *group, uint32_t *index);
/* Appends `size` bytes to the constant pool (8-byte aligned); *offset for KILN_ARG_BYTES. */
kiln_status kiln_bundle_add_const(kiln_bundle *b, const void *data, uint64_t size, uint64_t *offset);
kiln_status kiln_bundle_add_launch(kiln_bundle *b, uint32_t kernel, const uint32_t grid[3],
                                   const uint32_t block[3], uint32_t shared_bytes, uint32_t stream,
                                   const kiln_bundle_arg *args, uint32_t n_args);
kiln_status kiln_bundle_set_arena(kiln_bundle *b, uint64_t bytes, uint64_t align);
kiln_status kiln_bundle_add_buffer(kiln_bundle *b, const char *name, uint64_t offset, uint64_t size);
/* Appends a layer (copies everything): its launches must start where the previous layer's end;
 * deps are indices of earlier layers, ascending. */
kiln_status kiln_bundle_add_layer(kiln_bundle *b, const char *name, const char *op, uint32_t first_launch,
                                  uint32_t n_launches, const kiln_bundle_layer_value *values, int n_values,
                                  const uint32_t *deps, int n_deps);
/* Sets (or replaces) a metadata entry. Conventional keys: kiln_version, options, tiles,
 * source_model_hash, precision, created. */
kiln_status kiln_bundle_set_meta(kiln_bundle *b, const char *key, const char *value);
const char *kiln_bundle_get_meta(const kiln_bundle *b, const char *key); /* NULL if absent */

/* Checks cross-references (launch -> kernel -> module images, argument ranges, buffers in
 * the arena); kiln_bundle_write and kiln_bundle_read both call it. */
kiln_status kiln_bundle_validate(const kiln_bundle *b);

/* Serialise to bytes (caller frees *out with free()) / write atomically to a file. */
kiln_status kiln_bundle_write_bytes(const kiln_bundle *b, uint8_t **out, size_t *len);
kiln_status kiln_bundle_write(const kiln_bundle *b, const char *path);

/* Parse bytes (copied) / a file. `what` names the source in errors (a path or "bundle").
 * A bundle that was read is read-only: add_weight / add_image refuse it. */
kiln_status kiln_bundle_read_bytes(const void *data, size_t len, const char *what, kiln_bundle **out);
kiln_status kiln_bundle_read(const char *path, kiln_bundle **out);

/* The image of `module` for a device of compute capability `cc` (10 * major + minor: 90 for
 * Hopper, 86 for an RTX 30x0): a cubin for sm_<cc> (an
 * "sm_XXa" one only when allow_arch_specific), else the PTX (the driver JIT-compiles it;
 * *is_jit is set). NULL if neither exists. */
const kiln_bundle_image *kiln_bundle_find_image(const kiln_bundle *b, uint32_t module, int cc,
                                                bool allow_arch_specific, bool *is_jit);

/* CRC32C (Castagnoli), the bundle's checksum; `crc` is 0 for a fresh computation. */
uint32_t kiln_crc32c(uint32_t crc, const void *data, size_t len);

#endif /* KILN_BUNDLE_H */
