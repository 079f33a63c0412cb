/* fuzz_bundle — bytes -> the .kiln bundle reader (header, section table, CRC32C, every section's
 * content, cross-reference validation), up to but not including the GPU.
 *
 * Most mutations break a checksum, which the reader checks first; so each input is read twice:
 * as it is, and with every CRC (header, section table, each in-bounds section) recomputed, which
 * lets the fuzzer reach the section decoders. */
#include "fuzz_common.h"
#include "runtime/bundle.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Recompute the checksums in place (layout: docs/bundle.md). Bounds are checked here, not
 * trusted: the reader must still refuse whatever is inconsistent. */
static void fix_crcs(uint8_t *b, size_t n) {
    if (n < 64) return;
    uint32_t count = rd32(b + 20);
    uint64_t table = rd64(b + 24);
    if (count <= 1024 && table <= n && (uint64_t)count * 56 <= n - table) {
        for (uint32_t i = 0; i < count; i++) {
            uint8_t *e = b + table + (uint64_t)i * 56;
            uint64_t off = rd64(e + 32), len = rd64(e + 40);
            if (off <= n && len <= n - off) wr32(e + 48, kiln_crc32c(0, b + off, (size_t)len));
        }
        wr32(b + 40, kiln_crc32c(0, b + table, (size_t)count * 56));
    }
    wr32(b + 60, kiln_crc32c(0, b, 60));
}

static void read_one(const uint8_t *data, size_t size) {
    kiln_bundle *b = (kiln_bundle *)1;
    kiln_status st = kiln_bundle_read_bytes(data, size, "bundle", &b);
    if (st != KILN_OK) {
        kiln_fuzz_check_failure(st, "kiln_bundle_read_bytes");
        if (b) abort();
        return;
    }
    /* A bundle that was read validates, and lookups stay in bounds. */
    if (kiln_bundle_validate(b) != KILN_OK) abort();
    for (int i = 0; i < b->n_kernels; i++) {
        bool jit;
        static const int ccs[] = {70, 80, 86, 89, 90, 100};
        for (size_t c = 0; c < sizeof ccs / sizeof ccs[0]; c++) {
            const kiln_bundle_image *im = kiln_bundle_find_image(b, b->kernels[i].module, ccs[c], c & 1, &jit);
            if (im && im->size) { /* touch both ends: ASan checks they are in the file */
                volatile uint8_t sink = (uint8_t)(im->data[0] ^ im->data[im->size - 1]);
                (void)sink;
            }
        }
    }
    (void)kiln_bundle_get_meta(b, "kiln_version");
    kiln_bundle_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_fuzz_init_limits();
    read_one(data, size);
    if (size < 64) return 0;
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    fix_crcs(copy, size);
    read_one(copy, size);
    free(copy);
    return 0;
}
