/*
 * trace.h — routing traces: the in-memory trace, the .moetrace file format
 * (reader with layer-by-layer streaming, writer for capture), and import/
 * export of JSON, CSV and moe-lrc's per-layer safetensors files.
 *
 * A trace records, for every token of every sample and every MoE layer, the
 * top-k expert ids the router chose, in router order (descending gate
 * score); optionally the gate weights, the token ids and a label per sample
 * (dataset/domain). Samples are independent sequences. The metrics (SRP,
 * SCH, cache curves: metrics/lrc.h) and the replay simulator read traces
 * through this header only. docs/metrics.md has the byte layout.
 *
 * Two ways to hold a trace:
 *   - met_trace: everything in memory (ids as uint16, [token][layer][k]).
 *   - met_trace_reader: an open trace that hands out one layer (all samples)
 *     or one sample (all layers) at a time. For .moetrace files it reads only
 *     what is asked for (pread), so a trace larger than memory can be
 *     analysed layer by layer; other formats are loaded whole, then viewed.
 *
 * Capture: met_trace_writer appends token by token, layer by layer, as the
 * engine's routing hook delivers decisions (met_trace_writer_hook fits
 * eng_hooks.routing directly), and writes a .moetrace file.
 *
 * Validation: every reader checks magic, version, sizes against the file
 * length, ids < num_experts, no id repeated within a token, k consistent,
 * counts overflow-safe. A bad file is ENG_EFORMAT with a message naming the
 * file and the field ("t.moetrace: sample 3 token 17 layer 2: expert 70 >=
 * num_experts 64"). I/O failures are ENG_EIO, ENG_ENOMEM when out of memory.
 *
 * Thread-safety: a met_trace is read-only after loading and may be read from
 * many threads. A met_trace_reader may be used from several threads at once
 * for met_trace_reader_layer/_sample (pread, no shared cursor). A writer
 * belongs to one thread.
 */
#ifndef MET_TRACE_H
#define MET_TRACE_H

#include "engine/err.h"
#include "engine/hooks.h"

#include <stddef.h>
#include <stdint.h>

/* Limits every reader enforces (a file claiming more is rejected). */
#define MET_TRACE_MAX_LAYERS  4096
#define MET_TRACE_MAX_EXPERTS 65536      /* ids are uint16                   */
#define MET_TRACE_MAX_LABEL   4096       /* bytes of one sample label        */

/* met_trace.flags / met_trace_info.flags */
enum {
    MET_TRACE_WEIGHTS = 1u << 0, /* gate weights present (f32)            */
    MET_TRACE_TOKENS  = 1u << 1, /* token ids present (int32)             */
    MET_TRACE_LABELS  = 1u << 2, /* per-sample labels present             */
    MET_TRACE_PROMPT  = 1u << 3, /* per-sample prompt batching present    */
};

/* How a sample's prompt ran (MET_TRACE_PROMPT): its first `tokens` tokens
 * as prefill in chunks of `batch` tokens (the last chunk shorter), the rest
 * one by one. tokens 0 (batch 0): every token one by one. The engine's
 * store sees a chunk layer by layer, each expert the chunk routes to once
 * (in ascending id), so a simulator that replays the store's accesses
 * needs it (metrics/simulate.h); the routing itself is stored per token in
 * position order either way. */
typedef struct met_trace_prompt {
    int64_t tokens;          /* 0 .. the sample's token count              */
    int64_t batch;           /* >= 1 when tokens > 0, else 0               */
} met_trace_prompt;

/* File formats. AUTO picks by path: a directory or *.safetensors ->
 * SAFETENSORS, *.json -> JSON, *.csv -> CSV, anything else -> MOETRACE. */
typedef enum met_trace_format {
    MET_FMT_AUTO = 0,
    MET_FMT_MOETRACE,
    MET_FMT_JSON,
    MET_FMT_CSV,
    MET_FMT_SAFETENSORS,
} met_trace_format;

/* "moetrace", "json", "csv", "safetensors" <-> enum; parse returns -1 on an
 * unknown name (AUTO is "auto"). */
const char *met_trace_format_name(met_trace_format f);
int met_trace_format_parse(const char *name);
/* AUTO resolved for a path (stat()s it to recognise a directory). */
met_trace_format met_trace_format_guess(const char *path);

/* The shape of a trace, without its data. */
typedef struct met_trace_info {
    int32_t num_layers;      /* L >= 1                                     */
    int32_t num_experts;     /* E, 1..MET_TRACE_MAX_EXPERTS                */
    int32_t top_k;           /* k, 1..E                                    */
    uint32_t flags;          /* MET_TRACE_*                                */
    int64_t num_samples;     /* S >= 0                                     */
    int64_t num_tokens;      /* sum of the samples' token counts           */
    int32_t layer_offset;    /* the model's layer index of trace layer 0:
                                a model's dense leading layers route
                                nothing and are not in the trace (0..4096;
                                0 for models whose every layer is MoE)     */
} met_trace_info;

/* A whole trace in memory. Token t of sample s is global token
 * sample_start[s] + t; its ids at layer l are
 * ids[(token * num_layers + l) * top_k + r], r = 0..k-1 in router order. */
typedef struct met_trace {
    met_trace_info info;
    int64_t *sample_start;   /* [num_samples + 1], sample_start[0] = 0,
                                sample_start[S] = num_tokens, non-decreasing */
    uint16_t *ids;           /* [num_tokens][num_layers][top_k]            */
    float *weights;          /* [num_tokens][num_layers][top_k] or NULL    */
    int32_t *token_ids;      /* [num_tokens] or NULL                       */
    char **labels;           /* [num_samples] NUL-terminated, or NULL      */
    met_trace_prompt *prompt;/* [num_samples] (MET_TRACE_PROMPT) or NULL   */
} met_trace;

/* Allocates an empty trace of the given shape (ids zeroed, sample_start
 * filled from token_counts[num_samples]); weights/token_ids/labels arrays
 * are allocated when info->flags asks for them (labels as ""). The caller
 * fills ids etc. and should call met_trace_validate. */
int met_trace_alloc(met_trace **out, const met_trace_info *info,
                    const int64_t *token_counts, eng_err *err);
void met_trace_free(met_trace *t);

/* Checks shape limits, sample offsets, ids < E, no repeats within a token,
 * finite weights. `what` names the trace in messages (a path). */
int met_trace_validate(const met_trace *t, const char *what, eng_err *err);

/* Sets labels[s] (copies); allocates the label array and sets
 * MET_TRACE_LABELS if needed. */
int met_trace_set_label(met_trace *t, int64_t s, const char *label, eng_err *err);
/* Sets the prompt batching of sample s (checked as met_trace_validate
 * does); allocates the array (all {0, 0}) and sets MET_TRACE_PROMPT if
 * needed. */
int met_trace_set_prompt(met_trace *t, int64_t s, met_trace_prompt p, eng_err *err);
/* Sample s's prompt batching ({0, 0} when the trace has none). */
met_trace_prompt met_trace_prompt_of(const met_trace *t, int64_t s);

/* Loads a trace of any format (fmt AUTO: by path) into memory. */
int met_trace_load(met_trace **out, const char *path, met_trace_format fmt, eng_err *err);
/* Writes a trace in any format (AUTO: by path). Safetensors: `path` is a
 * directory, created if missing, receiving layer_NN.safetensors files;
 * E must be <= 128 (int8 ids). JSON and safetensors drop weights and token
 * ids; CSV drops token ids; safetensors keeps labels as dataset keys. */
int met_trace_save(const met_trace *t, const char *path, met_trace_format fmt, eng_err *err);

/* ---- streaming reader --------------------------------------------------- */

typedef struct met_trace_reader met_trace_reader;

/* Opens a trace. .moetrace: reads and validates the header and the sample
 * index only; ids are checked as they are read. Other formats: loaded whole
 * (and validated) by met_trace_load. */
int met_trace_reader_open(met_trace_reader **out, const char *path, met_trace_format fmt,
                          eng_err *err);
void met_trace_reader_free(met_trace_reader *r);

const met_trace_info *met_trace_reader_info(const met_trace_reader *r);
/* [num_samples + 1] token offsets, as in met_trace.sample_start. */
const int64_t *met_trace_reader_sample_start(const met_trace_reader *r);
/* Label of sample s ("" when the trace has none). */
const char *met_trace_reader_label(const met_trace_reader *r, int64_t s);
/* Prompt batching of sample s ({0, 0} when the trace has none). */
met_trace_prompt met_trace_reader_prompt(const met_trace_reader *r, int64_t s);
/* The in-memory trace when the reader holds one (non-.moetrace formats),
 * else NULL. */
const met_trace *met_trace_reader_trace(const met_trace_reader *r);

/* Gathers layer `layer` of every sample: ids[num_tokens][top_k] and, when
 * weights is not NULL and the trace has them, weights[num_tokens][top_k].
 * Validates every id read. */
int met_trace_reader_layer(met_trace_reader *r, int32_t layer, uint16_t *ids, float *weights,
                           eng_err *err);
/* Gathers sample s, every layer, LAYER-major: ids[num_layers][T][top_k]
 * with T = the sample's token count (weights likewise, may be NULL). */
int met_trace_reader_sample(met_trace_reader *r, int64_t s, uint16_t *ids, float *weights,
                            eng_err *err);

/* Gathers layer `layer` of an in-memory trace into ids[num_tokens][top_k]. */
void met_trace_gather_layer(const met_trace *t, int32_t layer, uint16_t *ids);

/* ---- capture writer ----------------------------------------------------- */

typedef struct met_trace_writer met_trace_writer;

/* Creates a .moetrace file for traces of this shape. info->num_samples and
 * num_tokens are ignored (counted as data arrives). flags: MET_TRACE_WEIGHTS
 * and/or MET_TRACE_TOKENS record weights / token ids (those then must be
 * given); MET_TRACE_LABELS is set automatically when a label is given. */
int met_trace_writer_open(met_trace_writer **out, const char *path,
                          const met_trace_info *info, eng_err *err);

/* Starts a new sample (label may be NULL or ""). The previous sample, if
 * any, is finished and written. A route call before any begin_sample starts
 * an unlabelled sample. */
int met_trace_writer_begin_sample(met_trace_writer *w, const char *label, eng_err *err);

/* Records how the current sample's prompt ran (met_trace_prompt; tokens are
 * counted from the sample's first position); sets MET_TRACE_PROMPT. Checked
 * against the sample's length when it ends. */
int met_trace_writer_set_prompt(met_trace_writer *w, met_trace_prompt p, eng_err *err);

/* One routing decision: token at position `pos` of the current sample chose
 * experts[k] (router order) at `layer`, with gate weights[k] (may be NULL
 * when not recording weights) and token id `token` (taken from the first
 * event of a position). Events may come in any order (token by token in
 * decode, layer by layer for a prefill batch); a token is identified by its
 * position, and the sample's tokens are stored in position order (positions
 * need not start at 0 or be contiguous). Each token must get every layer
 * exactly once before the sample ends. k must equal info->top_k. */
int met_trace_writer_route(met_trace_writer *w, int32_t layer, int64_t pos, int64_t token,
                           int32_t k, const int32_t *experts, const float *weights,
                           eng_err *err);

/* Adapter for eng_hooks.routing: user = the writer. The first error is kept
 * (later events are ignored) and returned by met_trace_writer_close. */
void met_trace_writer_hook(void *user, const eng_routing_event *ev);

/* Finishes the last sample, writes the index and header, closes the file
 * and frees the writer (also on error). Returns the first error of the
 * writer's life (including hook errors). */
int met_trace_writer_close(met_trace_writer *w, eng_err *err);

/* Writes an in-memory trace as .moetrace (via the writer). */
int met_trace_write_moetrace(const met_trace *t, const char *path, eng_err *err);

#endif
