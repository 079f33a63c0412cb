/* check_frontend.c — ONNX loading, external data, and the catalog of bad inputs: each
 * must give a clear message and an error status, never a crash. */
#include "frontend.h"
#include "onnx_builder.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rng = 0x1234567u;
static float frand(void) { /* xorshift, uniform in [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* X: f32[N,4] + W: f32[4] -> Y */
static ob_model *add_model(ob_arena *a, const char *w_name, float *w) {
    ob_model *om = ob_model_new(a, 17);
    int64_t xd[2] = {-1, 4}, wd[1] = {4};
    ob_add_input(a, om, ob_value(a, "X", 1, 2, xd, "N"));
    ob_add_output(a, om, ob_value(a, "Y", 1, 2, xd, "N"));
    for (int i = 0; i < 4; i++) w[i] = frand();
    ob_add_init(a, om, ob_tensor_f32(a, "W", 1, wd, w, 4));
    const char *ins[2] = {"X", w_name}, *outs[1] = {"Y"};
    ob_add_node(a, om, ob_node(a, "Add", "add0", 2, ins, 1, outs));
    return om;
}

/* A macro so that a failure reports the caller's line. */
#define expect_error(call, want, needle)                                                              \
    do {                                                                                              \
        kiln_status st_ = (call);                                                                     \
        ck_assert_msg(st_ == (want), "status %s, expected %s (%s)", kiln_status_name(st_),            \
                      kiln_status_name(want), kiln_last_error());                                     \
        ck_assert_msg(strstr(kiln_last_error(), (needle)), "message '%s' lacks '%s'", kiln_last_error(), \
                      (needle));                                                                      \
    } while (0)

START_TEST(loads_and_runs_add) {
    ob_arena a = {0};
    float w[4];
    ob_model *om = add_model(&a, "W", w);
    size_t len;
    uint8_t *buf = ob_pack(&a, om, &len);
    kiln_graph *g = NULL;
    ck_assert_msg(kiln_model_load_bytes(buf, len, NULL, &g) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(kiln_graph_num_inputs(g), 1);
    kiln_dtype dt;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    ck_assert_int_eq(kiln_graph_output_info(g, 0, &dt, &rank, dims), KILN_OK);
    ck_assert_int_eq(dt, KILN_F32);
    ck_assert_int_eq(rank, 2);
    ck_assert_int_eq(dims[0], -1); /* symbolic batch flows through Add */
    ck_assert_int_eq(dims[1], 4);
    ck_assert_int_eq(g->values[g->outputs[0]].sym[0], g->values[g->inputs[0]].sym[0]);
    int64_t xd[2] = {3, 4};
    kiln_tensor *x = kiln_tensor_new(KILN_F32, 2, xd), *y = NULL;
    for (int i = 0; i < 12; i++) ((float *)x->data)[i] = frand();
    ck_assert_msg(kiln_graph_run_cpu(g, &x, 1, &y, 1) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(y->dims[0], 3);
    for (int i = 0; i < 12; i++) {
        float e = ((float *)x->data)[i] + w[i % 4];
        ck_assert_float_eq_tol(((float *)y->data)[i], e, 1e-6f);
    }
    kiln_tensor_free(y);
    /* wrong input shape and dtype at run time */
    int64_t bad[2] = {3, 5};
    kiln_tensor *xb = kiln_tensor_new(KILN_F32, 2, bad);
    expect_error(kiln_graph_run_cpu(g, &xb, 1, &y, 1), KILN_ERR_SHAPE, "dim 1 is 5");
    kiln_tensor_free(xb);
    xb = kiln_tensor_new(KILN_F64, 2, xd);
    expect_error(kiln_graph_run_cpu(g, &xb, 1, &y, 1), KILN_ERR_SHAPE, "dtype f64");
    kiln_tensor_free(xb);
    kiln_tensor_free(x);
    kiln_graph_free(g);
    ob_free(&a);
}
END_TEST

START_TEST(truncated_and_garbage_files) {
    ob_arena a = {0};
    float w[4];
    size_t len;
    uint8_t *buf = ob_pack(&a, add_model(&a, "W", w), &len);
    kiln_graph *g = NULL;
    expect_error(kiln_model_load_bytes(buf, len / 2, NULL, &g), KILN_ERR_PARSE, "truncated");
    ck_assert_ptr_null(g);
    for (size_t cut = 0; cut < len; cut++) { /* every prefix: an error or a model, never a crash */
        kiln_status st = kiln_model_load_bytes(buf, cut, NULL, &g);
        if (st == KILN_OK) kiln_graph_free(g);
        else ck_assert_msg(kiln_last_error()[0], "empty message for cut %zu", cut);
        g = NULL;
    }
    const char *text = "this is definitely not an ONNX model\n";
    expect_error(kiln_model_load_bytes(text, strlen(text), NULL, &g), KILN_ERR_PARSE, "not an ONNX model");
    expect_error(kiln_model_load("/nonexistent/model.onnx", &g), KILN_ERR_IO, "cannot open");
    ob_free(&a);
}
END_TEST

START_TEST(missing_initializer) {
    ob_arena a = {0};
    float w[4];
    size_t len;
    uint8_t *buf = ob_pack(&a, add_model(&a, "W_missing", w), &len);
    kiln_graph *g = NULL;
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_MODEL, "'W_missing' is not defined");
    ck_assert_msg(strstr(kiln_last_error(), "add0"), "message lacks the node name: %s", kiln_last_error());
    ob_free(&a);
}
END_TEST

START_TEST(mismatched_dtypes) {
    ob_arena a = {0};
    float w[4];
    ob_model *om = add_model(&a, "W", w);
    om->g.initializer[0]->data_type = 11; /* f64 payload of 4 elements needs 32 bytes */
    om->g.initializer[0]->raw_data.len = 32;
    om->g.initializer[0]->raw_data.data = ob_alloc(&a, 32);
    size_t len;
    uint8_t *buf = ob_pack(&a, om, &len);
    kiln_graph *g = NULL;
    kiln_status st = kiln_model_load_bytes(buf, len, NULL, &g);
    ck_assert_msg(st == KILN_ERR_SHAPE, "status %s: %s", kiln_status_name(st), kiln_last_error());
    ck_assert_msg(strstr(kiln_last_error(), "Add"), "message lacks the op: %s", kiln_last_error());
    ob_free(&a);
}
END_TEST

START_TEST(negative_and_overflowing_dims) {
    ob_arena a = {0};
    float w[4];
    ob_model *om = add_model(&a, "W", w);
    om->g.input[0]->type->tensor_type->shape->dim[1]->dim_value = -3;
    size_t len;
    uint8_t *buf = ob_pack(&a, om, &len);
    kiln_graph *g = NULL;
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_MODEL, "negative");

    om = add_model(&a, "W", w);
    Onnx__TensorProto *t = om->g.initializer[0];
    t->n_dims = 3;
    t->dims = ob_alloc(&a, 3 * sizeof(int64_t));
    t->dims[0] = t->dims[1] = t->dims[2] = (int64_t)1 << 40;
    buf = ob_pack(&a, om, &len);
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_LIMIT, "overflows");

    om = add_model(&a, "W", w); /* huge declared size, tiny payload: refused before allocating */
    t = om->g.initializer[0];
    t->dims[0] = (int64_t)1 << 31;
    buf = ob_pack(&a, om, &len);
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_MODEL, "raw_data has 16 bytes");

    om = add_model(&a, "W", w);
    t = om->g.initializer[0];
    t->has_raw_data = 0;
    buf = ob_pack(&a, om, &len);
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_MODEL, "has no data");
    ob_free(&a);
}
END_TEST

/* A model whose W lives in external data `location` under dir. */
static kiln_status load_external(ob_arena *a, const char *dir, const char *location, const char *offset,
                                 const char *length, float *w, kiln_graph **g) {
    ob_model *om = add_model(a, "W", w);
    Onnx__TensorProto *t = om->g.initializer[0];
    t->has_raw_data = 0;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    const char *keys[3] = {"location", "offset", "length"}, *vals[3] = {location, offset, length};
    for (int i = 0; i < 3; i++) {
        if (!vals[i]) continue;
        Onnx__StringStringEntryProto *e = ob_alloc(a, sizeof *e);
        onnx__string_string_entry_proto__init(e);
        e->key = ob_str(a, keys[i]);
        e->value = ob_str(a, vals[i]);
        OB_APPEND(a, t->external_data, t->n_external_data, e);
    }
    size_t len;
    uint8_t *buf = ob_pack(a, om, &len);
    return kiln_model_load_bytes(buf, len, dir, g);
}

START_TEST(external_data) {
    ob_arena a = {0};
    char root[] = "/tmp/kiln_ext_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    char dir[256], path[300], outside[300];
    snprintf(dir, sizeof dir, "%s/model", root);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    float vals[6];
    for (int i = 0; i < 6; i++) vals[i] = frand();
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    FILE *f = fopen(path, "wb");
    fwrite(vals, 4, 6, f);
    fclose(f);
    snprintf(outside, sizeof outside, "%s/secret.bin", root);
    f = fopen(outside, "wb");
    fwrite(vals, 4, 6, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/link.bin", dir);
    ck_assert_int_eq(symlink(outside, path), 0);

    float w[4];
    kiln_graph *g = NULL;
    ck_assert_msg(load_external(&a, dir, "weights.bin", "8", "16", w, &g) == KILN_OK, "%s", kiln_last_error());
    const kiln_tensor *wt = g->values[kiln_graph_find_value(g, "W")].data;
    for (int i = 0; i < 4; i++) ck_assert_float_eq(((float *)wt->data)[i], vals[2 + i]);
    kiln_graph_free(g);
    g = NULL;
    expect_error(load_external(&a, dir, "../secret.bin", NULL, NULL, w, &g), KILN_ERR_MODEL, "leaves the model folder");
    expect_error(load_external(&a, dir, "sub/../../secret.bin", NULL, NULL, w, &g), KILN_ERR_MODEL, "leaves");
    expect_error(load_external(&a, dir, outside, NULL, NULL, w, &g), KILN_ERR_MODEL, "absolute");
    expect_error(load_external(&a, dir, "link.bin", "0", "16", w, &g), KILN_ERR_MODEL, "leaves the model folder");
    expect_error(load_external(&a, dir, "weights.bin", "16", "16", w, &g), KILN_ERR_MODEL, "past the end");
    expect_error(load_external(&a, dir, "weights.bin", "-4", "16", w, &g), KILN_ERR_MODEL, "bad external offset");
    expect_error(load_external(&a, dir, "weights.bin", "0", "12", w, &g), KILN_ERR_MODEL, "length 12");
    expect_error(load_external(&a, NULL, "weights.bin", NULL, NULL, w, &g), KILN_ERR_MODEL, "no directory");
    expect_error(load_external(&a, dir, "absent.bin", NULL, NULL, w, &g), KILN_ERR_IO, "absent.bin");
    ck_assert_ptr_null(g);
    unlink(path);
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    unlink(path);
    unlink(outside);
    rmdir(dir);
    rmdir(root);
    ob_free(&a);
}
END_TEST

START_TEST(unsupported_ops_listed_together) {
    ob_arena a = {0};
    ob_model *om = ob_model_new(&a, 17);
    int64_t d[1] = {4};
    ob_add_input(&a, om, ob_value(&a, "X", 1, 1, d, NULL));
    ob_add_output(&a, om, ob_value(&a, "Z", 1, 1, d, NULL));
    const char *x[1] = {"X"}, *y[1] = {"Y"}, *y2[1] = {"Y2"}, *z[1] = {"Z"};
    ob_add_node(&a, om, ob_node(&a, "FooOp", "foo_first", 1, x, 1, y));
    ob_add_node(&a, om, ob_node(&a, "BarOp", "bar_first", 1, y, 1, y2));
    ob_add_node(&a, om, ob_node(&a, "FooOp", "foo_second", 1, y2, 1, z));
    size_t len;
    uint8_t *buf = ob_pack(&a, om, &len);
    kiln_graph *g = NULL;
    expect_error(kiln_model_load_bytes(buf, len, NULL, &g), KILN_ERR_UNSUPPORTED, "2 unsupported op types");
    ck_assert(strstr(kiln_last_error(), "FooOp (domain '', opset 17, first node 'foo_first'"));
    ck_assert(strstr(kiln_last_error(), "BarOp"));
    ck_assert(strstr(kiln_last_error(), "2 nodes"));
    ob_free(&a);
}
END_TEST

START_TEST(npy_roundtrip_and_bad_files) {
    int64_t d[3] = {2, 3, 5};
    kiln_tensor *t = kiln_tensor_new(KILN_F32, 3, d), *r = NULL;
    for (int i = 0; i < 30; i++) ((float *)t->data)[i] = frand();
    char path[] = "/tmp/kiln_npy_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_msg(kiln_npy_write(path, t) == KILN_OK, "%s", kiln_last_error());
    ck_assert_msg(kiln_npy_read(path, &r) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(r->rank, 3);
    ck_assert_int_eq(r->dims[2], 5);
    ck_assert_int_eq(memcmp(r->data, t->data, t->nbytes), 0);
    kiln_tensor_free(r);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(kiln_read_file(path, 1 << 20, &buf, &len), KILN_OK);
    expect_error(kiln_npy_parse(buf, len - 1, &r), KILN_ERR_PARSE, "shape needs");
    expect_error(kiln_npy_parse(buf, 20, &r), KILN_ERR_PARSE, "truncated");
    buf[1] = 'X';
    expect_error(kiln_npy_parse(buf, len, &r), KILN_ERR_PARSE, "bad magic");
    free(buf);
    unlink(path);
    kiln_tensor_free(t);
}
END_TEST


/* Typed payload fields: int32_data carries f16/bf16 bits, bool, int8, uint8 and int16 values. */
START_TEST(typed_payload_fields) {
    Onnx__TensorProto tp;
    int64_t dims[1] = {3};
    kiln_tensor *t = NULL;
    struct {
        kiln_dtype dt;
        int32_t vals[3];
        double want[3];
    } cases[] = {
        {KILN_F16, {0x3c00, 0xc000, 0x3800}, {1.0, -2.0, 0.5}},
        {KILN_BF16, {0x3f80, 0x4040, 0xbf00}, {1.0, 3.0, -0.5}},
        {KILN_BOOL, {1, 0, 1}, {1, 0, 1}},
        {KILN_I8, {-128, 5, 127}, {-128, 5, 127}},
        {KILN_U8, {255, 0, 7}, {255, 0, 7}},
        {KILN_I16, {-300, 0, 300}, {-300, 0, 300}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        onnx__tensor_proto__init(&tp);
        tp.name = "t";
        tp.has_data_type = 1;
        tp.data_type = (int32_t)cases[c].dt;
        tp.n_dims = 1;
        tp.dims = dims;
        tp.n_int32_data = 3;
        tp.int32_data = cases[c].vals;
        ck_assert_msg(kiln_onnx_tensor_convert(&tp, NULL, &t) == KILN_OK, "%s", kiln_last_error());
        for (int i = 0; i < 3; i++) ck_assert_double_eq(kiln_tensor_get(t, i), cases[c].want[i]);
        kiln_tensor_free(t);
    }
    int64_t i64[3] = {INT64_MIN, -1, INT64_MAX};
    double f64[3] = {1e300, -0.0, 3.25};
    float f32[3] = {1.5f, -2.25f, 1e-30f};
    uint64_t u64[3] = {UINT64_MAX, 0, 42};
    onnx__tensor_proto__init(&tp);
    tp.name = "t";
    tp.has_data_type = 1;
    tp.n_dims = 1;
    tp.dims = dims;
    tp.data_type = KILN_I64;
    tp.n_int64_data = 3;
    tp.int64_data = i64;
    ck_assert_int_eq(kiln_onnx_tensor_convert(&tp, NULL, &t), KILN_OK);
    ck_assert_int_eq(memcmp(t->data, i64, 24), 0);
    kiln_tensor_free(t);
    tp.n_int64_data = 0;
    tp.data_type = KILN_F64;
    tp.n_double_data = 3;
    tp.double_data = f64;
    ck_assert_int_eq(kiln_onnx_tensor_convert(&tp, NULL, &t), KILN_OK);
    ck_assert_int_eq(memcmp(t->data, f64, 24), 0);
    kiln_tensor_free(t);
    tp.n_double_data = 0;
    tp.data_type = KILN_F32;
    tp.n_float_data = 3;
    tp.float_data = f32;
    ck_assert_int_eq(kiln_onnx_tensor_convert(&tp, NULL, &t), KILN_OK);
    ck_assert_int_eq(memcmp(t->data, f32, 12), 0);
    kiln_tensor_free(t);
    tp.n_float_data = 2; /* count disagrees with the shape */
    expect_error(kiln_onnx_tensor_convert(&tp, NULL, &t), KILN_ERR_MODEL, "float_data has 2 values");
    tp.n_float_data = 0;
    tp.data_type = KILN_U64;
    tp.n_uint64_data = 3;
    tp.uint64_data = u64;
    ck_assert_int_eq(kiln_onnx_tensor_convert(&tp, NULL, &t), KILN_OK);
    ck_assert_int_eq(memcmp(t->data, u64, 24), 0);
    kiln_tensor_free(t);
    tp.data_type = 8; /* string */
    expect_error(kiln_onnx_tensor_convert(&tp, NULL, &t), KILN_ERR_UNSUPPORTED, "data type 8");
}
END_TEST

START_TEST(importer_table_covers_op_table) {
    for (int op = 0; op < KILN_OP_COUNT; op++) {
        if (op == KILN_OP_Fused) { /* kiln's own op: never imported */
            ck_assert_ptr_null(kiln_importer_find("Fused"));
            continue;
        }
        const kiln_importer *imp = kiln_importer_find(kiln_op_table[op].onnx_type);
        ck_assert_msg(imp != NULL, "no importer row for %s", kiln_op_table[op].onnx_type);
        ck_assert_int_eq(imp->op, op);
    }
    ck_assert_int_eq(kiln_importer_find("Upsample")->op, KILN_OP_Resize);
    ck_assert_ptr_null(kiln_importer_find("NotAnOp"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("frontend");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, loads_and_runs_add);
    tcase_add_test(tc, truncated_and_garbage_files);
    tcase_add_test(tc, missing_initializer);
    tcase_add_test(tc, mismatched_dtypes);
    tcase_add_test(tc, negative_and_overflowing_dims);
    tcase_add_test(tc, external_data);
    tcase_add_test(tc, unsupported_ops_listed_together);
    tcase_add_test(tc, npy_roundtrip_and_bad_files);
    tcase_add_test(tc, importer_table_covers_op_table);
    tcase_add_test(tc, typed_payload_fields);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
