/*
 * test_lrc_compute.c — whole-trace metrics (met_lrc_compute, moebench
 * metrics): the test vectors through the C API and the CLI, model-wide ==
 * explicit concatenation, thread-count independence, bootstrap behaviour,
 * stride/layer selection.
 */
#include "metrics/lrc.h"
#include "metrics/trace.h"
#include "tests/metrics/lrc_util.h"
#include "tests/test.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>

static const char *const vectors[] = {"uniform-1x16k4", "sticky-2x8k2", "repeat-2x6k3"};

/* Same keys in the same order, numbers within tol. Returns mismatches. */
static int json_near(json_t *a, json_t *b, double tol, const char *where)
{
    if (json_is_object(b)) {
        int bad = 0;
        if (!json_is_object(a) || json_object_size(a) != json_object_size(b)) {
            tst_fail(__FILE__, __LINE__, "%s: object keys differ", where);
            return 1;
        }
        const char *k;
        json_t *v;
        void *it = json_object_iter(a);
        json_object_foreach(b, k, v) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s.%s", where, k);
            if (!it || strcmp(json_object_iter_key(it), k)) {
                tst_fail(__FILE__, __LINE__, "%s: key missing or out of order", sub);
                return bad + 1;
            }
            bad += json_near(json_object_iter_value(it), v, tol, sub);
            it = json_object_iter_next(a, it);
        }
        return bad;
    }
    if (json_is_array(b)) {
        int bad = 0;
        if (!json_is_array(a) || json_array_size(a) != json_array_size(b)) {
            tst_fail(__FILE__, __LINE__, "%s: array lengths differ", where);
            return 1;
        }
        for (size_t i = 0; i < json_array_size(b); i++) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s[%zu]", where, i);
            bad += json_near(json_array_get(a, i), json_array_get(b, i), tol, sub);
        }
        return bad;
    }
    double x = json_number_value(a), y = json_number_value(b);
    if (!json_is_number(a) || !(fabs(x - y) <= tol)) {
        tst_fail(__FILE__, __LINE__, "%s: %.17g vs %.17g", where, x, y);
        return 1;
    }
    return 0;
}

static json_t *load_expected(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "tests/metrics/data/%s.expected.json", name);
    json_t *j = json_load_file(p, 0, NULL);
    REQUIRE_MSG(j, "cannot read %s", p);
    return j;
}

static met_lrc_report *compute(const char *path, int boot, uint64_t seed, int threads,
                               const int32_t *segs, int nseg)
{
    met_trace_reader *r;
    eng_err err = {0};
    REQUIRE_MSG(!met_trace_reader_open(&r, path, MET_FMT_AUTO, &err), "%s", err.msg);
    met_lrc_opts o = {.seg_lens = segs, .num_seg_lens = nseg, .bootstrap = boot, .seed = seed,
                      .stride = 1, .threads = threads, .model = 1};
    met_lrc_report *rep;
    REQUIRE_MSG(!met_lrc_compute(r, &o, &rep, &err), "%s", err.msg);
    met_trace_reader_free(r);
    return rep;
}

TEST(vectors_through_api)
{
    static const int32_t segs[] = {4, 16};
    for (int i = 0; i < 3; i++) {
        char p[256];
        snprintf(p, sizeof p, "tests/metrics/data/%s.json", vectors[i]);
        met_lrc_report *rep = compute(p, 0, 0, 2, segs, 2);
        json_t *got = met_lrc_report_json(rep), *want = load_expected(vectors[i]);
        CHECK_EQ_INT(json_near(got, want, 1e-9, vectors[i]), 0);
        json_decref(got), json_decref(want);
        met_lrc_report_free(rep);
    }
}

TEST(vectors_through_cli)
{
    for (int i = 0; i < 3; i++) {
        char *out, *err;
        CHECK_EQ_INT(tst_sh(&out, &err, "%s metrics tests/metrics/data/%s.json --json "
                            "--bootstrap 0 --seg-lens 4,16", tst_moebench(), vectors[i]), 0);
        json_t *got = json_loads(out, 0, NULL), *want = load_expected(vectors[i]);
        REQUIRE_MSG(got, "not JSON: %s %s", out, err);
        CHECK_EQ_INT(json_near(got, want, 1e-9, vectors[i]), 0);
        json_decref(got), json_decref(want);
    }
}

TEST(vectors_from_every_format)
{
    /* the same numbers whatever the trace's file format */
    static const int32_t segs[] = {4, 16};
    const char *fmts[] = {"t.moetrace", "t.csv", "t.json"};
    met_trace *t;
    REQUIRE(!met_trace_load(&t, "tests/metrics/data/sticky-2x8k2.json", MET_FMT_AUTO, NULL));
    json_t *want = load_expected("sticky-2x8k2");
    for (int i = 0; i < 3; i++) {
        REQUIRE(!met_trace_save(t, tst_path(fmts[i]), MET_FMT_AUTO, NULL));
        met_lrc_report *rep = compute(tst_path(fmts[i]), 0, 0, 1, segs, 2);
        json_t *got = met_lrc_report_json(rep);
        CHECK_EQ_INT(json_near(got, want, 1e-9, fmts[i]), 0);
        json_decref(got);
        met_lrc_report_free(rep);
    }
    REQUIRE(!met_trace_save(t, tst_path("st"), MET_FMT_SAFETENSORS, NULL));
    met_lrc_report *rep = compute(tst_path("st"), 0, 0, 1, segs, 2);
    json_t *got = met_lrc_report_json(rep);
    CHECK_EQ_INT(json_near(got, want, 1e-9, "safetensors"), 0);
    json_decref(got), json_decref(want);
    met_lrc_report_free(rep);
    met_trace_free(t);
}

/* Builds the one-layer trace whose token t holds layer l's ids + l*E. */
static met_trace *concatenate(const met_trace *t)
{
    const met_trace_info *in = &t->info;
    int64_t *counts = tst_alloc((size_t)in->num_samples * 8 + 8);
    for (int64_t s = 0; s < in->num_samples; s++)
        counts[s] = t->sample_start[s + 1] - t->sample_start[s];
    met_trace_info ci = {.num_layers = 1, .num_experts = in->num_experts * in->num_layers,
                         .top_k = in->top_k * in->num_layers, .num_samples = in->num_samples};
    met_trace *c;
    REQUIRE(!met_trace_alloc(&c, &ci, counts, NULL));
    for (int64_t g = 0; g < in->num_tokens; g++)
        for (int32_t l = 0; l < in->num_layers; l++)
            for (int32_t r = 0; r < in->top_k; r++)
                c->ids[g * ci.top_k + l * in->top_k + r] =
                    (uint16_t)(t->ids[(g * in->num_layers + l) * in->top_k + r] +
                               l * in->num_experts);
    return c;
}

TEST(model_equals_concatenated_trace)
{
    lrc_rng g = {99};
    static const int32_t segs[] = {2, 5, 9};
    for (int it = 0; it < 6; it++) {
        met_trace *t = lrc_random_trace(&g, 2 + it % 3, 3 + it, 1 + it % 3, 5 + it, 25, 0);
        REQUIRE(t);
        met_trace *c = concatenate(t);
        REQUIRE(!met_trace_write_moetrace(t, tst_path("t.moetrace"), NULL));
        REQUIRE(!met_trace_write_moetrace(c, tst_path("c.moetrace"), NULL));
        met_lrc_report *a = compute(tst_path("t.moetrace"), 20, 5, 2, segs, 3);
        met_lrc_report *b = compute(tst_path("c.moetrace"), 20, 5, 1, segs, 3);
        json_t *ja = json_object_get(met_lrc_report_json(a), "model");
        json_t *jb = json_array_get(json_object_get(met_lrc_report_json(b), "layers"), 0);
        CHECK_EQ_INT(json_near(ja, jb, 1e-12, "model"), 0);
        met_lrc_report_free(a), met_lrc_report_free(b);
        met_trace_free(t), met_trace_free(c);
    }
}

static char *report_text(met_lrc_report *rep)
{
    json_t *j = met_lrc_report_json(rep);
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    met_lrc_report_free(rep);
    return s;
}

TEST(threads_and_seed)
{
    lrc_rng g = {4};
    static const int32_t segs[] = {4, 8};
    met_trace *t = lrc_random_trace(&g, 3, 8, 2, 40, 30, 0);
    REQUIRE(!met_trace_write_moetrace(t, tst_path("t.moetrace"), NULL));
    char *one = report_text(compute(tst_path("t.moetrace"), 100, 42, 1, segs, 2));
    char *three = report_text(compute(tst_path("t.moetrace"), 100, 42, 3, segs, 2));
    char *again = report_text(compute(tst_path("t.moetrace"), 100, 42, 2, segs, 2));
    char *other = report_text(compute(tst_path("t.moetrace"), 100, 43, 2, segs, 2));
    CHECK(!strcmp(one, three));
    CHECK(!strcmp(one, again));
    CHECK(strcmp(one, other) != 0);
    CHECK(strstr(one, "\"ci_lb\"") != NULL);
    free(one), free(three), free(again), free(other);
    met_trace_free(t);
}

/* A stable trace (many samples, each the same process): every interval
 * holds its estimate; with B = 0 there are no CI keys at all. */
TEST(bootstrap_intervals)
{
    lrc_rng g = {8};
    static const int32_t segs[] = {4};
    met_trace *t = lrc_random_trace(&g, 2, 8, 2, 300, 40, 0);
    REQUIRE(!met_trace_write_moetrace(t, tst_path("t.moetrace"), NULL));
    met_lrc_report *rep = compute(tst_path("t.moetrace"), 200, 1, 2, segs, 1);
    for (int i = 0; i <= rep->num_layers; i++) {
        met_lrc_result *r = i < rep->num_layers ? &rep->layers[i] : rep->model;
        CHECK(r->srp[0].ci_lb <= r->srp[0].srp.best_f1 && r->srp[0].srp.best_f1 <= r->srp[0].ci_ub);
        CHECK(r->srp[0].ci_ub - r->srp[0].ci_lb < 0.1);
        for (int p = 0; p < 3; p++)
            for (int32_t c = 0; c < r->num_experts; c++) {
                const met_lrc_curve *cv = &r->curve[p];
                CHECK_MSG(cv->ci_lb[c] <= cv->hit_rate[c] + 1e-12 &&
                              cv->hit_rate[c] <= cv->ci_ub[c] + 1e-12,
                          "layer %d %s c=%d: %g not in [%g, %g]", i, met_policy_name(p), c + 1,
                          cv->hit_rate[c], cv->ci_lb[c], cv->ci_ub[c]);
            }
    }
    met_lrc_report_free(rep);
    char *none = report_text(compute(tst_path("t.moetrace"), 0, 1, 2, segs, 1));
    CHECK(strstr(none, "ci_lb") == NULL && strstr(none, "ci_ub") == NULL);
    free(none);
    met_trace_free(t);
}

TEST(basic_bootstrap_indices)
{
    double rep[1000];
    for (int i = 0; i < 1000; i++)
        rep[i] = (double)((i * 7919) % 1000); /* a permutation of 0..999 */
    double lb, ub;
    met_bootstrap_basic(500, rep, 1000, 0.95, &lb, &ub);
    CHECK_NEAR(lb, 2 * 500 - 975, 0); /* hi = 975 */
    CHECK_NEAR(ub, 2 * 500 - 25, 0);  /* lo = 25 */
    /* B = 20: round(0.5) = 0 (half to even, as the reference's Python) */
    double r20[20];
    for (int i = 0; i < 20; i++)
        r20[i] = 19 - i;
    met_bootstrap_basic(10, r20, 20, 0.95, &lb, &ub);
    CHECK_NEAR(ub, 2 * 10 - 0, 0);    /* rep[lo = 0] after sorting = 0 */
    CHECK_NEAR(lb, 2 * 10 - 19, 0);   /* hi = 20 clamped to 19 */
    /* B = 60: round(1.5) = 2 */
    double r60[60];
    for (int i = 0; i < 60; i++)
        r60[i] = i;
    met_bootstrap_basic(30, r60, 60, 0.95, &lb, &ub);
    CHECK_NEAR(ub, 60 - 2, 0);
    CHECK_NEAR(lb, 60 - 58, 0);
}

TEST(stride_layers_and_long_segments)
{
    lrc_rng g = {17};
    met_trace *t = lrc_random_trace(&g, 3, 6, 2, 9, 12, 0);
    REQUIRE(!met_trace_write_moetrace(t, tst_path("t.moetrace"), NULL));
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s metrics %s --json --bootstrap 0 --seg-lens 2,500 "
                        "--stride 2 --layers 1", tst_moebench(), tst_path("t.moetrace")), 0);
    json_t *j = json_loads(out, 0, NULL);
    REQUIRE_MSG(j, "%s", err);
    json_t *l0 = json_array_get(json_object_get(j, "layers"), 0);
    CHECK_EQ_INT(json_object_get(j, "num_layers") ? json_integer_value(json_object_get(j, "num_layers")) : -1, 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(l0, "num_samples")), 5);
    CHECK_EQ_INT(json_array_size(json_object_get(l0, "seg_lens")), 1); /* 500 skipped */
    CHECK(json_object_get(json_object_get(l0, "srp"), "500") == NULL);
    json_decref(j);
    met_trace_free(t);
}

TEST(table_output)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s metrics tests/metrics/data/sticky-2x8k2.json "
                        "--bootstrap 50 --seg-lens 4,16", tst_moebench()), 0);
    CHECK_CONTAINS(out, "SRP");
    CHECK_CONTAINS(out, "model");
    CHECK_CONTAINS(out, "0.8592"); /* layer 0 SRP at L=4: 0.859235... */
}

TEST(from_option_and_empty_traces)
{
    const char *e2 = "{\"num_experts\":4,\"top_k\":2,\"samples\":[[],[[0,1],[1,2]]]}";
    tst_write_file(tst_path("e2.dat"), e2, strlen(e2));
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s metrics %s --from json --json --bootstrap 0 --seg-lens 1,2",
                        tst_moebench(), tst_path("e2.dat")), 0);
    CHECK_CONTAINS(out, "\"num_samples\":1"); /* the empty sample is left out */
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s metrics %s --bootstrap 0", tst_moebench(),
                        tst_path("e2.dat")), 2); /* .dat read as moetrace: bad magic */
    CHECK_CONTAINS(err, "header");
    const char *e0 = "{\"num_experts\":4,\"top_k\":2,\"samples\":[]}";
    tst_write_file(tst_path("e0.json"), e0, strlen(e0));
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s metrics %s --json --bootstrap 20", tst_moebench(),
                        tst_path("e0.json")), 0);
    CHECK_CONTAINS(out, "\"num_samples\":0");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s metrics %s --seg-lens 4,4", tst_moebench(),
                        tst_path("e0.json")), 2);
    CHECK_CONTAINS(err, "given twice");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s metrics %s --layers 3", tst_moebench(),
                        tst_path("e0.json")), 2);
    CHECK_CONTAINS(err, "layer 3");
}
