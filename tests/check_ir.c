/* check_ir.c — IR core: fp16/bf16 conversion, tensors, graph building, verifier,
 * broadcasting inference with symbolic dims, printer and dot writer. */
#include "ir.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(f16_roundtrip_all_values) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kiln_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            ck_assert(isnan(kiln_f16_to_f32(kiln_f32_to_f16(f))));
            continue;
        }
        ck_assert_msg(kiln_f32_to_f16(f) == h, "0x%04x -> %g -> 0x%04x", h, (double)f, kiln_f32_to_f16(f));
    }
    /* independent facts: 1.0 = 0x3c00, 65504 is the max, 2^-24 the smallest subnormal */
    ck_assert_uint_eq(kiln_f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(kiln_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(kiln_f32_to_f16(65520.0f), 0x7c00); /* rounds to inf */
    ck_assert_uint_eq(kiln_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    ck_assert_uint_eq(kiln_f32_to_f16(ldexpf(1.0f, -25)), 0x0000); /* tie to even (0) */
    ck_assert_uint_eq(kiln_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00); /* tie to even */
    ck_assert_uint_eq(kiln_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
    ck_assert_uint_eq(kiln_f32_to_f16(-2.0f), 0xc000);
}
END_TEST

START_TEST(bf16_rounding) {
    ck_assert_uint_eq(kiln_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(kiln_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80); /* tie to even */
    ck_assert_uint_eq(kiln_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    ck_assert(isnan(kiln_bf16_to_f32(kiln_f32_to_bf16(NAN))));
    ck_assert_float_eq(kiln_bf16_to_f32(0x4040), 3.0f);
}
END_TEST

START_TEST(tensor_new_checks) {
    int64_t big[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
    ck_assert_ptr_null(kiln_tensor_new(KILN_F32, 2, big));
    ck_assert(strstr(kiln_last_error(), "overflows"));
    int64_t neg[1] = {-1};
    ck_assert_ptr_null(kiln_tensor_new(KILN_F32, 1, neg));
    ck_assert_ptr_null(kiln_tensor_new(KILN_STRING, 0, NULL));
    int64_t zero[2] = {0, 5};
    kiln_tensor *t = kiln_tensor_new(KILN_I64, 2, zero);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->numel, 0);
    ck_assert_ptr_nonnull(t->data);
    kiln_tensor_free(t);
    /* saturating stores: no UB for out-of-range values */
    int64_t one[1] = {3};
    t = kiln_tensor_new(KILN_I8, 1, one);
    kiln_tensor_set(t, 0, 1e9);
    kiln_tensor_set(t, 1, -1e9);
    kiln_tensor_set(t, 2, NAN);
    ck_assert_int_eq(((int8_t *)t->data)[0], 127);
    ck_assert_int_eq(((int8_t *)t->data)[1], -128);
    ck_assert_int_eq(((int8_t *)t->data)[2], 0);
    kiln_tensor_free(t);
}
END_TEST

/* x -> relu -> y ; built by hand */
static kiln_graph *relu_graph(void) {
    kiln_graph *g = kiln_graph_new();
    int x = kiln_graph_add_value(g, "x"), y = kiln_graph_add_value(g, "y");
    int64_t d[2] = {-1, 8};
    kiln_value_set(&g->values[x], KILN_F32, 2, d);
    g->values[x].sym[0] = kiln_graph_symbol(g, "batch");
    g->values[x].flags |= KILN_VALUE_INPUT;
    g->inputs = malloc(sizeof(int));
    g->inputs[g->n_inputs++] = x;
    kiln_graph_add_node(g, KILN_OP_Relu, "r", &x, 1, &y, 1);
    g->values[y].flags |= KILN_VALUE_OUTPUT;
    g->outputs = malloc(sizeof(int));
    g->outputs[g->n_outputs++] = y;
    return g;
}

START_TEST(verifier_accepts_and_rejects) {
    kiln_graph *g = relu_graph();
    ck_assert_msg(kiln_graph_infer(g) == KILN_OK, "%s", kiln_last_error());
    ck_assert_msg(kiln_graph_verify(g) == KILN_OK, "%s", kiln_last_error());
    char buf[64];
    kiln_value_format_type(g, &g->values[g->outputs[0]], buf, sizeof buf);
    ck_assert_str_eq(buf, "f32[batch,8]");
    /* a second definition of y */
    int x = g->inputs[0], y = g->outputs[0];
    kiln_graph_add_node(g, KILN_OP_Relu, "r2", &x, 1, &y, 1);
    g->values[y].producer = 0; /* keep the first producer so only the double definition is wrong */
    ck_assert_int_ne(kiln_graph_verify(g), KILN_OK);
    ck_assert(strstr(kiln_last_error(), "defined more than once"));
    kiln_graph_free(g);

    /* use before definition (a cycle or wrong order) */
    g = kiln_graph_new();
    int a = kiln_graph_add_value(g, "a"), b = kiln_graph_add_value(g, "b"), c = kiln_graph_add_value(g, "c");
    kiln_graph_add_node(g, KILN_OP_Relu, "first", &b, 1, &c, 1);
    kiln_graph_add_node(g, KILN_OP_Relu, "second", &c, 1, &b, 1);
    (void)a;
    ck_assert_int_ne(kiln_graph_verify(g), KILN_OK);
    ck_assert(strstr(kiln_last_error(), "used before it is defined"));
    kiln_graph_free(g);
}
END_TEST

START_TEST(broadcast_inference) {
    kiln_graph *g = kiln_graph_new();
    int32_t n = kiln_graph_symbol(g, "N");
    kiln_value a = {0}, b = {0}, out = {0};
    int64_t ad[3] = {-1, 1, 4}, bd[2] = {3, 1};
    kiln_value_set(&a, KILN_F32, 3, ad);
    a.sym[0] = n;
    kiln_value_set(&b, KILN_F32, 2, bd);
    const kiln_value *vals[2] = {&a, &b};
    kiln_node node = {0};
    node.name = "bc";
    node.op = KILN_OP_Add;
    ck_assert_int_eq(kiln_infer_broadcast(&node, vals, 2, &out), KILN_OK);
    ck_assert_int_eq(out.rank, 3);
    ck_assert_int_eq(out.dims[0], -1);
    ck_assert_int_eq(out.sym[0], n);
    ck_assert_int_eq(out.dims[1], 3);
    ck_assert_int_eq(out.dims[2], 4);
    int64_t cd[2] = {2, 4};
    kiln_value c = {0};
    kiln_value_set(&c, KILN_F32, 2, cd);
    const kiln_value *bad[2] = {&b, &c};
    ck_assert_int_eq(kiln_infer_broadcast(&node, bad, 2, &out), KILN_ERR_SHAPE);
    ck_assert(strstr(kiln_last_error(), "cannot be broadcast"));
    kiln_graph_free(g);
}
END_TEST

START_TEST(printer_and_dot) {
    kiln_graph *g = relu_graph();
    ck_assert_int_eq(kiln_graph_infer(g), KILN_OK);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    kiln_graph_print(g, f);
    ck_assert_int_eq(kiln_graph_write_dot(g, f), KILN_OK);
    fclose(f);
    ck_assert(strstr(text, "%y: f32[batch,8] = relu(%x)"));
    ck_assert(strstr(text, "digraph kiln"));
    free(text);
    kiln_graph_free(g);
}
END_TEST

START_TEST(op_table_consistent) {
    for (int op = 0; op < KILN_OP_COUNT; op++) {
        const kiln_op_info *oi = &kiln_op_table[op];
        ck_assert(oi->name && oi->onnx_type && oi->family);
        ck_assert(oi->min_in >= 0 && (oi->max_in < 0 || oi->max_in >= oi->min_in));
        ck_assert(oi->min_out >= 1 && (oi->max_out < 0 || oi->max_out >= oi->min_out));
        ck_assert(kiln_infer_table[op] && kiln_eval_table[op]);
        for (int j = 0; j < op; j++) ck_assert_str_ne(kiln_op_table[j].onnx_type, oi->onnx_type);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("ir");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, f16_roundtrip_all_values);
    tcase_add_test(tc, bf16_rounding);
    tcase_add_test(tc, tensor_new_checks);
    tcase_add_test(tc, verifier_accepts_and_rejects);
    tcase_add_test(tc, broadcast_inference);
    tcase_add_test(tc, printer_and_dot);
    tcase_add_test(tc, op_table_consistent);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
