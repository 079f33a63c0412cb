/* graph.c — building and freeing kiln graphs: values, nodes, use lists, attributes, symbols. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s) {
    size_t n = strlen(s ? s : "");
    char *d = malloc(n + 1);
    if (d) memcpy(d, s ? s : "", n + 1);
    return d;
}

static bool grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return true;
    int nc = *cap ? *cap : 8;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return false;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return true;
}

kiln_graph *kiln_graph_new(void) {
    kiln_graph *g = calloc(1, sizeof *g);
    if (!g) {
        kiln_errorf(KILN_ERR_OOM, "out of memory");
        return NULL;
    }
    g->name = dup_str("");
    return g;
}

void kiln_attr_free(kiln_attr *a) {
    free(a->name);
    free(a->s);
    free(a->ints);
    free(a->floats);
    if (a->strings)
        for (int i = 0; i < a->n; i++) free(a->strings[i]);
    free(a->strings);
    kiln_tensor_free(a->t);
    memset(a, 0, sizeof *a);
}

void kiln_graph_free(kiln_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        free(g->values[i].users);
        kiln_tensor_free(g->values[i].data);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        kiln_node *n = &g->nodes[i];
        free(n->name);
        free(n->inputs);
        free(n->outputs);
        for (int a = 0; a < n->n_attrs; a++) kiln_attr_free(&n->attrs[a]);
        free(n->attrs);
        kiln_graph_free(n->body);
    }
    for (int i = 0; i < g->n_symbols; i++) free(g->symbols[i]);
    free(g->symbols);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->name);
    free(g);
}

int kiln_graph_find_value(const kiln_graph *g, const char *name) {
    if (!name || !*name) return -1;
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i].name, name) == 0) return i;
    return -1;
}

int kiln_graph_add_value(kiln_graph *g, const char *name) {
    if (!grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values)) {
        kiln_errorf(KILN_ERR_OOM, "out of memory");
        return -1;
    }
    kiln_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = dup_str(name);
    if (!v->name) {
        kiln_errorf(KILN_ERR_OOM, "out of memory");
        return -1;
    }
    v->rank = -1;
    v->producer = -1;
    v->arena_offset = -1;
    v->alias_of = -1;
    return g->n_values++;
}

static bool add_user(kiln_value *v, int node) {
    if (!grow((void **)&v->users, &v->cap_users, v->n_users + 1, sizeof *v->users)) return false;
    v->users[v->n_users++] = node;
    return true;
}

int kiln_graph_add_node(kiln_graph *g, kiln_op op, const char *name, const int *inputs, int n_in,
                        const int *outputs, int n_out) {
    if (!grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes)) {
        kiln_errorf(KILN_ERR_OOM, "out of memory");
        return -1;
    }
    int idx = g->n_nodes;
    kiln_node *n = &g->nodes[idx];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->id = idx;
    n->name = dup_str(name);
    n->inputs = malloc(sizeof(int) * (size_t)(n_in ? n_in : 1));
    n->outputs = malloc(sizeof(int) * (size_t)(n_out ? n_out : 1));
    if (!n->name || !n->inputs || !n->outputs) {
        free(n->name);
        free(n->inputs);
        free(n->outputs);
        kiln_errorf(KILN_ERR_OOM, "out of memory");
        return -1;
    }
    if (n_in) memcpy(n->inputs, inputs, sizeof(int) * (size_t)n_in);
    if (n_out) memcpy(n->outputs, outputs, sizeof(int) * (size_t)n_out);
    n->n_inputs = n_in;
    n->n_outputs = n_out;
    g->n_nodes++;
    for (int i = 0; i < n_in; i++)
        if (inputs[i] >= 0 && !add_user(&g->values[inputs[i]], idx)) {
            kiln_errorf(KILN_ERR_OOM, "out of memory");
            return -1;
        }
    for (int i = 0; i < n_out; i++)
        if (outputs[i] >= 0) g->values[outputs[i]].producer = idx;
    return idx;
}

kiln_status kiln_graph_rebuild_uses(kiln_graph *g) {
    for (int i = 0; i < g->n_values; i++) {
        g->values[i].n_users = 0;
        g->values[i].producer = -1;
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        kiln_node *n = &g->nodes[ni];
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] >= 0 && !add_user(&g->values[n->inputs[i]], ni))
                return kiln_errorf(KILN_ERR_OOM, "out of memory");
        for (int i = 0; i < n->n_outputs; i++)
            if (n->outputs[i] >= 0) g->values[n->outputs[i]].producer = ni;
    }
    return KILN_OK;
}

int32_t kiln_graph_symbol(kiln_graph *g, const char *name) {
    for (int i = 0; i < g->n_symbols; i++)
        if (strcmp(g->symbols[i], name) == 0) return i + 1;
    int cap = g->n_symbols;
    char **s = realloc(g->symbols, sizeof(char *) * (size_t)(cap + 1));
    if (!s) return 0;
    g->symbols = s;
    g->symbols[g->n_symbols] = dup_str(name);
    if (!g->symbols[g->n_symbols]) return 0;
    return ++g->n_symbols;
}

int32_t kiln_graph_new_symbol(kiln_graph *g) {
    char buf[32];
    snprintf(buf, sizeof buf, "?%d", g->n_symbols + 1);
    return kiln_graph_symbol(g, buf);
}

/* ---- attributes ---- */
const kiln_attr *kiln_attr_find(const kiln_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t kiln_attr_int(const kiln_node *n, const char *name, int64_t def) {
    const kiln_attr *a = kiln_attr_find(n, name);
    if (!a) return def;
    if (a->type == KILN_ATTR_INT) return a->i;
    if (a->type == KILN_ATTR_FLOAT) {
        /* a float where an int is expected: truncate, saturating (a model's value must not be UB) */
        double f = a->f;
        if (f != f) return def;
        if (f <= -9223372036854775808.0) return INT64_MIN;
        if (f >= 9223372036854775807.0) return INT64_MAX;
        return (int64_t)f;
    }
    return def;
}

float kiln_attr_float(const kiln_node *n, const char *name, float def) {
    const kiln_attr *a = kiln_attr_find(n, name);
    if (!a) return def;
    if (a->type == KILN_ATTR_FLOAT) return a->f;
    if (a->type == KILN_ATTR_INT) return (float)a->i;
    return def;
}

const char *kiln_attr_str(const kiln_node *n, const char *name, const char *def) {
    const kiln_attr *a = kiln_attr_find(n, name);
    return a && a->type == KILN_ATTR_STRING ? a->s : def;
}

int kiln_attr_ints(const kiln_node *n, const char *name, const int64_t **v) {
    const kiln_attr *a = kiln_attr_find(n, name);
    if (!a || a->type != KILN_ATTR_INTS) return -1;
    *v = a->ints;
    return a->n;
}

int kiln_attr_floats(const kiln_node *n, const char *name, const float **v) {
    const kiln_attr *a = kiln_attr_find(n, name);
    if (!a || a->type != KILN_ATTR_FLOATS) return -1;
    *v = a->floats;
    return a->n;
}

const kiln_tensor *kiln_attr_tensor(const kiln_node *n, const char *name) {
    const kiln_attr *a = kiln_attr_find(n, name);
    return a && a->type == KILN_ATTR_TENSOR ? a->t : NULL;
}

void kiln_node_remove_attr(kiln_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) {
            kiln_attr_free(&n->attrs[i]);
            n->attrs[i] = n->attrs[n->n_attrs - 1];
            n->n_attrs--;
            return;
        }
}

kiln_status kiln_node_take_attr(kiln_node *n, kiln_attr *a) {
    kiln_node_remove_attr(n, a->name);
    kiln_attr *na = realloc(n->attrs, sizeof *na * (size_t)(n->n_attrs + 1));
    if (!na) {
        kiln_attr_free(a);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    n->attrs = na;
    n->attrs[n->n_attrs++] = *a;
    memset(a, 0, sizeof *a);
    return KILN_OK;
}

static kiln_status new_attr(kiln_attr *a, const char *name, kiln_attr_type t) {
    memset(a, 0, sizeof *a);
    a->name = dup_str(name);
    a->type = t;
    return a->name ? KILN_OK : kiln_errorf(KILN_ERR_OOM, "out of memory");
}

kiln_status kiln_node_set_int(kiln_node *n, const char *name, int64_t v) {
    kiln_attr a;
    if (new_attr(&a, name, KILN_ATTR_INT)) return KILN_ERR_OOM;
    a.i = v;
    return kiln_node_take_attr(n, &a);
}

kiln_status kiln_node_set_float(kiln_node *n, const char *name, float v) {
    kiln_attr a;
    if (new_attr(&a, name, KILN_ATTR_FLOAT)) return KILN_ERR_OOM;
    a.f = v;
    return kiln_node_take_attr(n, &a);
}

kiln_status kiln_node_set_str(kiln_node *n, const char *name, const char *s) {
    kiln_attr a;
    if (new_attr(&a, name, KILN_ATTR_STRING)) return KILN_ERR_OOM;
    a.s = dup_str(s);
    if (!a.s) {
        kiln_attr_free(&a);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    return kiln_node_take_attr(n, &a);
}

kiln_status kiln_node_set_ints(kiln_node *n, const char *name, const int64_t *v, int count) {
    kiln_attr a;
    if (new_attr(&a, name, KILN_ATTR_INTS)) return KILN_ERR_OOM;
    a.ints = malloc(sizeof(int64_t) * (size_t)(count ? count : 1));
    if (!a.ints) {
        kiln_attr_free(&a);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    if (count) memcpy(a.ints, v, sizeof(int64_t) * (size_t)count);
    a.n = count;
    return kiln_node_take_attr(n, &a);
}

kiln_status kiln_node_set_floats(kiln_node *n, const char *name, const float *v, int count) {
    kiln_attr a;
    if (new_attr(&a, name, KILN_ATTR_FLOATS)) return KILN_ERR_OOM;
    a.floats = malloc(sizeof(float) * (size_t)(count ? count : 1));
    if (!a.floats) {
        kiln_attr_free(&a);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    if (count) memcpy(a.floats, v, sizeof(float) * (size_t)count);
    a.n = count;
    return kiln_node_take_attr(n, &a);
}

kiln_status kiln_node_set_tensor(kiln_node *n, const char *name, const kiln_tensor *t) {
    kiln_attr a;
    if (new_attr(&a, name, KILN_ATTR_TENSOR)) return KILN_ERR_OOM;
    a.t = kiln_tensor_clone(t);
    if (!a.t) {
        kiln_attr_free(&a);
        return KILN_ERR_OOM;
    }
    return kiln_node_take_attr(n, &a);
}

/* ---- public graph I/O queries ---- */
int kiln_graph_num_inputs(const kiln_graph *g) { return g ? g->n_inputs : 0; }
int kiln_graph_num_outputs(const kiln_graph *g) { return g ? g->n_outputs : 0; }
const char *kiln_graph_input_name(const kiln_graph *g, int i) {
    return g && i >= 0 && i < g->n_inputs ? g->values[g->inputs[i]].name : NULL;
}
const char *kiln_graph_output_name(const kiln_graph *g, int i) {
    return g && i >= 0 && i < g->n_outputs ? g->values[g->outputs[i]].name : NULL;
}

static kiln_status value_info(const kiln_value *v, kiln_dtype *dt, int *rank, int64_t *dims) {
    if (dt) *dt = v->dtype;
    if (rank) *rank = v->rank;
    if (dims)
        for (int i = 0; i < KILN_MAX_RANK; i++) dims[i] = i < v->rank ? v->dims[i] : 0;
    return KILN_OK;
}

kiln_status kiln_graph_input_info(const kiln_graph *g, int i, kiln_dtype *dt, int *rank,
                                  int64_t dims[KILN_MAX_RANK]) {
    if (!g || i < 0 || i >= g->n_inputs)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "input index %d out of range", i);
    return value_info(&g->values[g->inputs[i]], dt, rank, dims);
}

kiln_status kiln_graph_output_info(const kiln_graph *g, int i, kiln_dtype *dt, int *rank,
                                   int64_t dims[KILN_MAX_RANK]) {
    if (!g || i < 0 || i >= g->n_outputs)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "output index %d out of range", i);
    return value_info(&g->values[g->outputs[i]], dt, rank, dims);
}
