// Host stand-in for the toolkit's cuda_fp16.h (emulation only): the storage type and the two
// conversions kiln's kernels use, bit-exact with the GPU (round to nearest even, subnormals,
// infinities, NaN).
#pragma once
#include <math.h>
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
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    __half h;
    if (a >= 0x7f800000u) { /* inf, NaN (quiet, keeps the top payload bits) */
        h.x = (uint16_t)(sign | 0x7c00 | (a > 0x7f800000u ? 0x200 | ((a >> 13) & 0x3ff) : 0));
        return h;
    }
    if (a >= 0x477ff000u) { /* rounds to 65520 or more: inf */
        h.x = (uint16_t)(sign | 0x7c00);
        return h;
    }
    if (a < 0x38800000u) { /* below 2^-14: a subnormal (or zero), in units of 2^-24 */
        float v;
        memcpy(&v, &a, 4);
        h.x = (uint16_t)(sign | (uint16_t)nearbyintf(v * 16777216.0f)); /* default mode: ties to even */
        return h;
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1); /* round the 13 dropped bits to nearest even */
    h.x = (uint16_t)(sign | ((r - 0x38000000u) >> 13));
    return h;
}
static inline unsigned short __half_as_ushort(__half h) { return h.x; }
