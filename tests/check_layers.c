/* check_layers.c — the bundle's layer table (no GPU needed): codegen records one layer per node
 * with the values it finalizes and its dependencies (independent branches have no edge; arena
 * space reused by the memory plan makes a write-after-read edge), the stream plan puts
 * independent branches on separate streams, and the optional `layers` section survives a
 * write/read round trip and is refused when corrupted, truncated or inconsistent.
 *
 * Helper modes for tests/gpu_perlayer.sh (the GPU half):
 *   check_layers --write-branches OUT.onnx      three independent convs, a Concat, two outputs
 *   check_layers --write-war OUT.onnx           a chain and a later branch that reuses its space
 *   check_layers --corrupt-weight IN OUT LAYER  adds 1.0 to the first element of the first weight
 *                                               layer LAYER reads, rewrites with valid checksums,
 *                                               prints the layer's name
 *   check_layers --set-meta IN OUT KEY VALUE    rewrites one metadata entry
 *   check_layers --gpu M.kiln                   1 vs 4 streams: bit-identical outputs over 3 runs
 *                                               (graph capture + replays); run_layers agrees with
 *                                               run; SKIP (77) without a GPU */
#include "codegen/codegen.h"
#include "graph_builder.h"
#include "onnx_builder.h"
#include "runtime/runtime.h"

#include <stdio.h>

/* Optimizes g (-O2) and runs codegen without NVRTC; a stand-in PTX image makes it valid. */
static kiln_bundle *build(kiln_graph *g) {
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    ck_assert_msg(kiln_pipeline_run(g, &po, NULL, 0, NULL) == KILN_OK, "passes: %s", kiln_last_error());
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.compile = false;
    kiln_bundle *b = kiln_bundle_new();
    ck_assert_msg(kiln_codegen_build(g, &o, b, NULL) == KILN_OK, "codegen: %s", kiln_last_error());
    static const char ptx[] = "// stand-in";
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_PTX, "compute_90", 0, ptx, sizeof ptx), KILN_OK);
    ck_assert_msg(kiln_bundle_validate(b) == KILN_OK, "%s", kiln_last_error());
    return b;
}

/* The layer that finalizes value `name`, or -1. */
static int layer_of(const kiln_bundle *b, const char *name) {
    for (int l = 0; l < b->n_layers; l++)
        for (int v = 0; v < b->layers[l].n_values; v++)
            if (!strcmp(b->layers[l].values[v].name, name)) return l;
    return -1;
}

static bool has_dep(const kiln_bundle *b, int l, int k) {
    for (int d = 0; d < b->layers[l].n_deps; d++)
        if ((int)b->layers[l].deps[d] == k) return true;
    return false;
}

/* x -> conv a, x -> conv b (independent), concat(a, b) -> y. */
static kiln_graph *branches(void) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {1, 4, 8, 8}, wd[4] = {4, 4, 3, 3};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_const(g, "wa", KILN_F32, 4, wd, -0.5, 0.5);
    gb_const(g, "wb", KILN_F32, 4, wd, -0.5, 0.5);
    int64_t pads[4] = {1, 1, 1, 1};
    kiln_node_set_ints(gb_node(g, KILN_OP_Conv, "conv_a", "x,wa", "a"), "pads", pads, 4);
    kiln_node_set_ints(gb_node(g, KILN_OP_Conv, "conv_b", "x,wb", "b"), "pads", pads, 4);
    kiln_node_set_int(gb_node(g, KILN_OP_Concat, "cat", "a,b", "y"), "axis", 1);
    gb_output(g, "y");
    gb_finish(g);
    return g;
}

/* x -> conv a (-> relu) and conv b, 32 output channels so that fp32 split-K tiles are candidates;
 * chain: b reads a's output (else x); split_*: the conv is forced onto split-K (node scratch for
 * its partials); y = concat(a, b) (or b alone for a chain). */
static kiln_graph *scratch_graph(bool chain, bool split_a, bool split_b) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {1, 32, 8, 8}, wd[4] = {32, 32, 3, 3};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_const(g, "wa", KILN_F32, 4, wd, -0.5, 0.5);
    gb_const(g, "wb", KILN_F32, 4, wd, -0.5, 0.5);
    int64_t pads[4] = {1, 1, 1, 1};
    kiln_node *a = gb_node(g, KILN_OP_Conv, "conv_a", "x,wa", "a");
    kiln_node_set_ints(a, "pads", pads, 4);
    if (split_a) kiln_node_set_str(a, "kiln_tile", "f32_32x32x8_4x4_k4");
    kiln_node *bn = gb_node(g, KILN_OP_Conv, "conv_b", chain ? "a,wb" : "x,wb", "b");
    kiln_node_set_ints(bn, "pads", pads, 4);
    if (split_b) kiln_node_set_str(bn, "kiln_tile", "f32_32x32x8_4x4_k4");
    if (chain) {
        gb_node(g, KILN_OP_Relu, "relu", "b", "y");
    } else {
        kiln_node_set_int(gb_node(g, KILN_OP_Concat, "cat", "a,b", "y"), "axis", 1);
    }
    gb_output(g, "y");
    gb_finish(g);
    return g;
}

/* Node scratch (split-K partials) is reused by a later node only when the data flow already
 * orders the two: a chain's two split-K convs share one region (the arena grows by one), two
 * independent branches keep theirs apart (no dependency edge between them: separate streams). */
START_TEST(node_scratch_reused_along_the_data_flow) {
    uint64_t arena[2][3];
    for (int chain = 0; chain < 2; chain++)
        for (int k = 0; k < 3; k++) { /* no split-K, only a, both */
            kiln_graph *g = scratch_graph(chain, k >= 1, k == 2);
            kiln_bundle *b = build(g);
            arena[chain][k] = b->arena_bytes;
            if (k == 2) {
                int la = layer_of(b, "a"), lb = layer_of(b, chain ? "y" : "b"); /* (chain: conv b + relu) */
                ck_assert_msg(la >= 0 && lb >= 0, "layers a %d b %d", la, lb);
                if (chain) ck_assert(has_dep(b, lb, la)); /* (RAW) */
                else ck_assert(!has_dep(b, lb, la) && !has_dep(b, la, lb));
            }
            kiln_bundle_free(b);
            kiln_graph_free(g);
        }
    const uint64_t one = arena[0][1] - arena[0][0]; /* one conv's partials: 4 x 32 x 64 floats */
    ck_assert_uint_ge(one, 4 * 32 * 64 * 4);
    ck_assert_uint_eq(arena[0][2] - arena[0][0], 2 * one); /* branches: two regions */
    ck_assert_uint_eq(arena[1][2] - arena[1][0], arena[1][1] - arena[1][0]); /* chain: one, reused */
}
END_TEST

START_TEST(independent_branches_have_no_edge) {
    kiln_graph *g = branches();
    kiln_bundle *b = build(g);
    int la = layer_of(b, "a"), lb = layer_of(b, "b"), ly = layer_of(b, "y");
    ck_assert_msg(la >= 0 && lb >= 0 && ly >= 0, "layers a %d b %d y %d", la, lb, ly);
    ck_assert_int_eq(b->layers[la].n_deps, 0);
    ck_assert_int_eq(b->layers[lb].n_deps, 0);
    ck_assert(has_dep(b, ly, la) && has_dep(b, ly, lb));
    /* layers partition the launches; values say where they live */
    uint32_t next = 0;
    for (int l = 0; l < b->n_layers; l++) {
        ck_assert_uint_eq(b->layers[l].first_launch, next);
        ck_assert_uint_ge(b->layers[l].n_launches, 1);
        next += b->layers[l].n_launches;
    }
    ck_assert_uint_eq(next, (uint32_t)b->n_launches);
    ck_assert_int_eq(b->layers[ly].values[0].where, KILN_ARG_OUTPUT);
    ck_assert_int_eq(b->layers[la].values[0].where, KILN_ARG_ARENA);
    ck_assert_int_eq(b->layers[la].values[0].rank, 4);
    ck_assert_int_eq(b->layers[la].values[0].dims[1], 4);
    ck_assert_str_eq(b->layers[la].op, "Conv");

    /* one stream: everything in order on stream 0, no events */
    kiln_stream_plan p;
    ck_assert_int_eq(kiln_stream_plan_init(&p, b, 1), KILN_OK);
    ck_assert_int_eq(p.n_streams, 1);
    ck_assert_int_eq(p.wait_at[p.n_layers], 0);
    kiln_stream_plan_free(&p);
    /* several: the two branches on different streams, the join waits for the other one */
    ck_assert_int_eq(kiln_stream_plan_init(&p, b, 4), KILN_OK);
    ck_assert_int_eq(p.n_streams, 2);
    ck_assert_int_ne(p.stream[la], p.stream[lb]);
    int other = p.stream[ly] == p.stream[la] ? lb : la;
    ck_assert_int_eq(p.wait_at[ly + 1] - p.wait_at[ly], 1);
    ck_assert_int_eq(p.waits[p.wait_at[ly]], other);
    ck_assert(p.signal[other]);
    kiln_stream_plan_free(&p);
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    kiln_bundle_describe(b, "m.kiln", 0, f);
    fclose(f);
    ck_assert_msg(strstr(text, "streams: at most 2 used"), "%s", text);
    free(text);
    ck_assert_int_ne(kiln_stream_plan_init(&p, b, 0), KILN_OK);
    ck_assert_int_ne(kiln_stream_plan_init(&p, b, KILN_MAX_STREAMS + 1), KILN_OK);
    kiln_bundle_free(b);
    kiln_graph_free(g);
}
END_TEST

/* x -> A -> a -> B -> b; x -> D -> d (after B, into a's freed arena space); concat(b, d) -> y.
 * D reads only x, so its one edge is the write-after-read on B's input. */
START_TEST(reused_buffer_makes_war_edge) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {1, 4, 8, 8}, wd[4] = {4, 4, 3, 3};
    int64_t pads[4] = {1, 1, 1, 1};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_const(g, "wa", KILN_F32, 4, wd, -0.5, 0.5);
    gb_const(g, "wb", KILN_F32, 4, wd, -0.5, 0.5);
    gb_const(g, "wd", KILN_F32, 4, wd, -0.5, 0.5);
    kiln_node_set_ints(gb_node(g, KILN_OP_Conv, "conv_a", "x,wa", "a"), "pads", pads, 4);
    kiln_node_set_ints(gb_node(g, KILN_OP_Conv, "conv_b", "a,wb", "b"), "pads", pads, 4);
    kiln_node_set_ints(gb_node(g, KILN_OP_Conv, "conv_d", "x,wd", "d"), "pads", pads, 4);
    kiln_node_set_int(gb_node(g, KILN_OP_Concat, "cat", "b,d", "y"), "axis", 1);
    gb_output(g, "y");
    gb_finish(g);
    kiln_bundle *b = build(g);
    int la = layer_of(b, "a"), lb = layer_of(b, "b"), ld = layer_of(b, "d");
    ck_assert_msg(la >= 0 && lb >= 0 && ld >= 0, "layers a %d b %d d %d", la, lb, ld);
    const kiln_bundle_layer_value *va = &b->layers[la].values[0], *vd = &b->layers[ld].values[0];
    /* the precondition: the memory plan put d where a was */
    ck_assert_msg(ld > lb && va->where == KILN_ARG_ARENA && vd->where == KILN_ARG_ARENA && va->at == vd->at,
                  "expected d in a's arena space after B (a @%llu, d @%llu, layers a %d b %d d %d)",
                  (unsigned long long)va->at, (unsigned long long)vd->at, la, lb, ld);
    ck_assert_int_eq(b->layers[ld].n_deps, 1);
    ck_assert_int_eq((int)b->layers[ld].deps[0], lb); /* WAR (WAW on A is implied through B) */
    ck_assert_int_eq(b->layers[lb].n_deps, 1);
    ck_assert_int_eq((int)b->layers[lb].deps[0], la); /* RAW */
    kiln_bundle_free(b);
    kiln_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------ the section on disk -- */
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Index of the section table entry of `type`, or -1. */
static int find_section(const uint8_t *f, uint32_t type) {
    uint32_t n = rd32(f + 20);
    for (uint32_t i = 0; i < n; i++)
        if (rd32(f + 64 + 56 * i) == type) return (int)i;
    return -1;
}

/* Recompute section i's CRC, the table's and the header's (a forged but well-formed file). */
static void refix(uint8_t *f, int i) {
    uint8_t *e = f + 64 + 56 * i;
    wr32(e + 48, kiln_crc32c(0, f + rd64(e + 32), (size_t)rd64(e + 40)));
    wr32(f + 40, kiln_crc32c(0, f + 64, 56 * (size_t)rd32(f + 20)));
    wr32(f + 60, kiln_crc32c(0, f, 60));
}

START_TEST(layers_section_round_trip_and_refusals) {
    kiln_graph *g = branches();
    kiln_bundle *b = build(g);
    uint8_t *bytes;
    size_t len;
    ck_assert_msg(kiln_bundle_write_bytes(b, &bytes, &len) == KILN_OK, "%s", kiln_last_error());
    kiln_bundle *back = NULL;
    ck_assert_msg(kiln_bundle_read_bytes(bytes, len, "m.kiln", &back) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(back->n_layers, b->n_layers);
    for (int l = 0; l < b->n_layers; l++) {
        const kiln_bundle_layer *x = &b->layers[l], *y = &back->layers[l];
        ck_assert_str_eq(x->name, y->name);
        ck_assert_str_eq(x->op, y->op);
        ck_assert_uint_eq(x->first_launch, y->first_launch);
        ck_assert_uint_eq(x->n_launches, y->n_launches);
        ck_assert_int_eq(x->n_values, y->n_values);
        ck_assert_int_eq(x->n_deps, y->n_deps);
        for (int d = 0; d < x->n_deps; d++) ck_assert_uint_eq(x->deps[d], y->deps[d]);
        for (int v = 0; v < x->n_values; v++) {
            ck_assert_str_eq(x->values[v].name, y->values[v].name);
            ck_assert_int_eq(x->values[v].dtype, y->values[v].dtype);
            ck_assert_int_eq(x->values[v].rank, y->values[v].rank);
            ck_assert_int_eq(x->values[v].where, y->values[v].where);
            ck_assert_uint_eq(x->values[v].at, y->values[v].at);
            for (int d = 0; d < x->values[v].rank; d++) ck_assert_int_eq(x->values[v].dims[d], y->values[v].dims[d]);
        }
    }
    kiln_bundle_free(back);
    back = NULL;

    /* written with the optional flag, so that older readers skip it */
    int s = find_section(bytes, 8);
    ck_assert_int_ge(s, 0);
    ck_assert_uint_eq(rd32(bytes + 64 + 56 * s + 4), 1);
    uint64_t at = rd64(bytes + 64 + 56 * s + 32), size = rd64(bytes + 64 + 56 * s + 40);

    /* a flipped byte: the section's checksum names it */
    uint8_t *c = malloc(len);
    memcpy(c, bytes, len);
    c[at + size / 2] ^= 0x40;
    ck_assert_int_ne(kiln_bundle_read_bytes(c, len, "m.kiln", &back), KILN_OK);
    ck_assert_msg(strstr(kiln_last_error(), "'layers'") && strstr(kiln_last_error(), "checksum"), "%s",
                  kiln_last_error());
    /* cut inside the section */
    ck_assert_int_ne(kiln_bundle_read_bytes(bytes, (size_t)(at + size / 2), "m.kiln", &back), KILN_OK);
    ck_assert_msg(strstr(kiln_last_error(), "truncated"), "%s", kiln_last_error());
    /* well-formed but inconsistent: layer 0 does not start at launch 0 */
    memcpy(c, bytes, len);
    size_t f0 = (size_t)at + 4 + 4 + strlen(b->layers[0].name) + 4 + strlen(b->layers[0].op);
    wr32(c + f0, 1);
    refix(c, s);
    ck_assert_int_ne(kiln_bundle_read_bytes(c, len, "m.kiln", &back), KILN_OK);
    ck_assert_msg(strstr(kiln_last_error(), "'layers'") && strstr(kiln_last_error(), "layer 0"), "%s",
                  kiln_last_error());
    /* a record count larger than the section: refused before allocating */
    memcpy(c, bytes, len);
    wr32(c + at, 0x00ffffff);
    refix(c, s);
    ck_assert_int_ne(kiln_bundle_read_bytes(c, len, "m.kiln", &back), KILN_OK);
    ck_assert_msg(strstr(kiln_last_error(), "'layers'"), "%s", kiln_last_error());
    /* a dependency on a later layer */
    memcpy(c, bytes, len);
    int last = b->n_layers - 1;
    ck_assert_int_ge(b->layers[last].n_deps, 1);
    wr32(c + at + size - 4 * (size_t)b->layers[last].n_deps, (uint32_t)last);
    refix(c, s);
    ck_assert_int_ne(kiln_bundle_read_bytes(c, len, "m.kiln", &back), KILN_OK);
    ck_assert_msg(strstr(kiln_last_error(), "dependencies"), "%s", kiln_last_error());
    /* every byte of the section changed, checksums fixed: read or refused, never a crash (ASan) */
    int refused = 0;
    for (uint64_t k = 0; k < size; k++) {
        memcpy(c, bytes, len);
        c[at + k] ^= 0xa5;
        refix(c, s);
        if (kiln_bundle_read_bytes(c, len, "m.kiln", &back) == KILN_OK) kiln_bundle_free(back);
        else refused++;
        back = NULL;
    }
    ck_assert_int_gt(refused, (int)(size / 4));
    free(c);

    /* the builder refuses what the reader would */
    const uint32_t fwd = 7;
    ck_assert_int_ne(kiln_bundle_add_layer(b, "", "Conv", 0, 0, NULL, 0, NULL, 0), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_layer(b, "extra", "Conv", (uint32_t)b->n_launches, 0, NULL, 0, &fwd, 1), KILN_OK);
    ck_assert_int_ne(kiln_bundle_validate(b), KILN_OK);
    ck_assert_msg(strstr(kiln_last_error(), "dependencies"), "%s", kiln_last_error());

    /* a bundle without layers has no section 8 and still reads */
    kiln_bundle *plain = kiln_bundle_new();
    int64_t d1 = 4;
    ck_assert_int_eq(kiln_bundle_add_io(plain, "x", KILN_F32, 1, &d1, false), KILN_OK);
    uint8_t *pb;
    size_t plen;
    ck_assert_int_eq(kiln_bundle_write_bytes(plain, &pb, &plen), KILN_OK);
    ck_assert_int_eq(find_section(pb, 8), -1);
    ck_assert_int_eq(kiln_bundle_read_bytes(pb, plen, "plain", &back), KILN_OK);
    ck_assert_int_eq(back->n_layers, 0);
    kiln_bundle_free(back);
    free(pb);
    kiln_bundle_free(plain);

    /* inspect lists the layers */
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    kiln_bundle_describe(b, "m.kiln", len, f);
    fclose(f);
    ck_assert_msg(strstr(text, "layers (") && strstr(text, "conv_a (Conv)"), "%s", text);
    ck_assert_msg(!strstr(text, "streams:"), "no stream plan for an invalid table: %s", text);
    free(text);
    free(bytes);
    kiln_bundle_free(b);
    kiln_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ helper modes -- */
static int write_branches(const char *path) {
    ob_arena a = {0};
    ob_model *om = ob_model_new(&a, 17);
    int64_t xd[4] = {1, 8, 16, 16}, wd[4] = {8, 8, 3, 3}, od[4] = {1, 16, 14, 14}, sd[4] = {1, 8, 14, 14};
    ob_add_input(&a, om, ob_value(&a, "x", 1, 4, xd, NULL));
    ob_add_output(&a, om, ob_value(&a, "cat", 1, 4, od, NULL));
    ob_add_output(&a, om, ob_value(&a, "sig", 1, 4, sd, NULL));
    static float w[8 * 8 * 9];
    const char *names[3] = {"wa", "wb", "wc"};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 8 * 8 * 9; i++) w[i] = (float)gb_rand() * 0.3f;
        ob_add_init(&a, om, ob_tensor_f32(&a, names[k], 4, wd, w, 8 * 8 * 9));
    }
    const char *ca[2] = {"x", "wa"}, *cb[2] = {"x", "wb"}, *cc[2] = {"x", "wc"}, *ya[1] = {"ya"}, *ra[1] = {"a"},
               *yb[1] = {"b"}, *yc[1] = {"c"}, *cat_in[2] = {"a", "b"}, *cat[1] = {"cat"}, *sig[1] = {"sig"};
    ob_add_node(&a, om, ob_node(&a, "Conv", "conv_a", 2, ca, 1, ya));
    ob_add_node(&a, om, ob_node(&a, "Relu", "relu_a", 1, ya, 1, ra));
    ob_add_node(&a, om, ob_node(&a, "Conv", "conv_b", 2, cb, 1, yb));
    ob_add_node(&a, om, ob_node(&a, "Conv", "conv_c", 2, cc, 1, yc));
    Onnx__NodeProto *cn = ob_node(&a, "Concat", "cat", 2, cat_in, 1, cat);
    ob_node_attr_int(&a, cn, "axis", 1);
    ob_add_node(&a, om, cn);
    ob_add_node(&a, om, ob_node(&a, "Sigmoid", "sig", 1, yc, 1, sig));
    size_t len;
    uint8_t *bytes = ob_pack(&a, om, &len);
    FILE *f = fopen(path, "wb");
    int rc = !f || fwrite(bytes, 1, len, f) != len;
    if (f && fclose(f)) rc = 1;
    ob_free(&a);
    if (rc) fprintf(stderr, "cannot write %s\n", path);
    return rc;
}

/* x -> A -> a -> B -> b; x -> D -> d; concat(b, d): 1x1 convs, so that d can take a's arena
 * space after B (the WAR case of reused_buffer_makes_war_edge, as a model for the emulator). */
static int write_war(const char *path) {
    ob_arena a = {0};
    ob_model *om = ob_model_new(&a, 17);
    int64_t xd[4] = {1, 4, 8, 8}, wd[4] = {4, 4, 1, 1}, od[4] = {1, 8, 8, 8};
    ob_add_input(&a, om, ob_value(&a, "x", 1, 4, xd, NULL));
    ob_add_output(&a, om, ob_value(&a, "y", 1, 4, od, NULL));
    float w[16];
    const char *names[3] = {"wa", "wb", "wd"};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 16; i++) w[i] = (float)gb_rand();
        ob_add_init(&a, om, ob_tensor_f32(&a, names[k], 4, wd, w, 16));
    }
    const char *ca[2] = {"x", "wa"}, *cb[2] = {"a", "wb"}, *cd[2] = {"x", "wd"}, *ya[1] = {"a"}, *yb[1] = {"b"},
               *yd[1] = {"d"}, *cat_in[2] = {"b", "d"}, *y[1] = {"y"};
    ob_add_node(&a, om, ob_node(&a, "Conv", "conv_a", 2, ca, 1, ya));
    ob_add_node(&a, om, ob_node(&a, "Conv", "conv_b", 2, cb, 1, yb));
    ob_add_node(&a, om, ob_node(&a, "Conv", "conv_d", 2, cd, 1, yd));
    Onnx__NodeProto *cn = ob_node(&a, "Concat", "cat", 2, cat_in, 1, y);
    ob_node_attr_int(&a, cn, "axis", 1);
    ob_add_node(&a, om, cn);
    size_t len;
    uint8_t *bytes = ob_pack(&a, om, &len);
    FILE *f = fopen(path, "wb");
    int rc = !f || fwrite(bytes, 1, len, f) != len;
    if (f && fclose(f)) rc = 1;
    ob_free(&a);
    if (rc) fprintf(stderr, "cannot write %s\n", path);
    return rc;
}

static int corrupt_weight(const char *in, const char *out, int layer) {
    kiln_bundle *b = NULL;
    if (kiln_bundle_read(in, &b)) {
        fprintf(stderr, "%s\n", kiln_last_error());
        return 1;
    }
    int rc = 1;
    if (layer < 0 || layer >= b->n_layers) {
        fprintf(stderr, "no layer %d (the bundle has %d)\n", layer, b->n_layers);
        goto done;
    }
    const kiln_bundle_layer *ly = &b->layers[layer];
    for (uint32_t l = ly->first_launch; l < ly->first_launch + ly->n_launches && rc; l++)
        for (uint32_t k = 0; k < b->launches[l].n_args && rc; k++) {
            const kiln_bundle_arg *arg = &b->launches[l].args[k];
            if (arg->kind != KILN_ARG_WEIGHT || arg->value + 4 > b->weight_bytes) continue;
            float v;
            memcpy(&v, b->weight_data + arg->value, 4); /* the reader's copy of the file: writable */
            v += 1.0f;
            memcpy(b->weight_data + arg->value, &v, 4);
            rc = 0;
        }
    if (rc) {
        fprintf(stderr, "layer %d '%s' reads no weight\n", layer, ly->name);
        goto done;
    }
    if (kiln_bundle_write(b, out)) {
        fprintf(stderr, "%s\n", kiln_last_error());
        rc = 1;
        goto done;
    }
    printf("%s\n", ly->name);
done:
    kiln_bundle_free(b);
    return rc;
}

static int set_meta(const char *in, const char *out, const char *key, const char *value) {
    kiln_bundle *b = NULL;
    int rc = kiln_bundle_read(in, &b) || kiln_bundle_set_meta(b, key, value) || kiln_bundle_write(b, out);
    if (rc) fprintf(stderr, "%s\n", kiln_last_error());
    kiln_bundle_free(b);
    return rc;
}

typedef struct layer_seen {
    int calls, stop_at;
    const kiln_tensor *const *outs;
    const kiln_bundle *b;
    int mismatches;
} layer_seen;

static int on_layer(void *user, const kiln_layer_info *li) {
    layer_seen *ls = user;
    ls->calls++;
    if (li->index != ls->calls - 1) ls->mismatches++;
    for (int v = 0; v < li->n_values; v++) {
        const kiln_bundle_layer_value *e = &ls->b->layers[li->index].values[v];
        if (!li->values[v].host || !li->values[v].device_ptr) ls->mismatches++;
        /* a graph output seen during the layer run must equal the plain run's */
        if (e->where == KILN_ARG_OUTPUT && ls->outs &&
            (li->values[v].nbytes != ls->outs[e->at]->nbytes ||
             memcmp(li->values[v].host, ls->outs[e->at]->data, li->values[v].nbytes))) {
            fprintf(stderr, "layer %d: output '%s' differs from the plain run's\n", li->index, e->name);
            ls->mismatches++;
        }
    }
    return ls->stop_at >= 0 && li->index >= ls->stop_at;
}

static int gpu_streams(const char *path) {
    kiln_bundle_model *m = NULL;
    kiln_status st = kiln_bundle_model_open(path, NULL, &m);
    if (st == KILN_ERR_UNSUPPORTED && strstr(kiln_last_error(), "no CUDA")) {
        printf("SKIP: %s\n", kiln_last_error());
        return 77;
    }
    if (st) {
        fprintf(stderr, "FAIL: %s\n", kiln_last_error());
        return 1;
    }
    const kiln_bundle *b = kiln_bundle_model_bundle(m);
    int n_in = kiln_bundle_model_num_inputs(m), n_out = kiln_bundle_model_num_outputs(m), fails = 0;
    kiln_tensor *in[16] = {0}, *o1[16] = {0}, *o4[16] = {0};
    kiln_exec_context *c1 = NULL, *c4 = NULL;
    if (n_in > 16 || n_out > 16) {
        fprintf(stderr, "FAIL: too many inputs/outputs for this test\n");
        kiln_bundle_model_free(m);
        return 1;
    }
#define GCHECK(expr)                                                                    \
    do {                                                                                \
        if (!fails && (expr)) {                                                         \
            fprintf(stderr, "FAIL: %s: %s\n", #expr, kiln_last_error());               \
            fails++;                                                                    \
        }                                                                               \
    } while (0)
    GCHECK(kiln_exec_context_new(m, KILN_EXEC_POISON, &c1));
    GCHECK(kiln_exec_context_new(m, KILN_EXEC_POISON, &c4));
    GCHECK(kiln_exec_context_set_streams(c4, 4));
    for (int i = 0; !fails && i < n_in; i++) {
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        kiln_bundle_model_input_info(m, i, NULL, &dt, &rank, dims);
        in[i] = kiln_tensor_new(dt, rank, dims);
        for (int64_t k = 0; k < in[i]->numel; k++) kiln_tensor_set(in[i], k, gb_rand());
        GCHECK(kiln_exec_context_bind_input_tensor(c1, i, in[i]));
        GCHECK(kiln_exec_context_bind_input_tensor(c4, i, in[i]));
    }
    for (int i = 0; !fails && i < n_out; i++) {
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        kiln_bundle_model_output_info(m, i, NULL, &dt, &rank, dims);
        o1[i] = kiln_tensor_new(dt, rank, dims);
        o4[i] = kiln_tensor_new(dt, rank, dims);
        GCHECK(kiln_exec_context_bind_output_tensor(c1, i, o1[i]));
        GCHECK(kiln_exec_context_bind_output_tensor(c4, i, o4[i]));
    }
    printf("%s: %d layers, %d launches, streams used with 4 allowed: %d\n", path, b->n_layers, b->n_launches,
           fails ? 0 : kiln_exec_context_streams_used(c4));
    /* run 1 launches directly, runs 2 and 3 capture and replay a graph; new inputs each time */
    for (int run = 0; !fails && run < 3; run++) {
        for (int i = 0; i < n_in; i++)
            for (int64_t k = 0; k < in[i]->numel; k++) kiln_tensor_set(in[i], k, gb_rand());
        for (int i = 0; i < n_out; i++) {
            memset(o1[i]->data, 0xff, o1[i]->nbytes);
            memset(o4[i]->data, 0xfe, o4[i]->nbytes);
        }
        GCHECK(kiln_exec_context_run(c1, NULL));
        GCHECK(kiln_exec_context_run(c4, NULL));
        for (int i = 0; !fails && i < n_out; i++) {
            int64_t nan = 0;
            for (int64_t k = 0; k < o1[i]->numel; k++) nan += kiln_tensor_get(o1[i], k) != kiln_tensor_get(o1[i], k);
            if (memcmp(o1[i]->data, o4[i]->data, o1[i]->nbytes) || nan) {
                fprintf(stderr, "FAIL: run %d output %d: 4 streams differ from 1 stream (or %lld NaN)\n", run, i,
                        (long long)nan);
                fails++;
            }
        }
    }
    int64_t replays = 0;
    if (!fails) kiln_exec_context_runs(c4, &replays);
    if (!fails && replays != 2) {
        fprintf(stderr, "FAIL: the 4-stream context replayed %lld graphs, expected 2\n", (long long)replays);
        fails++;
    }
    /* the layer-by-layer run sees the same outputs as the plain run of the same inputs */
    layer_seen ls = {0, -1, (const kiln_tensor *const *)o1, b, 0};
    if (!fails) {
        kiln_tensor *snap[16] = {0};
        for (int i = 0; i < n_out; i++) snap[i] = kiln_tensor_clone(o1[i]);
        ls.outs = (const kiln_tensor *const *)snap;
        GCHECK(kiln_exec_context_run_layers(c1, NULL, 1, on_layer, &ls));
        if (!fails && (ls.calls != b->n_layers || ls.mismatches)) {
            fprintf(stderr, "FAIL: run_layers: %d calls for %d layers, %d mismatches\n", ls.calls, b->n_layers,
                    ls.mismatches);
            fails++;
        }
        layer_seen stop = {0, 0, NULL, b, 0};
        GCHECK(kiln_exec_context_run_layers(c1, NULL, 0, on_layer, &stop));
        if (!fails && stop.calls != 1) {
            fprintf(stderr, "FAIL: run_layers did not stop after the callback asked (%d calls)\n", stop.calls);
            fails++;
        }
        for (int i = 0; i < n_out; i++) kiln_tensor_free(snap[i]);
    }
#undef GCHECK
    for (int i = 0; i < 16; i++) {
        kiln_tensor_free(in[i]);
        kiln_tensor_free(o1[i]);
        kiln_tensor_free(o4[i]);
    }
    kiln_exec_context_free(c1);
    kiln_exec_context_free(c4);
    kiln_bundle_model_free(m);
    printf("%s\n", fails ? "FAIL" : "PASS: 1 and 4 streams bit-identical over 3 runs; run_layers agrees");
    return fails ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-branches")) return write_branches(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--write-war")) return write_war(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "--corrupt-weight")) return corrupt_weight(argv[2], argv[3], atoi(argv[4]));
    if (argc == 6 && !strcmp(argv[1], "--set-meta")) return set_meta(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 3 && !strcmp(argv[1], "--gpu")) return gpu_streams(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: check_layers [--write-branches OUT.onnx | --write-war OUT.onnx | --corrupt-weight IN OUT LAYER | "
                        "--set-meta IN OUT KEY VALUE | --gpu M.kiln]\n");
        return 2;
    }
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, independent_branches_have_no_edge);
    tcase_add_test(tc, node_scratch_reused_along_the_data_flow);
    tcase_add_test(tc, reused_buffer_makes_war_edge);
    tcase_add_test(tc, layers_section_round_trip_and_refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
