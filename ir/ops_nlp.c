/* ops_nlp.c — shape/dtype rules and CPU reference for losses, attention and rotary embeddings.
 *
 * Ops: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss (opset 12/13/22 forms are the
 * same), RotaryEmbedding (opset 23) and Attention (opset 23/24). All arithmetic runs in
 * double and is rounded once on store, so fp16/bf16 inputs are computed through wider
 * floats as the golden semantics require. */
#include "ops_common.h"

#include <stdint.h>

/* ======================================================== small helpers == */

static const kiln_value *in_at(const kiln_infer_ctx *c, int i) { return i < c->n_in ? c->in[i] : NULL; }
static kiln_value *out_at(const kiln_infer_ctx *c, int i) { return i < c->n_out ? c->out[i] : NULL; }
static kiln_tensor *tin(kiln_tensor *const *in, int n_in, int i) { return i < n_in ? in[i] : NULL; }
static kiln_tensor *tout(kiln_tensor *const *out, int n_out, int i) { return i < n_out ? out[i] : NULL; }

static kiln_status oom(const kiln_node *n) { return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory"); }

/* Float element load/store with direct paths for the common f32 case. */
static inline double ldf(const kiln_tensor *t, int64_t i)
{
    if (t->dtype == KILN_F32) return ((const float *)t->data)[i];
    if (t->dtype == KILN_F64) return ((const double *)t->data)[i];
    return kiln_tensor_get(t, i);
}

static inline void stf(kiln_tensor *t, int64_t i, double v)
{
    if (t->dtype == KILN_F32) ((float *)t->data)[i] = (float)v;
    else if (t->dtype == KILN_F64) ((double *)t->data)[i] = v;
    else kiln_tensor_set(t, i, v);
}

static kiln_status need_float(const kiln_node *n, const kiln_value *v, const char *what)
{
    if (!kiln_dtype_is_float(v->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be a float tensor, got %s", what,
                                kiln_dtype_name(v->dtype));
    return KILN_OK;
}

static kiln_status need_int_index(const kiln_node *n, const kiln_value *v, const char *what)
{
    if (v->dtype != KILN_I32 && v->dtype != KILN_I64)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be int32 or int64, got %s", what,
                                kiln_dtype_name(v->dtype));
    return KILN_OK;
}

static kiln_status need_same_dtype(const kiln_node *n, const kiln_value *a, const kiln_value *b, const char *an,
                                   const char *bn)
{
    if (a->dtype != b->dtype)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s (%s) and %s (%s) must have the same dtype", an,
                                kiln_dtype_name(a->dtype), bn, kiln_dtype_name(b->dtype));
    return KILN_OK;
}

/* Two dims agree when either is still unknown (checked again at run time). */
static bool dims_agree(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

static kiln_status need_dim(const kiln_node *n, const kiln_value *v, int d, int64_t want, const char *what,
                            const char *dim_name)
{
    if (!dims_agree(v->dims[d], want))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s dim %d (%s) is %lld, expected %lld", what, d, dim_name,
                                (long long)v->dims[d], (long long)want);
    return KILN_OK;
}

static int64_t prod_range(const int64_t *dims, int lo, int hi)
{
    int64_t p = 1;
    for (int i = lo; i < hi; i++) p *= dims[i]; /* dims of an allocated tensor: no overflow */
    return p;
}

/* ============================================================= losses ==== */
/* x: [N, C, d1..dk] (scores or log-probabilities), target: [N, d1..dk] class ids,
 * weight: optional [C]. The per-element loss is -weight[t] * x[n, t, d]; elements whose
 * target equals ignore_index contribute nothing (also not to the mean's denominator). */

typedef enum { RED_NONE, RED_SUM, RED_MEAN } reduction_kind;

static kiln_status loss_reduction(const kiln_node *n, reduction_kind *r)
{
    const char *s = kiln_attr_str(n, "reduction", "mean");
    if (!strcmp(s, "none")) *r = RED_NONE;
    else if (!strcmp(s, "sum")) *r = RED_SUM;
    else if (!strcmp(s, "mean")) *r = RED_MEAN;
    else return kiln_node_errorf(n, KILN_ERR_SHAPE, "reduction '%s' is not one of none, sum, mean", s);
    return KILN_OK;
}

/* Shared inference of both losses: validates X/target/weight, sets the loss output and,
 * when present, the log_prob output (X's type). */
static kiln_status loss_infer(kiln_infer_ctx *c, kiln_value *log_prob)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0), *t = in_at(c, 1), *w = in_at(c, 2);
    kiln_value *y = out_at(c, 0);
    if (!x || !t || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs input scores, target and a loss output");
    kiln_status st;
    reduction_kind red = RED_MEAN;
    if ((st = loss_reduction(n, &red))) return st;
    if ((st = need_float(n, x, "input"))) return st;
    if ((st = need_int_index(n, t, "target"))) return st;
    if (x->rank >= 0 && x->rank < 2)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input must have rank >= 2 ([N, C, ...]), got rank %d", x->rank);
    if (x->rank >= 0 && t->rank >= 0) {
        if (t->rank != x->rank - 1)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "target rank %d must be input rank %d minus 1", t->rank,
                                    x->rank);
        for (int d = 0; d < t->rank; d++) {
            int xd = d == 0 ? 0 : d + 1;
            if (!dims_agree(t->dims[d], x->dims[xd]))
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "target dim %d is %lld but input dim %d is %lld", d,
                                        (long long)t->dims[d], xd, (long long)x->dims[xd]);
        }
    }
    if (w) {
        if ((st = need_same_dtype(n, w, x, "weight", "input"))) return st;
        if (w->rank >= 0 && w->rank != 1)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "weight must be 1-D [C], got rank %d", w->rank);
        if (w->rank == 1 && x->rank >= 2 && !dims_agree(w->dims[0], x->dims[1]))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "weight has %lld entries but there are %lld classes",
                                    (long long)w->dims[0], (long long)x->dims[1]);
    }
    if (red != RED_NONE) {
        kiln_value_set(y, x->dtype, 0, NULL);
    } else if (x->rank >= 0) {
        /* [N, d1..dk]: X's dims without C, keeping symbols; target's dims fill unknowns */
        y->dtype = x->dtype;
        y->rank = x->rank - 1;
        for (int d = 0; d < KILN_MAX_RANK; d++) {
            int xd = d == 0 ? 0 : d + 1;
            y->dims[d] = d < y->rank ? x->dims[xd] : 0;
            y->sym[d] = d < y->rank ? x->sym[xd] : 0;
            if (d < y->rank && y->dims[d] < 0 && t->rank == y->rank && (t->dims[d] >= 0 || t->sym[d])) {
                y->dims[d] = t->dims[d];
                y->sym[d] = t->sym[d];
            }
        }
    } else {
        kiln_value_copy_type(y, t);
        y->dtype = x->dtype;
    }
    if (log_prob) kiln_value_copy_type(log_prob, x);
    return KILN_OK;
}

/* The gather-and-reduce part shared by both losses. lp holds X (or its log-softmax) as
 * doubles in X's layout. */
static kiln_status loss_core(const kiln_node *n, const kiln_tensor *x, const double *lp, const kiln_tensor *target,
                             const kiln_tensor *weight, kiln_tensor *y)
{
    reduction_kind red = RED_MEAN;
    kiln_status st = loss_reduction(n, &red);
    if (st) return st;
    bool has_ii = kiln_attr_find(n, "ignore_index") != NULL;
    int64_t ii = kiln_attr_int(n, "ignore_index", 0);
    int64_t N = x->dims[0], C = x->dims[1], D = prod_range(x->dims, 2, x->rank);
    if (weight && weight->numel != C)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "weight has %lld entries, expected %lld", (long long)weight->numel,
                                (long long)C);
    double total = 0.0, wsum = 0.0;
    for (int64_t i = 0; i < N; i++) {
        for (int64_t d = 0; d < D; d++) {
            int64_t ti = i * D + d;
            int64_t cls = kiln_tensor_get_i64(target, ti);
            double loss = 0.0, w = 0.0;
            if (!(has_ii && cls == ii)) {
                if (cls < 0 || cls >= C)
                    return kiln_node_errorf(n, KILN_ERR_INVALID_ARG,
                                            "target value %lld at [%lld] is outside [0, %lld) and is not ignore_index",
                                            (long long)cls, (long long)ti, (long long)C);
                w = weight ? ldf(weight, cls) : 1.0;
                loss = -w * lp[(i * C + cls) * D + d];
            }
            if (red == RED_NONE) stf(y, ti, loss);
            total += loss;
            wsum += w;
        }
    }
    /* mean divides by the summed weights of the counted elements (0/0 gives NaN, as in ONNX) */
    if (red == RED_SUM) stf(y, 0, total);
    else if (red == RED_MEAN) stf(y, 0, total / wsum);
    return KILN_OK;
}

static kiln_status loss_inputs(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                               int n_out, const kiln_tensor **x, const kiln_tensor **t, kiln_tensor **y)
{
    *x = tin(in, n_in, 0);
    *t = tin(in, n_in, 1);
    *y = tout(out, n_out, 0);
    if (!*x || !*t || !*y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    /* infer has checked this already; re-checked so a direct call cannot index out of bounds */
    bool ok = (*x)->rank >= 2 && (*t)->rank == (*x)->rank - 1 && (*t)->dims[0] == (*x)->dims[0];
    for (int d = 1; ok && d < (*t)->rank; d++) ok = (*t)->dims[d] == (*x)->dims[d + 1];
    if (!ok) return kiln_node_errorf(n, KILN_ERR_SHAPE, "target shape does not match input shape");
    return KILN_OK;
}

kiln_status kiln_infer_NegativeLogLikelihoodLoss(kiln_infer_ctx *c) { return loss_infer(c, NULL); }

kiln_status kiln_eval_NegativeLogLikelihoodLoss(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                                kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x, *t;
    kiln_tensor *y;
    kiln_status st = loss_inputs(n, in, n_in, out, n_out, &x, &t, &y);
    if (st) return st;
    double *lp = malloc(sizeof(double) * (size_t)(x->numel + 1));
    if (!lp) return oom(n);
    for (int64_t i = 0; i < x->numel; i++) lp[i] = ldf(x, i);
    st = loss_core(n, x, lp, t, tin(in, n_in, 2), y);
    free(lp);
    return st;
}

kiln_status kiln_infer_SoftmaxCrossEntropyLoss(kiln_infer_ctx *c) { return loss_infer(c, out_at(c, 1)); }

kiln_status kiln_eval_SoftmaxCrossEntropyLoss(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                              kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x, *t;
    kiln_tensor *y;
    kiln_status st = loss_inputs(n, in, n_in, out, n_out, &x, &t, &y);
    if (st) return st;
    int64_t N = x->dims[0], C = x->dims[1], D = prod_range(x->dims, 2, x->rank);
    double *lp = malloc(sizeof(double) * (size_t)(x->numel + 1));
    if (!lp) return oom(n);
    /* log_softmax over the class axis (1), max-shifted so exp never overflows */
    for (int64_t i = 0; i < N; i++) {
        for (int64_t d = 0; d < D; d++) {
            int64_t base = i * C * D + d;
            double mx = -INFINITY, s = 0.0;
            for (int64_t k = 0; k < C; k++) {
                double v = ldf(x, base + k * D);
                lp[base + k * D] = v;
                if (v > mx) mx = v;
            }
            for (int64_t k = 0; k < C; k++) s += exp(lp[base + k * D] - mx);
            double lse = mx + log(s);
            for (int64_t k = 0; k < C; k++) lp[base + k * D] -= lse;
        }
    }
    kiln_tensor *log_prob = tout(out, n_out, 1);
    if (log_prob)
        for (int64_t i = 0; i < x->numel; i++) stf(log_prob, i, lp[i]);
    st = loss_core(n, x, lp, t, tin(in, n_in, 2), y);
    free(lp);
    return st;
}

/* ==================================================== RotaryEmbedding ==== */
/* X is [B, H, S, hd] (4-D) or [B, S, H*hd] (3-D, num_heads given). The first rot dims of
 * each head are rotated pairwise: (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos), pairs
 * being (i, i + rot/2) or, interleaved, (2i, 2i+1). cos/sin are [max_pos, rot/2] indexed
 * by position_ids [B, S], or [B, S, rot/2] directly when position_ids is omitted. */

typedef struct rope_layout {
    int64_t B, H, S, hd, rot;
} rope_layout;

/* Resolve B/H/S/hd/rot from X's dims (-1 where unknown). */
static kiln_status rope_layout_of(const kiln_node *n, int rank, const int64_t *dims, rope_layout *L)
{
    int64_t nh = kiln_attr_int(n, "num_heads", 0);
    int64_t rd = kiln_attr_int(n, "rotary_embedding_dim", 0);
    int64_t il = kiln_attr_int(n, "interleaved", 0);
    if (il != 0 && il != 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "interleaved must be 0 or 1");
    if (nh < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "num_heads %lld is negative", (long long)nh);
    if (rd < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "rotary_embedding_dim %lld is negative", (long long)rd);
    if (rank != 3 && rank != 4)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input must be 3-D [B, S, hidden] or 4-D [B, H, S, head], got rank %d",
                                rank);
    L->B = dims[0];
    if (rank == 4) {
        L->H = dims[1];
        L->S = dims[2];
        L->hd = dims[3];
        if (nh > 0 && L->H >= 0 && nh != L->H)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "num_heads %lld does not match input dim 1 (%lld)",
                                    (long long)nh, (long long)L->H);
    } else {
        if (nh == 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "a 3-D input needs the num_heads attribute");
        L->H = nh;
        L->S = dims[1];
        L->hd = -1;
        if (dims[2] >= 0) {
            if (dims[2] % nh != 0)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "hidden size %lld is not divisible by num_heads %lld",
                                        (long long)dims[2], (long long)nh);
            L->hd = dims[2] / nh;
        }
    }
    L->rot = rd > 0 ? rd : L->hd;
    if (L->hd >= 0) {
        if (rd > L->hd)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "rotary_embedding_dim %lld exceeds the head size %lld",
                                    (long long)rd, (long long)L->hd);
    }
    if (L->rot >= 0 && L->rot % 2 != 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "the rotated dim %lld must be even", (long long)L->rot);
    return KILN_OK;
}

kiln_status kiln_infer_RotaryEmbedding(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0), *cs = in_at(c, 1), *sn = in_at(c, 2), *pos = in_at(c, 3);
    kiln_value *y = out_at(c, 0);
    if (!x || !cs || !sn || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs input, cos_cache, sin_cache");
    kiln_status st;
    if ((st = need_float(n, x, "input"))) return st;
    if ((st = need_same_dtype(n, cs, x, "cos_cache", "input"))) return st;
    if ((st = need_same_dtype(n, sn, x, "sin_cache", "input"))) return st;
    if (pos && (st = need_int_index(n, pos, "position_ids"))) return st;
    if (x->rank < 0) { /* nothing more to check until the rank is known */
        kiln_value_copy_type(y, x);
        return KILN_OK;
    }
    rope_layout L;
    if ((st = rope_layout_of(n, x->rank, x->dims, &L))) return st;
    int64_t half = L.rot >= 0 ? L.rot / 2 : -1;
    int cache_rank = pos ? 2 : 3;
    const kiln_value *caches[2] = {cs, sn};
    static const char *const cache_names[2] = {"cos_cache", "sin_cache"};
    for (int k = 0; k < 2; k++) {
        const kiln_value *v = caches[k];
        if (v->rank < 0) continue;
        if (v->rank != cache_rank)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be %s, got rank %d", cache_names[k],
                                    pos ? "2-D [max_position, rot/2] with position_ids"
                                        : "3-D [B, S, rot/2] without position_ids",
                                    v->rank);
        if ((st = need_dim(n, v, v->rank - 1, half, cache_names[k], "rot/2"))) return st;
        if (!pos) {
            if (v->dims[0] != 1 && (st = need_dim(n, v, 0, L.B, cache_names[k], "batch"))) return st;
            if ((st = need_dim(n, v, 1, L.S, cache_names[k], "sequence"))) return st;
        }
    }
    if (cs->rank >= 0 && sn->rank == cs->rank)
        for (int d = 0; d < cs->rank; d++)
            if (!dims_agree(cs->dims[d], sn->dims[d]))
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "cos_cache and sin_cache shapes differ at dim %d", d);
    if (pos && pos->rank >= 0) {
        if (pos->rank != 2)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "position_ids must be 2-D [B, S], got rank %d", pos->rank);
        if (pos->dims[0] != 1 && (st = need_dim(n, pos, 0, L.B, "position_ids", "batch"))) return st;
        if ((st = need_dim(n, pos, 1, L.S, "position_ids", "sequence"))) return st;
    }
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

kiln_status kiln_eval_RotaryEmbedding(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                      int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0), *cs = tin(in, n_in, 1), *sn = tin(in, n_in, 2), *pos = tin(in, n_in, 3);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !cs || !sn || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    rope_layout L;
    kiln_status st = rope_layout_of(n, x->rank, x->dims, &L);
    if (st) return st;
    bool interleaved = kiln_attr_int(n, "interleaved", 0) != 0;
    int64_t half = L.rot / 2;
    int64_t max_pos = pos ? cs->dims[0] : 0;
    int64_t pos_b = pos ? pos->dims[0] : 0, cache_b = pos ? 0 : cs->dims[0];
    /* element strides of X in [B, H, S, hd] terms */
    int64_t sb, sh, ss;
    if (x->rank == 4) {
        ss = L.hd;
        sh = L.S * L.hd;
        sb = L.H * sh;
    } else {
        sh = L.hd;
        ss = L.H * L.hd;
        sb = L.S * ss;
    }
    for (int64_t b = 0; b < L.B; b++) {
        for (int64_t s = 0; s < L.S; s++) {
            int64_t crow; /* start of this token's cos/sin row */
            if (pos) {
                int64_t p = kiln_tensor_get_i64(pos, (pos_b == 1 ? 0 : b) * L.S + s);
                if (p < 0 || p >= max_pos)
                    return kiln_node_errorf(n, KILN_ERR_INVALID_ARG,
                                            "position id %lld at [%lld, %lld] is outside the cache [0, %lld)",
                                            (long long)p, (long long)b, (long long)s, (long long)max_pos);
                crow = p * half;
            } else {
                crow = ((cache_b == 1 ? 0 : b) * L.S + s) * half;
            }
            for (int64_t h = 0; h < L.H; h++) {
                int64_t base = b * sb + h * sh + s * ss;
                for (int64_t i = 0; i < half; i++) {
                    int64_t i1 = interleaved ? base + 2 * i : base + i;
                    int64_t i2 = interleaved ? base + 2 * i + 1 : base + i + half;
                    double c = ldf(cs, crow + i), sv = ldf(sn, crow + i);
                    double x1 = ldf(x, i1), x2 = ldf(x, i2);
                    stf(y, i1, x1 * c - x2 * sv);
                    stf(y, i2, x1 * sv + x2 * c);
                }
                for (int64_t i = L.rot; i < L.hd; i++) stf(y, base + i, ldf(x, base + i));
            }
        }
    }
    return KILN_OK;
}

/* ========================================================== Attention ==== */
/* Scaled dot-product attention (opset 23, plus opset 24's nonpad_kv_seqlen). Q/K/V are
 * 4-D [B, heads, S, head] or 3-D [B, S, heads*head] (q_num_heads/kv_num_heads given).
 * Per query row: scores = scale * q.k over past+new keys, then softcap, then the bias
 * (attn_mask, causal, nonpad padding), softmax, and the weighted sum of values. Query head
 * h reads key/value head h / (Hq / Hkv) (GQA/MQA). */

enum { ATT_Q, ATT_K, ATT_V, ATT_MASK, ATT_PAST_K, ATT_PAST_V, ATT_NONPAD };
enum { ATT_Y, ATT_PRESENT_K, ATT_PRESENT_V, ATT_QK };

typedef struct att_dims {
    int64_t B, Hq, Hkv, Sq, Skv, P, T, hd, vhd;
} att_dims;

/* Per-tensor element strides for [B, heads, S, head] indexing of a 3-D or 4-D Q/K/V. */
typedef struct head_view {
    int64_t sb, sh, ss;
} head_view;

static head_view head_view_of(int rank, int64_t H, int64_t S, int64_t hd)
{
    head_view v;
    if (rank == 4) {
        v.ss = hd;
        v.sh = S * hd;
        v.sb = H * v.sh;
    } else {
        v.sh = hd;
        v.ss = H * hd;
        v.sb = S * v.ss;
    }
    return v;
}

/* Head count and head size of a 3-D/4-D input (-1 where unknown). */
static kiln_status att_split(const kiln_node *n, const kiln_value *v, int64_t attr_heads, const char *what,
                             const char *attr_name, int64_t *heads, int64_t *S, int64_t *hsize)
{
    if (v->rank == 4) {
        *heads = v->dims[1];
        *S = v->dims[2];
        *hsize = v->dims[3];
        if (attr_heads > 0 && *heads >= 0 && attr_heads != *heads)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s %lld does not match %s dim 1 (%lld)", attr_name,
                                    (long long)attr_heads, what, (long long)*heads);
        return KILN_OK;
    }
    if (attr_heads <= 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "3-D inputs need a positive %s attribute", attr_name);
    *heads = attr_heads;
    *S = v->dims[1];
    *hsize = -1;
    if (v->dims[2] >= 0) {
        if (v->dims[2] % attr_heads != 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s hidden size %lld is not divisible by %s %lld", what,
                                    (long long)v->dims[2], attr_name, (long long)attr_heads);
        *hsize = v->dims[2] / attr_heads;
    }
    return KILN_OK;
}

static kiln_status att_check_attrs(const kiln_node *n)
{
    int64_t mode = kiln_attr_int(n, "qk_matmul_output_mode", 0);
    if (mode < 0 || mode > 3)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "qk_matmul_output_mode %lld is not in 0..3", (long long)mode);
    int64_t causal = kiln_attr_int(n, "is_causal", 0);
    if (causal != 0 && causal != 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "is_causal must be 0 or 1");
    const kiln_attr *sp = kiln_attr_find(n, "softmax_precision");
    if (sp) {
        /* the reference always runs softmax in double, which is at least as precise */
        int64_t p = sp->i;
        if (p != KILN_F32 && p != KILN_F16 && p != KILN_BF16 && p != KILN_F64)
            return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "softmax_precision %lld is not a float type",
                                    (long long)p);
    }
    float softcap = kiln_attr_float(n, "softcap", 0.0f);
    if (!(softcap >= 0.0f) || isinf(softcap))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "softcap must be a finite value >= 0");
    const kiln_attr *sc = kiln_attr_find(n, "scale");
    if (sc && (isnan(sc->f) || isinf(sc->f)))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "scale must be finite");
    return KILN_OK;
}

/* Validate everything and compute the dims (-1 where unknown). Used by infer and eval. */
static kiln_status att_resolve(const kiln_node *n, const kiln_value *const *v, int n_in, att_dims *D)
{
    const kiln_value *q = v[ATT_Q], *k = v[ATT_K], *val = v[ATT_V];
    const kiln_value *mask = n_in > ATT_MASK ? v[ATT_MASK] : NULL;
    const kiln_value *pk = n_in > ATT_PAST_K ? v[ATT_PAST_K] : NULL;
    const kiln_value *pv = n_in > ATT_PAST_V ? v[ATT_PAST_V] : NULL;
    const kiln_value *nonpad = n_in > ATT_NONPAD ? v[ATT_NONPAD] : NULL;
    kiln_status st;
    if ((st = att_check_attrs(n))) return st;
    if ((st = need_float(n, q, "Q"))) return st;
    if ((st = need_same_dtype(n, k, q, "K", "Q"))) return st;
    if ((st = need_same_dtype(n, val, q, "V", "Q"))) return st;
    if (q->rank != 3 && q->rank != 4)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "Q must be 3-D or 4-D, got rank %d", q->rank);
    if (k->rank != q->rank || val->rank != q->rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "Q, K and V must have the same rank (got %d, %d, %d)", q->rank,
                                k->rank, val->rank);
    int64_t qh_attr = kiln_attr_int(n, "q_num_heads", 0), kvh_attr = kiln_attr_int(n, "kv_num_heads", 0);
    if (qh_attr < 0 || kvh_attr < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "head counts must be positive");
    int64_t kh, vh, vS;
    if ((st = att_split(n, q, qh_attr, "Q", "q_num_heads", &D->Hq, &D->Sq, &D->hd))) return st;
    int64_t khd;
    if ((st = att_split(n, k, kvh_attr, "K", "kv_num_heads", &kh, &D->Skv, &khd))) return st;
    if ((st = att_split(n, val, kvh_attr, "V", "kv_num_heads", &vh, &vS, &D->vhd))) return st;
    D->B = q->dims[0];
    for (int i = 0; i < 2; i++) {
        const kiln_value *o = i ? val : k;
        if (!dims_agree(o->dims[0], D->B))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s batch %lld differs from Q batch %lld", i ? "V" : "K",
                                    (long long)o->dims[0], (long long)D->B);
    }
    if (!dims_agree(khd, D->hd))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "K head size %lld differs from Q head size %lld", (long long)khd,
                                (long long)D->hd);
    if (D->hd < 0) D->hd = khd;
    if (!dims_agree(kh, vh))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "K has %lld heads but V has %lld", (long long)kh, (long long)vh);
    D->Hkv = kh >= 0 ? kh : vh;
    if (!dims_agree(vS, D->Skv))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "K has %lld positions but V has %lld", (long long)D->Skv,
                                (long long)vS);
    if (D->Skv < 0) D->Skv = vS;
    if (D->Hkv == 0 || D->Hq == 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "head counts must be positive");
    if (D->Hq >= 0 && D->Hkv > 0 && D->Hq % D->Hkv != 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "q heads %lld are not a multiple of kv heads %lld",
                                (long long)D->Hq, (long long)D->Hkv);
    /* KV cache */
    if ((pk == NULL) != (pv == NULL))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "past_key and past_value must be given together");
    D->P = 0;
    if (pk) {
        if ((st = need_same_dtype(n, pk, q, "past_key", "Q"))) return st;
        if ((st = need_same_dtype(n, pv, q, "past_value", "Q"))) return st;
        if (pk->rank != 4 || pv->rank != 4)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "past_key and past_value must be 4-D [B, kv_heads, past, head]");
        if ((st = need_dim(n, pk, 0, D->B, "past_key", "batch"))) return st;
        if ((st = need_dim(n, pk, 1, D->Hkv, "past_key", "kv heads"))) return st;
        if ((st = need_dim(n, pk, 3, D->hd, "past_key", "head size"))) return st;
        if ((st = need_dim(n, pv, 0, D->B, "past_value", "batch"))) return st;
        if ((st = need_dim(n, pv, 1, D->Hkv, "past_value", "kv heads"))) return st;
        if ((st = need_dim(n, pv, 2, pk->dims[2], "past_value", "past length"))) return st;
        if ((st = need_dim(n, pv, 3, D->vhd, "past_value", "head size"))) return st;
        D->P = pk->dims[2] >= 0 ? pk->dims[2] : pv->dims[2];
    }
    D->T = -1;
    if (D->P >= 0 && D->Skv >= 0) {
        D->T = D->P + D->Skv; /* both are dims of real tensors: no overflow */
    }
    if (mask) {
        if (mask->dtype != KILN_BOOL && mask->dtype != q->dtype)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "attn_mask must be bool or %s like Q, got %s",
                                    kiln_dtype_name(q->dtype), kiln_dtype_name(mask->dtype));
        if (mask->rank < 1 || mask->rank > 4)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "attn_mask must have rank 1..4, got %d", mask->rank);
        const int64_t want[4] = {D->B, D->Hq, D->Sq, D->T};
        for (int d = 0; d < mask->rank; d++) {
            int64_t md = mask->dims[d], w = want[4 - mask->rank + d];
            if (d == mask->rank - 1) { /* may be shorter than the total length: padded as masked */
                if (md >= 0 && w >= 0 && md > w)
                    return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                            "attn_mask last dim %lld exceeds the total sequence length %lld",
                                            (long long)md, (long long)w);
            } else if (md != 1 && !dims_agree(md, w)) {
                return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                        "attn_mask dim %d is %lld, which does not broadcast to %lld", d,
                                        (long long)md, (long long)w);
            }
        }
    }
    if (nonpad) {
        if ((st = need_int_index(n, nonpad, "nonpad_kv_seqlen"))) return st;
        if (nonpad->rank != 1)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "nonpad_kv_seqlen must be 1-D [B], got rank %d", nonpad->rank);
        if ((st = need_dim(n, nonpad, 0, D->B, "nonpad_kv_seqlen", "batch"))) return st;
    }
    return KILN_OK;
}

kiln_status kiln_infer_Attention(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *v[7] = {0};
    for (int i = 0; i < 7; i++) v[i] = in_at(c, i);
    kiln_value *y = out_at(c, ATT_Y);
    if (!v[ATT_Q] || !v[ATT_K] || !v[ATT_V] || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs Q, K, V and Y");
    if (v[ATT_Q]->rank < 0 || v[ATT_K]->rank < 0 || v[ATT_V]->rank < 0) {
        /* nothing can be checked until the ranks are known; qk_matmul_output is always 4-D */
        for (int o = 0; o < 4; o++) {
            kiln_value *ov = out_at(c, o);
            if (!ov) continue;
            kiln_value_set(ov, v[ATT_Q]->dtype, o == ATT_Y ? -1 : 4, NULL);
            for (int d = 0; d < ov->rank; d++) ov->dims[d] = -1;
        }
        return KILN_OK;
    }
    att_dims D;
    kiln_status st = att_resolve(n, v, 7, &D);
    if (st) return st;
    const kiln_value *q = v[ATT_Q], *k = v[ATT_K], *val = v[ATT_V], *pk = v[ATT_PAST_K];
    kiln_dtype dt = q->dtype;
    /* total length keeps K's symbol when there is no cache */
    int32_t t_sym = (D.P == 0 && !pk) ? k->sym[q->rank == 4 ? 2 : 1] : 0;
    if (q->rank == 4) {
        const int64_t dims[4] = {q->dims[0], q->dims[1], q->dims[2], val->dims[3]};
        kiln_value_set(y, dt, 4, dims);
        for (int d = 0; d < 3; d++) y->sym[d] = q->sym[d];
        y->sym[3] = val->sym[3];
    } else {
        int64_t hidden = (D.Hq >= 0 && D.vhd >= 0) ? D.Hq * D.vhd : -1;
        const int64_t dims[3] = {q->dims[0], q->dims[1], hidden};
        kiln_value_set(y, dt, 3, dims);
        y->sym[0] = q->sym[0];
        y->sym[1] = q->sym[1];
        if (D.Hq == D.Hkv) y->sym[2] = val->sym[2]; /* same head count: same hidden size */
    }
    kiln_value *pko = out_at(c, ATT_PRESENT_K), *pvo = out_at(c, ATT_PRESENT_V), *qko = out_at(c, ATT_QK);
    if (pko) {
        const int64_t dims[4] = {D.B, D.Hkv, D.T, D.hd};
        kiln_value_set(pko, dt, 4, dims);
        pko->sym[0] = q->sym[0];
        pko->sym[2] = t_sym;
    }
    if (pvo) {
        const int64_t dims[4] = {D.B, D.Hkv, D.T, D.vhd};
        kiln_value_set(pvo, dt, 4, dims);
        pvo->sym[0] = q->sym[0];
        pvo->sym[2] = t_sym;
    }
    if (qko) {
        const int64_t dims[4] = {D.B, D.Hq, D.Sq, D.T};
        kiln_value_set(qko, dt, 4, dims);
        qko->sym[0] = q->sym[0];
        if (q->rank == 4) qko->sym[1] = q->sym[1];
        qko->sym[2] = q->sym[q->rank == 4 ? 2 : 1];
        qko->sym[3] = t_sym;
    }
    return KILN_OK;
}

static void value_of_tensor(kiln_value *v, const kiln_tensor *t)
{
    memset(v, 0, sizeof *v);
    v->dtype = t->dtype;
    v->rank = t->rank;
    for (int d = 0; d < t->rank; d++) v->dims[d] = t->dims[d];
}

kiln_status kiln_eval_Attention(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                int n_out)
{
    const kiln_tensor *t[7];
    kiln_value vals[7];
    const kiln_value *pv[7];
    for (int i = 0; i < 7; i++) {
        t[i] = tin(in, n_in, i);
        pv[i] = NULL;
        if (t[i]) {
            value_of_tensor(&vals[i], t[i]);
            pv[i] = &vals[i];
        }
    }
    kiln_tensor *y = tout(out, n_out, ATT_Y);
    if (!t[ATT_Q] || !t[ATT_K] || !t[ATT_V] || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing Q, K, V or Y");
    att_dims D;
    kiln_status st = att_resolve(n, pv, 7, &D);
    if (st) return st;
    const kiln_tensor *q = t[ATT_Q], *k = t[ATT_K], *v = t[ATT_V], *mask = t[ATT_MASK];
    const kiln_tensor *pk = t[ATT_PAST_K], *pvt = t[ATT_PAST_V], *nonpad = t[ATT_NONPAD];
    kiln_tensor *pko = tout(out, n_out, ATT_PRESENT_K), *pvo = tout(out, n_out, ATT_PRESENT_V);
    kiln_tensor *qko = tout(out, n_out, ATT_QK);
    int64_t mode = kiln_attr_int(n, "qk_matmul_output_mode", 0);
    bool causal = kiln_attr_int(n, "is_causal", 0) != 0;
    double softcap = kiln_attr_float(n, "softcap", 0.0f);
    const kiln_attr *sc_attr = kiln_attr_find(n, "scale");
    double scale = sc_attr ? (double)sc_attr->f : (D.hd > 0 ? 1.0 / sqrt((double)D.hd) : 1.0);

    head_view qv = head_view_of(q->rank, D.Hq, D.Sq, D.hd);
    head_view kv = head_view_of(k->rank, D.Hkv, D.Skv, D.hd);
    head_view vv = head_view_of(v->rank, D.Hkv, D.Skv, D.vhd);
    head_view yv = head_view_of(y->rank, D.Hq, D.Sq, D.vhd);
    head_view pkv = head_view_of(4, D.Hkv, D.P, D.hd), pvv = head_view_of(4, D.Hkv, D.P, D.vhd);

    /* mask strides over [B, Hq, Sq, m], broadcast dims (size 1) stride 0 */
    int64_t mstr[4] = {0, 0, 0, 0}, mlast = 0;
    if (mask) {
        int64_t md[4] = {1, 1, 1, 1}, acc = 1;
        for (int d = 0; d < mask->rank; d++) md[4 - mask->rank + d] = mask->dims[d];
        for (int d = 3; d >= 0; d--) {
            mstr[d] = md[d] == 1 ? 0 : acc;
            acc *= md[d];
        }
        mstr[3] = 1;
        mlast = md[3];
    }
    int64_t group = D.Hq / D.Hkv;

    /* present_key / present_value: past rows then the new rows, in 4-D layout */
    for (int which = 0; which < 2; which++) {
        kiln_tensor *dst = which ? pvo : pko;
        if (!dst) continue;
        const kiln_tensor *past = which ? pvt : pk, *cur = which ? v : k;
        head_view ph = which ? pvv : pkv, ch = which ? vv : kv;
        int64_t hs = which ? D.vhd : D.hd;
        for (int64_t b = 0; b < D.B; b++)
            for (int64_t h = 0; h < D.Hkv; h++)
                for (int64_t j = 0; j < D.T; j++) {
                    int64_t o = ((b * D.Hkv + h) * D.T + j) * hs;
                    int64_t src = j < D.P ? b * ph.sb + h * ph.sh + j * ph.ss
                                          : b * ch.sb + h * ch.sh + (j - D.P) * ch.ss;
                    const kiln_tensor *from = j < D.P ? past : cur;
                    for (int64_t e = 0; e < hs; e++) stf(dst, o + e, ldf(from, src + e));
                }
    }

    double *score = malloc(sizeof(double) * (size_t)(D.T + 1));
    double *acc = malloc(sizeof(double) * (size_t)(D.vhd + 1));
    if (!score || !acc) {
        free(score);
        free(acc);
        return oom(n);
    }
    for (int64_t b = 0; b < D.B; b++) {
        int64_t valid = D.T; /* keys at or after nonpad_kv_seqlen[b] are padding */
        if (nonpad) {
            valid = kiln_tensor_get_i64(nonpad, b);
            if (valid < 0 || valid > D.T) {
                free(score);
                free(acc);
                return kiln_node_errorf(n, KILN_ERR_INVALID_ARG,
                                        "nonpad_kv_seqlen[%lld] = %lld is outside [0, %lld]", (long long)b,
                                        (long long)valid, (long long)D.T);
            }
        }
        for (int64_t h = 0; h < D.Hq; h++) {
            int64_t hk = h / group;
            for (int64_t i = 0; i < D.Sq; i++) {
                int64_t qo = b * qv.sb + h * qv.sh + i * qv.ss;
                /* only formed when the output exists, so its product is a real tensor offset */
                int64_t qk_row = qko ? ((b * D.Hq + h) * D.Sq + i) * D.T : 0;
                double mx = -INFINITY;
                for (int64_t j = 0; j < D.T; j++) {
                    const kiln_tensor *kt = j < D.P ? pk : k;
                    int64_t ko = j < D.P ? b * pkv.sb + hk * pkv.sh + j * pkv.ss
                                         : b * kv.sb + hk * kv.sh + (j - D.P) * kv.ss;
                    double dot = 0.0;
                    for (int64_t e = 0; e < D.hd; e++) dot += ldf(q, qo + e) * ldf(kt, ko + e);
                    double s = dot * scale;
                    if (qko && mode == 0) stf(qko, qk_row + j, s);
                    if (softcap > 0.0) s = softcap * tanh(s / softcap);
                    if (qko && mode == 1) stf(qko, qk_row + j, s);
                    /* bias: the mask (short masks count as masked beyond their end), causal, padding */
                    if (mask) {
                        if (j >= mlast) {
                            s = -INFINITY;
                        } else {
                            int64_t mo = b * mstr[0] + h * mstr[1] + i * mstr[2] + j * mstr[3];
                            if (mask->dtype == KILN_BOOL) {
                                if (!((const uint8_t *)mask->data)[mo]) s = -INFINITY;
                            } else {
                                s += ldf(mask, mo);
                            }
                        }
                    }
                    if (causal && j > i + D.P) s = -INFINITY;
                    if (j >= valid) s = -INFINITY;
                    if (qko && mode == 2) stf(qko, qk_row + j, s);
                    score[j] = s;
                    if (s > mx) mx = s;
                }
                /* softmax; a row with every key masked yields NaN, as in ONNX's reference */
                double sum = 0.0;
                for (int64_t j = 0; j < D.T; j++) {
                    score[j] = exp(score[j] - mx);
                    sum += score[j];
                }
                for (int64_t j = 0; j < D.T; j++) {
                    score[j] /= sum;
                    if (qko && mode == 3) stf(qko, qk_row + j, score[j]);
                }
                for (int64_t e = 0; e < D.vhd; e++) acc[e] = 0.0;
                for (int64_t j = 0; j < D.T; j++) {
                    const kiln_tensor *vt = j < D.P ? pvt : v;
                    int64_t vo = j < D.P ? b * pvv.sb + hk * pvv.sh + j * pvv.ss
                                         : b * vv.sb + hk * vv.sh + (j - D.P) * vv.ss;
                    for (int64_t e = 0; e < D.vhd; e++) acc[e] += score[j] * ldf(vt, vo + e);
                }
                int64_t yo = b * yv.sb + h * yv.sh + i * yv.ss;
                for (int64_t e = 0; e < D.vhd; e++) stf(y, yo + e, acc[e]);
            }
        }
    }
    free(score);
    free(acc);
    return KILN_OK;
}
