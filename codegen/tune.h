/*
 * tune.h — autotuning support: the log of tunable-kernel choices a codegen run made, the tuning
 * cache (a text file, docs/tuning.md), and the GPU tuner behind `kiln build --autotune`.
 *
 * How to use
 * ----------
 *     kiln_tune_log log;                       // what codegen chose, kernel by kernel
 *     kiln_tune_log_init(&log);
 *     co.tune_record = kiln_tune_log_record;   // kiln_codegen_opts
 *     co.tune_ctx = &log;                      // (with a lookup: kiln_tune_answer, below)
 *     kiln_codegen_build(g, &co, b, NULL);
 *     printf("%d heuristic\n", kiln_tune_log_count(&log, KILN_TUNE_HEURISTIC, true));
 *     kiln_tune_log_free(&log);
 *
 *     kiln_tune_cache cache;                   // the --tuning-cache file
 *     kiln_tune_cache_init(&cache);
 *     kiln_tune_cache_load(&cache, "tune.txt");   // a missing file is an empty cache
 *     kiln_tune_device dev;  kiln_tune_device_query(&dev, 0);   // GPU, CC, NVRTC, driver
 *     const kiln_tune_cache_entry *e = kiln_tune_cache_find(&cache, &dev, signature);
 *     kiln_tune_cache_put(&cache, &dev, signature, "64x64x32/32x32", 41.5);
 *     kiln_tune_cache_save(&cache, "tune.txt");   // atomically (temp file + rename)
 *     kiln_tune_cache_free(&cache);
 *
 * Thread safety: one log / cache per thread, or a lock around them.
 */
#ifndef KILN_TUNE_H
#define KILN_TUNE_H

#include "codegen/codegen.h"

#include <stdbool.h>

/* ------------------------------------------------------------------- log -- */
typedef struct kiln_tune_entry {
    char *group, *signature;
    char **names; /* the candidates */
    int n, chosen;
    kiln_tune_source source;
} kiln_tune_entry;

typedef struct kiln_tune_log {
    kiln_tune_entry *e;
    int n, cap;
    bool oom; /* an allocation failed in kiln_tune_log_record (it cannot return a status) */
} kiln_tune_log;

void kiln_tune_log_init(kiln_tune_log *l);
void kiln_tune_log_free(kiln_tune_log *l);
/* A kiln_codegen_opts.tune_record callback; ctx is a kiln_tune_log. */
void kiln_tune_log_record(void *ctx, const char *group, const char *signature, const char *const *names, int n,
                          int chosen, kiln_tune_source source);
/* Kernels whose choice came from `source`; tunable_only: only those with more than one candidate. */
int kiln_tune_log_count(const kiln_tune_log *l, kiln_tune_source source, bool tunable_only);
/* Distinct signatures with more than one candidate. */
int kiln_tune_log_signatures(const kiln_tune_log *l);
/* The bundle's "tune" metadata: "group=choice@source;" per tunable kernel, source one of
 * heuristic, tuned (a tuning cache or this build's measurements), forced (kiln_tile). Caller frees. */
kiln_status kiln_tune_log_meta(const kiln_tune_log *l, char **out);
const char *kiln_tune_source_name(kiln_tune_source s);

/* ----------------------------------------------------------------- cache -- */
/* What makes a measurement valid elsewhere: the same GPU model, compute capability, NVRTC and
 * driver. */
typedef struct kiln_tune_device {
    char gpu[128];  /* "NVIDIA H100 80GB HBM3" (no tab or newline) */
    char cc[16];    /* "9.0" */
    char nvrtc[16]; /* "12.4" */
    char driver[16]; /* cuDriverGetVersion: "12040" */
} kiln_tune_device;

/* The device's key (needs a GPU: KILN_ERR_UNSUPPORTED without one). */
kiln_status kiln_tune_device_query(kiln_tune_device *d, int ordinal);

typedef struct kiln_tune_cache_entry {
    kiln_tune_device dev;
    char *signature, *choice;
    double us; /* the chosen candidate's median time in microseconds */
} kiln_tune_cache_entry;

typedef struct kiln_tune_cache {
    kiln_tune_cache_entry *e;
    int n, cap;
} kiln_tune_cache;

void kiln_tune_cache_init(kiln_tune_cache *c);
void kiln_tune_cache_free(kiln_tune_cache *c);
/* Parses the text format (docs/tuning.md), appending to c. A malformed file is KILN_ERR_PARSE
 * with the line number; `what` names it in messages. */
kiln_status kiln_tune_cache_parse(kiln_tune_cache *c, const char *text, size_t len, const char *what);
/* Reads path; a missing file is an empty cache (KILN_OK). */
kiln_status kiln_tune_cache_load(kiln_tune_cache *c, const char *path);
/* The file's text, entries sorted (device key, signature), so equal caches are equal files. */
kiln_status kiln_tune_cache_format(const kiln_tune_cache *c, char **out);
/* Writes atomically: PATH.tmp.PID, then rename. */
kiln_status kiln_tune_cache_save(const kiln_tune_cache *c, const char *path);
const kiln_tune_cache_entry *kiln_tune_cache_find(const kiln_tune_cache *c, const kiln_tune_device *d,
                                                  const char *signature);
/* Adds or replaces the entry for (d, signature). */
kiln_status kiln_tune_cache_put(kiln_tune_cache *c, const kiln_tune_device *d, const char *signature,
                                const char *choice, double us);
/* Entries of another device key (kept in the file, ignored for d). */
int kiln_tune_cache_foreign(const kiln_tune_cache *c, const kiln_tune_device *d);

/* A kiln_codegen_opts.tune_lookup answering from a cache for one device; also records into log
 * (may be NULL) so that one ctx serves both callbacks: set tune_lookup = kiln_tune_answer_lookup,
 * tune_record = kiln_tune_answer_record, tune_ctx = &answer. */
typedef struct kiln_tune_answer {
    const kiln_tune_cache *cache;
    const kiln_tune_device *dev;
    kiln_tune_log *log;
    const char *force; /* non-NULL: the answer for every signature (`kiln build --tile`, tests) */
} kiln_tune_answer;
const char *kiln_tune_answer_lookup(void *ctx, const char *signature);
void kiln_tune_answer_record(void *ctx, const char *group, const char *signature, const char *const *names, int n,
                             int chosen, kiln_tune_source source);

/* ----------------------------------------------------------------- tuner -- */
typedef struct kiln_tune_opts {
    int iterations;   /* timed runs per candidate (median), default 20 */
    int warmup;       /* untimed runs first, default 3 */
    int threads;      /* NVRTC compile threads, default: online cores */
    int device;       /* GPU ordinal, default 0 */
    FILE *progress;   /* progress lines / bar (NULL: quiet) */
} kiln_tune_opts;
void kiln_tune_opts_init(kiln_tune_opts *o);

typedef struct kiln_tune_summary {
    int signatures;  /* tunable signatures (more than one candidate) */
    int from_cache;  /* answered by the cache */
    int tuned;       /* timed now */
    int candidates;  /* candidate builds timed */
    int changed;     /* tuned choices that differ from the heuristic */
    double seconds;  /* tuning wall time */
    double compile_seconds, timing_seconds; /* of which: building the candidate sets, timing them */
} kiln_tune_summary;

/* Times every candidate of every tunable signature of g (memory-planned, as for
 * kiln_codegen_build) on the GPU and puts the fastest into cache for dev. Signatures the cache
 * already answers are not timed. co: the build's codegen options (archs, precision); its tune
 * callbacks are ignored. */
kiln_status kiln_tune_run(const kiln_graph *g, const kiln_codegen_opts *co, const kiln_tune_opts *o,
                          const kiln_tune_device *dev, kiln_tune_cache *cache, kiln_tune_summary *sum);

/* ----------------------------------------------------------- layer costs -- */
/* The bundle's "layer_costs" metadata for `kiln bench --profile`: "layer=FLOPS,BYTES;" per
 * top-level node (views excluded), FLOPS = 2 x multiply-adds of its Conv/Gemm/MatMul (0 for
 * others), BYTES = its input, weight and output values as the graph types them (an upper
 * bound: fp16-stored fp32 weights count 4 bytes), except that a Conv's x counts only the rows
 * and columns a kernel smaller than its stride touches (a strided 1x1 conv reads 1 / stride^2 of
 * it). Caller frees. */
kiln_status kiln_tune_layer_costs(const kiln_graph *g, char **out);
/* Looks up a layer (a name with "@output" appended matches its group) in such a string. */
bool kiln_tune_layer_cost_find(const char *costs, const char *layer, uint64_t *flops, uint64_t *bytes);

#endif /* KILN_TUNE_H */
