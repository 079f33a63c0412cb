/* check_reliability.c — malformed-input classes of docs/reliability.md that other suites do not
 * cover. The limits of kiln.h (kiln_limits): parsing, and each limit refusing an input
 * with KILN_ERR_LIMIT and a message naming it before anything large is allocated; the nesting
 * bound against a deeply nested model (protobuf-c would recurse off the stack); and what the CPU
 * evaluator does with non-finite values (they propagate, IEEE 754; no check, no error); attributes
 * of the wrong type; a required output left out (a fuzz finding). */
#include "frontend.h"
#include "onnx_builder.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define expect_error(call, want, needle)                                                              \
    do {                                                                                              \
        kiln_status st_ = (call);                                                                     \
        ck_assert_msg(st_ == (want), "status %s, expected %s (%s)", kiln_status_name(st_),            \
                      kiln_status_name(want), kiln_last_error());                                     \
        ck_assert_msg(strstr(kiln_last_error(), (needle)), "message '%s' lacks '%s'", kiln_last_error(), \
                      (needle));                                                                      \
    } while (0)

static bool same_limits(const kiln_limits *a, const kiln_limits *b) { /* fieldwise: padding */
    return a->max_file_bytes == b->max_file_bytes && a->max_tensor_bytes == b->max_tensor_bytes &&
           a->max_initializer_bytes == b->max_initializer_bytes && a->max_nodes == b->max_nodes &&
           a->max_values == b->max_values && a->max_nesting_depth == b->max_nesting_depth;
}

static void reset_limits(void) { ck_assert_int_eq(kiln_limits_set(NULL), KILN_OK); }

/* X: f32[2,4] + W: f32[4] -> Y, then `extra` Relu nodes in a chain. */
static uint8_t *small_model(ob_arena *a, int extra, size_t *len) {
    ob_model *om = ob_model_new(a, 17);
    int64_t xd[2] = {2, 4}, wd[1] = {4};
    float w[4] = {1, 2, 3, 4};
    ob_add_input(a, om, ob_value(a, "X", 1, 2, xd, NULL));
    ob_add_init(a, om, ob_tensor_f32(a, "W", 1, wd, w, 4));
    const char *ins[2] = {"X", "W"}, *outs[1] = {"Y0"};
    ob_add_node(a, om, ob_node(a, "Add", "add0", 2, ins, 1, outs));
    char in[16], out[16];
    for (int i = 0; i < extra; i++) {
        snprintf(in, sizeof in, "Y%d", i);
        snprintf(out, sizeof out, "Y%d", i + 1);
        const char *ri[1] = {in}, *ro[1] = {out};
        ob_add_node(a, om, ob_node(a, "Relu", out, 1, ri, 1, ro));
    }
    snprintf(out, sizeof out, "Y%d", extra);
    ob_add_output(a, om, ob_value(a, out, 1, 2, xd, NULL));
    return ob_pack(a, om, len);
}

START_TEST(defaults_set_and_parse) {
    reset_limits();
    kiln_limits d, l;
    kiln_limits_default(&d);
    kiln_limits_get(&l);
    ck_assert(same_limits(&d, &l));
    ck_assert_uint_eq(d.max_tensor_bytes, (uint64_t)16 << 30);
    ck_assert_int_eq(d.max_nesting_depth, 64);
    ck_assert_int_eq(kiln_limits_parse("tensor-bytes=64M,nodes=1000,nesting-depth=8,file-bytes=2g", &l), KILN_OK);
    ck_assert_uint_eq(l.max_tensor_bytes, (uint64_t)64 << 20);
    ck_assert_uint_eq(l.max_file_bytes, (uint64_t)2 << 30);
    ck_assert_int_eq(l.max_nodes, 1000);
    ck_assert_int_eq(l.max_nesting_depth, 8);
    ck_assert_int_eq(kiln_limits_parse("values=7,initializer-bytes=1T", &l), KILN_OK);
    ck_assert_int_eq(l.max_values, 7);
    ck_assert_uint_eq(l.max_initializer_bytes, (uint64_t)1 << 40);
    kiln_limits before = l;
    expect_error(kiln_limits_parse("frobs=3", &l), KILN_ERR_INVALID_ARG, "unknown limit 'frobs'");
    expect_error(kiln_limits_parse("nodes", &l), KILN_ERR_INVALID_ARG, "not name=value");
    expect_error(kiln_limits_parse("nodes=-1", &l), KILN_ERR_INVALID_ARG, "not name=value");
    expect_error(kiln_limits_parse("nodes=12X", &l), KILN_ERR_INVALID_ARG, "not name=value");
    expect_error(kiln_limits_parse("tensor-bytes=99999999999999999999", &l), KILN_ERR_INVALID_ARG, "not name=value");
    expect_error(kiln_limits_parse("tensor-bytes=17179869184T", &l), KILN_ERR_INVALID_ARG, "not name=value");
    expect_error(kiln_limits_parse("nesting-depth=1001", &l), KILN_ERR_INVALID_ARG, "too large");
    ck_assert(same_limits(&before, &l)); /* a failed parse changes nothing */
    l.max_nodes = -1;
    expect_error(kiln_limits_set(&l), KILN_ERR_INVALID_ARG, "negative");
    l.max_nodes = 1;
    l.max_nesting_depth = KILN_MAX_NESTING_DEPTH + 1;
    expect_error(kiln_limits_set(&l), KILN_ERR_INVALID_ARG, "stack");
    kiln_limits z = {0}; /* zeros: the defaults */
    ck_assert_int_eq(kiln_limits_set(&z), KILN_OK);
    kiln_limits_get(&l);
    ck_assert(same_limits(&d, &l));
}
END_TEST

START_TEST(each_limit_refuses_with_its_name) {
    ob_arena a = {0};
    size_t len;
    uint8_t *buf = small_model(&a, 3, &len);
    kiln_graph *g = NULL;
    reset_limits();
    ck_assert_msg(kiln_model_load_bytes(buf, len, NULL, &g) == KILN_OK, "%s", kiln_last_error());
    kiln_graph_free(g);
    kiln_limits l;
    const char *cases[][2] = {
        {"nodes=3", "over the node limit of 3"},
        {"values=5", "over the value limit of 5"},
        {"initializer-bytes=15", "over the initializer limit of 15 bytes"},
        {"tensor-bytes=15", "over the tensor limit of 15 bytes"},
        {"file-bytes=20", "over the file limit of 20 bytes"},
        {"nesting-depth=2", "over the nesting limit"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_limits_default(&l);
        ck_assert_int_eq(kiln_limits_parse(cases[i][0], &l), KILN_OK);
        ck_assert_int_eq(kiln_limits_set(&l), KILN_OK);
        g = (kiln_graph *)&a;
        expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_LIMIT, cases[i][1]);
        ck_assert_ptr_null(g);
    }
    /* exactly at each limit: loads */
    kiln_limits_default(&l);
    ck_assert_int_eq(kiln_limits_parse("nodes=4,values=6,initializer-bytes=16,tensor-bytes=32,nesting-depth=4", &l),
                     KILN_OK);
    l.max_file_bytes = len;
    ck_assert_int_eq(kiln_limits_set(&l), KILN_OK);
    ck_assert_msg(kiln_model_load_bytes(buf, len, NULL, &g) == KILN_OK, "%s", kiln_last_error());
    kiln_graph_free(g);
    reset_limits();
    ob_free(&a);
}
END_TEST

/* Huge declared sizes: dims that multiply to terabytes with no data behind them, in an ONNX
 * initializer, a graph input and a .npy header, fail before any allocation. */
START_TEST(huge_declared_sizes) {
    reset_limits();
    ob_arena a = {0};
    ob_model *om = ob_model_new(&a, 17);
    int64_t xd[2] = {2, 4}, huge[3] = {1 << 20, 1 << 20, 1 << 10};
    ob_add_input(&a, om, ob_value(&a, "X", 1, 2, xd, NULL));
    ob_add_output(&a, om, ob_value(&a, "X", 1, 2, xd, NULL));
    ob_add_init(&a, om, ob_tensor_f32(&a, "W", 3, huge, NULL, 0));
    size_t len;
    uint8_t *buf = ob_pack(&a, om, &len);
    kiln_graph *g = NULL;
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_LIMIT, "over the tensor limit");
    ob_free(&a);

    const char hdr[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576, 1024), }\n";
    uint8_t npy[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(sizeof hdr - 1), 0};
    memcpy(npy + 10, hdr, sizeof hdr - 1);
    kiln_tensor *t = NULL;
    expect_error(kiln_npy_parse(npy, 10 + sizeof hdr - 1, &t), KILN_ERR_PARSE, "shape needs");
    ck_assert_ptr_null(t);

    /* a .npy whose data is all there but over the tensor limit */
    int64_t d[1] = {64};
    kiln_tensor *big = kiln_tensor_new(KILN_F32, 1, d);
    ck_assert_ptr_nonnull(big);
    kiln_limits l;
    kiln_limits_default(&l);
    l.max_tensor_bytes = 128;
    ck_assert_int_eq(kiln_limits_set(&l), KILN_OK);
    expect_error(kiln_tensor_new(KILN_F32, 1, d) ? KILN_OK : KILN_ERR_LIMIT, KILN_ERR_LIMIT, "tensor limit of 128");
    reset_limits();
    kiln_tensor_free(big);
}
END_TEST

/* Prepend a length-delimited field (tag, length) in front of [*start, end). */
static void prepend_field(uint8_t **start, const uint8_t *end, unsigned field) {
    uint64_t n = (uint64_t)(end - *start);
    uint8_t tmp[12];
    int k = 0;
    tmp[k++] = (uint8_t)(field << 3 | 2);
    do {
        tmp[k++] = (uint8_t)((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
        n >>= 7;
    } while (n);
    *start -= k;
    memcpy(*start, tmp, (size_t)k);
}

/* A graph in an attribute in a node in a graph ... `levels` times, inside a model: small on
 * disk, 3 * levels messages deep. Without the bound protobuf-c would recurse that deep. */
START_TEST(deep_nesting_is_refused_not_a_stack_overflow) {
    reset_limits();
    const int levels = 200000;
    size_t cap = (size_t)levels * 3 * 6 + 64;
    uint8_t *buf = malloc(cap), *end = buf + cap, *p = end;
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < levels; i++) {
        prepend_field(&p, end, 6); /* AttributeProto.g */
        prepend_field(&p, end, 5); /* NodeProto.attribute */
        prepend_field(&p, end, 1); /* GraphProto.node */
    }
    prepend_field(&p, end, 7); /* ModelProto.graph */
    kiln_graph *g = NULL;
    expect_error(kiln_model_load_bytes(p, (size_t)(end - p), NULL, &g), KILN_ERR_LIMIT, "more than 64 deep");
    /* the same through TypeProto.sequence_type.elem_type in a graph input */
    p = end;
    for (int i = 0; i < levels; i++) {
        prepend_field(&p, end, 1); /* Sequence.elem_type */
        prepend_field(&p, end, 4); /* TypeProto.sequence_type */
    }
    prepend_field(&p, end, 2);  /* ValueInfoProto.type */
    prepend_field(&p, end, 11); /* GraphProto.input */
    prepend_field(&p, end, 7);  /* ModelProto.graph */
    expect_error(kiln_model_load_bytes(p, (size_t)(end - p), NULL, &g), KILN_ERR_LIMIT, "nesting limit");
    /* shallow nesting still reaches the importer, which names what it does not support */
    p = end;
    for (int i = 0; i < 3; i++) {
        prepend_field(&p, end, 6);
        prepend_field(&p, end, 5);
        prepend_field(&p, end, 1);
    }
    prepend_field(&p, end, 7);
    ck_assert_int_ne(kiln_model_load_bytes(p, (size_t)(end - p), NULL, &g), KILN_OK);
    ck_assert(!strstr(kiln_last_error(), "nesting"));
    free(buf);
}
END_TEST

/* Non-finite values: the CPU evaluator computes with them as IEEE 754 says (NaN stays NaN,
 * inf + 1 = inf); kiln neither rejects nor reports them. */
START_TEST(non_finite_values_propagate) {
    reset_limits();
    ob_arena a = {0};
    ob_model *om = ob_model_new(&a, 17);
    int64_t xd[1] = {4};
    float w[4] = {1, 1, 1, 1};
    ob_add_input(&a, om, ob_value(&a, "X", 1, 1, xd, NULL));
    ob_add_init(&a, om, ob_tensor_f32(&a, "W", 1, xd, w, 4));
    const char *ins[2] = {"X", "W"}, *o1[1] = {"S"}, *ri[1] = {"S"}, *o2[1] = {"Y"};
    ob_add_node(&a, om, ob_node(&a, "Add", "add", 2, ins, 1, o1));
    ob_add_node(&a, om, ob_node(&a, "Softmax", "softmax", 1, ri, 1, o2));
    ob_add_output(&a, om, ob_value(&a, "S", 1, 1, xd, NULL));
    ob_add_output(&a, om, ob_value(&a, "Y", 1, 1, xd, NULL));
    size_t len;
    uint8_t *buf = ob_pack(&a, om, &len);
    kiln_graph *g = NULL;
    ck_assert_msg(kiln_model_load_bytes(buf, len, NULL, &g) == KILN_OK, "%s", kiln_last_error());
    kiln_tensor *x = kiln_tensor_new(KILN_F32, 1, xd);
    float *xv = x->data;
    xv[0] = NAN;
    xv[1] = INFINITY;
    xv[2] = -INFINITY;
    xv[3] = 2.0f;
    kiln_tensor *out[2] = {0};
    ck_assert_msg(kiln_graph_run_cpu(g, &x, 1, out, 2) == KILN_OK, "%s", kiln_last_error());
    const float *s = out[0]->data, *y = out[1]->data;
    ck_assert(isnan(s[0]));
    ck_assert(isinf(s[1]) && s[1] > 0);
    ck_assert(isinf(s[2]) && s[2] < 0);
    ck_assert(s[3] == 3.0f);
    for (int i = 0; i < 4; i++) ck_assert(isnan(y[i])); /* a NaN in a softmax row poisons the row */
    /* without the NaN: +inf takes all the mass, -inf none */
    xv[0] = 0.0f;
    kiln_tensor_free(out[0]);
    kiln_tensor_free(out[1]);
    ck_assert_msg(kiln_graph_run_cpu(g, &x, 1, out, 2) == KILN_OK, "%s", kiln_last_error());
    y = out[1]->data;
    ck_assert(isnan(y[1]) || y[1] == 1.0f); /* inf - inf in the max-subtraction: NaN is allowed */
    ck_assert(y[2] == 0.0f || isnan(y[2]));
    kiln_tensor_free(out[0]);
    kiln_tensor_free(out[1]);
    kiln_tensor_free(x);
    kiln_graph_free(g);
    ob_free(&a);
}
END_TEST

/* X -> LeakyRelu(alpha as `type`) -> Y, or with Y omitted when omit_output */
static uint8_t *leaky_model(ob_arena *a, int type, bool omit_output, size_t *len) {
    ob_model *om = ob_model_new(a, 17);
    int64_t xd[1] = {4};
    ob_add_input(a, om, ob_value(a, "X", 1, 1, xd, NULL));
    ob_add_output(a, om, ob_value(a, "X", 1, 1, xd, NULL));
    const char *ins[1] = {"X"}, *outs[1] = {omit_output ? "" : "Y"};
    Onnx__NodeProto *n = ob_node(a, "LeakyRelu", "leaky", 1, ins, 1, outs);
    Onnx__AttributeProto *at = ob_alloc(a, sizeof *at);
    onnx__attribute_proto__init(at);
    at->name = ob_str(a, "alpha");
    at->has_type = 1;
    at->type = (Onnx__AttributeProto__AttributeType)type;
    if (type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING) {
        at->has_s = 1;
        at->s.data = (uint8_t *)ob_str(a, "x");
        at->s.len = 1;
    } else {
        at->has_f = 1;
        at->f = 0.5f;
    }
    n->n_attribute = 1;
    n->attribute = ob_alloc(a, sizeof(void *));
    n->attribute[0] = at;
    ob_add_node(a, om, n);
    return ob_pack(a, om, len);
}

START_TEST(wrong_attribute_type_and_omitted_output) {
    reset_limits();
    ob_arena a = {0};
    size_t len;
    kiln_graph *g = NULL;
    uint8_t *buf = leaky_model(&a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, false, &len);
    ck_assert_msg(kiln_model_load_bytes(buf, len, NULL, &g) == KILN_OK, "%s", kiln_last_error());
    kiln_graph_free(g);
    buf = leaky_model(&a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, false, &len);
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_MODEL,
                 "node 'leaky' (#0 LeakyRelu): attribute 'alpha' has type STRING, ONNX defines it as FLOAT");
    /* found by fuzz_onnx (tests/fuzz_regressions/onnx/omitted_required_output.onnx): inference
     * wrote through the missing output */
    buf = leaky_model(&a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, true, &len);
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_MODEL, "required output 0 is missing");
    ck_assert_ptr_null(g);
    ob_free(&a);
}
END_TEST

/* Declared types that kiln cannot take or that disagree with what the graph computes. */
START_TEST(declared_types) {
    reset_limits();
    ob_arena a = {0};
    int64_t xd[2] = {2, 4};
    const char *ins[1] = {"X"}, *outs[1] = {"Y"};
    ob_model *om = ob_model_new(&a, 17);
    ob_add_input(&a, om, ob_value(&a, "X", 8, 2, xd, NULL)); /* string */
    ob_add_output(&a, om, ob_value(&a, "Y", 1, 2, xd, NULL));
    ob_add_node(&a, om, ob_node(&a, "Relu", "r", 1, ins, 1, outs));
    size_t len;
    uint8_t *buf = ob_pack(&a, om, &len);
    kiln_graph *g = NULL;
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_UNSUPPORTED,
                 "graph input 'X' has element type 8, which kiln does not support");
    om = ob_model_new(&a, 17);
    ob_add_input(&a, om, ob_value(&a, "X", 1, 2, xd, NULL));
    ob_add_output(&a, om, ob_value(&a, "Y", 7, 2, xd, NULL)); /* declared i64, computes f32 */
    ob_add_node(&a, om, ob_node(&a, "Relu", "r", 1, ins, 1, outs));
    buf = ob_pack(&a, om, &len);
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_MODEL,
                 "graph output 'Y' is declared with element type 7 but computes f32");
    ck_assert_ptr_null(g);
    ob_free(&a);
}
END_TEST

int main(void) {
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, defaults_set_and_parse);
    tcase_add_test(tc, each_limit_refuses_with_its_name);
    tcase_add_test(tc, huge_declared_sizes);
    tcase_add_test(tc, deep_nesting_is_refused_not_a_stack_overflow);
    tcase_add_test(tc, non_finite_values_propagate);
    tcase_add_test(tc, wrong_attribute_type_and_omitted_output);
    tcase_add_test(tc, declared_types);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
