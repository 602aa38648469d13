/*
 * trace_json.c — JSON traces (jansson):
 *   {"num_layers": L, "num_experts": E, "top_k": k,
 *    "samples": [ [ [ [id, ...k], ...L ], ...tokens ], ...samples ],
 *    "labels": ["dataset", ...samples],            (labels optional)
 *    "prompt": [[tokens, batch], ...samples]}      (optional: how each
 *                                                   sample's prompt ran)
 * Without "num_layers" the trace has one layer and samples[s][t] is the
 * list of k ids itself. num_experts and top_k are required. Weights and
 * token ids are not carried by this format.
 * Two passes: count tokens per sample (and check the nesting), then fill.
 */
#include "metrics/trace.h"
#include "metrics/trace_impl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int get_int(json_t *root, const char *key, int req, int64_t *out, const char *path,
                   eng_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v && !req)
        return ENG_OK;
    if (!v || !json_is_integer(v))
        return eng_err_set(err, ENG_EFORMAT, "%s: \"%s\": missing or not an integer", path, key);
    *out = json_integer_value(v);
    return ENG_OK;
}

/* One token's ids at one layer: a JSON array of exactly k integers. */
static int read_ids(json_t *a, const met_trace_info *in, uint16_t *ids, const char *path,
                    int64_t s, int64_t t, int32_t l, eng_err *err)
{
    if (!json_is_array(a) || (int64_t)json_array_size(a) != in->top_k)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: samples[%lld][%lld] layer %d: expected a list of top_k = %d ids",
                           path, (long long)s, (long long)t, (int)l, (int)in->top_k);
    for (int32_t r = 0; r < in->top_k; r++) {
        json_t *v = json_array_get(a, (size_t)r);
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (x < 0 || x >= in->num_experts)
            return eng_err_set(err, ENG_EFORMAT,
                               "%s: samples[%lld][%lld] layer %d: id %d is not an integer in "
                               "0..num_experts-1 (%d)",
                               path, (long long)s, (long long)t, (int)l, (int)r,
                               (int)in->num_experts - 1);
        ids[r] = (uint16_t)x;
    }
    return met_ids_check(ids, in->top_k, in->num_experts, path, s, t, l, err);
}

static int fill(met_trace *t, json_t *samples, int layered, const char *path, eng_err *err)
{
    const met_trace_info *in = &t->info;
    int32_t L = in->num_layers, k = in->top_k;
    for (int64_t s = 0; s < in->num_samples; s++) {
        json_t *sm = json_array_get(samples, (size_t)s);
        for (int64_t i = 0; i < t->sample_start[s + 1] - t->sample_start[s]; i++) {
            json_t *tok = json_array_get(sm, (size_t)i);
            size_t g = (size_t)(t->sample_start[s] + i);
            if (layered && (!json_is_array(tok) || (int64_t)json_array_size(tok) != L))
                return eng_err_set(err, ENG_EFORMAT,
                                   "%s: samples[%lld][%lld]: expected num_layers = %d lists "
                                   "(ragged layers)",
                                   path, (long long)s, (long long)i, (int)L);
            for (int32_t l = 0; l < L; l++) {
                json_t *a = layered ? json_array_get(tok, (size_t)l) : tok;
                int rc = read_ids(a, in, t->ids + (g * L + l) * k, path, s, i, l, err);
                if (rc)
                    return rc;
            }
        }
    }
    return ENG_OK;
}

static int labels(met_trace *t, json_t *root, const char *path, eng_err *err)
{
    json_t *lb = json_object_get(root, "labels");
    if (!lb)
        return ENG_OK;
    if (!json_is_array(lb) || (int64_t)json_array_size(lb) != t->info.num_samples)
        return eng_err_set(err, ENG_EFORMAT, "%s: \"labels\": expected one string per sample",
                           path);
    for (int64_t s = 0; s < t->info.num_samples; s++) {
        json_t *v = json_array_get(lb, (size_t)s);
        if (!json_is_string(v) || json_string_length(v) > MET_TRACE_MAX_LABEL ||
            strlen(json_string_value(v)) != json_string_length(v))
            return eng_err_set(err, ENG_EFORMAT, "%s: labels[%lld]: not a string (max %d bytes)",
                               path, (long long)s, MET_TRACE_MAX_LABEL);
        int rc = met_trace_set_label(t, s, json_string_value(v), err);
        if (rc)
            return rc;
    }
    return ENG_OK;
}

/* "prompt": one [tokens, batch] pair per sample (met_trace_prompt). */
static int prompts(met_trace *t, json_t *root, const char *path, eng_err *err)
{
    json_t *pr = json_object_get(root, "prompt");
    if (!pr)
        return ENG_OK;
    if (!json_is_array(pr) || (int64_t)json_array_size(pr) != t->info.num_samples)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: \"prompt\": expected one [tokens, batch] per sample", path);
    for (int64_t s = 0; s < t->info.num_samples; s++) {
        json_t *v = json_array_get(pr, (size_t)s), *a = json_array_get(v, 0),
               *b = json_array_get(v, 1);
        if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(a) ||
            !json_is_integer(b))
            return eng_err_set(err, ENG_EFORMAT, "%s: prompt[%lld]: not [tokens, batch]", path,
                               (long long)s);
        met_trace_prompt p = {json_integer_value(a), json_integer_value(b)};
        int rc = met_prompt_check(p, t->sample_start[s + 1] - t->sample_start[s], path, s, err);
        if (!rc)
            rc = met_trace_set_prompt(t, s, p, err);
        if (rc)
            return rc;
    }
    return ENG_OK;
}

static int from_json(met_trace **out, json_t *root, const char *path, eng_err *err)
{
    int64_t L = 1, E = 0, k = 0, off = 0;
    int layered = json_object_get(root, "num_layers") != NULL;
    int rc = get_int(root, "num_layers", 0, &L, path, err);
    if (!rc)
        rc = get_int(root, "layer_offset", 0, &off, path, err);
    if (!rc)
        rc = get_int(root, "num_experts", 1, &E, path, err);
    if (!rc)
        rc = get_int(root, "top_k", 1, &k, path, err);
    if (rc)
        return rc;
    if (L < 1 || L > MET_TRACE_MAX_LAYERS || E < 1 || E > MET_TRACE_MAX_EXPERTS || k < 1 ||
        k > E || off < 0 || off > MET_TRACE_MAX_LAYERS)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: num_layers/num_experts/top_k/layer_offset = %lld/%lld/%lld/%lld "
                           "out of range", path, (long long)L, (long long)E, (long long)k,
                           (long long)off);
    json_t *samples = json_object_get(root, "samples");
    if (!json_is_array(samples))
        return eng_err_set(err, ENG_EFORMAT, "%s: \"samples\": missing or not a list", path);
    int64_t S = (int64_t)json_array_size(samples);
    int64_t *counts = malloc((S ? (size_t)S : 1) * sizeof *counts);
    if (!counts)
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    for (int64_t s = 0; !rc && s < S; s++) {
        json_t *sm = json_array_get(samples, (size_t)s);
        if (!json_is_array(sm))
            rc = eng_err_set(err, ENG_EFORMAT, "%s: samples[%lld]: not a list", path,
                             (long long)s);
        else
            counts[s] = (int64_t)json_array_size(sm);
    }
    met_trace_info in = {.num_layers = (int32_t)L, .num_experts = (int32_t)E,
                         .top_k = (int32_t)k, .num_samples = S, .layer_offset = (int32_t)off};
    met_trace *t = NULL;
    if (!rc)
        rc = met_trace_alloc(&t, &in, counts, err);
    free(counts);
    if (!rc)
        rc = fill(t, samples, layered, path, err);
    if (!rc)
        rc = labels(t, root, path, err);
    if (!rc)
        rc = prompts(t, root, path, err);
    if (rc) {
        met_trace_free(t);
        return rc;
    }
    *out = t;
    return ENG_OK;
}

int met_trace_load_json(met_trace **out, const char *path, eng_err *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root && je.line < 0) /* could not read the file at all */
        return eng_err_set(err, ENG_EIO, "%s: %s", path, je.text);
    if (!root)
        return eng_err_set(err, ENG_EFORMAT, "%s:%d: %s", path, je.line, je.text);
    int rc = json_is_object(root)
                 ? from_json(out, root, path, err)
                 : eng_err_set(err, ENG_EFORMAT, "%s: top level is not an object", path);
    json_decref(root);
    return rc;
}

int met_trace_save_json(const met_trace *t, const char *path, eng_err *err)
{
    const met_trace_info *in = &t->info;
    int32_t L = in->num_layers, k = in->top_k;
    FILE *f = fopen(path, "w");
    if (!f)
        return eng_err_set(err, ENG_EIO, "%s: cannot create", path);
    /* Written by hand, streaming: a jansson tree of a large trace costs
     * ~100 bytes per id. */
    fprintf(f, "{\"num_layers\": %d, \"num_experts\": %d, \"top_k\": %d, ", (int)L,
            (int)in->num_experts, (int)k);
    if (in->layer_offset)
        fprintf(f, "\"layer_offset\": %d, ", (int)in->layer_offset);
    fputs("\"samples\": [", f);
    for (int64_t s = 0; s < in->num_samples; s++) {
        fputs(s ? ", [" : "[", f);
        for (int64_t g = t->sample_start[s]; g < t->sample_start[s + 1]; g++) {
            fputs(g > t->sample_start[s] ? ", [" : "[", f);
            for (int32_t l = 0; l < L; l++) {
                fputs(l ? ", [" : "[", f);
                for (int32_t r = 0; r < k; r++)
                    fprintf(f, r ? ", %u" : "%u", t->ids[((size_t)g * L + l) * k + r]);
                fputc(']', f);
            }
            fputc(']', f);
        }
        fputc(']', f);
    }
    fputc(']', f);
    if (t->labels) {
        fputs(", \"labels\": [", f);
        for (int64_t s = 0; s < in->num_samples; s++) {
            json_t *js = json_string(t->labels[s]); /* NULL if not UTF-8 */
            char *q = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
            json_decref(js);
            fprintf(f, "%s%s", s ? ", " : "", q ? q : "\"\"");
            free(q);
        }
        fputc(']', f);
    }
    if (t->prompt) {
        fputs(", \"prompt\": [", f);
        for (int64_t s = 0; s < in->num_samples; s++)
            fprintf(f, "%s[%lld, %lld]", s ? ", " : "", (long long)t->prompt[s].tokens,
                    (long long)t->prompt[s].batch);
        fputc(']', f);
    }
    fputs("}\n", f);
    if (ferror(f) | fclose(f))
        return eng_err_set(err, ENG_EIO, "%s: write failed", path);
    return ENG_OK;
}
