/* conv_geom.h — convolution / sliding-window geometry shared by the IR op rules
 * (Conv, ConvTranspose, pools in ops_nn.c; ConvInteger, QLinearConv, Col2Im, MaxUnpool in
 * ops_quant.c) and by code generators that need to read convolution attributes.
 *
 * Internal to the library (not part of the public kiln API). Everything here works on
 * plain dims (int64_t arrays, -1 = unknown) and on a node's attributes: no kiln_tensor
 * data is touched, so it serves shape inference, the CPU reference and codegen alike.
 *
 * How to use
 * ----------
 *  Conv-like ops (X [N, C, D1...], W [M, C/group, k1...]):
 *
 *      kiln_conv_geom g;
 *      kiln_status st = kiln_conv_geom_make(node, rank, x_dims, w_dims, &g);
 *      if (st) return st;              // error already recorded on the node
 *      int64_t od[KILN_MAX_RANK];
 *      int r = kiln_conv_geom_out_dims(&g, od); // [N, M, O1...], r == rank
 *
 *    g.k/s/d/pb/pe hold kernel shape, strides, dilations and the *resolved* pads (auto_pad
 *    SAME_* / VALID already applied), g.out the output spatial dims, g.group/Cg/Mg the
 *    channel grouping. Output position o reads input position o*s - pb + kk*d.
 *
 *  ConvTranspose (X [N, C, D...], W [C, M/group, k...]): kiln_conv_transpose_geom_make.
 *    Its pads may come out negative when output_shape asks for more than the natural size;
 *    input position i scatters to output position i*s - pb + kk*d.
 *
 *  Pools and other window ops build the geometry in steps:
 *
 *      kiln_conv_window_attrs(node, nsp, NULL, &g);  // kernel_shape (required), strides, ...
 *      for (i...) g.in[i] = x_dims[2 + i];
 *      kiln_auto_pad ap; kiln_conv_auto_pad(node, &ap);
 *      kiln_conv_window_out(node, &g, ap, ceil_mode);
 *
 *  kiln_conv_attr_ints reads one INTS attribute with a fixed count and range check, for
 *  ops with conv-style attributes that are not a convolution (Col2Im, MaxUnpool).
 *
 * Every function returns KILN_OK or the status of an error already recorded on the node
 * (kiln_node_errorf: it names the node and op, the attribute and the offending value).
 * Unknown dims (-1) propagate to unknown outputs; they are never an error.
 *
 * Limits: kernel/stride/dilation/pad/group values above KILN_CONV_ATTR_MAX and spatial
 * dims above KILN_CONV_DIM_MAX are rejected, which keeps all window arithmetic (and that
 * of callers indexing with these values) far from int64 overflow.
 */
#ifndef KILN_CONV_GEOM_H
#define KILN_CONV_GEOM_H

#include "ir.h"

#include <stdbool.h>
#include <stdint.h>

#define KILN_CONV_ATTR_MAX ((int64_t)INT32_MAX)
#define KILN_CONV_DIM_MAX ((int64_t)1 << 48)

typedef enum kiln_auto_pad {
    KILN_AUTO_PAD_NOTSET,
    KILN_AUTO_PAD_SAME_UPPER, /* odd total pad goes at the end */
    KILN_AUTO_PAD_SAME_LOWER, /* odd total pad goes at the beginning */
    KILN_AUTO_PAD_VALID       /* no padding */
} kiln_auto_pad;

/* Geometry of the nsp spatial dims of a window op, plus the channel layout of a
 * convolution. -1 = unknown. Window ops (pools) leave the channel fields at 0. */
typedef struct kiln_conv_geom {
    int nsp;                                      /* number of spatial dims (rank - 2) */
    kiln_auto_pad auto_pad;                       /* as read from the node */
    int64_t k[KILN_MAX_RANK];                     /* kernel shape */
    int64_t s[KILN_MAX_RANK];                     /* strides */
    int64_t d[KILN_MAX_RANK];                     /* dilations */
    int64_t pb[KILN_MAX_RANK], pe[KILN_MAX_RANK]; /* pads at begin / end, auto_pad resolved */
    int64_t in[KILN_MAX_RANK], out[KILN_MAX_RANK]; /* input / output spatial dims */
    bool keep[KILN_MAX_RANK];                     /* out dim provably equals in dim (forward ops) */
    int64_t N, C, M, group, Cg, Mg;               /* batch, in/out channels, group, per-group C/M */
} kiln_conv_geom;

/* Reads INTS attribute name: exactly count values, each in [lo, KILN_CONV_ATTR_MAX], into
 * out; every out[i] = def when the attribute is absent. */
kiln_status kiln_conv_attr_ints(const kiln_node *n, const char *name, int count, int64_t lo, int64_t def,
                                int64_t *out);

/* Reads the auto_pad attribute (absent or "" = NOTSET). */
kiln_status kiln_conv_auto_pad(const kiln_node *n, kiln_auto_pad *ap);

/* Zeroes *g, sets g->nsp and reads kernel_shape, strides, dilations and pads (unresolved).
 * wk: the weight's kernel dims (-1 unknown), checked against kernel_shape and used when
 * kernel_shape is absent; NULL for ops where kernel_shape is required (pools). */
kiln_status kiln_conv_window_attrs(const kiln_node *n, int nsp, const int64_t *wk, kiln_conv_geom *g);

/* Forward window op: from g->in, g->k/s/d and the pads, resolves auto_pad ap into
 * g->pb/pe and computes g->out and g->keep (ceil_mode: pool output rounding). */
kiln_status kiln_conv_window_out(const kiln_node *n, kiln_conv_geom *g, kiln_auto_pad ap, bool ceil_mode);

/* Conv, ConvInteger, QLinearConv: the whole geometry from the dims of X [N, C, D...] and
 * W [M, C/group, k...] (rank >= 3 entries each, -1 unknown) and the node's attributes
 * (kernel_shape, strides, dilations, pads, group, auto_pad). */
kiln_status kiln_conv_geom_make(const kiln_node *n, int rank, const int64_t *xd, const int64_t *wd,
                                kiln_conv_geom *g);

/* ConvTranspose: X [N, C, D...], W [C, M/group, k...] -> Y [N, M, O...], with
 * output_padding and output_shape besides the Conv attributes. g->keep is all false. */
kiln_status kiln_conv_transpose_geom_make(const kiln_node *n, int rank, const int64_t *xd, const int64_t *wd,
                                          kiln_conv_geom *g);

/* Writes the output dims [N, M, out...] of a convolution geometry; returns the rank. */
int kiln_conv_geom_out_dims(const kiln_conv_geom *g, int64_t *od);

#endif
