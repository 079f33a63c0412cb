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

/* Compare got against expected: dtype and shape must match; floats within
 * |a-e| <= atol + rtol*|e| (NaN matches NaN), ints and bool exactly. On mismatch writes a
 * description of the worst element into msg and returns false. */
bool kiln_tensor_compare(const kiln_tensor *got, const kiln_tensor *exp, double rtol, double atol, char *msg,
                         size_t len);
/* A zeroed tensor shaped like graph input i, unknown dims set to 1 (as the onnx runner does). */
kiln_tensor *kiln_cli_input_tensor(const kiln_graph *g, int i);
void kiln_format_dims(const kiln_tensor *t, char *buf, size_t len);

#endif
