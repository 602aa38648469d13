/*
 * subset.c — PreMoe expert subsets (subset.h): scoring a profile trace,
 * choosing the kept experts, and the JSON file.
 */
#include "metrics/subset.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int alloc_subset(met_subset **out, int32_t L, int32_t E, eng_err *err)
{
    met_subset *s = calloc(1, sizeof *s);
    if (s) {
        s->num_layers = L;
        s->num_experts = E;
        s->n_keep = calloc((size_t)L, sizeof *s->n_keep);
        s->keep = calloc((size_t)L * (size_t)E, sizeof *s->keep);
        s->score = calloc((size_t)L * (size_t)E, sizeof *s->score);
    }
    if (!s || !s->n_keep || !s->keep || !s->score) {
        met_subset_free(s);
        return eng_err_set(err, ENG_ENOMEM, "expert subset: out of memory");
    }
    *out = s;
    return ENG_OK;
}

void met_subset_free(met_subset *s)
{
    if (!s)
        return;
    free(s->n_keep);
    free(s->keep);
    free(s->score);
    free(s);
}

/* TCESS over the trace into s->score. */
static void score_trace(met_subset *s, const met_trace *t, double min_weight)
{
    const int32_t L = s->num_layers, E = s->num_experts, k = s->top_k;
    const int64_t T = t->info.num_tokens;
    for (int64_t tok = 0; tok < T; tok++)
        for (int32_t l = 0; l < L; l++)
            for (int32_t r = 0; r < k; r++) {
                size_t i = ((size_t)tok * L + l) * k + r;
                double w = t->weights ? t->weights[i] : 1.0;
                if (w >= min_weight)
                    s->score[(size_t)l * E + t->ids[i]] += w;
            }
    for (size_t i = 0; T > 0 && i < (size_t)L * E; i++)
        s->score[i] /= (double)T;
}

/* Layer l's experts by score (ties: lower id), the first n into keep. */
static void rank_layer(met_subset *s, int32_t l, int32_t n)
{
    const int32_t E = s->num_experts;
    const double *sc = s->score + (size_t)l * E;
    int32_t *out = s->keep + (size_t)l * E;
    for (int32_t e = 0; e < E; e++) { /* insertion sort: E <= 65536, once */
        int32_t i = e;
        for (; i > 0 && sc[out[i - 1]] < sc[e]; i--)
            out[i] = out[i - 1];
        out[i] = e;
    }
    s->n_keep[l] = n;
}

static int budget_of(const met_trace *t, const met_subset_opts *o, int32_t l, int32_t *n,
                     eng_err *err)
{
    const int32_t E = t->info.num_experts, k = t->info.top_k;
    if (o->keep > 0) {
        *n = o->keep;
    } else {
        if (!(o->keep_bytes > 0) || !o->expert_bytes || !(o->expert_bytes[l] > 0))
            return eng_err_set(err, ENG_EINVAL,
                               "expert subset: a budget in experts per layer or in bytes "
                               "(with each layer's expert bytes) is needed");
        double per = o->keep_bytes / t->info.num_layers / o->expert_bytes[l];
        *n = per >= E ? E : (int32_t)per;
    }
    if (*n < k || *n > E)
        return eng_err_set(err, ENG_EINVAL,
                           "expert subset: layer %d would keep %d experts; it needs at least "
                           "top-k = %d and at most %d%s",
                           l + t->info.layer_offset, *n, k, E,
                           o->keep > 0 ? "" : " (raise the byte budget)");
    return ENG_OK;
}

int met_subset_build(const met_trace *t, const met_subset_opts *o, met_subset **out,
                     eng_err *err)
{
    *out = NULL;
    if (!(o->min_weight >= 0))
        return eng_err_set(err, ENG_EINVAL, "expert subset: min weight %g < 0", o->min_weight);
    met_subset *s;
    int rc = alloc_subset(&s, t->info.num_layers, t->info.num_experts, err);
    if (rc)
        return rc;
    s->top_k = t->info.top_k;
    s->layer_offset = t->info.layer_offset;
    s->profile_tokens = t->info.num_tokens;
    s->min_weight = o->min_weight;
    s->weighted = t->weights != NULL;
    score_trace(s, t, o->min_weight);
    for (int32_t l = 0; l < s->num_layers && !rc; l++) {
        int32_t n = 0;
        if (!(rc = budget_of(t, o, l, &n, err)))
            rank_layer(s, l, n);
    }
    if (rc) {
        met_subset_free(s);
        return rc;
    }
    *out = s;
    return ENG_OK;
}

uint8_t *met_subset_mask(const met_subset *s)
{
    const size_t E = (size_t)s->num_experts;
    uint8_t *m = calloc((size_t)s->num_layers * E, 1);
    for (int32_t l = 0; m && l < s->num_layers; l++)
        for (int32_t i = 0; i < s->n_keep[l]; i++)
            m[(size_t)l * E + (size_t)s->keep[(size_t)l * E + i]] = 1;
    return m;
}

/* ---- file ---------------------------------------------------------------- */

int met_subset_save(const met_subset *s, const char *path, eng_err *err)
{
    const size_t E = (size_t)s->num_experts;
    json_t *layers = json_array();
    for (int32_t l = 0; layers && l < s->num_layers; l++) {
        json_t *keep = json_array(), *score = json_array();
        for (int32_t i = 0; i < s->n_keep[l]; i++)
            json_array_append_new(keep, json_integer(s->keep[(size_t)l * E + i]));
        for (size_t e = 0; e < E; e++)
            json_array_append_new(score, json_real(s->score[(size_t)l * E + e]));
        json_array_append_new(layers, json_pack("{s:i, s:o, s:o}", "layer", l, "keep", keep,
                                                "score", score));
    }
    json_t *root = json_pack(
        "{s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:f, s:b, s:o}", "format", "moebench-expert-subset",
        "version", 1, "num_layers", s->num_layers, "num_experts", s->num_experts, "top_k",
        s->top_k, "layer_offset", s->layer_offset, "profile_tokens",
        (json_int_t)s->profile_tokens, "min_weight", s->min_weight, "weighted", s->weighted,
        "layers", layers);
    int bad = !root || json_dump_file(root, path, JSON_COMPACT | JSON_REAL_PRECISION(17)) != 0;
    json_decref(root);
    return bad ? eng_err_set(err, ENG_EIO, "%s: cannot write the expert subset", path) : ENG_OK;
}

/* An integer field of o in [lo, hi], or an error naming it. */
static int int_field(const json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *v,
                     const char *path, eng_err *err)
{
    const json_t *j = json_object_get(o, key);
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi)
        return eng_err_set(err, ENG_EFORMAT, "%s: field '%s': an integer in [%lld, %lld] is "
                           "needed", path, key, (long long)lo, (long long)hi);
    *v = json_integer_value(j);
    return ENG_OK;
}

/* Layer l's entry: its keep list (distinct ids in range, >= top_k) and scores. */
static int load_layer(met_subset *s, const json_t *jl, int32_t l, const char *path, eng_err *err)
{
    const size_t E = (size_t)s->num_experts;
    const json_t *keep = json_object_get(jl, "keep"), *score = json_object_get(jl, "score");
    int64_t lv;
    if (!json_is_object(jl) || int_field(jl, "layer", l, l, &lv, path, err))
        return eng_err_set(err, ENG_EFORMAT, "%s: layers[%d]: an object with \"layer\": %d is "
                           "needed", path, l, l);
    size_t n = json_array_size(keep);
    if (!json_is_array(keep) || n < (size_t)s->top_k || n > E)
        return eng_err_set(err, ENG_EFORMAT, "%s: layers[%d].keep: %zu experts; at least "
                           "top_k = %d and at most %zu are needed", path, l, n, s->top_k, E);
    uint8_t *seen = calloc(E, 1);
    if (!seen)
        return eng_err_set(err, ENG_ENOMEM, "out of memory");
    int rc = ENG_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const json_t *v = json_array_get(keep, i);
        json_int_t e = json_is_integer(v) ? json_integer_value(v) : -1;
        if (e < 0 || (size_t)e >= E || seen[e])
            rc = eng_err_set(err, ENG_EFORMAT, "%s: layers[%d].keep[%zu]: %s", path, l, i,
                             e < 0 || (size_t)e >= E ? "not an expert id of the model"
                                                     : "expert listed twice");
        else
            seen[e] = 1, s->keep[l * E + i] = (int32_t)e;
    }
    free(seen);
    s->n_keep[l] = (int32_t)n;
    if (!rc && (!json_is_array(score) || json_array_size(score) != E))
        rc = eng_err_set(err, ENG_EFORMAT, "%s: layers[%d].score: %zu numbers are needed",
                         path, l, E);
    for (size_t e = 0; !rc && e < E; e++) {
        const json_t *v = json_array_get(score, e);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            rc = eng_err_set(err, ENG_EFORMAT, "%s: layers[%d].score[%zu]: not a finite number",
                             path, l, e);
        else
            s->score[l * E + e] = json_number_value(v);
    }
    return rc;
}

static int load_root(met_subset **out, const json_t *root, const char *path, eng_err *err)
{
    const char *fmt = json_string_value(json_object_get(root, "format"));
    if (!fmt || strcmp(fmt, "moebench-expert-subset"))
        return eng_err_set(err, ENG_EFORMAT, "%s: field 'format' is not "
                           "\"moebench-expert-subset\" (make one with `moebench trace subset`)",
                           path);
    int64_t ver, L, E, k, off, tok;
    int rc;
    if ((rc = int_field(root, "version", 1, 1, &ver, path, err)) ||
        (rc = int_field(root, "num_layers", 1, MET_TRACE_MAX_LAYERS, &L, path, err)) ||
        (rc = int_field(root, "num_experts", 1, MET_TRACE_MAX_EXPERTS, &E, path, err)) ||
        (rc = int_field(root, "top_k", 1, E, &k, path, err)) ||
        (rc = int_field(root, "layer_offset", 0, MET_TRACE_MAX_LAYERS, &off, path, err)) ||
        (rc = int_field(root, "profile_tokens", 0, INT64_MAX, &tok, path, err)))
        return rc;
    const json_t *layers = json_object_get(root, "layers");
    if (!json_is_array(layers) || json_array_size(layers) != (size_t)L)
        return eng_err_set(err, ENG_EFORMAT, "%s: field 'layers': an array of num_layers = "
                           "%lld entries is needed", path, (long long)L);
    met_subset *s;
    if ((rc = alloc_subset(&s, (int32_t)L, (int32_t)E, err)))
        return rc;
    s->top_k = (int32_t)k;
    s->layer_offset = (int32_t)off;
    s->profile_tokens = tok;
    s->min_weight = json_number_value(json_object_get(root, "min_weight"));
    s->weighted = json_is_true(json_object_get(root, "weighted"));
    for (int32_t l = 0; l < s->num_layers && !rc; l++)
        rc = load_layer(s, json_array_get(layers, (size_t)l), l, path, err);
    if (rc) {
        met_subset_free(s);
        return rc;
    }
    *out = s;
    return ENG_OK;
}

int met_subset_load(met_subset **out, const char *path, eng_err *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return eng_err_set(err, je.line < 0 ? ENG_EIO : ENG_EFORMAT, "%s:%d: %s", path,
                           je.line, je.text);
    int rc = json_is_object(root)
                 ? load_root(out, root, path, err)
                 : eng_err_set(err, ENG_EFORMAT, "%s: not a JSON object", path);
    json_decref(root);
    return rc;
}
