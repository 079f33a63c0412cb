/* cli.h — shared pieces of the kiln command-line tool. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include "frontend.h"
#include "pass.h"

int kiln_cmd_conformance(int argc, char **argv);
int kiln_cmd_optimize(int argc, char **argv);
int kiln_cmd_build(int argc, char **argv); /* tools/build.c */
/* Parses a pass-pipeline option at argv[*i] (-O<n>, --passes, --disable-pass, --dump-ir-after,
 * --precision), advancing *i past its value. 1: consumed, 0: not a pass option, -1: bad
 * (with *err). */
int kiln_cli_pass_option(int argc, char **argv, int *i, kiln_pipeline_opts *o, const char **err);
/* The pass options of a GPU build (kiln build, and kiln compare --per-layer replaying one):
 * today none are changed (codegen runs select-layout's NHWC regions); buf (>= 512 bytes) may
 * hold a new o->disabled list. */
void kiln_cli_gpu_pass_options(kiln_pipeline_opts *o, char *buf, size_t len);

/* Element-wise difference of two tensors of one dtype and element count: elements outside
 * |a-e| <= atol + rtol*|e| (NaN matches NaN, inf matches the same inf; exact for ints), the
 * worst (floats) or first (ints) of them, the max abs error (NaN if a NaN appears where none
 * is expected) and the relative L2 error sqrt(sum (a-e)^2 / sum e^2). */
typedef struct kiln_tensor_diff {
    int64_t bad, worst;
    double max_abs, rel_l2;
} kiln_tensor_diff;
void kiln_tensor_diff_compute(const kiln_tensor *got, const kiln_tensor *exp, double rtol, double atol,
                              kiln_tensor_diff *d);
/* Print "kiln CMD: WHAT" to stderr; returns 1 (the exit status of a failed command). */
int kiln_cli_fail(const char *cmd, const char *what);

/* Compare got against expected: dtype and shape must match; floats within
 * |a-e| <= atol + rtol*|e| (NaN matches NaN), ints and bool exactly. On mismatch writes a
 * description of the worst element into msg and returns false. */
bool kiln_tensor_compare(const kiln_tensor *got, const kiln_tensor *exp, double rtol, double atol, char *msg,
                         size_t len);
/* A zeroed tensor shaped like graph input i, unknown dims set to 1 (as the onnx runner does). */
kiln_tensor *kiln_cli_input_tensor(const kiln_graph *g, int i);
void kiln_format_dims(const kiln_tensor *t, char *buf, size_t len);

/* Seeded random values as `kiln run` makes them (floats uniform in [-1, 1), integers in
 * [0, 10), bool coin flips; splitmix64, so a seed gives the same data everywhere). */
void kiln_cli_fill_random(kiln_tensor *t, uint64_t *seed);
kiln_tensor *kiln_cli_random_input(const kiln_graph *g, int i, uint64_t *seed);
/* NAME -> a file-name-safe NAME; one summary line (dtype, shape, min/max/mean) per tensor. */
void kiln_cli_safe_name(const char *in, char *out, size_t len);
void kiln_cli_print_stats(const char *name, const kiln_tensor *t);
/* True if the file starts with the bundle magic (a .kiln file). */
bool kiln_cli_is_bundle(const char *path);
/* Bundle commands (tools/bundle_cmds.c). `argv` excludes the command name. */
int kiln_cmd_run_bundle(int argc, char **argv);
int kiln_cmd_bench(int argc, char **argv);
int kiln_cmd_inspect_bundle(int argc, char **argv);
int kiln_cmd_compare(int argc, char **argv);

#endif
