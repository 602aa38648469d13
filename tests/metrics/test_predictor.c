/*
 * test_predictor.c — routing predictors (engine/predict.h) against brute
 * force on synthetic traces: every count of the three tables by a literal
 * scan, every prediction by sorting all experts, the simulator's
 * prediction accuracy by replaying the units with the brute-force
 * predictions; the file round trip and a broken file per check.
 */
#include "engine/predict.h"
#include "metrics/simulate.h"
#include "metrics/synth.h"
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static met_trace *synth(int L, int E, int k, int S, int T, met_synth_model model, uint64_t seed)
{
    met_synth_opts o = {.num_layers = L, .num_experts = E, .top_k = k, .num_samples = S,
                        .tokens = T, .model = model, .stickiness = 0.6, .segment_len = 16,
                        .seed = seed};
    met_trace *t;
    eng_err e;
    REQUIRE_MSG(met_synth_trace(&t, &o, &e) == ENG_OK, "%s", e.msg);
    return t;
}

static eng_predictor *build(const met_trace *t)
{
    const met_trace_info *in = &t->info;
    eng_predictor *p;
    eng_err e;
    REQUIRE(eng_predictor_new(&p, in->num_layers, in->num_experts, in->top_k,
                              in->layer_offset, &e) == ENG_OK);
    for (int64_t s = 0; s < in->num_samples; s++) {
        int64_t t0 = t->sample_start[s];
        REQUIRE(eng_predictor_add_sample(p, t->ids + t0 * in->num_layers * in->top_k,
                                         t->sample_start[s + 1] - t0, &e) == ENG_OK);
    }
    return p;
}

/* Whether token tok (global) chose e at layer l. */
static int chose(const met_trace *t, int64_t tok, int l, int e)
{
    for (int r = 0; r < t->info.top_k; r++)
        if (t->ids[(tok * t->info.num_layers + l) * t->info.top_k + r] == e)
            return 1;
    return 0;
}

/* The three tables by a literal scan over (sample, token, i, j). */
static void check_counts(const met_trace *t, const eng_predictor *p)
{
    const int L = t->info.num_layers, E = t->info.num_experts;
    int bad = 0;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < E; i++) {
            uint64_t f = 0;
            for (int64_t tok = 0; tok < t->info.num_tokens; tok++)
                f += (uint64_t)chose(t, tok, l, i);
            bad += eng_predictor_freq(p, l, i) != f;
            for (int j = 0; j < E; j++) {
                uint64_t tr = 0, hi = 0;
                for (int64_t s = 0; s < t->info.num_samples; s++)
                    for (int64_t tok = t->sample_start[s]; tok < t->sample_start[s + 1]; tok++) {
                        int nx = tok + 1 < t->sample_start[s + 1];
                        if (!chose(t, tok, l, i))
                            continue;
                        if (l + 1 < L)
                            tr += (uint64_t)chose(t, tok, l + 1, j);
                        else if (nx)
                            tr += (uint64_t)chose(t, tok + 1, 0, j);
                        if (nx)
                            hi += (uint64_t)chose(t, tok + 1, l, j);
                    }
                bad += eng_predictor_trans(p, l, i, j) != tr;
                bad += eng_predictor_hist(p, l, i, j) != hi;
            }
        }
    CHECK_MSG(bad == 0, "%d counts differ from the brute-force scan", bad);
}

/* Whether expert x ranks before y: score, then frequency, then lower id. */
static int before(const double *score, const uint64_t *fq, int x, int y)
{
    if (score[x] != score[y])
        return score[x] > score[y];
    if (fq[x] != fq[y])
        return fq[x] > fq[y];
    return x < y;
}

/* The prediction by scoring each expert from the tables and sorting all. */
static int brute_predict(const eng_predictor *p, int kind, int nl, const int32_t *cur, int nc,
                         const int32_t *prev, int np, int n, int32_t *out)
{
    eng_predictor_info in = eng_predictor_get_info(p);
    double score[256];
    uint64_t fq[256];
    int order[256];
    for (int j = 0; j < in.n_expert; j++) {
        fq[j] = eng_predictor_freq(p, nl, j);
        score[j] = 0;
        if (kind == ENG_PREDICT_FREQUENCY)
            score[j] = (double)fq[j];
        for (int a = 0; kind == ENG_PREDICT_TRANSITION && a < nc; a++)
            score[j] += (double)eng_predictor_trans(p, nl ? nl - 1 : in.n_layer - 1, cur[a], j);
        for (int a = 0; kind == ENG_PREDICT_HISTORY && a < np; a++)
            score[j] += (double)eng_predictor_hist(p, nl, prev[a], j);
    }
    for (int j = 0; j < in.n_expert; j++) { /* a full insertion sort of every expert */
        int i = j;
        for (; i > 0 && before(score, fq, j, order[i - 1]); i--)
            order[i] = order[i - 1];
        order[i] = j;
    }
    n = n < in.n_expert ? n : in.n_expert;
    for (int i = 0; i < n; i++)
        out[i] = order[i];
    return n;
}

/* Every prediction the replay makes, against brute force, for each kind. */
static void check_predictions(const met_trace *t, const eng_predictor *p, int n)
{
    const int L = t->info.num_layers, k = t->info.top_k;
    int32_t cur[64], prev[64], a[256], b[256];
    double scratch[256];
    int bad = 0;
    for (int kind = 0; kind < 3; kind++)
        for (int64_t tok = 1; tok < t->info.num_tokens; tok++)
            for (int l = 0; l < L; l++) {
                int nl = (l + 1) % L;
                int64_t ntok = l + 1 < L ? tok : tok + 1;
                for (int r = 0; r < k; r++) {
                    cur[r] = t->ids[(tok * L + l) * k + r];
                    prev[r] = t->ids[((ntok - 1) * L + nl) * k + r];
                }
                int na = eng_predictor_predict(p, (eng_predict_kind)kind, nl, cur, k, prev, k, n,
                                               a, scratch);
                int nb = brute_predict(p, kind, nl, cur, k, prev, k, n, b);
                bad += na != nb || memcmp(a, b, (size_t)na * sizeof *a) != 0;
            }
    CHECK_MSG(bad == 0, "%d predictions differ from brute force (n %d)", bad, n);
}

TEST(predictor_counts_and_predictions_brute_force)
{
    met_synth_model models[] = {MET_SYNTH_STICKY, MET_SYNTH_SEGMENTS, MET_SYNTH_ZIPF};
    for (int m = 0; m < 3; m++) {
        met_trace *t = synth(4, 12, 2, 3, 40, models[m], 11 + (uint64_t)m);
        eng_predictor *p = build(t);
        CHECK(eng_predictor_get_info(p).tokens == (uint64_t)t->info.num_tokens);
        check_counts(t, p);
        check_predictions(t, p, 2);
        check_predictions(t, p, 5);
        eng_predictor_free(p);
        met_trace_free(t);
    }
}

/* The simulator's prediction accuracy: the units in replay order, each
 * scoring the prediction made at the unit before it in its sample. */
static void brute_accuracy(const met_trace *t, const eng_predictor *p, int kind, int n,
                           int64_t *made, int64_t *used)
{
    const int L = t->info.num_layers, k = t->info.top_k;
    *made = *used = 0;
    int32_t pred[256], cur[64], prev[64];
    for (int64_t s = 0; s < t->info.num_samples; s++)
        for (int64_t tok = t->sample_start[s]; tok < t->sample_start[s + 1]; tok++)
            for (int l = 0; l < L; l++) {
                if (tok == t->sample_start[s] && l == 0)
                    continue; /* nothing predicted for a sample's first unit */
                int pl = l ? l - 1 : L - 1;
                int64_t ptok = l ? tok : tok - 1;
                for (int r = 0; r < k; r++)
                    cur[r] = t->ids[(ptok * L + pl) * k + r];
                int has_prev = tok > t->sample_start[s];
                for (int r = 0; has_prev && r < k; r++)
                    prev[r] = t->ids[((tok - 1) * L + l) * k + r];
                int np = brute_predict(p, kind, l, cur, k, prev, has_prev ? k : 0, n, pred);
                for (int i = 0; i < np; i++) {
                    (*made)++;
                    *used += chose(t, tok, l, pred[i]);
                }
            }
}

TEST(simulate_prediction_accuracy_brute_force)
{
    met_trace *t = synth(3, 10, 2, 4, 30, MET_SYNTH_STICKY, 5);
    met_trace *prof = synth(3, 10, 2, 2, 50, MET_SYNTH_STICKY, 6);
    eng_predictor *p = build(prof);
    for (int kind = 0; kind < 3; kind++)
        for (int n = 1; n <= 4; n += 3) {
            met_sim_config c;
            met_sim_config_default(&c);
            c.cache_experts = 6;
            c.prefetch = MET_SIM_PREFETCH_PREDICT;
            c.predictor = p;
            c.predict_kind = kind;
            c.predict_n = n;
            met_sim_result *r;
            eng_err e;
            REQUIRE_MSG(met_sim_run(t, &c, &r, &e) == ENG_OK, "%s", e.msg);
            int64_t made, used;
            brute_accuracy(t, p, kind, n, &made, &used);
            CHECK_MSG(r->total.predicted == made && r->total.predicted_used == used,
                      "kind %d n %d: simulate %lld/%lld, brute force %lld/%lld", kind, n,
                      (long long)r->total.predicted_used, (long long)r->total.predicted,
                      (long long)used, (long long)made);
            CHECK(r->total.prefetch_issued == r->total.prefetch_useful + r->total.prefetch_wasted);
            CHECK(r->total.hits + r->total.misses == r->total.accesses);
            met_sim_result_free(r);
        }
    /* a predictor of another shape, and --layer, are errors */
    met_trace *other = synth(2, 10, 2, 1, 10, MET_SYNTH_STICKY, 7);
    eng_predictor *q = build(other);
    met_sim_config c;
    met_sim_config_default(&c);
    c.cache_experts = 6;
    c.prefetch = MET_SIM_PREFETCH_PREDICT;
    c.predictor = q;
    met_sim_result *r;
    eng_err e;
    CHECK(met_sim_run(t, &c, &r, &e) == ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "predictor has 2 layers");
    c.predictor = p;
    c.layer = 1;
    CHECK(met_sim_run(t, &c, &r, &e) == ENG_EINVAL);
    eng_predictor_free(q);
    eng_predictor_free(p);
    met_trace_free(other);
    met_trace_free(prof);
    met_trace_free(t);
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(b, 1, n, f) == n);
    fclose(f);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = tst_alloc(*n);
    REQUIRE(fread(b, 1, *n, f) == *n);
    fclose(f);
    return b;
}

TEST(predictor_file_roundtrip_and_bad_files)
{
    met_trace *t = synth(3, 8, 2, 2, 25, MET_SYNTH_SEGMENTS, 3);
    eng_predictor *p = build(t), *q;
    eng_err e;
    const char *path = tst_path("p.pred");
    REQUIRE(eng_predictor_save(p, path, &e) == ENG_OK);
    REQUIRE_MSG(eng_predictor_load(&q, path, &e) == ENG_OK, "%s", e.msg);
    eng_predictor_info a = eng_predictor_get_info(p), b = eng_predictor_get_info(q);
    CHECK(a.n_layer == b.n_layer && a.n_expert == b.n_expert && a.top_k == b.top_k &&
          a.tokens == b.tokens && a.layer_offset == b.layer_offset);
    int diff = 0;
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < 8; i++) {
            diff += eng_predictor_freq(p, l, i) != eng_predictor_freq(q, l, i);
            for (int j = 0; j < 8; j++)
                diff += eng_predictor_trans(p, l, i, j) != eng_predictor_trans(q, l, i, j) ||
                        eng_predictor_hist(p, l, i, j) != eng_predictor_hist(q, l, i, j);
        }
    CHECK(diff == 0);
    eng_predictor_free(q);
    size_t n;
    unsigned char *good = read_all(path, &n), *bad = tst_alloc(n + 8);
    const char *bp = tst_path("bad.pred");
    struct { size_t off; unsigned char v; size_t len; const char *msg; } cases[] = {
        {0, 'X', n, "not a moebench predictor"},        /* magic */
        {8, 2, n, "version 2"},                          /* version */
        {15, 0x40, n, "out of range"},                   /* L huge */
        {16, 0, n, "out of range"},                      /* E = 0 */
        {20, 9, n, "out of range"},                      /* k > E */
        {0, 0, n - 8, "needs"},                          /* truncated */
        {0, 0, 20, "shorter than"},                      /* header cut */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        memcpy(bad, good, n);
        if (cases[c].off || cases[c].v)
            bad[cases[c].off] = cases[c].v;
        write_bytes(bp, bad, cases[c].len);
        q = NULL;
        int rc = eng_predictor_load(&q, bp, &e);
        CHECK_MSG(rc == ENG_EFORMAT && q == NULL, "case %zu: rc %d", c, rc);
        CHECK_CONTAINS(e.msg, cases[c].msg);
        CHECK_CONTAINS(e.msg, "bad.pred");
    }
    memcpy(bad, good, n);
    write_bytes(bp, bad, n + 8); /* trailing bytes */
    CHECK(eng_predictor_load(&q, bp, &e) == ENG_EFORMAT);
    CHECK(eng_predictor_load(&q, tst_path("missing.pred"), &e) == ENG_EIO);
    /* an id out of range leaves the counts as they were */
    uint16_t ids[3 * 2] = {0, 1, 2, 3, 4, 99};
    CHECK(eng_predictor_add_sample(p, ids, 1, &e) == ENG_EINVAL);
    CHECK(eng_predictor_get_info(p).tokens == a.tokens);
    eng_predictor_free(p);
    met_trace_free(t);
}
