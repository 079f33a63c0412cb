// Host stand-in for the toolkit's cuda_fp16.h (emulation only: fp32 paths are what is tested).
#pragma once
#include <stdint.h>
#include <string.h>
struct __half {
    uint16_t x;
};
static inline float __half2float(__half h) {
    uint32_t s = (uint32_t)(h.x >> 15) << 31, e = (h.x >> 10) & 31, m = h.x & 1023, u;
    if (e == 0) {
        float f = ldexpf((float)m, -24);
        return s ? -f : f;
    }
    u = s | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112) << 23) | (m << 13));
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __half __float2half_rn(float f) {
    __half h;
    h.x = (uint16_t)0; /* not used by the fp32 kernels under test */
    (void)f;
    return h;
}
