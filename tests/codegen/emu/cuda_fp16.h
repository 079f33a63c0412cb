// Host stand-in for the toolkit's cuda_fp16.h (emulation only): the storage type and its
// conversions to and from float (round to nearest even, as __float2half_rn).
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
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    __half h;
    if (a > 0x7f800000u) { /* NaN: quiet, keep the top mantissa bits */
        h.x = (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
        return h;
    }
    if (a >= 0x477ff000u) { /* rounds to 65520 or more: infinity */
        h.x = (uint16_t)(sign | 0x7c00u);
        return h;
    }
    if (a < 0x38800000u) { /* below 2^-14: subnormal quanta of 2^-24 */
        float q = nearbyintf(ldexpf(fabsf(f), 24));
        h.x = (uint16_t)(sign | (uint32_t)q); /* q == 1024 is the smallest normal: right */
        return h;
    }
    uint32_t r = a - 0x38000000u; /* rebias the exponent (127 -> 15) */
    uint32_t m = r >> 13, rest = r & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (m & 1))) m++;
    h.x = (uint16_t)(sign | m);
    return h;
}
