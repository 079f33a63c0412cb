/* onnx_load.c — ONNX protobuf bytes -> kiln graph: tensors (raw, typed and external data),
 * graph inputs/outputs with symbolic dims, initializers, then every node through the
 * importer table (frontend/onnx_import.c), inferring shapes node by node. */
#include "frontend.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool is_default_domain(const char *d);

/* ------------------------------------------------------------ files -- */
size_t kiln_max_file_bytes(void) {
    kiln_limits lim;
    kiln_limits_get(&lim);
    return lim.max_file_bytes > SIZE_MAX ? SIZE_MAX : (size_t)lim.max_file_bytes;
}

kiln_status kiln_read_file(const char *path, size_t limit, uint8_t **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return kiln_errorf(KILN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return kiln_errorf(KILN_ERR_IO, "'%s' is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > limit) {
        fclose(f);
        return kiln_errorf(KILN_ERR_LIMIT, "'%s' is %lld bytes, over the file limit of %zu bytes", path,
                           (long long)sb.st_size, limit);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return kiln_errorf(KILN_ERR_OOM, "out of memory reading '%s'", path);
    }
    if (n && fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return kiln_errorf(KILN_ERR_IO, "reading '%s' failed", path);
    }
    fclose(f);
    *data = buf;
    *len = n;
    return KILN_OK;
}

/* ---------------------------------------------------------- tensors -- */
/* Open external data below base_dir: relative, no "..", no escape through symlinks. */
static kiln_status open_external(const char *base_dir, const char *location, const char *tname, FILE **out,
                                 uint64_t *size) {
    if (!base_dir)
        return kiln_errorf(KILN_ERR_MODEL, "tensor '%s' uses external data but the model has no directory", tname);
    if (!location || !*location)
        return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': external data has no location", tname);
    if (location[0] == '/' || location[0] == '\\')
        return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': external data path '%s' is absolute", tname, location);
    for (const char *p = location; *p;) { /* reject any ".." component */
        const char *e = p;
        while (*e && *e != '/' && *e != '\\') e++;
        if (e - p == 2 && p[0] == '.' && p[1] == '.')
            return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': external data path '%s' leaves the model folder",
                               tname, location);
        p = *e ? e + 1 : e;
    }
    char path[PATH_MAX], real_base[PATH_MAX], real_path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", base_dir, location) >= (int)sizeof path)
        return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': external data path is too long", tname);
    if (!realpath(base_dir, real_base))
        return kiln_errorf(KILN_ERR_IO, "cannot resolve model folder '%s': %s", base_dir, strerror(errno));
    if (!realpath(path, real_path))
        return kiln_errorf(KILN_ERR_IO, "tensor '%s': cannot open external data '%s': %s", tname, location,
                           strerror(errno));
    size_t bl = strlen(real_base);
    if (strncmp(real_path, real_base, bl) != 0 || (real_path[bl] != '/' && real_base[bl - 1] != '/'))
        return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': external data path '%s' leaves the model folder", tname,
                           location);
    FILE *f = fopen(real_path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (f) fclose(f);
        return kiln_errorf(KILN_ERR_IO, "tensor '%s': cannot read external data '%s'", tname, location);
    }
    *out = f;
    *size = (uint64_t)sb.st_size;
    return KILN_OK;
}

static kiln_status parse_u64(const char *s, const char *what, const char *tname, uint64_t *v) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': bad external %s", tname, what);
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': bad external %s '%s'", tname, what, s);
    *v = x;
    return KILN_OK;
}

static kiln_status read_external(const Onnx__TensorProto *tp, const char *base_dir, kiln_tensor *t,
                                 const char *tname) {
    const char *location = NULL, *offs = NULL, *lens = NULL;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key) continue;
        if (!strcmp(e->key, "location")) location = e->value;
        else if (!strcmp(e->key, "offset")) offs = e->value;
        else if (!strcmp(e->key, "length")) lens = e->value;
    }
    uint64_t off = 0, len = t->nbytes, fsize = 0;
    kiln_status st;
    if (offs && (st = parse_u64(offs, "offset", tname, &off))) return st;
    if (lens && (st = parse_u64(lens, "length", tname, &len))) return st;
    FILE *f = NULL;
    if ((st = open_external(base_dir, location, tname, &f, &fsize))) return st;
    if (off > fsize || len > fsize - off) {
        fclose(f);
        return kiln_errorf(KILN_ERR_MODEL,
                           "tensor '%s': external data range [%llu, +%llu) is past the end of '%s' (%llu bytes)",
                           tname, (unsigned long long)off, (unsigned long long)len, location,
                           (unsigned long long)fsize);
    }
    if (len != t->nbytes) {
        fclose(f);
        return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': external data length %llu, the shape needs %zu bytes",
                           tname, (unsigned long long)len, t->nbytes);
    }
    if (fseeko(f, (off_t)off, SEEK_SET) != 0 || (len && fread(t->data, 1, (size_t)len, f) != len)) {
        fclose(f);
        return kiln_errorf(KILN_ERR_IO, "tensor '%s': reading external data '%s' failed", tname, location);
    }
    fclose(f);
    return KILN_OK;
}

kiln_status kiln_onnx_tensor_convert(const Onnx__TensorProto *tp, const char *base_dir, kiln_tensor **out) {
    const char *tname = tp->name ? tp->name : "";
    *out = NULL;
    kiln_dtype dt = (kiln_dtype)tp->data_type;
    size_t es = kiln_dtype_size(dt);
    if (!tp->has_data_type || es == 0)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "tensor '%s' has data type %d, which kiln does not support", tname,
                           (int)tp->data_type);
    if (tp->n_dims > KILN_MAX_RANK)
        return kiln_errorf(KILN_ERR_LIMIT, "tensor '%s' has rank %zu, more than %d", tname, tp->n_dims,
                           KILN_MAX_RANK);
    if (tp->segment) return kiln_errorf(KILN_ERR_UNSUPPORTED, "tensor '%s' is segmented", tname);
    int64_t numel = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0)
            return kiln_errorf(KILN_ERR_MODEL, "tensor '%s' has negative dim %lld", tname, (long long)tp->dims[i]);
        if (!kiln_mul_dims(numel, tp->dims[i], &numel))
            return kiln_errorf(KILN_ERR_LIMIT, "tensor '%s': element count overflows", tname);
    }
    kiln_limits lim;
    kiln_limits_get(&lim);
    if ((uint64_t)numel > lim.max_tensor_bytes / es)
        return kiln_errorf(KILN_ERR_LIMIT, "tensor '%s' declares %lld elements (%s), over the tensor limit of %llu bytes",
                           tname, (long long)numel, kiln_dtype_name(dt), (unsigned long long)lim.max_tensor_bytes);
    uint64_t nbytes = (uint64_t)numel * es;
    bool external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    size_t typed = 0;
    const char *field = NULL;
    switch (dt) {
    case KILN_F32: typed = tp->n_float_data; field = "float_data"; break;
    case KILN_I32: case KILN_I16: case KILN_I8: case KILN_U16: case KILN_U8: case KILN_BOOL:
    case KILN_F16: case KILN_BF16: typed = tp->n_int32_data; field = "int32_data"; break;
    case KILN_I64: typed = tp->n_int64_data; field = "int64_data"; break;
    case KILN_F64: typed = tp->n_double_data; field = "double_data"; break;
    case KILN_U32: case KILN_U64: typed = tp->n_uint64_data; field = "uint64_data"; break;
    default: break;
    }
    /* Check the payload against the shape before allocating anything. */
    if (!external) {
        if (tp->has_raw_data) {
            if (tp->raw_data.len != nbytes)
                return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': raw_data has %zu bytes, shape %s needs %llu", tname,
                                   tp->raw_data.len, "of the declared dims", (unsigned long long)nbytes);
        } else if (typed != (size_t)numel) {
            if (typed == 0 && numel > 0)
                return kiln_errorf(KILN_ERR_MODEL, "tensor '%s' (%s, %lld elements) has no data", tname,
                                   kiln_dtype_name(dt), (long long)numel);
            return kiln_errorf(KILN_ERR_MODEL, "tensor '%s': %s has %zu values, the shape needs %lld", tname, field,
                               typed, (long long)numel);
        }
    }
    kiln_tensor *t = kiln_tensor_new(dt, (int)tp->n_dims, tp->dims);
    if (!t) return kiln_error_prefix(KILN_ERR_LIMIT, "tensor '%s'", tname);
    if (external) {
        kiln_status st = read_external(tp, base_dir, t, tname);
        if (st) {
            kiln_tensor_free(t);
            return st;
        }
    } else if (tp->has_raw_data) {
        if (nbytes) memcpy(t->data, tp->raw_data.data, (size_t)nbytes); /* little-endian host */
    } else {
        for (int64_t i = 0; i < numel; i++) {
            switch (dt) {
            case KILN_F32: ((float *)t->data)[i] = tp->float_data[i]; break;
            case KILN_F64: ((double *)t->data)[i] = tp->double_data[i]; break;
            case KILN_I64: ((int64_t *)t->data)[i] = tp->int64_data[i]; break;
            case KILN_I32: ((int32_t *)t->data)[i] = tp->int32_data[i]; break;
            case KILN_I16: ((int16_t *)t->data)[i] = (int16_t)tp->int32_data[i]; break;
            case KILN_I8: ((int8_t *)t->data)[i] = (int8_t)tp->int32_data[i]; break;
            case KILN_U16: case KILN_F16: case KILN_BF16:
                ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i];
                break;
            case KILN_U8: ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i]; break;
            case KILN_BOOL: ((uint8_t *)t->data)[i] = tp->int32_data[i] != 0; break;
            case KILN_U32: ((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i]; break;
            case KILN_U64: ((uint64_t *)t->data)[i] = tp->uint64_data[i]; break;
            default: break;
            }
        }
    }
    if (dt == KILN_BOOL) /* normalize to 0/1 so byte compares are meaningful */
        for (int64_t i = 0; i < numel; i++) ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
    *out = t;
    return KILN_OK;
}

kiln_status kiln_onnx_read_tensor_file(const char *path, kiln_tensor **out, char **name) {
    uint8_t *buf;
    size_t len;
    kiln_status st = kiln_read_file(path, KILN_MAX_MODEL_BYTES, &buf, &len);
    if (st) return st;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp) return kiln_errorf(KILN_ERR_PARSE, "'%s' is not a valid TensorProto (truncated or not protobuf)", path);
    st = kiln_onnx_tensor_convert(tp, NULL, out);
    if (!st && name) {
        *name = strdup(tp->name ? tp->name : "");
        if (!*name) {
            kiln_tensor_free(*out);
            *out = NULL;
            st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        }
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    if (st) return kiln_error_prefix(st, "%s", path);
    return KILN_OK;
}

/* -------------------------------------------------------- name map -- */
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static bool map_put(kiln_name_map *m, const char *key, int id) {
    if ((m->count + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 256;
        const char **nk = calloc(nc, sizeof *nk);
        int *ni = calloc(nc, sizeof *ni);
        if (!nk || !ni) {
            free(nk);
            free(ni);
            return false;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            size_t j = hash_str(m->keys[i]) & (nc - 1);
            while (nk[j]) j = (j + 1) & (nc - 1);
            nk[j] = m->keys[i];
            ni[j] = m->ids[i];
        }
        free(m->keys);
        free(m->ids);
        m->keys = nk;
        m->ids = ni;
        m->cap = nc;
    }
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (!strcmp(m->keys[j], key)) {
            m->ids[j] = id;
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->ids[j] = id;
    m->count++;
    return true;
}

static int map_get(const kiln_name_map *m, const char *key) {
    if (!m->cap) return -1;
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (!strcmp(m->keys[j], key)) return m->ids[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

int kiln_import_lookup(kiln_import_ctx *ctx, const char *name) {
    return name && *name ? map_get(&ctx->names, name) : -1;
}

/* New named value registered in the map. The map's keys are the values' own heap name
 * strings, which stay put when the value array grows. */
static int add_named(kiln_import_ctx *ctx, const char *name) {
    int id = kiln_graph_add_value(ctx->g, name);
    if (id < 0) return -1;
    if (!map_put(&ctx->names, ctx->g->values[id].name, id)) {
        kiln_errorf(KILN_ERR_OOM, "out of memory");
        return -1;
    }
    return id;
}

int kiln_import_new_value(kiln_import_ctx *ctx, const char *hint) {
    char name[160];
    do {
        snprintf(name, sizeof name, "%.100s__kiln%d", hint ? hint : "", ctx->const_counter++);
    } while (kiln_import_lookup(ctx, name) >= 0);
    return add_named(ctx, name);
}

int kiln_import_const(kiln_import_ctx *ctx, kiln_tensor *t, const char *hint) {
    int id = kiln_import_new_value(ctx, hint);
    if (id < 0) {
        kiln_tensor_free(t);
        return -1;
    }
    kiln_value *v = &ctx->g->values[id];
    v->data = t;
    v->flags |= KILN_VALUE_INITIALIZER;
    kiln_value_set(v, t->dtype, t->rank, t->dims);
    return id;
}

int kiln_import_const_i64(kiln_import_ctx *ctx, const int64_t *vals, int n, const char *hint) {
    int64_t d = n;
    kiln_tensor *t = kiln_tensor_new(KILN_I64, 1, &d);
    if (!t) return -1;
    if (n) memcpy(t->data, vals, sizeof(int64_t) * (size_t)n);
    return kiln_import_const(ctx, t, hint);
}

int kiln_import_const_f32(kiln_import_ctx *ctx, const float *vals, int n, int rank0, const char *hint) {
    int64_t d = n;
    kiln_tensor *t = kiln_tensor_new(KILN_F32, rank0 ? 0 : 1, &d);
    if (!t) return -1;
    if (n) memcpy(t->data, vals, sizeof(float) * (size_t)n);
    return kiln_import_const(ctx, t, hint);
}

/* ------------------------------------------------------------ nodes -- */
static kiln_status convert_attr(const Onnx__AttributeProto *ap, const char *base_dir, kiln_attr *a) {
    memset(a, 0, sizeof *a);
    const char *an = ap->name ? ap->name : "";
    if (ap->ref_attr_name && *ap->ref_attr_name)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "attribute '%s' refers to a function attribute", an);
    a->name = strdup(an);
    if (!a->name) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    int type = ap->has_type ? (int)ap->type : 0;
    if (!type) { /* IR v1 files may omit the type: deduce it from the field that is set */
        if (ap->has_f) type = KILN_ATTR_FLOAT;
        else if (ap->has_i) type = KILN_ATTR_INT;
        else if (ap->has_s) type = KILN_ATTR_STRING;
        else if (ap->t) type = KILN_ATTR_TENSOR;
        else if (ap->g) type = KILN_ATTR_GRAPH;
        else if (ap->n_floats) type = KILN_ATTR_FLOATS;
        else if (ap->n_ints) type = KILN_ATTR_INTS;
        else if (ap->n_strings) type = KILN_ATTR_STRINGS;
    }
    a->type = (kiln_attr_type)type;
    switch (type) {
    case KILN_ATTR_FLOAT: a->f = ap->f; break;
    case KILN_ATTR_INT: a->i = ap->i; break;
    case KILN_ATTR_STRING:
        a->s = malloc(ap->s.len + 1);
        if (!a->s) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        if (ap->s.len) memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = 0;
        break;
    case KILN_ATTR_TENSOR:
        if (!ap->t) return kiln_errorf(KILN_ERR_MODEL, "tensor attribute '%s' has no tensor", an);
        return kiln_onnx_tensor_convert(ap->t, base_dir, &a->t);
    case KILN_ATTR_FLOATS:
        if (ap->n_floats > INT_MAX) return kiln_errorf(KILN_ERR_LIMIT, "attribute '%s' too long", an);
        a->n = (int)ap->n_floats;
        a->floats = malloc(sizeof(float) * (ap->n_floats + 1));
        if (!a->floats) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        if (a->n) memcpy(a->floats, ap->floats, sizeof(float) * ap->n_floats);
        break;
    case KILN_ATTR_INTS:
        if (ap->n_ints > INT_MAX) return kiln_errorf(KILN_ERR_LIMIT, "attribute '%s' too long", an);
        a->n = (int)ap->n_ints;
        a->ints = malloc(sizeof(int64_t) * (ap->n_ints + 1));
        if (!a->ints) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        if (a->n) memcpy(a->ints, ap->ints, sizeof(int64_t) * ap->n_ints);
        break;
    case KILN_ATTR_STRINGS:
        if (ap->n_strings > INT_MAX) return kiln_errorf(KILN_ERR_LIMIT, "attribute '%s' too long", an);
        a->strings = calloc(ap->n_strings + 1, sizeof(char *));
        if (!a->strings) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        a->n = (int)ap->n_strings;
        for (size_t i = 0; i < ap->n_strings; i++) {
            a->strings[i] = malloc(ap->strings[i].len + 1);
            if (!a->strings[i]) return kiln_errorf(KILN_ERR_OOM, "out of memory");
            if (ap->strings[i].len) memcpy(a->strings[i], ap->strings[i].data, ap->strings[i].len);
            a->strings[i][ap->strings[i].len] = 0;
        }
        break;
    case KILN_ATTR_GRAPH:
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "attribute '%s' is a subgraph (control flow is not supported)", an);
    default:
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "attribute '%s' has type %d, which kiln does not support", an, type);
    }
    return KILN_OK;
}

/* Attribute names whose type is the same in every default-domain op that has them: a node that
 * gives one another type is malformed (the getters would quietly use the default instead). */
static const struct {
    const char *name;
    kiln_attr_type type;
} fixed_attr_types[] = {
    {"alpha", KILN_ATTR_FLOAT}, {"beta", KILN_ATTR_FLOAT}, {"epsilon", KILN_ATTR_FLOAT},
    {"momentum", KILN_ATTR_FLOAT}, {"axis", KILN_ATTR_INT}, {"keepdims", KILN_ATTR_INT},
    {"group", KILN_ATTR_INT}, {"transA", KILN_ATTR_INT}, {"transB", KILN_ATTR_INT},
    {"to", KILN_ATTR_INT}, {"blocksize", KILN_ATTR_INT}, {"ceil_mode", KILN_ATTR_INT},
    {"count_include_pad", KILN_ATTR_INT}, {"axes", KILN_ATTR_INTS}, {"perm", KILN_ATTR_INTS},
    {"kernel_shape", KILN_ATTR_INTS}, {"strides", KILN_ATTR_INTS}, {"pads", KILN_ATTR_INTS},
    {"dilations", KILN_ATTR_INTS}, {"output_padding", KILN_ATTR_INTS}, {"output_shape", KILN_ATTR_INTS},
    {"auto_pad", KILN_ATTR_STRING}, {"mode", KILN_ATTR_STRING},
};

static const char *attr_type_name(int t) {
    static const char *names[] = {"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS", "INTS", "STRINGS"};
    return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

static kiln_status check_attr_type(const kiln_attr *a) {
    for (size_t i = 0; i < sizeof fixed_attr_types / sizeof fixed_attr_types[0]; i++)
        if (!strcmp(a->name, fixed_attr_types[i].name) && a->type != fixed_attr_types[i].type)
            return kiln_errorf(KILN_ERR_MODEL, "attribute '%s' has type %s, ONNX defines it as %s", a->name,
                               attr_type_name((int)a->type), attr_type_name((int)fixed_attr_types[i].type));
    return KILN_OK;
}

kiln_status kiln_import_infer_node(kiln_import_ctx *ctx, int node_index) {
    kiln_graph *g = ctx->g;
    kiln_node *n = &g->nodes[node_index];
    const kiln_value **in = calloc((size_t)n->n_inputs + 1, sizeof *in);
    kiln_value **out = calloc((size_t)n->n_outputs + 1, sizeof *out);
    kiln_status st = KILN_OK;
    if (!in || !out) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int i = 0; !st && i < n->n_inputs; i++) in[i] = n->inputs[i] >= 0 ? &g->values[n->inputs[i]] : NULL;
    for (int i = 0; !st && i < n->n_outputs; i++) out[i] = n->outputs[i] >= 0 ? &g->values[n->outputs[i]] : NULL;
    if (!st) st = kiln_infer_node_values(g, n, in, out);
    free(in);
    free(out);
    return st;
}

kiln_status kiln_import_node(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op,
                             const int *inputs, int n_in, int *node_index) {
    kiln_graph *g = ctx->g;
    char who[300];
    snprintf(who, sizeof who, "node '%s' (#%d %s)", np->name ? np->name : "", index, np->op_type);
    int *outs = malloc(sizeof(int) * (np->n_output + 1));
    if (!outs) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (size_t i = 0; i < np->n_output; i++) {
        const char *on = np->output[i];
        if (!on || !*on) {
            outs[i] = -1;
            continue;
        }
        int v = kiln_import_lookup(ctx, on);
        if (v >= 0) {
            free(outs);
            return kiln_errorf(KILN_ERR_MODEL, "%s: output '%s' is already defined", who, on);
        }
        outs[i] = add_named(ctx, on);
        if (outs[i] < 0) {
            free(outs);
            return KILN_ERR_OOM;
        }
    }
    int ni = kiln_graph_add_node(g, op, np->name ? np->name : "", inputs, n_in, outs, (int)np->n_output);
    free(outs);
    if (ni < 0) return KILN_ERR_OOM;
    g->nodes[ni].id = index;
    for (size_t a = 0; a < np->n_attribute; a++) {
        kiln_attr attr;
        kiln_status st = convert_attr(np->attribute[a], ctx->base_dir, &attr);
        if (!st && is_default_domain(np->domain)) st = check_attr_type(&attr);
        if (st) {
            kiln_attr_free(&attr);
            return kiln_error_prefix(st, "%s", who);
        }
        if ((st = kiln_node_take_attr(&g->nodes[ni], &attr))) return st;
    }
    /* attributes of opset 1 that carry no meaning for inference */
    kiln_node_remove_attr(&g->nodes[ni], "consumed_inputs");
    *node_index = ni;
    return KILN_OK;
}

/* Resolve input names of np to value ids (-1 for ""); error naming an undefined one. */
static kiln_status resolve_inputs(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, int *ids) {
    for (size_t i = 0; i < np->n_input; i++) {
        const char *in = np->input[i];
        if (!in || !*in) {
            ids[i] = -1;
            continue;
        }
        ids[i] = kiln_import_lookup(ctx, in);
        if (ids[i] < 0)
            return kiln_errorf(KILN_ERR_MODEL,
                               "node '%s' (#%d %s): input '%s' is not defined by any earlier node, graph input or "
                               "initializer",
                               np->name ? np->name : "", index, np->op_type, in);
    }
    return KILN_OK;
}

kiln_status kiln_import_generic(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    int *ids = malloc(sizeof(int) * (np->n_input + 1));
    if (!ids) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_status st = resolve_inputs(ctx, np, index, ids);
    /* trailing omitted optional inputs carry no information */
    int n_in = (int)np->n_input;
    while (n_in > 0 && ids[n_in - 1] < 0 && n_in > kiln_op_table[op].min_in) n_in--;
    int ni = -1;
    if (!st) st = kiln_import_node(ctx, np, index, op, ids, n_in, &ni);
    free(ids);
    if (!st) st = kiln_import_infer_node(ctx, ni);
    return st;
}

/* ------------------------------------------------------------ graph -- */
static kiln_status value_type_from_proto(kiln_import_ctx *ctx, const Onnx__ValueInfoProto *vi, kiln_value *v,
                                         const char *what) {
    const char *vn = vi->name ? vi->name : "";
    const Onnx__TypeProto *tp = vi->type;
    if (!tp) return kiln_errorf(KILN_ERR_MODEL, "%s '%s' has no type", what, vn);
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
        const char *kind = tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE   ? "a sequence"
                           : tp->value_case == ONNX__TYPE_PROTO__VALUE_MAP_TYPE      ? "a map"
                           : tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE ? "an optional"
                           : tp->value_case == ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE ? "a sparse tensor"
                                                                                          : "not a tensor";
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s '%s' is %s; kiln supports dense tensors only", what, vn, kind);
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    kiln_dtype dt = (kiln_dtype)tt->elem_type;
    if (!kiln_dtype_is_supported(dt))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s '%s' has element type %d, which kiln does not support", what, vn,
                           (int)tt->elem_type);
    v->dtype = dt;
    if (!tt->shape) {
        v->rank = -1;
        return KILN_OK;
    }
    if (tt->shape->n_dim > KILN_MAX_RANK)
        return kiln_errorf(KILN_ERR_LIMIT, "%s '%s' has rank %zu, more than %d", what, vn, tt->shape->n_dim,
                           KILN_MAX_RANK);
    v->rank = (int)tt->shape->n_dim;
    for (int i = 0; i < v->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        v->sym[i] = 0;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return kiln_errorf(KILN_ERR_MODEL, "%s '%s' dim %d is negative (%lld)", what, vn, i,
                                   (long long)d->dim_value);
            v->dims[i] = d->dim_value;
        } else {
            v->dims[i] = -1;
            if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param &&
                *d->dim_param) {
                v->sym[i] = kiln_graph_symbol(ctx->g, d->dim_param);
                if (!v->sym[i]) return kiln_errorf(KILN_ERR_OOM, "out of memory");
            }
        }
    }
    if (kiln_value_numel(v) == -2)
        return kiln_errorf(KILN_ERR_LIMIT, "%s '%s': element count overflows", what, vn);
    return KILN_OK;
}

static bool is_default_domain(const char *d) { return !d || !*d || !strcmp(d, "ai.onnx"); }

/* List every unsupported op type (with domain, opset and first node) before importing. */
static kiln_status check_supported(const Onnx__GraphProto *gp, int64_t opset) {
    char msg[1024];
    size_t o = 0;
    int n_bad = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        const char *ot = np->op_type ? np->op_type : "";
        if (is_default_domain(np->domain) && kiln_importer_find(ot)) continue;
        bool seen = false; /* report each (domain, type) once, at its first node */
        for (size_t j = 0; j < i && !seen; j++) {
            const Onnx__NodeProto *q = gp->node[j];
            seen = !strcmp(q->op_type ? q->op_type : "", ot) &&
                   !strcmp(q->domain ? q->domain : "", np->domain ? np->domain : "");
        }
        if (seen) continue;
        size_t count = 0;
        for (size_t j = i; j < gp->n_node; j++)
            if (!strcmp(gp->node[j]->op_type ? gp->node[j]->op_type : "", ot) &&
                !strcmp(gp->node[j]->domain ? gp->node[j]->domain : "", np->domain ? np->domain : ""))
                count++;
        if (o < sizeof msg)
            o += (size_t)snprintf(msg + o, sizeof msg - o, "%s%s (domain '%s', opset %lld, first node '%s' #%zu, %zu node%s)",
                                  n_bad ? "; " : "", ot, np->domain ? np->domain : "", (long long)opset,
                                  np->name ? np->name : "", i, count, count == 1 ? "" : "s");
        n_bad++;
    }
    if (n_bad)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "%d unsupported op type%s: %s", n_bad, n_bad == 1 ? "" : "s", msg);
    return KILN_OK;
}

static kiln_status import_model(const Onnx__ModelProto *mp, const char *base_dir, kiln_graph **out) {
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp) return kiln_errorf(KILN_ERR_PARSE, "not an ONNX model: it has no graph");
    int64_t opset = 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[i];
        if (is_default_domain(os->domain)) opset = os->version;
    }
    if (mp->n_opset_import == 0) opset = 1; /* IR version 1-2 models predate opset_import */
    kiln_status st = check_supported(gp, opset);
    if (st) return st;
    if (opset <= 0)
        return kiln_errorf(KILN_ERR_MODEL, "the model imports no version of the default ONNX domain");

    /* Counts before anything is allocated for them (each is also bounded by the file size). */
    kiln_limits lim;
    kiln_limits_get(&lim);
    if ((uint64_t)gp->n_node > (uint64_t)lim.max_nodes)
        return kiln_errorf(KILN_ERR_LIMIT, "the graph has %zu nodes, over the node limit of %lld", gp->n_node,
                           (long long)lim.max_nodes);
    uint64_t n_values = (uint64_t)gp->n_initializer + gp->n_input;
    for (size_t i = 0; i < gp->n_node; i++) n_values += gp->node[i]->n_output;
    if (n_values > (uint64_t)lim.max_values)
        return kiln_errorf(KILN_ERR_LIMIT, "the graph declares %llu values, over the value limit of %lld",
                           (unsigned long long)n_values, (long long)lim.max_values);
    uint64_t init_bytes = 0;

    kiln_import_ctx ctx = {0};
    ctx.opset = opset;
    ctx.base_dir = base_dir;
    ctx.g = kiln_graph_new();
    if (!ctx.g) return KILN_ERR_OOM;
    kiln_graph *g = ctx.g;
    g->opset = opset;
    free(g->name);
    g->name = strdup(gp->name ? gp->name : "");
    if (!g->name) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !*tp->name) {
            st = kiln_errorf(KILN_ERR_MODEL, "initializer #%zu has no name", i);
            goto fail;
        }
        if (kiln_import_lookup(&ctx, tp->name) >= 0) {
            st = kiln_errorf(KILN_ERR_MODEL, "initializer '%s' is defined twice", tp->name);
            goto fail;
        }
        kiln_tensor *t;
        if ((st = kiln_onnx_tensor_convert(tp, base_dir, &t))) goto fail;
        init_bytes += t->nbytes;
        if (init_bytes > lim.max_initializer_bytes) {
            kiln_tensor_free(t);
            st = kiln_errorf(KILN_ERR_LIMIT,
                             "initializers up to '%s' hold %llu bytes, over the initializer limit of %llu bytes",
                             tp->name, (unsigned long long)init_bytes, (unsigned long long)lim.max_initializer_bytes);
            goto fail;
        }
        int id = add_named(&ctx, tp->name);
        if (id < 0) {
            kiln_tensor_free(t);
            st = KILN_ERR_OOM;
            goto fail;
        }
        g->values[id].data = t;
        g->values[id].flags |= KILN_VALUE_INITIALIZER;
        kiln_value_set(&g->values[id], t->dtype, t->rank, t->dims);
    }
    if (gp->n_sparse_initializer) {
        st = kiln_errorf(KILN_ERR_UNSUPPORTED, "sparse initializers are not supported");
        goto fail;
    }
    g->inputs = malloc(sizeof(int) * (gp->n_input + 1));
    g->outputs = malloc(sizeof(int) * (gp->n_output + 1));
    if (!g->inputs || !g->outputs) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !*vi->name) {
            st = kiln_errorf(KILN_ERR_MODEL, "graph input #%zu has no name", i);
            goto fail;
        }
        int id = kiln_import_lookup(&ctx, vi->name);
        if (id >= 0 && (g->values[id].flags & KILN_VALUE_INITIALIZER)) continue; /* IR v3: weights as inputs */
        if (id >= 0) {
            st = kiln_errorf(KILN_ERR_MODEL, "graph input '%s' is listed twice", vi->name);
            goto fail;
        }
        id = add_named(&ctx, vi->name);
        if (id < 0) {
            st = KILN_ERR_OOM;
            goto fail;
        }
        if ((st = value_type_from_proto(&ctx, vi, &g->values[id], "graph input"))) goto fail;
        g->values[id].flags |= KILN_VALUE_INPUT;
        g->inputs[g->n_inputs++] = id;
    }
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        const kiln_importer *imp = kiln_importer_find(np->op_type);
        st = imp->fn ? imp->fn(&ctx, np, (int)i, imp->op) : kiln_import_generic(&ctx, np, (int)i, imp->op);
        if (st) goto fail;
    }
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        int id = kiln_import_lookup(&ctx, vi->name);
        if (id < 0) {
            st = kiln_errorf(KILN_ERR_MODEL, "graph output '%s' is not produced by any node, input or initializer",
                             vi->name ? vi->name : "");
            goto fail;
        }
        kiln_value *v = &g->values[id];
        if (vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
            vi->type->tensor_type->elem_type != 0 && (int)v->dtype != vi->type->tensor_type->elem_type) {
            st = kiln_errorf(KILN_ERR_MODEL, "graph output '%s' is declared with element type %d but computes %s",
                             vi->name, (int)vi->type->tensor_type->elem_type, kiln_dtype_name(v->dtype));
            goto fail;
        }
        v->flags |= KILN_VALUE_OUTPUT;
        g->outputs[g->n_outputs++] = id;
    }
    if ((st = kiln_graph_verify(g))) goto fail;
    free(ctx.names.keys);
    free(ctx.names.ids);
    *out = g;
    return KILN_OK;
fail:
    free(ctx.names.keys);
    free(ctx.names.ids);
    kiln_graph_free(g);
    return st;
}

kiln_status kiln_model_load_bytes(const void *data, size_t len, const char *base_dir, kiln_graph **out) {
    if (!out) return kiln_errorf(KILN_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!data && len) return kiln_errorf(KILN_ERR_INVALID_ARG, "data is NULL");
    if (len == 0) return kiln_errorf(KILN_ERR_PARSE, "not an ONNX model: the file is empty");
    kiln_limits lim;
    kiln_limits_get(&lim);
    if (len > lim.max_file_bytes)
        return kiln_errorf(KILN_ERR_LIMIT, "the model is %zu bytes, over the file limit of %llu bytes", len,
                           (unsigned long long)lim.max_file_bytes);
    kiln_status st = kiln_onnx_check_nesting(data, len, lim.max_nesting_depth);
    if (st) return st;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
    if (!mp)
        return kiln_errorf(KILN_ERR_PARSE, "not an ONNX model: the protobuf is malformed or truncated (%zu bytes)",
                           len);
    st = import_model(mp, base_dir, out);
    onnx__model_proto__free_unpacked(mp, NULL);
    return st;
}

kiln_status kiln_model_load(const char *path, kiln_graph **out) {
    if (!path || !out) return kiln_errorf(KILN_ERR_INVALID_ARG, "path or out is NULL");
    uint8_t *buf;
    size_t len;
    kiln_status st = kiln_read_file(path, KILN_MAX_MODEL_BYTES, &buf, &len);
    if (st) return st;
    char *dir = strdup(path);
    if (!dir) {
        free(buf);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    else strcpy(dir, ".");
    st = kiln_model_load_bytes(buf, len, dir, out);
    free(buf);
    free(dir);
    if (st) return kiln_error_prefix(st, "%s", path);
    return KILN_OK;
}
