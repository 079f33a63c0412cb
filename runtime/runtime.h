/*
 * runtime.h — kiln's GPU runtime, internal side: what the CLI and the tests use beyond the
 * public API of include/kiln.h (kiln_bundle_model, kiln_exec_context).
 *
 * kiln_bundle_describe prints a bundle (no GPU needed): what `kiln inspect M.kiln` shows.
 * kiln_bundle_model_bundle gives the parsed bundle behind an open model (read-only).
 * kiln_exec_context_device_bytes tells how much device memory a context holds.
 */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include "kiln.h"
#include "runtime/bundle.h"

#include <stdio.h>

/* Extra execution-context flag (beside KILN_EXEC_NO_GRAPH): before every run fill the arena and
 * the host-output staging buffers with 0xff bytes (NaN for floats), so that elements a kernel
 * failed to write show up in comparisons. For tests and `kiln compare`. */
enum { KILN_EXEC_POISON = 2 };

/* Print a human-readable description of b (header facts, metadata, I/O, images per arch,
 * kernels with their groups and launches, memory plan, weights) to f. `what` names the file
 * and `file_bytes` is its size (0: unknown). */
void kiln_bundle_describe(const kiln_bundle *b, const char *what, uint64_t file_bytes, FILE *f);

const kiln_bundle *kiln_bundle_model_bundle(const kiln_bundle_model *m);

/* How the layers of a bundle go onto at most max_streams streams (no GPU needed; what
 * kiln_exec_context_set_streams uses, exposed for tests and inspect). Layer l runs on stream
 * stream[l] (0 = the run's stream) after waiting for the events of layers
 * waits[wait_at[l] .. wait_at[l + 1]) (on other streams); signal[l]: some layer waits for l.
 * n_streams: streams actually used (1 when nothing can run in parallel). */
typedef struct kiln_stream_plan {
    int n_layers, n_streams;
    int *stream, *wait_at, *waits;
    unsigned char *signal;
} kiln_stream_plan;
kiln_status kiln_stream_plan_init(kiln_stream_plan *p, const kiln_bundle *b, int max_streams);
void kiln_stream_plan_free(kiln_stream_plan *p);

/* Device memory this context allocated (arena + staging); the model's weights are extra. */
uint64_t kiln_exec_context_device_bytes(const kiln_exec_context *ctx);

/* One profiled run (`kiln bench --profile`, the tuner): the plan layer by layer on one stream
 * without a CUDA graph or synchronization between layers, CUDA events around each layer;
 * layer_ms[l] (kiln_bundle_model_num_layers entries) receives layer l's time. Inputs are copied
 * in (host bindings) before the first event; outputs are copied out after the run. */
kiln_status kiln_exec_context_profile(kiln_exec_context *ctx, void *stream, float *layer_ms);
/* The same with layer l launched repeat[l] (1..1000) times back to back between its events,
 * layer_ms[l] their mean: the kernel time without the per-launch gap each layer's events carry
 * (~2-3 us on an H100), as a GEMM rate is measured. For timing only: a layer that writes in place
 * rereads its own results when repeated, so later layers see other values (kiln bench repeats
 * only conv / GEMM layers, whose memory accesses do not depend on the values). */
kiln_status kiln_exec_context_profile_repeat(kiln_exec_context *ctx, void *stream, float *layer_ms, const int *repeat);

#endif /* KILN_RUNTIME_H */
