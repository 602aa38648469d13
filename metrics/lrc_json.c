/*
 * lrc_json.c — a met_lrc_report as the JSON document of `moebench metrics
 * --json` (the shape is a contract with the test vectors in
 * tests/metrics/data/: key names and order, CI keys only when
 * bootstrapped, segment lengths as string keys).
 */
#include "metrics/lrc.h"

#include <jansson.h>
#include <stdio.h>

static json_t *arr(const double *v, int64_t n)
{
    json_t *a = json_array();
    for (int64_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

static json_t *curve(const met_lrc_curve *c, int32_t E)
{
    json_t *o = json_object();
    json_object_set_new(o, "hit_rate", arr(c->hit_rate, E));
    if (c->ci_lb) {
        json_object_set_new(o, "ci_lb", arr(c->ci_lb, E));
        json_object_set_new(o, "ci_ub", arr(c->ci_ub, E));
    }
    return o;
}

static json_t *srp(const met_lrc_srp *s, int boot)
{
    json_t *o = json_object();
    json_object_set_new(o, "best_f1", json_real(s->srp.best_f1));
    json_object_set_new(o, "threshold", json_integer(s->srp.threshold));
    json_object_set_new(o, "act_r", json_real(s->srp.act_r));
    json_object_set_new(o, "best_m", json_real(s->srp.best_m));
    json_object_set_new(o, "f1", arr(s->f1, (int64_t)s->seg_len + 1));
    if (boot) {
        json_object_set_new(o, "ci_lb", json_real(s->ci_lb));
        json_object_set_new(o, "ci_ub", json_real(s->ci_ub));
    }
    return o;
}

static json_t *result(const met_lrc_result *r, int boot)
{
    json_t *o = json_object(), *segs = json_array(), *cm = json_array();
    json_t *js = json_object(), *jc = json_object();
    json_object_set_new(o, "num_experts", json_integer(r->num_experts));
    json_object_set_new(o, "top_k", json_integer(r->top_k));
    json_object_set_new(o, "num_samples", json_integer(r->num_samples));
    for (int q = 0; q < r->num_seg; q++) {
        char key[16];
        snprintf(key, sizeof key, "%d", (int)r->srp[q].seg_len);
        json_array_append_new(segs, json_integer(r->srp[q].seg_len));
        json_object_set_new(js, key, srp(&r->srp[q], boot));
        json_object_set_new(jc, key, curve(&r->sch[q], r->num_experts));
    }
    for (int32_t c = 1; c <= r->num_experts; c++)
        json_array_append_new(cm, json_real((double)c / r->top_k));
    json_object_set_new(o, "seg_lens", segs);
    json_object_set_new(o, "cache_m", cm);
    json_object_set_new(o, "srp", js);
    json_object_set_new(o, "sch", jc);
    for (int p = 0; p < 3; p++)
        json_object_set_new(o, met_policy_name((met_policy)p), curve(&r->curve[p], r->num_experts));
    return o;
}

json_t *met_lrc_report_json(const met_lrc_report *rep)
{
    json_t *o = json_object(), *layers = json_array();
    int boot = rep->bootstrap > 0;
    json_object_set_new(o, "num_layers", json_integer(rep->num_layers));
    if (rep->layer_offset) { /* the model's layer of each entry of "layers" */
        json_t *ml = json_array();
        for (int i = 0; i < rep->num_layers; i++)
            json_array_append_new(ml, json_integer(rep->layer_offset + rep->layer_index[i]));
        json_object_set_new(o, "model_layers", ml);
    }
    for (int i = 0; i < rep->num_layers; i++)
        json_array_append_new(layers, result(&rep->layers[i], boot));
    json_object_set_new(o, "layers", layers);
    if (rep->model)
        json_object_set_new(o, "model", result(rep->model, boot));
    return o;
}
