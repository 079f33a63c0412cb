/* ops_nn.c — shape/dtype rules and CPU reference for convolution, pooling, Gemm/MatMul/Einsum.
 *
 * Speed matters only for f32 (and f16/bf16, which are widened to f32) Conv, Gemm and
 * MatMul: they all funnel into one blocked GEMM (gemm_f32). Operands are packed into
 * small panels so a 4x8 micro-kernel runs out of L1 with a contiguous inner loop the
 * compiler vectorizes; Conv feeds that GEMM through an im2col packer, so a full im2col
 * matrix is never materialized. Everything else (f64, integer dtypes, pooling,
 * ConvTranspose, Einsum) uses plain loops over double (or exact int64) buffers.
 */
#include "conv_geom.h"
#include "ops_common.h"

#include <stdint.h>

static int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Python-style floor division (b > 0). */
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* ------------------------------------------------------------------ values -- */

/* Output with unknown rank. */
static void set_unknown(kiln_value *v, kiln_dtype dt)
{
    v->dtype = dt;
    v->rank = -1;
    for (int i = 0; i < KILN_MAX_RANK; i++) {
        v->dims[i] = -1;
        v->sym[i] = 0;
    }
}

/* Output with dims (-1 allowed) and optional symbolic ids. */
static void set_out(kiln_value *v, kiln_dtype dt, int rank, const int64_t *dims, const int32_t *sym)
{
    kiln_value_set(v, dt, rank, dims);
    for (int i = 0; i < rank; i++) {
        v->dims[i] = dims[i];
        v->sym[i] = sym ? sym[i] : 0;
    }
}

static int64_t vdim(const kiln_value *v, int i) { return v && v->rank > i ? v->dims[i] : -1; }
static int32_t vsym(const kiln_value *v, int i) { return v && v->rank > i ? v->sym[i] : 0; }

static kiln_status need_float(const kiln_node *n, kiln_dtype dt, const char *what)
{
    if (!kiln_dtype_is_float(dt))
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "%s has dtype %s; only f16/bf16/f32/f64 are supported",
                                what, kiln_dtype_name(dt));
    return KILN_OK;
}

/* Gemm/MatMul: floats plus 32/64-bit integers. */
static kiln_status need_matmul_dtype(const kiln_node *n, kiln_dtype dt, const char *what)
{
    if (kiln_dtype_is_float(dt) || dt == KILN_I32 || dt == KILN_I64 || dt == KILN_U32 || dt == KILN_U64)
        return KILN_OK;
    return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "%s has dtype %s; supported: floats, i32, i64, u32, u64",
                            what, kiln_dtype_name(dt));
}

static kiln_status need_same_dtype(const kiln_node *n, const kiln_value *a, const kiln_value *b, const char *what)
{
    if (b && b->dtype != a->dtype)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has dtype %s but the first input is %s", what,
                                kiln_dtype_name(b->dtype), kiln_dtype_name(a->dtype));
    return KILN_OK;
}

/* ----------------------------------------------------------------- buffers -- */

static kiln_status oom(const kiln_node *n) { return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory"); }

static void *alloc_n(int64_t count, size_t elem)
{
    if (count < 0 || (uint64_t)count > SIZE_MAX / elem / 2) return NULL;
    return malloc((count ? (size_t)count : 1) * elem);
}

/* Contents of t widened to double (caller frees); NULL on OOM. */
static double *load_f64(const kiln_tensor *t)
{
    int64_t n = t->numel;
    double *buf = alloc_n(n, sizeof *buf);
    if (!buf) return NULL;
    if (t->dtype == KILN_F32) {
        const float *p = t->data;
        for (int64_t i = 0; i < n; i++) buf[i] = p[i];
    } else if (t->dtype == KILN_F64) {
        if (n) memcpy(buf, t->data, (size_t)n * sizeof *buf);
    } else {
        for (int64_t i = 0; i < n; i++) buf[i] = kiln_tensor_get(t, i);
    }
    return buf;
}

static void store_f64(kiln_tensor *t, const double *buf)
{
    int64_t n = t->numel;
    if (t->dtype == KILN_F32) {
        float *p = t->data;
        for (int64_t i = 0; i < n; i++) p[i] = (float)buf[i];
    } else if (t->dtype == KILN_F64) {
        if (n) memcpy(t->data, buf, (size_t)n * sizeof *buf);
    } else {
        for (int64_t i = 0; i < n; i++) kiln_tensor_set(t, i, buf[i]);
    }
}

/* f32 view of t: its own data when f32, else a widened copy returned in *owned. */
static const float *view_f32(const kiln_tensor *t, float **owned)
{
    *owned = NULL;
    if (t->dtype == KILN_F32) return t->data;
    float *buf = alloc_n(t->numel, sizeof *buf);
    if (!buf) return NULL;
    for (int64_t i = 0; i < t->numel; i++) buf[i] = (float)kiln_tensor_get(t, i);
    *owned = buf;
    return buf;
}

/* f32 output buffer: t's data when f32, else scratch in *owned that finish_f32 stores. */
static float *out_f32(kiln_tensor *t, float **owned)
{
    *owned = NULL;
    if (t->dtype == KILN_F32) return t->data;
    *owned = alloc_n(t->numel, sizeof(float));
    return *owned;
}

static void finish_f32(kiln_tensor *t, float *owned)
{
    if (!owned) return;
    for (int64_t i = 0; i < t->numel; i++) kiln_tensor_set(t, i, owned[i]);
    free(owned);
}

/* f32, f16 and bf16 all run the f32 kernels (f16/bf16 computed through f32). */
static bool f32_path(kiln_dtype dt) { return dt == KILN_F32 || dt == KILN_F16 || dt == KILN_BF16; }

static int64_t prod(int r, const int64_t *d)
{
    int64_t p = 1;
    for (int i = 0; i < r; i++) p *= d[i];
    return p;
}

/* ------------------------------------------------------------ f32 GEMM core -- */

/* C[M x N] (ldc) += alpha * A[M x K] * B[K x N]. A is read through a strided view and
 * packed into MR-row panels; B is packed (by a callback, so Conv can run im2col here)
 * into NR-column strips: strip-major, then k, then NR contiguous columns. */
#define GEMM_MR 4
#define GEMM_NR 8
#define GEMM_KC 256
#define GEMM_MC 128
#define GEMM_NC 1024

typedef struct mat_view {
    const float *p;
    int64_t rs, cs; /* element (r, c) at p[r * rs + c * cs] */
} mat_view;

typedef void (*pack_b_fn)(const void *ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float *dst);

static void pack_a(const mat_view *a, float alpha, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float *dst)
{
    for (int64_t ip = 0; ip < mc; ip += GEMM_MR) {
        int64_t mr = min_i64(GEMM_MR, mc - ip);
        for (int64_t k = 0; k < kc; k++) {
            const float *src = a->p + (i0 + ip) * a->rs + (k0 + k) * a->cs;
            for (int64_t r = 0; r < GEMM_MR; r++) *dst++ = r < mr ? alpha * src[r * a->rs] : 0.0f;
        }
    }
}

static void pack_b_view(const void *ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float *dst)
{
    const mat_view *b = ctx;
    for (int64_t jp = 0; jp < nc; jp += GEMM_NR) {
        int64_t nr = min_i64(GEMM_NR, nc - jp);
        for (int64_t k = 0; k < kc; k++) {
            const float *src = b->p + (k0 + k) * b->rs + (j0 + jp) * b->cs;
            int64_t j = 0;
            if (b->cs == 1)
                for (; j < nr; j++) dst[j] = src[j];
            else
                for (; j < nr; j++) dst[j] = src[j * b->cs];
            for (; j < GEMM_NR; j++) dst[j] = 0.0f;
            dst += GEMM_NR;
        }
    }
}

/* The hot loop: a 4x8 block of C accumulated over kc in registers. */
static void micro_kernel(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c,
                         int64_t ldc, int64_t mr, int64_t nr)
{
    float acc[GEMM_MR][GEMM_NR];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++) {
        for (int r = 0; r < GEMM_MR; r++) {
            float av = ap[r];
            for (int j = 0; j < GEMM_NR; j++) acc[r][j] += av * bp[j];
        }
        ap += GEMM_MR;
        bp += GEMM_NR;
    }
    if (mr == GEMM_MR && nr == GEMM_NR) {
        for (int r = 0; r < GEMM_MR; r++)
            for (int j = 0; j < GEMM_NR; j++) c[r * ldc + j] += acc[r][j];
        return;
    }
    for (int64_t r = 0; r < mr; r++)
        for (int64_t j = 0; j < nr; j++) c[r * ldc + j] += acc[r][j];
}

/* false on OOM. */
static bool gemm_f32(int64_t M, int64_t N, int64_t K, const mat_view *a, float alpha, pack_b_fn pack_b,
                     const void *bctx, float *c, int64_t ldc)
{
    if (M <= 0 || N <= 0 || K <= 0) return true;
    float *ap = malloc(sizeof(float) * GEMM_MC * GEMM_KC);
    float *bp = malloc(sizeof(float) * GEMM_KC * GEMM_NC);
    if (!ap || !bp) {
        free(ap);
        free(bp);
        return false;
    }
    for (int64_t jc = 0; jc < N; jc += GEMM_NC) {
        int64_t nc = min_i64(GEMM_NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += GEMM_KC) {
            int64_t kc = min_i64(GEMM_KC, K - pc);
            pack_b(bctx, pc, kc, jc, nc, bp);
            for (int64_t ic = 0; ic < M; ic += GEMM_MC) {
                int64_t mc = min_i64(GEMM_MC, M - ic);
                pack_a(a, alpha, ic, mc, pc, kc, ap);
                for (int64_t jr = 0; jr < nc; jr += GEMM_NR)
                    for (int64_t ir = 0; ir < mc; ir += GEMM_MR)
                        micro_kernel(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc,
                                     min_i64(GEMM_MR, mc - ir), min_i64(GEMM_NR, nc - jr));
            }
        }
    }
    free(ap);
    free(bp);
    return true;
}

/* Few rows (vector x matrix, e.g. a batch-1 fully connected layer): packing would cost as
 * much as the math, so stream B once. B row-major: axpy rows; B transposed: dot products. */
static void gemm_small_f32(int64_t M, int64_t N, int64_t K, const mat_view *a, float alpha, const mat_view *b,
                           float *c, int64_t ldc)
{
    for (int64_t m = 0; m < M; m++) {
        float *crow = c + m * ldc;
        if (b->cs == 1) {
            for (int64_t k = 0; k < K; k++) {
                float av = alpha * a->p[m * a->rs + k * a->cs];
                const float *brow = b->p + k * b->rs;
                for (int64_t j = 0; j < N; j++) crow[j] += av * brow[j];
            }
            continue;
        }
        /* here b->rs == 1 and a->cs == 1: both operands contiguous along k */
        const float *arow = a->p + m * a->rs;
        for (int64_t j = 0; j < N; j++) {
            const float *bcol = b->p + j * b->cs;
            float part[8] = {0};
            int64_t k = 0;
            for (; k + 8 <= K; k += 8)
                for (int q = 0; q < 8; q++) part[q] += arow[k + q] * bcol[k + q];
            float sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
            for (; k < K; k++) sum += arow[k] * bcol[k];
            crow[j] += alpha * sum;
        }
    }
}

/* C += alpha * A * B for plain strided matrices. false on OOM. */
static bool matmul_f32(int64_t M, int64_t N, int64_t K, const mat_view *a, float alpha, const mat_view *b, float *c,
                       int64_t ldc)
{
    if (M < GEMM_MR && (b->cs == 1 || (b->rs == 1 && a->cs == 1))) {
        gemm_small_f32(M, N, K, a, alpha, b, c, ldc);
        return true;
    }
    return gemm_f32(M, N, K, a, alpha, pack_b_view, b, c, ldc);
}

/* ---------------------------------------------------------------- Conv -- */

kiln_status kiln_infer_Conv(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *w = c->in[1], *b = c->n_in > 2 ? c->in[2] : NULL;
    kiln_status st;
    if (!x || !w) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X and W are required");
    if ((st = need_float(n, x->dtype, "X"))) return st;
    if ((st = need_same_dtype(n, x, w, "W"))) return st;
    if ((st = need_same_dtype(n, x, b, "B"))) return st;
    if (x->rank >= 0 && w->rank >= 0 && x->rank != w->rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "X has rank %d but W has rank %d", x->rank, w->rank);
    int rank = x->rank >= 0 ? x->rank : w->rank;
    if (rank < 0) {
        const int64_t *ks;
        int cnt = kiln_attr_ints(n, "kernel_shape", &ks);
        if (cnt < 0) {
            set_unknown(c->out[0], x->dtype);
            return KILN_OK;
        }
        rank = cnt + 2;
    }
    if (rank < 3 || rank > KILN_MAX_RANK)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input rank %d: Conv needs N x C x D1... (rank >= 3)", rank);
    int64_t xd[KILN_MAX_RANK], wd[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        xd[i] = vdim(x, i);
        wd[i] = vdim(w, i);
    }
    kiln_conv_geom cg;
    if ((st = kiln_conv_geom_make(n, rank, xd, wd, &cg))) return st;
    if (b && b->rank >= 0) {
        if (b->rank != 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "B must be 1-D, has rank %d", b->rank);
        if (b->dims[0] >= 0 && cg.M >= 0 && b->dims[0] != cg.M)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "B has %lld elements, expected %lld", (long long)b->dims[0],
                                    (long long)cg.M);
    }
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    od[0] = cg.N;
    os[0] = vsym(x, 0);
    od[1] = cg.M;
    os[1] = vsym(w, 0);
    for (int i = 0; i < rank - 2; i++) {
        od[2 + i] = cg.keep[i] ? xd[2 + i] : cg.out[i];
        os[2 + i] = cg.keep[i] ? vsym(x, 2 + i) : 0;
    }
    set_out(c->out[0], x->dtype, rank, od, os);
    return KILN_OK;
}

/* im2col packer: B[k][j] of one (image, group) where k runs over (channel, kernel
 * position) and j over output positions; written in the GEMM's strip layout. */
typedef struct im2col_ctx {
    const float *x; /* first channel of the group in this image */
    const kiln_conv_geom *g;
    int64_t ksize, isize; /* kernel positions, input positions per channel */
} im2col_ctx;

static void pack_b_im2col(const void *vctx, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float *dst)
{
    const im2col_ctx *ctx = vctx;
    const kiln_conv_geom *g = ctx->g;
    int nsp = g->nsp, last = nsp - 1;
    int64_t strip = kc * GEMM_NR; /* floats per packed strip */
    int64_t ncp = (nc + GEMM_NR - 1) / GEMM_NR * GEMM_NR;
    for (int64_t kk = 0; kk < kc; kk++) {
        int64_t row = k0 + kk, r = row % ctx->ksize, koff[KILN_MAX_RANK], o[KILN_MAX_RANK];
        const float *xc = ctx->x + row / ctx->ksize * ctx->isize;
        for (int i = last; i >= 0; i--) {
            koff[i] = r % g->k[i];
            r /= g->k[i];
        }
        int64_t t = j0;
        for (int i = last; i >= 0; i--) {
            o[i] = t % g->out[i];
            t /= g->out[i];
        }
        float *drow = dst + kk * GEMM_NR;
        int64_t j = 0;
        while (j < nc) {
            /* one run along the last output dim: outer coordinates fixed */
            bool ok = true;
            int64_t off = 0;
            for (int i = 0; i < last; i++) {
                int64_t ix = o[i] * g->s[i] - g->pb[i] + koff[i] * g->d[i];
                if (ix < 0 || ix >= g->in[i]) ok = false;
                off = off * g->in[i] + ix;
            }
            int64_t run = min_i64(g->out[last] - o[last], nc - j);
            int64_t ix = o[last] * g->s[last] - g->pb[last] + koff[last] * g->d[last];
            int64_t s = g->s[last], in_last = g->in[last];
            if (ok) {
                const float *xr = xc + off * in_last;
                for (int64_t q = 0; q < run; q++, j++, ix += s)
                    drow[(j / GEMM_NR) * strip + j % GEMM_NR] = ix >= 0 && ix < in_last ? xr[ix] : 0.0f;
            } else {
                for (int64_t q = 0; q < run; q++, j++) drow[(j / GEMM_NR) * strip + j % GEMM_NR] = 0.0f;
            }
            o[last] += run;
            for (int i = last; i > 0 && o[i] == g->out[i]; i--) {
                o[i] = 0;
                o[i - 1]++;
            }
        }
        for (; j < ncp; j++) drow[(j / GEMM_NR) * strip + j % GEMM_NR] = 0.0f;
    }
}

/* Row-major offset of the window element (o, kk) in the input, false when in padding. */
static bool win_offset(const kiln_conv_geom *g, const int64_t *o, const int64_t *kk, int64_t *off)
{
    int64_t acc = 0;
    for (int i = 0; i < g->nsp; i++) {
        int64_t ix = o[i] * g->s[i] - g->pb[i] + kk[i] * g->d[i];
        if (ix < 0 || ix >= g->in[i]) return false;
        acc = acc * g->in[i] + ix;
    }
    *off = acc;
    return true;
}

/* f64 reference: one output element at a time. */
static void conv_naive_f64(const kiln_conv_geom *g, const double *x, const double *w, const double *b, double *y)
{
    int64_t osz = prod(g->nsp, g->out), isz = prod(g->nsp, g->in), ksz = prod(g->nsp, g->k);
    if (osz == 0 || ksz == 0) return;
    for (int64_t nn = 0; nn < g->N; nn++)
        for (int64_t m = 0; m < g->M; m++) {
            int64_t gi = m / g->Mg, o[KILN_MAX_RANK] = {0}, p = 0;
            do {
                double acc = b ? b[m] : 0.0;
                for (int64_t cc = 0; cc < g->Cg; cc++) {
                    const double *xc = x + (nn * g->C + gi * g->Cg + cc) * isz;
                    const double *wc = w + (m * g->Cg + cc) * ksz;
                    int64_t kk[KILN_MAX_RANK] = {0}, q = 0, off;
                    do {
                        if (win_offset(g, o, kk, &off)) acc += xc[off] * wc[q];
                        q++;
                    } while (kiln_index_next(g->nsp, g->k, kk));
                }
                y[(nn * g->M + m) * osz + p++] = acc;
            } while (kiln_index_next(g->nsp, g->out, o));
        }
}

kiln_status kiln_eval_Conv(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    (void)n_out;
    const kiln_tensor *x = in[0], *w = in[1], *b = n_in > 2 ? in[2] : NULL;
    kiln_tensor *y = out[0];
    if (x->rank != w->rank) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X and W ranks differ");
    kiln_conv_geom cg;
    kiln_status st = kiln_conv_geom_make(n, x->rank, x->dims, w->dims, &cg);
    if (st) return st;
    const kiln_conv_geom *g = &cg;
    int64_t osz = prod(g->nsp, g->out), isz = prod(g->nsp, g->in), ksz = prod(g->nsp, g->k);
    int64_t kdim = cg.Cg * ksz;
    if (y->numel == 0) return KILN_OK;

    if (!f32_path(x->dtype)) {
        double *xb = load_f64(x), *wb = load_f64(w), *bb = b ? load_f64(b) : NULL, *yb = alloc_n(y->numel, 8);
        if (xb && wb && yb && (bb || !b)) {
            conv_naive_f64(&cg, xb, wb, bb, yb);
            store_f64(y, yb);
        } else {
            st = oom(n);
        }
        free(xb);
        free(wb);
        free(bb);
        free(yb);
        return st;
    }

    float *xo, *wo, *bo = NULL, *yo;
    const float *xv = view_f32(x, &xo), *wv = view_f32(w, &wo), *bv = b ? view_f32(b, &bo) : NULL;
    float *yv = out_f32(y, &yo);
    if (!xv || !wv || (b && !bv) || !yv) {
        st = oom(n);
        goto done;
    }
    /* 1x1 kernel, unit stride, no pad: the image itself is the im2col matrix */
    bool pointwise = true;
    for (int i = 0; i < g->nsp; i++)
        if (g->k[i] != 1 || g->s[i] != 1 || g->pb[i] || g->pe[i]) pointwise = false;
    for (int64_t nn = 0; nn < cg.N; nn++)
        for (int64_t gi = 0; gi < cg.group; gi++) {
            float *yblk = yv + (nn * cg.M + gi * cg.Mg) * osz;
            for (int64_t m = 0; m < cg.Mg; m++) {
                float bias = bv ? bv[gi * cg.Mg + m] : 0.0f;
                for (int64_t p = 0; p < osz; p++) yblk[m * osz + p] = bias;
            }
            const float *ximg = xv + (nn * cg.C + gi * cg.Cg) * isz;
            mat_view av = {wv + gi * cg.Mg * kdim, kdim, 1};
            bool ok;
            if (pointwise) {
                mat_view bview = {ximg, isz, 1};
                ok = gemm_f32(cg.Mg, osz, kdim, &av, 1.0f, pack_b_view, &bview, yblk, osz);
            } else {
                im2col_ctx ic = {ximg, g, ksz, isz};
                ok = gemm_f32(cg.Mg, osz, kdim, &av, 1.0f, pack_b_im2col, &ic, yblk, osz);
            }
            if (!ok) {
                st = oom(n);
                goto done;
            }
        }
    finish_f32(y, yo);
    yo = NULL;
done:
    free(xo);
    free(wo);
    free(bo);
    free(yo);
    return st;
}

/* ------------------------------------------------------- ConvTranspose -- */

kiln_status kiln_infer_ConvTranspose(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *w = c->in[1], *b = c->n_in > 2 ? c->in[2] : NULL;
    kiln_status st;
    if (!x || !w) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X and W are required");
    if ((st = need_float(n, x->dtype, "X"))) return st;
    if ((st = need_same_dtype(n, x, w, "W"))) return st;
    if ((st = need_same_dtype(n, x, b, "B"))) return st;
    if (x->rank >= 0 && w->rank >= 0 && x->rank != w->rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "X has rank %d but W has rank %d", x->rank, w->rank);
    int rank = x->rank >= 0 ? x->rank : w->rank;
    if (rank < 0) {
        set_unknown(c->out[0], x->dtype);
        return KILN_OK;
    }
    if (rank < 3 || rank > KILN_MAX_RANK)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input rank %d: ConvTranspose needs rank >= 3", rank);
    int64_t xd[KILN_MAX_RANK], wd[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        xd[i] = vdim(x, i);
        wd[i] = vdim(w, i);
    }
    kiln_conv_geom cg;
    if ((st = kiln_conv_transpose_geom_make(n, rank, xd, wd, &cg))) return st;
    if (b && b->rank >= 0) {
        if (b->rank != 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "B must be 1-D, has rank %d", b->rank);
        if (b->dims[0] >= 0 && cg.M >= 0 && b->dims[0] != cg.M)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "B has %lld elements, expected %lld", (long long)b->dims[0],
                                    (long long)cg.M);
    }
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK] = {0};
    od[0] = cg.N;
    os[0] = vsym(x, 0);
    od[1] = cg.M;
    for (int i = 0; i < rank - 2; i++) od[2 + i] = cg.out[i];
    set_out(c->out[0], x->dtype, rank, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_ConvTranspose(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                    int n_out)
{
    (void)n_out;
    const kiln_tensor *x = in[0], *w = in[1], *b = n_in > 2 ? in[2] : NULL;
    kiln_tensor *y = out[0];
    if (x->rank != w->rank) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X and W ranks differ");
    kiln_conv_geom cg;
    kiln_status st = kiln_conv_transpose_geom_make(n, x->rank, x->dims, w->dims, &cg);
    if (st) return st;
    const kiln_conv_geom *g = &cg;
    int nsp = g->nsp;
    int64_t osz = prod(nsp, g->out), isz = prod(nsp, g->in), ksz = prod(nsp, g->k);
    if (y->numel == 0) return KILN_OK;
    double *xb = load_f64(x), *wb = load_f64(w), *bb = b ? load_f64(b) : NULL, *yb = alloc_n(y->numel, 8);
    if (!xb || !wb || !yb || (b && !bb)) {
        st = oom(n);
        goto done;
    }
    for (int64_t nn = 0; nn < cg.N; nn++)
        for (int64_t m = 0; m < cg.M; m++)
            for (int64_t p = 0; p < osz; p++) yb[(nn * cg.M + m) * osz + p] = bb ? bb[m] : 0.0;
    /* scatter: input element (c, i) adds x * W[c, m, kk] to output position i*s - pb + kk*d */
    if (isz > 0 && ksz > 0)
        for (int64_t nn = 0; nn < cg.N; nn++)
            for (int64_t ch = 0; ch < cg.C; ch++) {
                int64_t gi = ch / cg.Cg, i[KILN_MAX_RANK] = {0}, p = 0;
                const double *xc = xb + (nn * cg.C + ch) * isz;
                do {
                    double xv = xc[p++];
                    int64_t kk[KILN_MAX_RANK] = {0}, q = 0;
                    do {
                        int64_t off = 0;
                        bool ok = true;
                        for (int t = 0; t < nsp && ok; t++) {
                            int64_t ox = i[t] * g->s[t] - g->pb[t] + kk[t] * g->d[t];
                            ok = ox >= 0 && ox < g->out[t];
                            off = off * g->out[t] + ox;
                        }
                        if (ok)
                            for (int64_t m = 0; m < cg.Mg; m++)
                                yb[(nn * cg.M + gi * cg.Mg + m) * osz + off] += xv * wb[(ch * cg.Mg + m) * ksz + q];
                        q++;
                    } while (kiln_index_next(nsp, g->k, kk));
                } while (kiln_index_next(nsp, g->in, i));
            }
    store_f64(y, yb);
done:
    free(xb);
    free(wb);
    free(bb);
    free(yb);
    return st;
}

/* --------------------------------------------------------------- pools -- */

typedef enum pool_kind { POOL_AVG, POOL_MAX, POOL_LP } pool_kind;

typedef struct pool_cfg {
    kiln_conv_geom g;
    bool count_include_pad;
    int storage_order;
    double p; /* LpPool exponent */
} pool_cfg;

/* xd: dims of X (rank = nsp + 2; entries may be -1). */
static kiln_status pool_cfg_make(const kiln_node *n, pool_kind kind, int rank, const int64_t *xd, pool_cfg *pc)
{
    kiln_status st;
    if (rank < 3) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input rank %d: pooling needs rank >= 3", rank);
    if ((st = kiln_conv_window_attrs(n, rank - 2, NULL, &pc->g))) return st;
    for (int i = 0; i < rank - 2; i++) pc->g.in[i] = xd[2 + i];
    int64_t ceil_mode = kind == POOL_LP ? 0 : kiln_attr_int(n, "ceil_mode", 0);
    int64_t cip = kind == POOL_AVG ? kiln_attr_int(n, "count_include_pad", 0) : 0;
    int64_t so = kind == POOL_MAX ? kiln_attr_int(n, "storage_order", 0) : 0;
    if (ceil_mode < 0 || ceil_mode > 1 || cip < 0 || cip > 1 || so < 0 || so > 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "ceil_mode, count_include_pad and storage_order must be 0 or 1");
    pc->count_include_pad = cip == 1;
    pc->storage_order = (int)so;
    pc->p = 2.0;
    if (kind == POOL_LP) {
        const kiln_attr *a = kiln_attr_find(n, "p");
        if (a) pc->p = a->type == KILN_ATTR_FLOAT ? (double)a->f : (double)a->i;
        if (!(pc->p >= 1.0 && pc->p <= 1e6))
            return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "LpPool p = %g is not supported (need p >= 1)", pc->p);
    }
    kiln_auto_pad ap;
    if ((st = kiln_conv_auto_pad(n, &ap))) return st;
    return kiln_conv_window_out(n, &pc->g, ap, ceil_mode == 1);
}

static kiln_status pool_infer(kiln_infer_ctx *c, pool_kind kind)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0];
    kiln_status st;
    if (!x) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X is required");
    if (kind == POOL_MAX && (x->dtype == KILN_I8 || x->dtype == KILN_U8)) {
        /* MaxPool also takes 8-bit integers */
    } else if ((st = need_float(n, x->dtype, "X"))) {
        return st;
    }
    const int64_t *ks;
    int nsp = kiln_attr_ints(n, "kernel_shape", &ks);
    if (nsp < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "attribute kernel_shape is required");
    if (nsp + 2 > KILN_MAX_RANK) return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "too many spatial dims");
    if (x->rank >= 0 && x->rank != nsp + 2)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input rank %d does not match kernel_shape of %d dims", x->rank,
                                nsp);
    int rank = nsp + 2;
    int64_t xd[KILN_MAX_RANK], od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++) xd[i] = vdim(x, i);
    pool_cfg pc;
    if ((st = pool_cfg_make(n, kind, rank, xd, &pc))) return st;
    for (int i = 0; i < rank; i++) {
        bool keep = i < 2 || pc.g.keep[i - 2];
        od[i] = keep ? xd[i] : pc.g.out[i - 2];
        os[i] = keep ? vsym(x, i) : 0;
    }
    set_out(c->out[0], x->dtype, rank, od, os);
    if (c->n_out > 1 && c->out[1]) set_out(c->out[1], KILN_I64, rank, od, os);
    return KILN_OK;
}

static kiln_status pool_eval(const kiln_node *n, pool_kind kind, const kiln_tensor *x, kiln_tensor *y,
                             kiln_tensor *ind)
{
    pool_cfg pc;
    kiln_status st = pool_cfg_make(n, kind, x->rank, x->dims, &pc);
    if (st) return st;
    const kiln_conv_geom *g = &pc.g;
    int nsp = g->nsp;
    if (y->numel == 0) return KILN_OK;
    double *xb = load_f64(x), *yb = alloc_n(y->numel, sizeof(double));
    if (!xb || !yb) {
        free(xb);
        free(yb);
        return oom(n);
    }
    int64_t *ib = ind ? ind->data : NULL;
    int64_t isz = prod(nsp, g->in), osz = prod(nsp, g->out);
    int64_t istride[KILN_MAX_RANK]; /* strides for the Indices output (storage_order) */
    if (pc.storage_order == 0) {
        kiln_strides(nsp, g->in, istride);
    } else {
        int64_t acc = 1;
        for (int i = 0; i < nsp; i++) {
            istride[i] = acc;
            acc *= g->in[i];
        }
    }
    int64_t nc_count = x->dims[0] * x->dims[1];
    for (int64_t nc = 0; nc < nc_count; nc++) {
        const double *xc = xb + nc * isz;
        int64_t o[KILN_MAX_RANK] = {0};
        for (int64_t p = 0; p < osz; p++) {
            /* per-dim range [lo, hi] of kernel taps inside the input, and the pad-inclusive count */
            int64_t lo[KILN_MAX_RANK], span[KILN_MAX_RANK], start[KILN_MAX_RANK];
            int64_t valid = 1;  /* at most the input size */
            double padded = 1; /* kernel volume can exceed int64 for absurd attributes */
            for (int i = 0; i < nsp; i++) {
                int64_t st0 = o[i] * g->s[i] - g->pb[i], d = g->d[i];
                int64_t l = st0 >= 0 ? 0 : (-st0 + d - 1) / d;
                int64_t h = min_i64(g->k[i] - 1, floor_div(g->in[i] - 1 - st0, d));
                int64_t hp = min_i64(g->k[i] - 1, floor_div(g->in[i] + g->pe[i] - 1 - st0, d));
                start[i] = st0;
                lo[i] = l;
                span[i] = h >= l ? h - l + 1 : 0;
                valid *= span[i];
                padded *= hp + 1 > 0 ? (double)(hp + 1) : 0.0;
            }
            double acc = kind == POOL_MAX ? -INFINITY : 0.0;
            int64_t best = -1;
            if (valid > 0) {
                int64_t t[KILN_MAX_RANK] = {0};
                do {
                    int64_t off = 0, ioff = 0;
                    for (int i = 0; i < nsp; i++) {
                        int64_t ix = start[i] + (lo[i] + t[i]) * g->d[i];
                        off = off * g->in[i] + ix;
                        ioff += ix * istride[i];
                    }
                    double v = xc[off];
                    if (kind == POOL_MAX) {
                        if (best < 0 || v > acc) {
                            acc = v;
                            best = ioff;
                        }
                    } else if (kind == POOL_AVG) {
                        acc += v;
                    } else {
                        acc += pow(fabs(v), pc.p);
                    }
                } while (kiln_index_next(nsp, span, t));
            }
            double r = acc;
            if (kind == POOL_AVG) r = acc / (pc.count_include_pad ? padded : (double)valid);
            else if (kind == POOL_LP) r = pow(acc, 1.0 / pc.p);
            yb[nc * osz + p] = r;
            if (ib) ib[nc * osz + p] = best >= 0 ? nc * isz + best : -1;
            kiln_index_next(nsp, g->out, o);
        }
    }
    store_f64(y, yb);
    free(xb);
    free(yb);
    return KILN_OK;
}

kiln_status kiln_infer_AveragePool(kiln_infer_ctx *c) { return pool_infer(c, POOL_AVG); }
kiln_status kiln_infer_MaxPool(kiln_infer_ctx *c) { return pool_infer(c, POOL_MAX); }
kiln_status kiln_infer_LpPool(kiln_infer_ctx *c) { return pool_infer(c, POOL_LP); }

kiln_status kiln_eval_AveragePool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                  int n_out)
{
    (void)n_in;
    (void)n_out;
    return pool_eval(n, POOL_AVG, in[0], out[0], NULL);
}

kiln_status kiln_eval_MaxPool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                              int n_out)
{
    (void)n_in;
    kiln_tensor *ind = n_out > 1 ? out[1] : NULL;
    if (ind && ind->dtype != KILN_I64) return kiln_node_errorf(n, KILN_ERR_SHAPE, "Indices must be i64");
    return pool_eval(n, POOL_MAX, in[0], out[0], ind);
}

kiln_status kiln_eval_LpPool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                             int n_out)
{
    (void)n_in;
    (void)n_out;
    return pool_eval(n, POOL_LP, in[0], out[0], NULL);
}

static kiln_status global_pool_infer(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0];
    kiln_status st;
    if (!x) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X is required");
    if ((st = need_float(n, x->dtype, "X"))) return st;
    if (x->rank < 0) {
        set_unknown(c->out[0], x->dtype);
        return KILN_OK;
    }
    if (x->rank < 2) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input rank %d: need N x C x ...", x->rank);
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK] = {0};
    for (int i = 0; i < x->rank; i++) od[i] = i < 2 ? x->dims[i] : 1;
    os[0] = x->sym[0];
    os[1] = x->sym[1];
    set_out(c->out[0], x->dtype, x->rank, od, os);
    return KILN_OK;
}

static kiln_status global_pool_eval(const kiln_node *n, const kiln_tensor *x, kiln_tensor *y, bool is_max)
{
    int64_t nc_count = x->rank >= 2 ? x->dims[0] * x->dims[1] : 0;
    int64_t sz = prod(x->rank - 2, x->dims + 2);
    if (y->numel == 0) return KILN_OK;
    double *yb = alloc_n(y->numel, sizeof(double));
    if (!yb) return oom(n);
    const float *xf = x->dtype == KILN_F32 ? x->data : NULL;
    for (int64_t nc = 0; nc < nc_count; nc++) {
        double acc = is_max ? -INFINITY : 0.0;
        for (int64_t i = 0; i < sz; i++) {
            double v = xf ? (double)xf[nc * sz + i] : kiln_tensor_get(x, nc * sz + i);
            if (is_max) {
                if (i == 0 || v > acc) acc = v;
            } else {
                acc += v;
            }
        }
        yb[nc] = is_max ? acc : acc / (double)sz;
    }
    store_f64(y, yb);
    free(yb);
    return KILN_OK;
}

kiln_status kiln_infer_GlobalAveragePool(kiln_infer_ctx *c) { return global_pool_infer(c); }
kiln_status kiln_infer_GlobalMaxPool(kiln_infer_ctx *c) { return global_pool_infer(c); }

kiln_status kiln_eval_GlobalAveragePool(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                        kiln_tensor *const *out, int n_out)
{
    (void)n_in;
    (void)n_out;
    return global_pool_eval(n, in[0], out[0], false);
}

kiln_status kiln_eval_GlobalMaxPool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                    int n_out)
{
    (void)n_in;
    (void)n_out;
    return global_pool_eval(n, in[0], out[0], true);
}

/* ---------------------------------------------------------------- Gemm -- */

kiln_status kiln_infer_Gemm(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *a = c->in[0], *b = c->in[1], *cv = c->n_in > 2 ? c->in[2] : NULL;
    kiln_status st;
    if (!a || !b) return kiln_node_errorf(n, KILN_ERR_SHAPE, "A and B are required");
    if ((st = need_matmul_dtype(n, a->dtype, "A"))) return st;
    if ((st = need_same_dtype(n, a, b, "B"))) return st;
    if ((st = need_same_dtype(n, a, cv, "C"))) return st;
    if (a->rank >= 0 && a->rank != 2) return kiln_node_errorf(n, KILN_ERR_SHAPE, "A must be 2-D, has rank %d", a->rank);
    if (b->rank >= 0 && b->rank != 2) return kiln_node_errorf(n, KILN_ERR_SHAPE, "B must be 2-D, has rank %d", b->rank);
    int ta = kiln_attr_int(n, "transA", 0) != 0, tb = kiln_attr_int(n, "transB", 0) != 0;
    int64_t ka = vdim(a, ta ? 0 : 1), kb = vdim(b, tb ? 1 : 0);
    if (ka >= 0 && kb >= 0 && ka != kb)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "inner dims differ: A gives K=%lld, B gives K=%lld", (long long)ka,
                                (long long)kb);
    int64_t od[2] = {vdim(a, ta ? 1 : 0), vdim(b, tb ? 0 : 1)};
    int32_t os[2] = {vsym(a, ta ? 1 : 0), vsym(b, tb ? 0 : 1)};
    if (cv && cv->rank >= 0) {
        if (cv->rank > 2) return kiln_node_errorf(n, KILN_ERR_SHAPE, "C has rank %d, at most 2 allowed", cv->rank);
        for (int i = 0; i < cv->rank; i++) {
            int64_t d = cv->dims[i], want = od[2 - cv->rank + i];
            if (d >= 0 && d != 1 && want >= 0 && d != want)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "C dim %d (%lld) does not broadcast to %lld", i,
                                        (long long)d, (long long)want);
        }
    }
    set_out(c->out[0], a->dtype, 2, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Gemm(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    (void)n_out;
    const kiln_tensor *a = in[0], *b = in[1], *ct = n_in > 2 ? in[2] : NULL;
    kiln_tensor *y = out[0];
    bool ta = kiln_attr_int(n, "transA", 0) != 0, tb = kiln_attr_int(n, "transB", 0) != 0;
    float alpha = kiln_attr_float(n, "alpha", 1.0f), beta = kiln_attr_float(n, "beta", 1.0f);
    if (a->rank != 2 || b->rank != 2 || y->rank != 2) return kiln_node_errorf(n, KILN_ERR_SHAPE, "A and B must be 2-D");
    int64_t M = y->dims[0], N = y->dims[1], K = a->dims[ta ? 0 : 1];
    if (y->numel == 0) return KILN_OK;
    int64_t cst[2] = {0, 0};
    if (ct) kiln_bcast_strides(ct, 2, y->dims, cst);
    kiln_status st = KILN_OK;

    if (f32_path(a->dtype)) {
        float *ao, *bo, *co = NULL, *yo;
        const float *av = view_f32(a, &ao), *bv = view_f32(b, &bo), *cf = ct ? view_f32(ct, &co) : NULL;
        float *yv = out_f32(y, &yo);
        if (!av || !bv || (ct && !cf) || !yv) {
            st = oom(n);
        } else {
            for (int64_t m = 0; m < M; m++)
                for (int64_t j = 0; j < N; j++) yv[m * N + j] = cf ? beta * cf[m * cst[0] + j * cst[1]] : 0.0f;
            mat_view am = ta ? (mat_view){av, 1, M} : (mat_view){av, K, 1};
            mat_view bm = tb ? (mat_view){bv, 1, K} : (mat_view){bv, N, 1};
            if (matmul_f32(M, N, K, &am, alpha, &bm, yv, N)) {
                finish_f32(y, yo);
                yo = NULL;
            } else {
                st = oom(n);
            }
        }
        free(ao);
        free(bo);
        free(co);
        free(yo);
        return st;
    }

    /* f64 and integers: double accumulation */
    double *ab = load_f64(a), *bb = load_f64(b), *cb = ct ? load_f64(ct) : NULL, *yb = alloc_n(y->numel, 8);
    if (!ab || !bb || (ct && !cb) || !yb) {
        st = oom(n);
    } else {
        for (int64_t m = 0; m < M; m++) {
            double *yr = yb + m * N;
            for (int64_t j = 0; j < N; j++) yr[j] = cb ? (double)beta * cb[m * cst[0] + j * cst[1]] : 0.0;
            for (int64_t k = 0; k < K; k++) {
                double s = (double)alpha * ab[ta ? k * M + m : m * K + k];
                for (int64_t j = 0; j < N; j++) yr[j] += s * bb[tb ? j * K + k : k * N + j];
            }
        }
        store_f64(y, yb);
    }
    free(ab);
    free(bb);
    free(cb);
    free(yb);
    return st;
}

/* -------------------------------------------------------------- MatMul -- */

kiln_status kiln_infer_MatMul(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *a = c->in[0], *b = c->in[1];
    kiln_status st;
    if (!a || !b) return kiln_node_errorf(n, KILN_ERR_SHAPE, "A and B are required");
    if ((st = need_matmul_dtype(n, a->dtype, "A"))) return st;
    if ((st = need_same_dtype(n, a, b, "B"))) return st;
    if (a->rank < 0 || b->rank < 0) {
        set_unknown(c->out[0], a->dtype);
        return KILN_OK;
    }
    int ra = a->rank, rb = b->rank;
    if (ra < 1 || rb < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "MatMul operands must have rank >= 1");
    int64_t ka = a->dims[ra - 1], kb = b->dims[rb >= 2 ? rb - 2 : 0];
    if (ka >= 0 && kb >= 0 && ka != kb)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "inner dims differ: %lld vs %lld", (long long)ka, (long long)kb);
    /* batch dims broadcast numpy-style */
    kiln_value ba, bbv, bo;
    memset(&ba, 0, sizeof ba);
    memset(&bbv, 0, sizeof bbv);
    memset(&bo, 0, sizeof bo);
    ba.rank = ra > 2 ? ra - 2 : 0;
    bbv.rank = rb > 2 ? rb - 2 : 0;
    for (int i = 0; i < ba.rank; i++) {
        ba.dims[i] = a->dims[i];
        ba.sym[i] = a->sym[i];
    }
    for (int i = 0; i < bbv.rank; i++) {
        bbv.dims[i] = b->dims[i];
        bbv.sym[i] = b->sym[i];
    }
    const kiln_value *vals[2] = {&ba, &bbv};
    if ((st = kiln_infer_broadcast(n, vals, 2, &bo))) return st;
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    int r = bo.rank;
    for (int i = 0; i < r; i++) {
        od[i] = bo.dims[i];
        os[i] = bo.sym[i];
    }
    if (ra >= 2) {
        od[r] = a->dims[ra - 2];
        os[r++] = a->sym[ra - 2];
    }
    if (rb >= 2) {
        od[r] = b->dims[rb - 1];
        os[r++] = b->sym[rb - 1];
    }
    set_out(c->out[0], a->dtype, r, od, os);
    return KILN_OK;
}

/* Element strides of an operand's batch dims (xr of them, right-aligned) against the
 * output's nb batch dims; 0 where broadcast. mat: elements per matrix. */
static void batch_strides(int nb, int xr, const int64_t *xdims, int64_t mat, int64_t *str)
{
    int64_t acc = mat;
    for (int i = nb - 1; i >= 0; i--) {
        int j = i - (nb - xr);
        if (j >= 0) {
            str[i] = xdims[j] == 1 ? 0 : acc;
            acc *= xdims[j];
        } else {
            str[i] = 0;
        }
    }
}

kiln_status kiln_eval_MatMul(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    (void)n_in;
    (void)n_out;
    const kiln_tensor *a = in[0], *b = in[1];
    kiln_tensor *y = out[0];
    int ra = a->rank, rb = b->rank;
    if (ra < 1 || rb < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "MatMul operands must have rank >= 1");
    int64_t M = ra >= 2 ? a->dims[ra - 2] : 1, K = a->dims[ra - 1], N = rb >= 2 ? b->dims[rb - 1] : 1;
    if (b->dims[rb >= 2 ? rb - 2 : 0] != K) return kiln_node_errorf(n, KILN_ERR_SHAPE, "inner dims differ");
    int nb = y->rank - (ra >= 2) - (rb >= 2);
    if (nb < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "output rank does not fit the operands");
    int64_t astr[KILN_MAX_RANK], bstr[KILN_MAX_RANK], bi[KILN_MAX_RANK] = {0};
    batch_strides(nb, ra > 2 ? ra - 2 : 0, a->dims, M * K, astr);
    batch_strides(nb, rb > 2 ? rb - 2 : 0, b->dims, K * N, bstr);
    if (y->numel == 0) return KILN_OK;
    int64_t nbatch = prod(nb, y->dims), mn = M * N;
    kiln_status st = KILN_OK;

    if (f32_path(a->dtype)) {
        float *ao, *bo, *yo;
        const float *av = view_f32(a, &ao), *bv = view_f32(b, &bo);
        float *yv = out_f32(y, &yo);
        if (!av || !bv || !yv) {
            st = oom(n);
        } else {
            memset(yv, 0, (size_t)y->numel * sizeof(float));
            for (int64_t t = 0; t < nbatch && !st; t++) {
                int64_t aoff = 0, boff = 0;
                for (int i = 0; i < nb; i++) {
                    aoff += bi[i] * astr[i];
                    boff += bi[i] * bstr[i];
                }
                mat_view am = {av + aoff, K, 1}, bm = {bv + boff, N, 1};
                if (!matmul_f32(M, N, K, &am, 1.0f, &bm, yv + t * mn, N)) st = oom(n);
                kiln_index_next(nb, y->dims, bi);
            }
            if (!st) {
                finish_f32(y, yo);
                yo = NULL;
            }
        }
        free(ao);
        free(bo);
        free(yo);
        return st;
    }

    bool is_int = !kiln_dtype_is_float(a->dtype);
    double *ad = NULL, *bd = NULL, *yd = NULL;
    uint64_t *au = NULL, *bu = NULL, *yu = NULL; /* integers wrap modulo 2^64, exactly */
    if (is_int) {
        au = alloc_n(a->numel, 8);
        bu = alloc_n(b->numel, 8);
        yu = alloc_n(y->numel, 8);
        if (au && bu && yu) {
            for (int64_t i = 0; i < a->numel; i++) au[i] = (uint64_t)kiln_tensor_get_i64(a, i);
            for (int64_t i = 0; i < b->numel; i++) bu[i] = (uint64_t)kiln_tensor_get_i64(b, i);
            memset(yu, 0, (size_t)y->numel * 8);
        }
    } else {
        ad = load_f64(a);
        bd = load_f64(b);
        yd = alloc_n(y->numel, 8);
        if (yd) memset(yd, 0, (size_t)y->numel * 8);
    }
    if (is_int ? !(au && bu && yu) : !(ad && bd && yd)) {
        st = oom(n);
        goto done;
    }
    for (int64_t t = 0; t < nbatch; t++) {
        int64_t aoff = 0, boff = 0;
        for (int i = 0; i < nb; i++) {
            aoff += bi[i] * astr[i];
            boff += bi[i] * bstr[i];
        }
        for (int64_t m = 0; m < M; m++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t j = 0; j < N; j++) {
                    int64_t yi = t * mn + m * N + j, ai = aoff + m * K + k, bj = boff + k * N + j;
                    if (is_int) yu[yi] += au[ai] * bu[bj];
                    else yd[yi] += ad[ai] * bd[bj];
                }
        kiln_index_next(nb, y->dims, bi);
    }
    if (is_int)
        for (int64_t i = 0; i < y->numel; i++) kiln_tensor_set_i64(y, i, (int64_t)yu[i]);
    else
        store_f64(y, yd);
done:
    free(ad);
    free(bd);
    free(yd);
    free(au);
    free(bu);
    free(yu);
    return st;
}

/* -------------------------------------------------------------- Einsum -- */

/* Labels: 'A'-'Z' -> 0..25, 'a'-'z' -> 26..51, ellipsis dims -> 52.. (right-aligned). */
#define EIN_LETTERS 52
#define EIN_MAX_LAB (EIN_LETTERS + KILN_MAX_RANK)
#define EIN_MAX_IN 32

typedef struct ein_spec {
    int n_in;
    int rank[EIN_MAX_IN];
    int lab[EIN_MAX_IN][KILN_MAX_RANK];
    int out_rank;
    int out_lab[KILN_MAX_RANK];
    int n_ell;
    bool used[EIN_MAX_LAB];
} ein_spec;

static int ein_letter(char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return 26 + (ch - 'a');
    return -1;
}

/* One term: letters (ids) and the position of "..." among them (-1: none). */
typedef struct ein_term {
    int n;
    int ids[KILN_MAX_RANK];
    int ell;
} ein_term;

static kiln_status ein_term_parse(const kiln_node *n, const char *s, size_t len, ein_term *t)
{
    t->n = 0;
    t->ell = -1;
    for (size_t i = 0; i < len;) {
        if (s[i] == '.') {
            if (i + 3 > len || s[i + 1] != '.' || s[i + 2] != '.' || t->ell >= 0)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad ellipsis in einsum equation");
            t->ell = t->n;
            i += 3;
            continue;
        }
        int id = ein_letter(s[i]);
        if (id < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad character '%c' in einsum equation", s[i]);
        if (t->n >= KILN_MAX_RANK) return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "einsum term has too many labels");
        t->ids[t->n++] = id;
        i++;
    }
    return KILN_OK;
}

/* Parses the equation for inputs of the given ranks (every rank known). */
static kiln_status ein_parse(const kiln_node *n, int n_in, const int *ranks, ein_spec *sp)
{
    kiln_status st;
    const char *eq = kiln_attr_str(n, "equation", NULL);
    if (!eq) return kiln_node_errorf(n, KILN_ERR_SHAPE, "attribute equation is required");
    if (n_in > EIN_MAX_IN) return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "too many einsum operands");
    char buf[1024];
    size_t len = 0;
    for (const char *p = eq; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n') continue;
        if (len + 1 >= sizeof buf) return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "einsum equation is too long");
        buf[len++] = *p;
    }
    buf[len] = 0;
    memset(sp, 0, sizeof *sp);
    sp->n_in = n_in;
    char *arrow = strstr(buf, "->");
    size_t lhs_len = arrow ? (size_t)(arrow - buf) : len;
    ein_term terms[EIN_MAX_IN];
    int count[EIN_MAX_LAB] = {0};
    size_t pos = 0;
    for (int i = 0; i < n_in; i++) {
        size_t end = pos;
        while (end < lhs_len && buf[end] != ',') end++;
        if (i < n_in - 1 ? end >= lhs_len : end != lhs_len)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "einsum equation '%s' does not have %d operand terms", eq, n_in);
        if ((st = ein_term_parse(n, buf + pos, end - pos, &terms[i]))) return st;
        int ell = ranks[i] - terms[i].n;
        if (terms[i].ell < 0 ? ell != 0 : ell < 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "einsum operand %d has rank %d but its term has %d labels", i,
                                    ranks[i], terms[i].n);
        if (ell > sp->n_ell) sp->n_ell = ell;
        pos = end + 1;
    }
    if (n_in == 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "einsum needs at least one operand");
    for (int i = 0; i < n_in; i++) {
        ein_term *t = &terms[i];
        int ell = ranks[i] - t->n, r = 0;
        for (int j = 0; j < t->n; j++) {
            if (j == t->ell)
                for (int e = 0; e < ell; e++) sp->lab[i][r++] = EIN_LETTERS + sp->n_ell - ell + e;
            sp->lab[i][r++] = t->ids[j];
            count[t->ids[j]]++;
        }
        if (t->ell == t->n)
            for (int e = 0; e < ell; e++) sp->lab[i][r++] = EIN_LETTERS + sp->n_ell - ell + e;
        sp->rank[i] = r;
        for (int j = 0; j < r; j++) sp->used[sp->lab[i][j]] = true;
    }
    if (arrow) {
        ein_term t;
        if ((st = ein_term_parse(n, arrow + 2, strlen(arrow + 2), &t))) return st;
        int r = 0;
        bool seen[EIN_MAX_LAB] = {false};
        for (int j = 0; j <= t.n; j++) {
            if (j == t.ell)
                for (int e = 0; e < sp->n_ell; e++) {
                    if (r >= KILN_MAX_RANK) return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "einsum output rank too large");
                    sp->out_lab[r++] = EIN_LETTERS + e;
                }
            if (j == t.n) break;
            int id = t.ids[j];
            if (!count[id] || seen[id])
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "einsum output label '%c' is unknown or repeated",
                                        id < 26 ? 'A' + id : 'a' + id - 26);
            if (r >= KILN_MAX_RANK) return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "einsum output rank too large");
            seen[id] = true;
            sp->out_lab[r++] = id;
        }
        sp->out_rank = r;
    } else {
        /* implicit output: broadcast dims, then labels seen exactly once, alphabetically */
        int r = 0;
        for (int e = 0; e < sp->n_ell; e++) sp->out_lab[r++] = EIN_LETTERS + e;
        for (int id = 0; id < EIN_LETTERS; id++)
            if (count[id] == 1) {
                if (r >= KILN_MAX_RANK) return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "einsum output rank too large");
                sp->out_lab[r++] = id;
            }
        sp->out_rank = r;
    }
    return KILN_OK;
}

/* Size of each label from operand dims (-1 unknown). Ellipsis dims broadcast against 1. */
static kiln_status ein_sizes(const kiln_node *n, const ein_spec *sp, const int64_t *const *dims,
                             const int32_t *const *syms, int64_t *size, int32_t *sym)
{
    for (int l = 0; l < EIN_MAX_LAB; l++) {
        size[l] = -2; /* unset */
        sym[l] = 0;
    }
    for (int i = 0; i < sp->n_in; i++)
        for (int j = 0; j < sp->rank[i]; j++) {
            int l = sp->lab[i][j];
            int64_t d = dims[i][j], *cur = &size[l];
            int32_t s = syms ? syms[i][j] : 0;
            if (*cur == -2 || (l >= EIN_LETTERS && *cur == 1 && d != 1)) {
                *cur = d;
                sym[l] = s;
            } else if (d >= 0 && *cur >= 0 && d != *cur && !(l >= EIN_LETTERS && d == 1)) {
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "einsum operand %d dim %d is %lld, expected %lld", i, j,
                                        (long long)d, (long long)*cur);
            } else if (*cur < 0 && d >= 0 && !(l >= EIN_LETTERS && d == 1)) {
                *cur = d;
                sym[l] = s;
            }
        }
    return KILN_OK;
}

kiln_status kiln_infer_Einsum(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    kiln_status st;
    if (c->n_in < 1 || !c->in[0]) return kiln_node_errorf(n, KILN_ERR_SHAPE, "einsum needs operands");
    if (c->n_in > EIN_MAX_IN) return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "too many einsum operands");
    kiln_dtype dt = c->in[0]->dtype;
    if (!kiln_dtype_is_float(dt) && !kiln_dtype_is_int(dt))
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "einsum on dtype %s is not supported", kiln_dtype_name(dt));
    int ranks[EIN_MAX_IN];
    const int64_t *dims[EIN_MAX_IN];
    const int32_t *syms[EIN_MAX_IN];
    bool rank_known = true;
    for (int i = 0; i < c->n_in; i++) {
        if (!c->in[i]) return kiln_node_errorf(n, KILN_ERR_SHAPE, "einsum operand %d is missing", i);
        if ((st = need_same_dtype(n, c->in[0], c->in[i], "operand"))) return st;
        ranks[i] = c->in[i]->rank;
        dims[i] = c->in[i]->dims;
        syms[i] = c->in[i]->sym;
        if (ranks[i] < 0) rank_known = false;
    }
    if (!rank_known) {
        set_unknown(c->out[0], dt);
        return KILN_OK;
    }
    ein_spec sp;
    int64_t size[EIN_MAX_LAB];
    int32_t sym[EIN_MAX_LAB];
    if ((st = ein_parse(n, c->n_in, ranks, &sp))) return st;
    if ((st = ein_sizes(n, &sp, dims, syms, size, sym))) return st;
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    for (int i = 0; i < sp.out_rank; i++) {
        od[i] = size[sp.out_lab[i]] < 0 ? -1 : size[sp.out_lab[i]];
        os[i] = sym[sp.out_lab[i]];
    }
    set_out(c->out[0], dt, sp.out_rank, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Einsum(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    (void)n_out;
    kiln_status st;
    if (n_in < 1 || n_in > EIN_MAX_IN) return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad einsum operand count");
    int ranks[EIN_MAX_IN];
    const int64_t *dims[EIN_MAX_IN];
    for (int i = 0; i < n_in; i++) {
        ranks[i] = in[i]->rank;
        dims[i] = in[i]->dims;
    }
    ein_spec sp;
    int64_t size[EIN_MAX_LAB];
    int32_t sym[EIN_MAX_LAB];
    if ((st = ein_parse(n, n_in, ranks, &sp))) return st;
    if ((st = ein_sizes(n, &sp, dims, NULL, size, sym))) return st;
    kiln_tensor *y = out[0];
    /* the loop nest runs over every used label; per-label strides of operands and output */
    int labs[EIN_MAX_LAB], nl = 0;
    int64_t ldim[EIN_MAX_LAB], total = 1;
    for (int l = 0; l < EIN_MAX_LAB; l++)
        if (sp.used[l]) {
            labs[nl] = l;
            ldim[nl] = size[l];
            if (!kiln_mul_dims(total, size[l], &total))
                return kiln_node_errorf(n, KILN_ERR_LIMIT, "einsum iteration space is too large");
            nl++;
        }
    int64_t (*istr)[EIN_MAX_LAB] = calloc((size_t)n_in, sizeof *istr);
    int64_t ostr[EIN_MAX_LAB] = {0};
    bool is_int = !kiln_dtype_is_float(y->dtype);
    double *acc = NULL, **opd = calloc((size_t)n_in, sizeof *opd);
    uint64_t *acci = NULL, **opi = calloc((size_t)n_in, sizeof *opi); /* integers wrap exactly */
    if (!istr || !opd || !opi) {
        st = oom(n);
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        int64_t str[KILN_MAX_RANK];
        kiln_strides(in[i]->rank, in[i]->dims, str);
        for (int j = 0; j < in[i]->rank; j++)
            for (int q = 0; q < nl; q++)
                if (labs[q] == sp.lab[i][j] && in[i]->dims[j] != 1) istr[i][q] += str[j];
        if (is_int) {
            opi[i] = alloc_n(in[i]->numel, 8);
            if (!opi[i]) break;
            for (int64_t e = 0; e < in[i]->numel; e++) opi[i][e] = (uint64_t)kiln_tensor_get_i64(in[i], e);
        } else {
            opd[i] = load_f64(in[i]);
            if (!opd[i]) break;
        }
    }
    {
        int64_t str[KILN_MAX_RANK];
        kiln_strides(y->rank, y->dims, str);
        for (int j = 0; j < sp.out_rank; j++)
            for (int q = 0; q < nl; q++)
                if (labs[q] == sp.out_lab[j]) ostr[q] += str[j];
    }
    if (is_int) acci = calloc((size_t)(y->numel ? y->numel : 1), 8);
    else acc = calloc((size_t)(y->numel ? y->numel : 1), 8);
    if (!(is_int ? (void *)acci : (void *)acc) || !(is_int ? (void *)opi[n_in - 1] : (void *)opd[n_in - 1])) {
        st = oom(n);
        goto done;
    }
    if (total > 0) {
        int64_t idx[EIN_MAX_LAB] = {0};
        for (int64_t it = 0; it < total; it++) {
            int64_t yo = 0;
            for (int q = 0; q < nl; q++) yo += idx[q] * ostr[q];
            if (is_int) {
                uint64_t p = 1;
                for (int i = 0; i < n_in; i++) {
                    int64_t off = 0;
                    for (int q = 0; q < nl; q++) off += idx[q] * istr[i][q];
                    p *= opi[i][off];
                }
                acci[yo] += p;
            } else {
                double p = 1.0;
                for (int i = 0; i < n_in; i++) {
                    int64_t off = 0;
                    for (int q = 0; q < nl; q++) off += idx[q] * istr[i][q];
                    p *= opd[i][off];
                }
                acc[yo] += p;
            }
            for (int q = nl - 1; q >= 0; q--) {
                if (++idx[q] < ldim[q]) break;
                idx[q] = 0;
            }
        }
    }
    if (is_int)
        for (int64_t e = 0; e < y->numel; e++) kiln_tensor_set_i64(y, e, (int64_t)acci[e]);
    else
        store_f64(y, acc);
    st = KILN_OK;
done:
    for (int i = 0; i < n_in; i++) {
        if (opd) free(opd[i]);
        if (opi) free(opi[i]);
    }
    free(opd);
    free(opi);
    free(istr);
    free(acc);
    free(acci);
    return st;
}
