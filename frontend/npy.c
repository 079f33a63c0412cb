/* npy.c — NumPy .npy reader and writer (format versions 1-3, C order, little-endian). */
#include "frontend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *descr;
    kiln_dtype dt;
} npy_types[] = {
    {"<f4", KILN_F32}, {"<f8", KILN_F64}, {"<f2", KILN_F16}, {"|i1", KILN_I8},  {"|u1", KILN_U8},
    {"<i2", KILN_I16}, {"<u2", KILN_U16}, {"<i4", KILN_I32}, {"<u4", KILN_U32}, {"<i8", KILN_I64},
    {"<u8", KILN_U64}, {"|b1", KILN_BOOL}, {"<i1", KILN_I8}, {"<u1", KILN_U8},  {"<b1", KILN_BOOL},
};

/* Find `'key':` in the header dict and return a pointer after the colon and spaces. */
static const char *dict_value(const char *h, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

kiln_status kiln_npy_parse(const uint8_t *data, size_t len, kiln_tensor **out) {
    *out = NULL;
    if (len < 10 || memcmp(data, "\x93NUMPY", 6) != 0)
        return kiln_errorf(KILN_ERR_PARSE, "not a .npy file (bad magic)");
    int major = data[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)data[8] | ((size_t)data[9] << 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return kiln_errorf(KILN_ERR_PARSE, ".npy header is truncated");
        hlen = (size_t)data[8] | ((size_t)data[9] << 8) | ((size_t)data[10] << 16) | ((size_t)data[11] << 24);
        hstart = 12;
    } else {
        return kiln_errorf(KILN_ERR_UNSUPPORTED, ".npy format version %d is not supported", major);
    }
    if (hlen > len - hstart || hlen > 65536) return kiln_errorf(KILN_ERR_PARSE, ".npy header is truncated");
    char *h = malloc(hlen + 1);
    if (!h) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    memcpy(h, data + hstart, hlen);
    h[hlen] = 0;
    kiln_status st = KILN_OK;
    const char *d = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"), *sh = dict_value(h, "shape");
    kiln_dtype dt = KILN_UNDEF;
    int rank = 0;
    int64_t dims[KILN_MAX_RANK];
    if (!d || !fo || !sh) {
        st = kiln_errorf(KILN_ERR_PARSE, ".npy header lacks descr, fortran_order or shape");
        goto done;
    }
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
        size_t l = strlen(npy_types[i].descr);
        if (*d == '\'' && !strncmp(d + 1, npy_types[i].descr, l) && d[1 + l] == '\'') dt = npy_types[i].dt;
    }
    if (dt == KILN_UNDEF) {
        char shown[16] = {0};
        strncpy(shown, d, sizeof shown - 1);
        st = kiln_errorf(KILN_ERR_UNSUPPORTED, ".npy dtype %s is not supported (little-endian numeric or bool only)",
                         shown);
        goto done;
    }
    if (strncmp(fo, "False", 5) != 0) {
        st = kiln_errorf(KILN_ERR_UNSUPPORTED, ".npy arrays in Fortran order are not supported");
        goto done;
    }
    if (*sh != '(') {
        st = kiln_errorf(KILN_ERR_PARSE, ".npy shape is malformed");
        goto done;
    }
    const char *p = sh + 1;
    for (;;) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        if (*p < '0' || *p > '9') {
            st = kiln_errorf(KILN_ERR_PARSE, ".npy shape is malformed");
            goto done;
        }
        if (rank >= KILN_MAX_RANK) {
            st = kiln_errorf(KILN_ERR_LIMIT, ".npy rank exceeds %d", KILN_MAX_RANK);
            goto done;
        }
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno || v < 0) {
            st = kiln_errorf(KILN_ERR_LIMIT, ".npy dim is out of range");
            goto done;
        }
        dims[rank++] = v;
        p = end;
    }
    int64_t numel = 1;
    for (int i = 0; i < rank; i++)
        if (!kiln_mul_dims(numel, dims[i], &numel)) {
            st = kiln_errorf(KILN_ERR_LIMIT, ".npy element count overflows");
            goto done;
        }
    size_t body = len - hstart - hlen;
    if ((uint64_t)numel > body / kiln_dtype_size(dt) || (uint64_t)numel * kiln_dtype_size(dt) != body) {
        st = kiln_errorf(KILN_ERR_PARSE, ".npy data has %zu bytes, the shape needs %llu", body,
                         (unsigned long long)numel * kiln_dtype_size(dt));
        goto done;
    }
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    if (!t) {
        st = KILN_ERR_LIMIT;
        goto done;
    }
    if (t->nbytes) memcpy(t->data, data + hstart + hlen, t->nbytes);
    if (dt == KILN_BOOL)
        for (int64_t i = 0; i < numel; i++) ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
    *out = t;
done:
    free(h);
    return st;
}

kiln_status kiln_npy_read(const char *path, kiln_tensor **out) {
    uint8_t *buf;
    size_t len;
    kiln_status st = kiln_read_file(path, KILN_MAX_MODEL_BYTES, &buf, &len);
    if (st) return st;
    st = kiln_npy_parse(buf, len, out);
    free(buf);
    return st ? kiln_error_prefix(st, "%s", path) : KILN_OK;
}

kiln_status kiln_npy_write(const char *path, const kiln_tensor *t) {
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0] && !descr; i++)
        if (npy_types[i].dt == t->dtype) descr = npy_types[i].descr;
    if (!descr && t->dtype == KILN_BF16) descr = "<u2"; /* numpy has no bfloat16: raw bits */
    if (!descr) return kiln_errorf(KILN_ERR_UNSUPPORTED, "cannot write dtype %s to .npy", kiln_dtype_name(t->dtype));
    char header[512], shape[256] = "";
    size_t o = 0;
    for (int i = 0; i < t->rank; i++)
        o += (size_t)snprintf(shape + o, sizeof shape - o, "%lld,%s", (long long)t->dims[i],
                              i + 1 < t->rank ? " " : "");
    if (t->rank > 1) shape[o - 1] = 0; /* numpy writes (2, 3) but (5,) */
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return kiln_errorf(KILN_ERR_IO, "output path is too long");
    FILE *f = fopen(tmp, "wb");
    if (!f) return kiln_errorf(KILN_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    uint16_t hl = (uint16_t)(n + pad + 1);
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hl & 0xff), (uint8_t)(hl >> 8)};
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)n, f) == (size_t)n;
    for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    ok = ok && (t->nbytes == 0 || fwrite(t->data, 1, t->nbytes, f) == t->nbytes);
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return kiln_errorf(KILN_ERR_IO, "writing '%s' failed: %s", path, strerror(errno));
    }
    return KILN_OK;
}
