/* fuzz_npy — bytes -> the .npy reader (kiln_npy_parse, what `kiln run --input x=f.npy` uses). */
#include "fuzz_common.h"
#include "frontend.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_fuzz_init_limits();
    kiln_tensor *t = (kiln_tensor *)1;
    kiln_status st = kiln_npy_parse(data, size, &t);
    if (st != KILN_OK) {
        kiln_fuzz_check_failure(st, "kiln_npy_parse");
        if (t) abort();
        return 0;
    }
    /* The payload is the file's tail, byte for byte (bools normalised to 0/1). */
    if (!t || t->nbytes > size) abort();
    if (t->dtype != KILN_BOOL && t->nbytes && memcmp(t->data, data + size - t->nbytes, t->nbytes) != 0) abort();
    kiln_tensor_free(t);
    return 0;
}
