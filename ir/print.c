/* print.c — a text printer and a Graphviz dot writer for kiln graphs. */
#include "ir.h"

#include <string.h>

void kiln_value_format_type(const kiln_graph *g, const kiln_value *v, char *buf, size_t len) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "%s", kiln_dtype_name(v->dtype));
    if (o >= len) return;
    if (v->rank < 0) {
        snprintf(buf + o, len - o, "[?]");
        return;
    }
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < v->rank && o < len; i++) {
        const char *sep = i ? "," : "";
        if (v->dims[i] >= 0)
            o += (size_t)snprintf(buf + o, len - o, "%s%lld", sep, (long long)v->dims[i]);
        else if (g && v->sym[i] > 0 && v->sym[i] <= g->n_symbols)
            o += (size_t)snprintf(buf + o, len - o, "%s%s", sep, g->symbols[v->sym[i] - 1]);
        else
            o += (size_t)snprintf(buf + o, len - o, "%s?", sep);
    }
    if (o < len) snprintf(buf + o, len - o, "]");
}

static void print_attr(const kiln_attr *a, FILE *f) {
    fprintf(f, " %s=", a->name);
    switch (a->type) {
    case KILN_ATTR_INT: fprintf(f, "%lld", (long long)a->i); break;
    case KILN_ATTR_FLOAT: fprintf(f, "%g", (double)a->f); break;
    case KILN_ATTR_STRING: fprintf(f, "\"%s\"", a->s); break;
    case KILN_ATTR_INTS:
        fputc('[', f);
        for (int i = 0; i < a->n; i++) fprintf(f, "%s%lld", i ? "," : "", (long long)a->ints[i]);
        fputc(']', f);
        break;
    case KILN_ATTR_FLOATS:
        fputc('[', f);
        for (int i = 0; i < a->n; i++) fprintf(f, "%s%g", i ? "," : "", (double)a->floats[i]);
        fputc(']', f);
        break;
    case KILN_ATTR_STRINGS: fprintf(f, "<%d strings>", a->n); break;
    case KILN_ATTR_TENSOR: fprintf(f, "<tensor %s x%lld>", kiln_dtype_name(a->t->dtype), (long long)a->t->numel); break;
    default: fprintf(f, "<?>"); break;
    }
}

static void print_nodes(const kiln_graph *g, FILE *f, int indent) {
    char buf[256];
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        fprintf(f, "%*s", indent, "");
        for (int i = 0; i < n->n_outputs; i++) {
            if (n->outputs[i] < 0) {
                fprintf(f, "%s_", i ? ", " : "");
                continue;
            }
            const kiln_value *v = &g->values[n->outputs[i]];
            kiln_value_format_type(g, v, buf, sizeof buf);
            fprintf(f, "%s%%%s: %s", i ? ", " : "", v->name, buf);
        }
        fprintf(f, " = %s(", kiln_op_name(n->op));
        for (int i = 0; i < n->n_inputs; i++)
            fprintf(f, "%s%s%s", i ? ", " : "", n->inputs[i] >= 0 ? "%" : "_",
                    n->inputs[i] >= 0 ? g->values[n->inputs[i]].name : "");
        fputc(')', f);
        for (int a = 0; a < n->n_attrs; a++) print_attr(&n->attrs[a], f);
        if (n->body) {
            fprintf(f, " {\n");
            print_nodes(n->body, f, indent + 4);
            fprintf(f, "%*s}", indent, "");
        }
        fputc('\n', f);
    }
}

void kiln_graph_print(const kiln_graph *g, FILE *f) {
    char buf[256];
    fprintf(f, "graph %s (opset %lld) {\n", g->name && *g->name ? g->name : "main", (long long)g->opset);
    for (int i = 0; i < g->n_inputs; i++) {
        const kiln_value *v = &g->values[g->inputs[i]];
        kiln_value_format_type(g, v, buf, sizeof buf);
        fprintf(f, "  input %%%s: %s\n", v->name, buf);
    }
    int n_const = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].data && g->values[v].producer < 0) n_const++;
    fprintf(f, "  ; %d constants\n", n_const);
    print_nodes(g, f, 2);
    for (int i = 0; i < g->n_outputs; i++) fprintf(f, "  output %%%s\n", g->values[g->outputs[i]].name);
    fprintf(f, "}\n");
}

static void dot_escape(const char *s, FILE *f) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

kiln_status kiln_graph_write_dot(const kiln_graph *g, FILE *f) {
    char buf[256];
    fprintf(f, "digraph kiln {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
    for (int i = 0; i < g->n_inputs; i++) {
        const kiln_value *v = &g->values[g->inputs[i]];
        kiln_value_format_type(g, v, buf, sizeof buf);
        fprintf(f, "  v%d [shape=ellipse, label=\"", g->inputs[i]);
        dot_escape(v->name, f);
        fprintf(f, "\\n%s\"];\n", buf);
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        const char *kind = n->body ? kiln_attr_str(n, "kind", "fused") : NULL;
        fprintf(f, "  n%d [%slabel=\"%s%s%s\\n", ni, n->body ? "style=filled, fillcolor=lightyellow, " : "",
                kiln_op_table[n->op].onnx_type, kind ? ":" : "", kind ? kind : "");
        dot_escape(n->name ? n->name : "", f);
        fprintf(f, "\"];\n");
        for (int i = 0; i < n->n_inputs; i++) {
            int v = n->inputs[i];
            if (v < 0) continue;
            const kiln_value *val = &g->values[v];
            if (val->producer >= 0) {
                kiln_value_format_type(g, val, buf, sizeof buf);
                fprintf(f, "  n%d -> n%d [label=\"%s\"];\n", val->producer, ni, buf);
            } else if (val->flags & KILN_VALUE_INPUT) {
                fprintf(f, "  v%d -> n%d;\n", v, ni);
            }
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const kiln_value *v = &g->values[g->outputs[i]];
        kiln_value_format_type(g, v, buf, sizeof buf);
        fprintf(f, "  o%d [shape=ellipse, label=\"", i);
        dot_escape(v->name, f);
        fprintf(f, "\\n%s\"];\n", buf);
        if (v->producer >= 0) fprintf(f, "  n%d -> o%d;\n", v->producer, i);
    }
    fprintf(f, "}\n");
    return ferror(f) ? kiln_errorf(KILN_ERR_IO, "writing the dot file failed") : KILN_OK;
}
