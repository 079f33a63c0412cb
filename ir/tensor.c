/* tensor.c — dtypes, fp16/bf16 conversion, host tensors and generic element access. */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t kiln_dtype_size(kiln_dtype dt) {
    switch (dt) {
    case KILN_F32: case KILN_I32: case KILN_U32: return 4;
    case KILN_U8: case KILN_I8: case KILN_BOOL: return 1;
    case KILN_U16: case KILN_I16: case KILN_F16: case KILN_BF16: return 2;
    case KILN_I64: case KILN_U64: case KILN_F64: return 8;
    default: return 0;
    }
}

const char *kiln_dtype_name(kiln_dtype dt) {
    switch (dt) {
    case KILN_UNDEF: return "undef";
    case KILN_F32: return "f32";
    case KILN_U8: return "u8";
    case KILN_I8: return "i8";
    case KILN_U16: return "u16";
    case KILN_I16: return "i16";
    case KILN_I32: return "i32";
    case KILN_I64: return "i64";
    case KILN_STRING: return "string";
    case KILN_BOOL: return "bool";
    case KILN_F16: return "f16";
    case KILN_F64: return "f64";
    case KILN_U32: return "u32";
    case KILN_U64: return "u64";
    case KILN_BF16: return "bf16";
    }
    return "unknown-dtype";
}

bool kiln_dtype_is_supported(kiln_dtype dt) { return kiln_dtype_size(dt) != 0; }
bool kiln_dtype_is_float(kiln_dtype dt) {
    return dt == KILN_F32 || dt == KILN_F16 || dt == KILN_BF16 || dt == KILN_F64;
}
bool kiln_dtype_is_int(kiln_dtype dt) {
    switch (dt) {
    case KILN_U8: case KILN_I8: case KILN_U16: case KILN_I16: case KILN_I32: case KILN_I64:
    case KILN_U32: case KILN_U64: return true;
    default: return false;
    }
}
bool kiln_dtype_is_signed(kiln_dtype dt) {
    switch (dt) {
    case KILN_I8: case KILN_I16: case KILN_I32: case KILN_I64: return true;
    default: return kiln_dtype_is_float(dt);
    }
}

/* IEEE binary16 <-> binary32, round to nearest even. */
float kiln_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kiln_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (absx < 0x38800000u) { /* result is subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to 0 */
        uint32_t man = (absx & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(absx >> 23); /* 14..24 */
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = absx - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t half = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;
    return (uint16_t)(sign | half);
}

float kiln_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kiln_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (uint16_t)(x >> 16);
}

kiln_tensor *kiln_tensor_new(kiln_dtype dt, int rank, const int64_t *dims) {
    size_t es = kiln_dtype_size(dt);
    if (es == 0) {
        kiln_errorf(KILN_ERR_UNSUPPORTED, "tensor dtype %s (%d) is not supported", kiln_dtype_name(dt), (int)dt);
        return NULL;
    }
    if (rank < 0 || rank > KILN_MAX_RANK) {
        kiln_errorf(KILN_ERR_LIMIT, "tensor rank %d is outside 0..%d", rank, KILN_MAX_RANK);
        return NULL;
    }
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) {
            kiln_errorf(KILN_ERR_SHAPE, "tensor dim %d is negative (%lld)", i, (long long)dims[i]);
            return NULL;
        }
        if (!kiln_mul_dims(numel, dims[i], &numel)) {
            kiln_errorf(KILN_ERR_LIMIT, "tensor element count overflows");
            return NULL;
        }
    }
    kiln_limits lim;
    kiln_limits_get(&lim);
    if ((uint64_t)numel > (uint64_t)SIZE_MAX / es || (uint64_t)numel > lim.max_tensor_bytes / es) {
        kiln_errorf(KILN_ERR_LIMIT, "tensor of %lld elements (%s) is larger than the tensor limit of %llu bytes",
                    (long long)numel, kiln_dtype_name(dt), (unsigned long long)lim.max_tensor_bytes);
        return NULL;
    }
    kiln_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        kiln_errorf(KILN_ERR_OOM, "out of memory");
        return NULL;
    }
    t->dtype = dt;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    t->numel = numel;
    t->nbytes = (size_t)numel * es;
    t->data = calloc(t->nbytes ? t->nbytes : 1, 1);
    if (!t->data) {
        free(t);
        kiln_errorf(KILN_ERR_OOM, "out of memory allocating %zu bytes", (size_t)numel * es);
        return NULL;
    }
    return t;
}

kiln_tensor *kiln_tensor_clone(const kiln_tensor *t) {
    if (!t) return NULL;
    kiln_tensor *c = kiln_tensor_new(t->dtype, t->rank, t->dims);
    if (c && t->nbytes) memcpy(c->data, t->data, t->nbytes);
    return c;
}

void kiln_tensor_free(kiln_tensor *t) {
    if (!t) return;
    free(t->data);
    free(t);
}

/* Saturating double -> int64 conversion (no UB for out-of-range or NaN). */
static int64_t sat_i64(double v, double lo, double hi) {
    if (v != v) return 0;
    if (v <= lo) return (int64_t)lo;
    if (v >= hi) return (int64_t)hi;
    return (int64_t)v;
}

double kiln_tensor_get(const kiln_tensor *t, int64_t i) {
    const void *p = t->data;
    switch (t->dtype) {
    case KILN_F32: return ((const float *)p)[i];
    case KILN_F64: return ((const double *)p)[i];
    case KILN_F16: return kiln_f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_BF16: return kiln_bf16_to_f32(((const uint16_t *)p)[i]);
    case KILN_I8: return ((const int8_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i] != 0;
    case KILN_I16: return ((const int16_t *)p)[i];
    case KILN_U16: return ((const uint16_t *)p)[i];
    case KILN_I32: return ((const int32_t *)p)[i];
    case KILN_U32: return ((const uint32_t *)p)[i];
    case KILN_I64: return (double)((const int64_t *)p)[i];
    case KILN_U64: return (double)((const uint64_t *)p)[i];
    default: return 0.0;
    }
}

void kiln_tensor_set(kiln_tensor *t, int64_t i, double v) {
    void *p = t->data;
    switch (t->dtype) {
    case KILN_F32: ((float *)p)[i] = (float)v; break;
    case KILN_F64: ((double *)p)[i] = v; break;
    case KILN_F16: ((uint16_t *)p)[i] = kiln_f32_to_f16((float)v); break;
    case KILN_BF16: ((uint16_t *)p)[i] = kiln_f32_to_bf16((float)v); break;
    case KILN_BOOL: ((uint8_t *)p)[i] = v != 0.0; break;
    case KILN_I8: ((int8_t *)p)[i] = (int8_t)sat_i64(v, -128.0, 127.0); break;
    case KILN_U8: ((uint8_t *)p)[i] = (uint8_t)sat_i64(v, 0.0, 255.0); break;
    case KILN_I16: ((int16_t *)p)[i] = (int16_t)sat_i64(v, -32768.0, 32767.0); break;
    case KILN_U16: ((uint16_t *)p)[i] = (uint16_t)sat_i64(v, 0.0, 65535.0); break;
    case KILN_I32: ((int32_t *)p)[i] = (int32_t)sat_i64(v, -2147483648.0, 2147483647.0); break;
    case KILN_U32: ((uint32_t *)p)[i] = (uint32_t)sat_i64(v, 0.0, 4294967295.0); break;
    case KILN_I64: ((int64_t *)p)[i] = sat_i64(v, -9223372036854775808.0, 9223372036854774784.0); break;
    case KILN_U64:
        if (v != v || v <= 0) ((uint64_t *)p)[i] = 0;
        else if (v >= 18446744073709549568.0) ((uint64_t *)p)[i] = UINT64_MAX;
        else ((uint64_t *)p)[i] = (uint64_t)v;
        break;
    default: break;
    }
}

int64_t kiln_tensor_get_i64(const kiln_tensor *t, int64_t i) {
    const void *p = t->data;
    switch (t->dtype) {
    case KILN_I8: return ((const int8_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i] != 0;
    case KILN_I16: return ((const int16_t *)p)[i];
    case KILN_U16: return ((const uint16_t *)p)[i];
    case KILN_I32: return ((const int32_t *)p)[i];
    case KILN_U32: return ((const uint32_t *)p)[i];
    case KILN_I64: return ((const int64_t *)p)[i];
    case KILN_U64: return (int64_t)((const uint64_t *)p)[i]; /* two's complement view */
    default: return sat_i64(kiln_tensor_get(t, i), -9223372036854775808.0, 9223372036854774784.0);
    }
}

void kiln_tensor_set_i64(kiln_tensor *t, int64_t i, int64_t v) {
    void *p = t->data;
    switch (t->dtype) {
    case KILN_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case KILN_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case KILN_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    case KILN_I16: ((int16_t *)p)[i] = (int16_t)v; break;
    case KILN_U16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case KILN_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case KILN_U32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case KILN_I64: ((int64_t *)p)[i] = v; break;
    case KILN_U64: ((uint64_t *)p)[i] = (uint64_t)v; break;
    default: kiln_tensor_set(t, i, (double)v); break;
    }
}

void kiln_strides(int rank, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

void kiln_bcast_strides(const kiln_tensor *t, int rank, const int64_t *dims, int64_t *strides) {
    int64_t own[KILN_MAX_RANK];
    kiln_strides(t->rank, t->dims, own);
    int off = rank - t->rank;
    for (int i = 0; i < rank; i++) {
        int j = i - off;
        strides[i] = (j < 0 || t->dims[j] == 1 || dims[i] == 1) ? 0 : own[j];
    }
}

bool kiln_index_next(int rank, const int64_t *dims, int64_t *idx) {
    for (int i = rank - 1; i >= 0; i--) {
        if (++idx[i] < dims[i]) return true;
        idx[i] = 0;
    }
    return false;
}

bool kiln_mul_dims(int64_t a, int64_t b, int64_t *r) {
    if (a < 0 || b < 0) return false;
    if (a != 0 && b > INT64_MAX / a) return false;
    *r = a * b;
    return true;
}
