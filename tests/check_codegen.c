/* check_codegen.c — codegen without a GPU: bundles for the example model and small graphs
 * that use every kernel template (odd sizes, stride 2, groups, depthwise, dilation,
 * padding, ceil mode, broadcasting), NVRTC-compiled for sm_80 and sm_90; the launch plan
 * validates and survives a write/read round trip; unsupported nodes are all listed.
 * Numerics run on the GPU machine (tests/gpu_codegen.sh: kiln build + kiln compare). */
#include "codegen/codegen.h"
#include "frontend.h"
#include "graph_builder.h"

#include <stdio.h>

static const char *const ARCHS[] = {"sm_80", "sm_90"};

/* Optimizes g (-O2; the pipeline at fp32, as kiln build runs it: NCHW), runs codegen at
 * `prec` (compiling for sm_80 and sm_90 with KILN_CUDA), checks the bundle and returns the
 * generated source (caller frees). */
static char *build_prec(kiln_graph *g, kiln_precision prec, kiln_bundle **out) {
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    ck_assert_msg(kiln_pipeline_run(g, &po, NULL, 0, NULL) == KILN_OK, "passes: %s", kiln_last_error());
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = prec;
    o.archs = ARCHS;
    o.n_archs = 2;
#ifndef KILN_HAVE_CUDA
    o.compile = false;
#endif
    kiln_bundle *b = kiln_bundle_new();
    char *src = NULL;
    kiln_status st = kiln_codegen_build(g, &o, b, &src);
    ck_assert_msg(st == KILN_OK, "codegen: %s\n%s", kiln_last_error(), src ? src : "");
    ck_assert_ptr_nonnull(src);
    ck_assert_int_ge(b->n_launches, kiln_graph_kernel_count(g));
    /* every kernel begins with the wait of programmatic dependent launch (cg_util.c inserts it): the
     * runtime launches kernels early on sm_90+, and one without the wait would race its predecessor */
    int n_global = 0, n_wait = 0;
    for (const char *p = strstr(src, "__global__"); p; p = strstr(p + 1, "__global__")) {
        n_global++;
        const char *brace = strchr(p, '{');
        n_wait += brace && !strncmp(brace, "{\n    kiln::pdl_enter();\n", strlen("{\n    kiln::pdl_enter();\n"));
    }
    ck_assert_int_gt(n_global, 0);
    ck_assert_msg(n_wait == n_global, "%d of %d kernels begin with kiln::pdl_enter()", n_wait, n_global);
    ck_assert_ptr_nonnull(kiln_bundle_get_meta(b, "pdl"));
    ck_assert_str_eq(kiln_bundle_get_meta(b, "pdl"), "1");
#ifdef KILN_HAVE_CUDA
    ck_assert_int_eq(b->n_images, 3); /* sm_80, sm_90 cubins + compute_90 PTX */
    ck_assert_msg(kiln_bundle_validate(b) == KILN_OK, "%s", kiln_last_error());
    uint8_t *bytes;
    size_t len;
    ck_assert_msg(kiln_bundle_write_bytes(b, &bytes, &len) == KILN_OK, "%s", kiln_last_error());
    kiln_bundle *back = NULL;
    ck_assert_msg(kiln_bundle_read_bytes(bytes, len, "bundle", &back) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(back->n_launches, b->n_launches);
    ck_assert_int_eq(back->n_kernels, b->n_kernels);
    ck_assert_uint_eq(back->weight_bytes, b->weight_bytes);
    kiln_bundle_free(back);
    free(bytes);
#endif
    if (out) *out = b;
    else kiln_bundle_free(b);
    return src;
}

static char *build(kiln_graph *g, kiln_bundle **out) { return build_prec(g, KILN_PREC_FP32, out); }

static void set_ints(kiln_node *n, const char *name, int count, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t v[4] = {a, b, c, d};
    ck_assert_int_eq(kiln_node_set_ints(n, name, v, count), KILN_OK);
}

static void assert_has(const char *src, const char *what) {
    ck_assert_msg(strstr(src, what) != NULL, "the generated source has no '%s'", what);
}

START_TEST(tiny_cnn_example) {
    kiln_graph *g = NULL;
    ck_assert_msg(kiln_model_load(KILN_SOURCE_DIR "/examples/tiny_cnn.onnx", &g) == KILN_OK, "%s", kiln_last_error());
    int64_t dims[4] = {2, 3, 32, 32};
    ck_assert_msg(kiln_codegen_fix_shape(g, "image", 4, dims) == KILN_OK, "%s", kiln_last_error());
    kiln_bundle *b;
    char *src = build(g, &b);
    assert_has(src, "kiln::conv_f32<"); /* fp32 convs (kernels/conv_f32.cuh) */
    assert_has(src, "kiln::pool2d<kiln::pool_max, float>");
    assert_has(src, "kiln::global_pool<false, float>");
    assert_has(src, "kiln::softmax_rows<false, float>");
    assert_has(src, "kiln::gemv_rows<4, 2,"); /* the classifier: M = 2, constant transB weights */
    assert_has(src, "v += kiln::to_f32(res[o]);"); /* the residual block */
    /* the graph input and output are bindings, not arena slots */
    bool in = false, out = false;
    for (int l = 0; l < b->n_launches; l++)
        for (uint32_t a = 0; a < b->launches[l].n_args; a++) {
            in |= b->launches[l].args[a].kind == KILN_ARG_INPUT;
            out |= b->launches[l].args[a].kind == KILN_ARG_OUTPUT;
        }
    ck_assert(in && out);
    ck_assert_int_eq(b->n_io, 2);
    ck_assert_uint_ge(b->arena_bytes, (uint64_t)g->arena_bytes); /* + node scratch (fp32 conv split-K partials) */
    free(src);
    kiln_bundle_free(b);
    kiln_graph_free(g);
}
END_TEST

/* Convolutions: stride 2 with odd sizes, groups + dilation, depthwise + Clip (ReLU6),
 * residual + post-activation, every activation of fuse-epilogue, no bias. */
START_TEST(conv_templates) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {2, 6, 11, 13};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    int64_t w1[4] = {10, 6, 3, 3}, b1 = 10;
    gb_const(g, "w1", KILN_F32, 4, w1, -0.5, 0.5);
    gb_const(g, "b1", KILN_F32, 1, &b1, -0.5, 0.5);
    kiln_node *c1 = gb_node(g, KILN_OP_Conv, "c1", "x,w1,b1", "y1"); /* 10 x 6 x 7 */
    set_ints(c1, "strides", 2, 2, 2, 0, 0);
    set_ints(c1, "pads", 4, 1, 1, 1, 1);
    gb_node(g, KILN_OP_Relu, "r1", "y1", "a1");
    int64_t w2[4] = {10, 5, 3, 3};
    gb_const(g, "w2", KILN_F32, 4, w2, -0.5, 0.5);
    kiln_node *c2 = gb_node(g, KILN_OP_Conv, "c2", "a1,w2", "y2"); /* groups 2, dilation 2, same size */
    kiln_node_set_int(c2, "group", 2);
    set_ints(c2, "dilations", 2, 2, 2, 0, 0);
    set_ints(c2, "pads", 4, 2, 2, 2, 2);
    int64_t wd[4] = {10, 1, 3, 3}, bd = 10;
    gb_const(g, "wd", KILN_F32, 4, wd, -0.5, 0.5);
    gb_const(g, "bd", KILN_F32, 1, &bd, -0.5, 0.5);
    kiln_node *c3 = gb_node(g, KILN_OP_Conv, "dw", "y2,wd,bd", "y3"); /* depthwise */
    kiln_node_set_int(c3, "group", 10);
    set_ints(c3, "pads", 4, 1, 1, 1, 1);
    float lo = 0.0f, hi = 6.0f;
    kiln_tensor *tl = kiln_tensor_new(KILN_F32, 0, NULL), *th = kiln_tensor_new(KILN_F32, 0, NULL);
    memcpy(tl->data, &lo, 4);
    memcpy(th->data, &hi, 4);
    int vl = gb_value(g, "lo"), vh = gb_value(g, "hi");
    g->values[vl].data = tl;
    g->values[vh].data = th;
    kiln_value_set(&g->values[vl], KILN_F32, 0, NULL);
    kiln_value_set(&g->values[vh], KILN_F32, 0, NULL);
    g->values[vl].flags |= KILN_VALUE_INITIALIZER;
    g->values[vh].flags |= KILN_VALUE_INITIALIZER;
    gb_node(g, KILN_OP_Clip, "relu6", "y3,lo,hi", "a3");
    int64_t w4[4] = {10, 10, 1, 1};
    gb_const(g, "w4", KILN_F32, 4, w4, -0.5, 0.5);
    gb_node(g, KILN_OP_Conv, "pw", "a3,w4", "y4"); /* 1x1, residual + relu after */
    gb_node(g, KILN_OP_Add, "res", "y4,a1", "s4");
    gb_node(g, KILN_OP_Relu, "r4", "s4", "a4");
    /* one more conv per activation kind */
    static const kiln_op acts[] = {KILN_OP_Sigmoid, KILN_OP_Tanh, KILN_OP_LeakyRelu, KILN_OP_HardSigmoid,
                                   KILN_OP_HardSwish, KILN_OP_Gelu, KILN_OP_Elu};
    char prev[32] = "a4";
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        char w[16], y[16], a[16], cn[16], an[16];
        snprintf(w, sizeof w, "wa%zu", i);
        snprintf(y, sizeof y, "ya%zu", i);
        snprintf(a, sizeof a, "aa%zu", i);
        snprintf(cn, sizeof cn, "ca%zu", i);
        snprintf(an, sizeof an, "act%zu", i);
        gb_const(g, w, KILN_F32, 4, w4, -0.5, 0.5);
        char ins[64];
        snprintf(ins, sizeof ins, "%s,%s", prev, w);
        gb_node(g, KILN_OP_Conv, cn, ins, y);
        gb_node(g, acts[i], an, y, a);
        snprintf(prev, sizeof prev, "%s", a);
    }
    gb_node(g, KILN_OP_Flatten, "out_flat", prev, "out");
    gb_output(g, "out");
    gb_finish(g);
    char *src = build(g, NULL);
    assert_has(src, "kiln::conv_f32<");    /* fp32, constant weights: kernels/conv_f32.cuh */
    assert_has(src, "kiln::conv_dw_nchw<"); /* the depthwise conv at fp32 (cg_conv_dw.c) */
    assert_has(src, "fminf(fmaxf(v, 0.0f), 6.0f)");
    assert_has(src, "erff(");
    assert_has(src, "kiln::copy_rows<"); /* a view that is a graph output is copied */
    free(src);
    kiln_graph_free(g);
}
END_TEST

/* Pools, Concat, Softmax, Gemm (transB) + epilogue, batched broadcast MatMul. */
START_TEST(pool_concat_softmax_gemm_templates) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {2, 3, 9, 10};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    kiln_node *mp = gb_node(g, KILN_OP_MaxPool, "mp", "x", "m");
    set_ints(mp, "kernel_shape", 2, 3, 3, 0, 0);
    set_ints(mp, "strides", 2, 2, 2, 0, 0);
    set_ints(mp, "pads", 4, 1, 1, 1, 1);
    kiln_node_set_int(mp, "ceil_mode", 1);
    kiln_node *ap = gb_node(g, KILN_OP_AveragePool, "ap", "x", "p");
    set_ints(ap, "kernel_shape", 2, 3, 3, 0, 0);
    set_ints(ap, "strides", 2, 2, 2, 0, 0);
    set_ints(ap, "pads", 4, 1, 1, 1, 1);
    kiln_node_set_int(ap, "ceil_mode", 1);
    kiln_node_set_int(ap, "count_include_pad", 1);
    kiln_node *ap2 = gb_node(g, KILN_OP_AveragePool, "ap2", "x", "p2");
    set_ints(ap2, "kernel_shape", 2, 3, 3, 0, 0);
    set_ints(ap2, "strides", 2, 2, 2, 0, 0);
    set_ints(ap2, "pads", 4, 1, 1, 1, 1);
    kiln_node_set_int(ap2, "ceil_mode", 1);
    kiln_node *cc = gb_node(g, KILN_OP_Concat, "cat", "m,p,p2", "c"); /* [2,9,5,6] */
    kiln_node_set_int(cc, "axis", 1);
    gb_node(g, KILN_OP_GlobalAveragePool, "gap", "c", "gp");
    gb_node(g, KILN_OP_GlobalMaxPool, "gmp", "c", "gm");
    gb_node(g, KILN_OP_Flatten, "flat", "gp", "f"); /* [2,9] */
    int64_t wd[2] = {7, 9}, bdim = 7;
    gb_const(g, "w", KILN_F32, 2, wd, -1, 1);
    gb_const(g, "b", KILN_F32, 1, &bdim, -1, 1);
    kiln_node *gm = gb_node(g, KILN_OP_Gemm, "fc", "f,w,b", "z");
    kiln_node_set_int(gm, "transB", 1);
    kiln_node_set_float(gm, "alpha", 0.5f);
    gb_node(g, KILN_OP_Relu, "fc_relu", "z", "zr");
    kiln_node *sm = gb_node(g, KILN_OP_Softmax, "sm", "zr", "prob");
    kiln_node_set_int(sm, "axis", 1);
    gb_output(g, "prob");
    /* batched MatMul with a broadcast operand: [3,1,4,5] x [2,5,6] -> [3,2,4,6] */
    int64_t ad[4] = {3, 1, 4, 5}, bd2[3] = {2, 5, 6};
    gb_input(g, "a", KILN_F32, 4, ad, NULL);
    gb_const(g, "bm", KILN_F32, 3, bd2, -1, 1);
    gb_node(g, KILN_OP_MatMul, "mm", "a,bm", "mmo");
    kiln_node *ls = gb_node(g, KILN_OP_LogSoftmax, "ls", "mmo", "lsm");
    kiln_node_set_int(ls, "axis", 2);
    gb_output(g, "lsm");
    gb_output(g, "gm");
    gb_finish(g);
    char *src = build(g, NULL);
    assert_has(src, "kiln::pool2d<kiln::pool_max, float>");
    assert_has(src, "kiln::pool2d<kiln::pool_avg_include_pad, float>");
    assert_has(src, "kiln::pool2d<kiln::pool_avg, float>");
    assert_has(src, "kiln::global_pool<true, float>");
    assert_has(src, "kiln::copy_rows<unsigned int>");
    assert_has(src, "kiln::softmax_rows<true, float>");
    assert_has(src, "v *= 0.5f;");
    free(src);
    kiln_graph_free(g);
}
END_TEST

/* A fused elementwise DAG with broadcasting and two outputs, and single elementwise ops. */
START_TEST(elementwise_templates) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[3] = {3, 5, 7}, bd[2] = {5, 1}, cd[1] = {7};
    gb_input(g, "x", KILN_F32, 3, xd, NULL);
    gb_input(g, "y", KILN_F32, 2, bd, NULL);
    gb_const(g, "c", KILN_F32, 1, cd, 0.5, 1.5);
    gb_node(g, KILN_OP_Mul, "mul", "x,y", "t0");
    gb_node(g, KILN_OP_Add, "add", "t0,c", "t1");
    gb_node(g, KILN_OP_Sigmoid, "sig", "t1", "t2");
    gb_node(g, KILN_OP_Sub, "sub", "t2,x", "t3");
    gb_node(g, KILN_OP_Tanh, "tanh", "t1", "t4");
    gb_output(g, "t3");
    gb_output(g, "t4");
    gb_node(g, KILN_OP_Div, "div", "y,c", "q"); /* [5,7] */
    gb_node(g, KILN_OP_Abs, "abs", "q", "qa");
    gb_node(g, KILN_OP_Sqrt, "sqrt", "qa", "qs");
    gb_node(g, KILN_OP_Max, "max", "qs,c,y", "qm");
    gb_output(g, "qm");
    gb_finish(g);
    char *src = build(g, NULL);
    assert_has(src, "kiln::elementwise<");
    assert_has(src, "1.0f / (1.0f + expf(-");
    assert_has(src, "tanhf(");
    assert_has(src, "kiln::max_nan(kiln::max_nan(");
    free(src);
    kiln_graph_free(g);
}
END_TEST

START_TEST(unsupported_nodes_are_all_listed) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[2] = {4, 6};
    gb_input(g, "x", KILN_F32, 2, xd, NULL);
    int64_t ax = 1;
    gb_const_i64(g, "axis", 1, &ax);
    gb_node(g, KILN_OP_CumSum, "my_cumsum", "x,axis", "t");
    gb_node(g, KILN_OP_Relu, "relu", "t", "r");
    int64_t lens[6] = {1, 2, 3, 4, 4, 1};
    gb_const_i64(g, "lens", 6, lens);
    kiln_node *rs = gb_node(g, KILN_OP_ReverseSequence, "my_revseq", "r,lens", "vals");
    kiln_node_set_int(rs, "time_axis", 0);
    kiln_node_set_int(rs, "batch_axis", 1);
    gb_output(g, "vals");
    gb_finish(g);
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    ck_assert_int_eq(kiln_pipeline_run(g, &po, NULL, 0, NULL), KILN_OK);
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.compile = false;
    kiln_bundle *b = kiln_bundle_new();
    ck_assert_int_eq(kiln_codegen_build(g, &o, b, NULL), KILN_ERR_UNSUPPORTED);
    const char *msg = kiln_last_error();
    ck_assert_msg(strstr(msg, "2 nodes cannot run on the GPU"), "%s", msg);
    ck_assert_msg(strstr(msg, "reduction[CumSum+Relu] (node 'reduction_my_cumsum')"), "%s", msg);
    ck_assert_msg(strstr(msg, "ReverseSequence (node 'my_revseq')"), "%s", msg);
    kiln_bundle_free(b);
    kiln_graph_free(g);
}
END_TEST

/* tf32 and fp16: Conv (M >= 64 and a depthwise on conv_dw.cuh), Gemm (32 <= M < 64) and a
 * batched MatMul (M < 32) on the tensor-core template (large and small grids), NVRTC-compiled for sm_80 and sm_90;
 * fp16 stores the conv/gemm weights as fp16. (Numerics: emu_codegen and gpu_codegen.) */
static kiln_graph *mma_graph(void) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {2, 16, 48, 48}, wd[4] = {70, 16, 3, 3}, bd = 70, dd[4] = {70, 1, 3, 3};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_const(g, "w", KILN_F32, 4, wd, -0.5, 0.5);
    gb_const(g, "b", KILN_F32, 1, &bd, -0.5, 0.5);
    gb_const(g, "wd", KILN_F32, 4, dd, -0.5, 0.5);
    kiln_node *c1 = gb_node(g, KILN_OP_Conv, "c1", "x,w,b", "y");
    set_ints(c1, "pads", 4, 1, 1, 1, 1);
    gb_node(g, KILN_OP_Relu, "r1", "y", "a");
    kiln_node *dw = gb_node(g, KILN_OP_Conv, "dw", "a,wd", "d");
    kiln_node_set_int(dw, "group", 70);
    gb_node(g, KILN_OP_GlobalAveragePool, "gap", "d", "gp");
    gb_node(g, KILN_OP_Flatten, "flat", "gp", "f"); /* [2,70] */
    int64_t fd[2] = {33, 70}, fb[2] = {33, 1};
    gb_const(g, "fw", KILN_F32, 2, fd, -0.5, 0.5);
    gb_const(g, "fb", KILN_F32, 2, fb, -0.5, 0.5);
    kiln_node *fc = gb_node(g, KILN_OP_Gemm, "fc", "fw,f,fb", "z"); /* [33,70] x [2,70]^T: M = 33 */
    kiln_node_set_int(fc, "transB", 1);
    (void)fc;
    gb_output(g, "z");
    int64_t ad[4] = {3, 1, 4, 40}, md[3] = {2, 40, 6};
    gb_input(g, "ma", KILN_F32, 4, ad, NULL);
    gb_const(g, "bm", KILN_F32, 3, md, -1, 1);
    gb_node(g, KILN_OP_MatMul, "mm", "ma,bm", "mmo");
    gb_output(g, "mmo");
    gb_finish(g);
    return g;
}

START_TEST(tensor_core_precisions) {
    for (int p = 0; p < 2; p++) {
        kiln_graph *g = mma_graph();
        kiln_bundle *b;
        char *src = build_prec(g, p ? KILN_PREC_FP16 : KILN_PREC_TF32, &b);
        assert_has(src, p ? "kiln::mma_f16" : "kiln::mma_tf32");
        assert_has(src, "kiln::conv2d_igemm_mma<64, 64, 32, 32, 32,"); /* 2 x 72 blocks */
        assert_has(src, "kiln::mma_gemm<32, 32, 32, 16, 16,");        /* Gemm, M = 33, N = 2: 2 blocks */
        assert_has(src, "kiln::mma_gemm<16, 32, 32, 16, 8,");         /* MatMul, M = 4 */
        assert_has(src, "kiln::conv_dw_nchw<"); /* depthwise: the compile-time-shape kernel (conv_dw.cuh) */
        ck_assert_ptr_null(strstr(src, "kiln::tiled_gemm<"));
        int f16 = 0;
        for (int i = 0; i < b->n_weights; i++) f16 += b->weights[i].dtype == KILN_F16;
        if (p) {
            assert_has(src, "const __half *w");
            ck_assert_int_eq(f16, 3); /* conv w, Gemm A, MatMul B; the depthwise and the biases stay fp32 */
        } else {
            ck_assert_int_eq(f16, 0);
        }
        free(src);
        kiln_bundle_free(b);
        kiln_graph_free(g);
    }
}
END_TEST

/* NHWC at tf32/fp16 (select-layout on, as kiln build runs it): the NHWC conv/pool/elementwise
 * kernels and the border conversions are in the source and NVRTC-compile for sm_80/sm_90;
 * fp32 keeps the NCHW source. */
static char *build_layout(kiln_graph *g, kiln_precision prec) {
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    po.ctx.precision = prec;
    ck_assert_msg(kiln_pipeline_run(g, &po, NULL, 0, NULL) == KILN_OK, "passes: %s", kiln_last_error());
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = prec;
    o.archs = ARCHS;
    o.n_archs = 2;
#ifndef KILN_HAVE_CUDA
    o.compile = false;
#endif
    kiln_bundle *b = kiln_bundle_new();
    char *src = NULL;
    kiln_status st = kiln_codegen_build(g, &o, b, &src);
    ck_assert_msg(st == KILN_OK, "codegen: %s\n%s", kiln_last_error(), src ? src : "");
#ifdef KILN_HAVE_CUDA
    ck_assert_int_eq(b->n_images, 3);
#endif
    kiln_bundle_free(b);
    if (getenv("CHECK_CODEGEN_DUMP")) fputs(src, stderr);
    return src;
}

START_TEST(nhwc_kernels) {
    kiln_precision precs[3] = {KILN_PREC_TF32, KILN_PREC_FP16, KILN_PREC_FP32};
    for (int p = 0; p < 3; p++) {
        kiln_graph *g = kiln_graph_new();
        int64_t xd[4] = {2, 3, 32, 32}, w0[4] = {32, 3, 3, 3}, w1[4] = {32, 32, 3, 3}, wd[4] = {32, 1, 3, 3};
        gb_input(g, "x", KILN_F32, 4, xd, NULL);
        gb_const(g, "w0", KILN_F32, 4, w0, -0.5, 0.5);
        gb_const(g, "w1", KILN_F32, 4, w1, -0.2, 0.2);
        gb_const(g, "wd", KILN_F32, 4, wd, -0.5, 0.5);
        set_ints(gb_node(g, KILN_OP_Conv, "stem", "x,w0", "s"), "pads", 4, 1, 1, 1, 1);
        gb_node(g, KILN_OP_Relu, "r", "s", "r0");
        kiln_node *mp = gb_node(g, KILN_OP_MaxPool, "mp", "r0", "m");
        set_ints(mp, "kernel_shape", 2, 2, 2, 0, 0);
        set_ints(mp, "strides", 2, 2, 2, 0, 0);
        set_ints(gb_node(g, KILN_OP_Conv, "c1", "m,w1", "c"), "pads", 4, 1, 1, 1, 1);
        kiln_node *dw = gb_node(g, KILN_OP_Conv, "dw", "c,wd", "d");
        set_ints(dw, "pads", 4, 1, 1, 1, 1);
        kiln_node_set_int(dw, "group", 32);
        gb_node(g, KILN_OP_Add, "add", "d,m", "e");
        gb_node(g, KILN_OP_GlobalAveragePool, "gap", "e", "gp");
        gb_output(g, "gp");
        gb_output(g, "e");
        gb_output(g, "d");
        gb_finish(g);
        char *src = build_layout(g, precs[p]);
        if (precs[p] == KILN_PREC_FP32) {
            ck_assert_ptr_null(strstr(src, "NHWC"));
            ck_assert_ptr_null(strstr(src, "_to_nhwc"));
        } else {
            const char *T = precs[p] == KILN_PREC_FP16 ? "__half" : "float";
            char want[96];
            /* d: a graph output the depthwise conv produces in NHWC (fp16: its Cast to fp32 converts) */
            if (precs[p] == KILN_PREC_TF32) assert_has(src, "_to_nchw");
            if (precs[p] == KILN_PREC_FP16) { /* C = 32: 8 channels per thread; the C = 3 stem padded to 4
                                                 * (two-tap kernel) or as space-to-depth (stride 2); x cast
                                                 * to fp16 NHWC and d back to fp32 NCHW by the tiled
                                                 * transpose */
                assert_has(src, "kiln::max_pool_nhwc_h8_ct<");
                ck_assert_msg(strstr(src, "kiln::conv_nhwc_pad_c4<3>") || strstr(src, "kiln::conv_nhwc_s2d<3,"),
                              "the C = 3 stem: neither the two-tap pad nor the space-to-depth copy");
                assert_has(src, "kiln::transpose_few_rows<float, __half, 3, 1024>"); /* the RGB input */
                assert_has(src, "kiln::transpose_cvt<__half, float, 256, 32, 128, 32, 4, 8>");
            } else {
                snprintf(want, sizeof want, "kiln::pool2d<kiln::pool_max, %s, true>", T);
                assert_has(src, want);
            }
            snprintf(want, sizeof want, "kiln::global_pool_nhwc<false, %s>", T);
            assert_has(src, want);
            /* the depthwise conv: conv_dw.cuh, 16 bytes of channels a thread */
            assert_has(src, "w[32,1,3,3], NHWC");
            assert_has(src, precs[p] == KILN_PREC_FP16 ? "_conv_dw_shape, 8, " : "_conv_dw_shape, 4, ");
            /* tf32: the generic NHWC implicit GEMM (pixels as M: coalesced NHWC loads); fp16: the
             * fast cp.async/ldmatrix kernel (kernels/conv_nhwc.cuh) */
            assert_has(src, precs[p] == KILN_PREC_TF32 ? "kiln::conv2d_igemm_mma_nhwc_t<" : "kiln::conv_nhwc_f16<");
        }
        free(src);
        kiln_graph_free(g);
    }
}
END_TEST

static const char *want_tc128(void *ctx, const char *signature) {
    (void)ctx, (void)signature;
    return "tc128x128x64s6g2k1";
}

/* A TMA tile's 1x1, stride-1 source: loaded through a tiled map of its rows [N*H*W][C] with
 * KILN_WGMMA_ROWS=1 (its shape struct says ROWS, kernels/conv_wgmma.cuh tma_conv_a), else through
 * an im2col map. (GPU: gpu_conv_wgmma --gpu with the switch, outputs bit-identical.) */
START_TEST(tma_rows_for_1x1_sources) {
    for (int rows = 0; rows < 2; rows++) {
        if (rows) setenv("KILN_WGMMA_ROWS", "1", 1);
        else unsetenv("KILN_WGMMA_ROWS");
        kiln_graph *g = kiln_graph_new();
        int64_t xd[4] = {2, 64, 16, 16}, w0[4] = {64, 64, 3, 3}, w1[4] = {128, 64, 1, 1};
        gb_input(g, "x", KILN_F32, 4, xd, NULL);
        gb_const(g, "w0", KILN_F32, 4, w0, -0.2, 0.2);
        gb_const(g, "w1", KILN_F32, 4, w1, -0.2, 0.2);
        set_ints(gb_node(g, KILN_OP_Conv, "c0", "x,w0", "a"), "pads", 4, 1, 1, 1, 1);
        gb_node(g, KILN_OP_Conv, "c1", "a,w1", "y");
        gb_output(g, "y");
        gb_finish(g);
        kiln_pipeline_opts po;
        kiln_pipeline_opts_init(&po);
        po.ctx.precision = KILN_PREC_FP16;
        ck_assert_msg(kiln_pipeline_run(g, &po, NULL, 0, NULL) == KILN_OK, "passes: %s", kiln_last_error());
        static const char *const a90[] = {"sm_90a"};
        kiln_codegen_opts o;
        kiln_codegen_opts_init(&o);
        o.precision = KILN_PREC_FP16, o.archs = a90, o.n_archs = 1, o.compile = false, o.tune_lookup = want_tc128;
        kiln_bundle *b = kiln_bundle_new();
        char *src = NULL;
        ck_assert_msg(kiln_codegen_build(g, &o, b, &src) == KILN_OK, "codegen: %s", kiln_last_error());
        assert_has(src, "tile tc128x128x64s6g2k1");
        ck_assert_int_eq(strstr(src, "static constexpr bool ROWS = true;") != NULL, rows);
        int rows_maps = 0, im2col_maps = 0;
        for (int l = 0; l < b->n_launches; l++)
            for (uint32_t i = 0; i < b->launches[l].n_args; i++) {
                const kiln_bundle_arg *a = &b->launches[l].args[i];
                if (a->kind != KILN_ARG_TMAP) continue;
                kiln_tmap_desc d;
                kiln_tmap_desc_get(b->const_pool + a->value, &d);
                if (d.mode == KILN_TMAP_IM2COL && d.dims[0] == 64 && d.dims[1] == 16 && d.dims[3] == 2) im2col_maps++;
                if (d.mode == KILN_TMAP_TILED && d.rank == 2 && d.dims[0] == 64 && d.dims[1] == 512 && d.box[1] == 128)
                    rows_maps++;
            }
        /* c1's x map (its x2 map is the same argument's copy): rows or im2col, never both */
        ck_assert_msg(rows ? rows_maps >= 1 && im2col_maps == 0 : rows_maps == 0 && im2col_maps >= 1,
                      "rows %d: %d row maps, %d im2col maps", rows, rows_maps, im2col_maps);
        free(src);
        kiln_bundle_free(b);
        kiln_graph_free(g);
    }
    unsetenv("KILN_WGMMA_ROWS");
}
END_TEST

/* Small-M Gemm (kernels/gemv.cuh): a classifier (M = 3, constant transB weights, K = 2048: the
 * vector path) takes gemv_rows at every precision (fp16: its weights stored as fp16), a
 * non-constant B keeps the tile GEMMs; NVRTC-compiled for sm_80 and sm_90. (Numerics: the
 * gemv_small_m emu_codegen case.) */
START_TEST(gemv_small_m) {
    kiln_precision precs[3] = {KILN_PREC_FP32, KILN_PREC_TF32, KILN_PREC_FP16};
    for (int p = 0; p < 3; p++) {
        kiln_graph *g = kiln_graph_new();
        int64_t xd[2] = {3, 2048}, wd[2] = {1000, 2048}, bd = 1000, yd[2] = {5, 2048};
        gb_input(g, "x", KILN_F32, 2, xd, NULL);
        gb_input(g, "y", KILN_F32, 2, yd, NULL);
        gb_const(g, "w", KILN_F32, 2, wd, -0.05, 0.05);
        gb_const(g, "b", KILN_F32, 1, &bd, -0.5, 0.5);
        kiln_node_set_int(gb_node(g, KILN_OP_Gemm, "fc", "x,w,b", "z"), "transB", 1);
        gb_node(g, KILN_OP_Relu, "fc_relu", "z", "zr");
        gb_output(g, "zr");
        kiln_node_set_int(gb_node(g, KILN_OP_Gemm, "xy", "x,y", "o"), "transB", 1); /* B not constant */
        gb_output(g, "o");
        gb_finish(g);
        kiln_bundle *b;
        char *src = build_prec(g, precs[p], &b);
        const char *T = precs[p] == KILN_PREC_FP16 ? "__half" : "float";
        char want[96];
        assert_has(src, "kiln::gemv_rows<4, 4, k"); /* 4 warps, MB = M = 3 rounded up */
        snprintf(want, sizeof want, "_gemv_epilogue, float, %s, float>", T); /* fp32 activations (no convert-precision here), B */
        assert_has(src, want);
        assert_has(src, "v = fmaxf(v, 0.0f);");
        assert_has(src, precs[p] == KILN_PREC_FP32 ? "kiln::tiled_gemm<" : "kiln::mma_gemm<");
        int f16 = 0;
        for (int i = 0; i < b->n_weights; i++) f16 += b->weights[i].dtype == KILN_F16;
        ck_assert_int_eq(f16, precs[p] == KILN_PREC_FP16 ? 1 : 0); /* w; the bias stays fp32 */
        free(src);
        kiln_bundle_free(b);
        kiln_graph_free(g);
    }
}
END_TEST

/* Typed kernels: what codegen cannot run on a dtype is refused with the op and the dtype
 * (conformance then reports UNSUPPORTED, not FAIL); typed elementwise groups NVRTC-compile. */
START_TEST(typed_kernels_and_refusals) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {1, 2, 5, 5};
    gb_input(g, "x", KILN_F64, 4, xd, NULL);
    gb_node(g, KILN_OP_Exp, "my_exp", "x", "e");
    kiln_node *mp = gb_node(g, KILN_OP_MaxPool, "my_pool", "x", "p");
    set_ints(mp, "kernel_shape", 2, 2, 2, 0, 0);
    gb_output(g, "e");
    gb_output(g, "p");
    gb_finish(g);
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.compile = false;
    kiln_bundle *b = kiln_bundle_new();
    ck_assert_int_eq(kiln_codegen_build(g, &o, b, NULL), KILN_ERR_UNSUPPORTED);
    const char *msg = kiln_last_error();
    ck_assert_msg(strstr(msg, "Exp (node 'my_exp'): Exp on f64"), "%s", msg);
    ck_assert_msg(strstr(msg, "MaxPool (node 'my_pool'): f64 pooling"), "%s", msg);
    kiln_bundle_free(b);
    kiln_graph_free(g);

    /* int64 / int32 / bool / f16 elementwise, Where and Cast compile for sm_80 and sm_90 */
    g = kiln_graph_new();
    int64_t ad[2] = {3, 4}, bd[1] = {4};
    gb_input(g, "a", KILN_I64, 2, ad, NULL);
    gb_input(g, "b", KILN_I64, 1, bd, NULL);
    gb_input(g, "h", KILN_F16, 2, ad, NULL);
    gb_node(g, KILN_OP_Div, "div", "a,b", "q");
    gb_node(g, KILN_OP_Less, "lt", "q,b", "c");
    kiln_node *cast = gb_node(g, KILN_OP_Cast, "cast", "a", "af");
    kiln_node_set_int(cast, "to", KILN_F16);
    gb_node(g, KILN_OP_Where, "where", "c,h,af", "w");
    kiln_node *c32 = gb_node(g, KILN_OP_Cast, "c32", "w", "wi");
    kiln_node_set_int(c32, "to", KILN_I32);
    gb_output(g, "wi");
    gb_output(g, "q");
    gb_finish(g);
    char *src = build(g, &b);
    assert_has(src, "kiln::idiv(");
    assert_has(src, "kiln::load_f32<__half>(");
    assert_has(src, "kiln::sat_i((double)(");
    free(src);
    kiln_bundle_free(b);
    kiln_graph_free(g);
}
END_TEST

START_TEST(precision_and_dynamic_dims_errors) {
    kiln_graph *g = NULL;
    ck_assert_int_eq(kiln_model_load(KILN_SOURCE_DIR "/examples/tiny_cnn.onnx", &g), KILN_OK);
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.compile = false;
    kiln_bundle *b = kiln_bundle_new();
    o.precision = KILN_PREC_INT8;
    ck_assert_int_eq(kiln_codegen_build(g, &o, b, NULL), KILN_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(kiln_last_error(), "not implemented yet"), "%s", kiln_last_error());
    o.precision = KILN_PREC_FP32;
    ck_assert_int_eq(kiln_codegen_build(g, &o, b, NULL), KILN_ERR_SHAPE);
    ck_assert_msg(strstr(kiln_last_error(), "--shape image=DIMS"), "%s", kiln_last_error());
    int64_t bad[3] = {1, 3, 32};
    ck_assert_int_eq(kiln_codegen_fix_shape(g, "image", 3, bad), KILN_ERR_SHAPE);
    int64_t other[4] = {1, 4, 32, 32};
    ck_assert_int_eq(kiln_codegen_fix_shape(g, "image", 4, other), KILN_ERR_SHAPE);
    ck_assert_int_eq(kiln_codegen_fix_shape(g, "nope", 4, other), KILN_ERR_INVALID_ARG);
    int rank;
    int64_t dims[KILN_MAX_RANK];
    ck_assert_int_eq(kiln_codegen_parse_dims("1x3x224x224", &rank, dims), KILN_OK);
    ck_assert_int_eq(rank, 4);
    ck_assert_int_eq(dims[3], 224);
    ck_assert_int_eq(kiln_codegen_parse_dims("2,5", &rank, dims), KILN_OK);
    ck_assert_int_eq(rank, 2);
    ck_assert_int_ne(kiln_codegen_parse_dims("1x", &rank, dims), KILN_OK);
    ck_assert_int_ne(kiln_codegen_parse_dims("a", &rank, dims), KILN_OK);
    kiln_bundle_free(b);
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("codegen");
    TCase *tc = tcase_create("codegen");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, tiny_cnn_example);
    tcase_add_test(tc, conv_templates);
    tcase_add_test(tc, pool_concat_softmax_gemm_templates);
    tcase_add_test(tc, elementwise_templates);
    tcase_add_test(tc, unsupported_nodes_are_all_listed);
    tcase_add_test(tc, tensor_core_precisions);
    tcase_add_test(tc, nhwc_kernels);
    tcase_add_test(tc, tma_rows_for_1x1_sources);
    tcase_add_test(tc, gemv_small_m);
    tcase_add_test(tc, typed_kernels_and_refusals);
    tcase_add_test(tc, precision_and_dynamic_dims_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
