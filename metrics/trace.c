/*
 * trace.c — the in-memory trace (alloc, validate, labels, prompt batching),
 * format names and
 * the load/save dispatch. The .moetrace reader/writer is trace_file.c; JSON,
 * CSV and safetensors are trace_json.c, trace_csv.c, trace_st.c.
 *
 * Invariant after met_trace_validate: sample_start is non-decreasing from 0
 * to num_tokens, every id < num_experts, no id twice within a (token,
 * layer), weights finite. The metrics rely on it (they index arrays of size
 * E by id without further checks).
 */
#include "metrics/trace.h"
#include "metrics/trace_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const fmt_names[] = {"auto", "moetrace", "json", "csv", "safetensors"};

const char *met_trace_format_name(met_trace_format f)
{
    return (unsigned)f < 5 ? fmt_names[f] : "?";
}

int met_trace_format_parse(const char *name)
{
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, fmt_names[i]))
            return i;
    return -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

met_trace_format met_trace_format_guess(const char *path)
{
    struct stat st;
    if (ends_with(path, ".safetensors") || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return MET_FMT_SAFETENSORS;
    if (ends_with(path, ".json"))
        return MET_FMT_JSON;
    if (ends_with(path, ".csv"))
        return MET_FMT_CSV;
    return MET_FMT_MOETRACE;
}

int met_trace_info_check(const met_trace_info *in, const char *what, eng_err *err)
{
    if (in->num_layers < 1 || in->num_layers > MET_TRACE_MAX_LAYERS)
        return eng_err_set(err, ENG_EFORMAT, "%s: num_layers %d not in 1..%d", what,
                           (int)in->num_layers, MET_TRACE_MAX_LAYERS);
    if (in->num_experts < 1 || in->num_experts > MET_TRACE_MAX_EXPERTS)
        return eng_err_set(err, ENG_EFORMAT, "%s: num_experts %d not in 1..%d", what,
                           (int)in->num_experts, MET_TRACE_MAX_EXPERTS);
    if (in->top_k < 1 || in->top_k > in->num_experts)
        return eng_err_set(err, ENG_EFORMAT, "%s: top_k %d not in 1..num_experts (%d)", what,
                           (int)in->top_k, (int)in->num_experts);
    if (in->layer_offset < 0 || in->layer_offset > MET_TRACE_MAX_LAYERS)
        return eng_err_set(err, ENG_EFORMAT, "%s: layer_offset %d not in 0..%d", what,
                           (int)in->layer_offset, MET_TRACE_MAX_LAYERS);
    if (in->num_samples < 0 || in->num_tokens < 0)
        return eng_err_set(err, ENG_EFORMAT, "%s: negative sample or token count", what);
    if (in->flags &
        ~(uint32_t)(MET_TRACE_WEIGHTS | MET_TRACE_TOKENS | MET_TRACE_LABELS | MET_TRACE_PROMPT))
        return eng_err_set(err, ENG_EFORMAT, "%s: unknown flags 0x%x", what,
                           (unsigned)in->flags);
    /* Per-token element count must not overflow the byte sizes used later. */
    int64_t per_tok = (int64_t)in->num_layers * in->top_k;
    if (in->num_tokens > (INT64_MAX / 8) / per_tok)
        return eng_err_set(err, ENG_EFORMAT, "%s: num_tokens %lld too large", what,
                           (long long)in->num_tokens);
    return ENG_OK;
}

int met_trace_alloc(met_trace **out, const met_trace_info *info, const int64_t *counts,
                    eng_err *err)
{
    *out = NULL;
    met_trace_info in = *info;
    int64_t total = 0;
    for (int64_t s = 0; s < in.num_samples; s++) {
        if (counts[s] < 0 || counts[s] > INT64_MAX / 16 - total)
            return eng_err_set(err, ENG_EINVAL, "trace: bad token count of sample %lld",
                               (long long)s);
        total += counts[s];
    }
    in.num_tokens = total;
    int rc = met_trace_info_check(&in, "trace", err);
    if (rc)
        return rc;
    size_t nid = (size_t)total * (size_t)in.num_layers * (size_t)in.top_k;
    met_trace *t = calloc(1, sizeof *t);
    if (!t)
        return eng_err_set(err, ENG_ENOMEM, "trace: out of memory");
    t->info = in;
    t->sample_start = malloc(((size_t)in.num_samples + 1) * sizeof *t->sample_start);
    t->ids = calloc(nid ? nid : 1, sizeof *t->ids);
    if (in.flags & MET_TRACE_WEIGHTS)
        t->weights = calloc(nid ? nid : 1, sizeof *t->weights);
    if (in.flags & MET_TRACE_TOKENS)
        t->token_ids = calloc(total ? (size_t)total : 1, sizeof *t->token_ids);
    if (in.flags & MET_TRACE_LABELS)
        t->labels = calloc(in.num_samples ? (size_t)in.num_samples : 1, sizeof *t->labels);
    if (in.flags & MET_TRACE_PROMPT)
        t->prompt = calloc(in.num_samples ? (size_t)in.num_samples : 1, sizeof *t->prompt);
    int bad = !t->sample_start || !t->ids || ((in.flags & MET_TRACE_WEIGHTS) && !t->weights) ||
              ((in.flags & MET_TRACE_TOKENS) && !t->token_ids) ||
              ((in.flags & MET_TRACE_LABELS) && !t->labels) ||
              ((in.flags & MET_TRACE_PROMPT) && !t->prompt);
    for (int64_t s = 0; !bad && t->labels && s < in.num_samples; s++)
        bad = !(t->labels[s] = strdup(""));
    if (bad) {
        met_trace_free(t);
        return eng_err_set(err, ENG_ENOMEM, "trace: out of memory for %lld tokens",
                           (long long)total);
    }
    t->sample_start[0] = 0;
    for (int64_t s = 0; s < in.num_samples; s++)
        t->sample_start[s + 1] = t->sample_start[s] + counts[s];
    *out = t;
    return ENG_OK;
}

void met_trace_free(met_trace *t)
{
    if (!t)
        return;
    if (t->labels)
        for (int64_t s = 0; s < t->info.num_samples; s++)
            free(t->labels[s]);
    free(t->labels);
    free(t->prompt);
    free(t->sample_start);
    free(t->ids);
    free(t->weights);
    free(t->token_ids);
    free(t);
}

int met_trace_set_label(met_trace *t, int64_t s, const char *label, eng_err *err)
{
    if (s < 0 || s >= t->info.num_samples)
        return eng_err_set(err, ENG_EINVAL, "trace: sample %lld out of range", (long long)s);
    if (strlen(label) > MET_TRACE_MAX_LABEL)
        return eng_err_set(err, ENG_EINVAL, "trace: label of sample %lld longer than %d bytes",
                           (long long)s, MET_TRACE_MAX_LABEL);
    if (!t->labels) {
        t->labels = calloc((size_t)t->info.num_samples, sizeof *t->labels);
        if (!t->labels)
            return eng_err_set(err, ENG_ENOMEM, "trace: out of memory");
        for (int64_t i = 0; i < t->info.num_samples; i++)
            if (!(t->labels[i] = strdup("")))
                return eng_err_set(err, ENG_ENOMEM, "trace: out of memory");
        t->info.flags |= MET_TRACE_LABELS;
    }
    char *c = strdup(label);
    if (!c)
        return eng_err_set(err, ENG_ENOMEM, "trace: out of memory");
    free(t->labels[s]);
    t->labels[s] = c;
    return ENG_OK;
}

/* A prompt batching for a sample of T tokens: 0 <= tokens <= T, batch >= 1
 * with tokens (0 without). */
int met_prompt_check(met_trace_prompt p, int64_t T, const char *what, int64_t s, eng_err *err)
{
    if (p.tokens < 0 || p.tokens > T || (p.tokens > 0 && p.batch < 1) ||
        (p.tokens == 0 && p.batch != 0) || p.batch > UINT32_MAX)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: sample %lld: prompt of %lld tokens in batches of %lld does not "
                           "fit its %lld tokens (need 0 <= prompt <= tokens, batch >= 1 with a "
                           "prompt, 0 without)",
                           what, (long long)s, (long long)p.tokens, (long long)p.batch,
                           (long long)T);
    return ENG_OK;
}

int met_trace_set_prompt(met_trace *t, int64_t s, met_trace_prompt p, eng_err *err)
{
    if (s < 0 || s >= t->info.num_samples)
        return eng_err_set(err, ENG_EINVAL, "trace: sample %lld out of range", (long long)s);
    eng_err e = {0};
    if (met_prompt_check(p, t->sample_start[s + 1] - t->sample_start[s], "trace", s, &e))
        return eng_err_set(err, ENG_EINVAL, "%s", e.msg);
    if (!t->prompt) {
        t->prompt = calloc((size_t)t->info.num_samples, sizeof *t->prompt);
        if (!t->prompt)
            return eng_err_set(err, ENG_ENOMEM, "trace: out of memory");
        t->info.flags |= MET_TRACE_PROMPT;
    }
    t->prompt[s] = p;
    return ENG_OK;
}

met_trace_prompt met_trace_prompt_of(const met_trace *t, int64_t s)
{
    return t->prompt && s >= 0 && s < t->info.num_samples ? t->prompt[s] : (met_trace_prompt){0};
}

int met_ids_check(const uint16_t *ids, int32_t k, int32_t E, const char *what, int64_t s,
                  int64_t tok, int32_t layer, eng_err *err)
{
    for (int32_t r = 0; r < k; r++) {
        if (ids[r] >= E)
            return eng_err_set(err, ENG_EFORMAT,
                               "%s: sample %lld token %lld layer %d: expert %u >= num_experts %d",
                               what, (long long)s, (long long)tok, (int)layer, ids[r], (int)E);
        for (int32_t q = 0; q < r; q++)
            if (ids[q] == ids[r])
                return eng_err_set(err, ENG_EFORMAT,
                                   "%s: sample %lld token %lld layer %d: expert %u repeated",
                                   what, (long long)s, (long long)tok, (int)layer, ids[r]);
    }
    return ENG_OK;
}

int met_trace_validate(const met_trace *t, const char *what, eng_err *err)
{
    const met_trace_info *in = &t->info;
    int rc = met_trace_info_check(in, what, err);
    if (rc)
        return rc;
    if (t->sample_start[0] != 0 || t->sample_start[in->num_samples] != in->num_tokens)
        return eng_err_set(err, ENG_EFORMAT, "%s: sample offsets do not cover the tokens", what);
    int32_t L = in->num_layers, k = in->top_k;
    for (int64_t s = 0; s < in->num_samples; s++) {
        if (t->sample_start[s + 1] < t->sample_start[s])
            return eng_err_set(err, ENG_EFORMAT, "%s: sample %lld: negative length", what,
                               (long long)s);
        if (t->prompt && (rc = met_prompt_check(t->prompt[s], t->sample_start[s + 1] -
                                                t->sample_start[s], what, s, err)))
            return rc;
        for (int64_t g = t->sample_start[s]; g < t->sample_start[s + 1]; g++)
            for (int32_t l = 0; l < L; l++) {
                size_t o = ((size_t)g * L + l) * k;
                rc = met_ids_check(t->ids + o, k, in->num_experts, what, s,
                                   g - t->sample_start[s], l, err);
                if (rc)
                    return rc;
                for (int32_t r = 0; t->weights && r < k; r++)
                    if (!isfinite(t->weights[o + r]))
                        return eng_err_set(err, ENG_EFORMAT,
                                           "%s: sample %lld token %lld layer %d: weight not finite",
                                           what, (long long)s,
                                           (long long)(g - t->sample_start[s]), (int)l);
            }
    }
    return ENG_OK;
}

void met_trace_gather_layer(const met_trace *t, int32_t layer, uint16_t *ids)
{
    int32_t L = t->info.num_layers, k = t->info.top_k;
    for (int64_t g = 0; g < t->info.num_tokens; g++)
        memcpy(ids + (size_t)g * k, t->ids + ((size_t)g * L + layer) * k, (size_t)k * 2);
}

int met_trace_load(met_trace **out, const char *path, met_trace_format fmt, eng_err *err)
{
    *out = NULL;
    if (fmt == MET_FMT_AUTO)
        fmt = met_trace_format_guess(path);
    switch (fmt) {
    case MET_FMT_MOETRACE: return met_trace_load_moetrace(out, path, err);
    case MET_FMT_JSON: return met_trace_load_json(out, path, err);
    case MET_FMT_CSV: return met_trace_load_csv(out, path, err);
    case MET_FMT_SAFETENSORS: return met_trace_load_st(out, path, err);
    default: return eng_err_set(err, ENG_EINVAL, "%s: unknown trace format", path);
    }
}

int met_trace_save(const met_trace *t, const char *path, met_trace_format fmt, eng_err *err)
{
    if (fmt == MET_FMT_AUTO)
        fmt = met_trace_format_guess(path);
    switch (fmt) {
    case MET_FMT_MOETRACE: return met_trace_write_moetrace(t, path, err);
    case MET_FMT_JSON: return met_trace_save_json(t, path, err);
    case MET_FMT_CSV: return met_trace_save_csv(t, path, err);
    case MET_FMT_SAFETENSORS: return met_trace_save_st(t, path, err);
    default: return eng_err_set(err, ENG_EINVAL, "%s: unknown trace format", path);
    }
}
