/* test_sample.c — the sampler: greedy, top-k/top-p support, seeds; and the
 * thread pool runs every task once. */
#include "engine/pool.h"
#include "engine/sample.h"
#include "tests/test.h"

#include <math.h>
#include <stdatomic.h>

enum { NV = 50 };

static void make_logits(float *l)
{
    for (int i = 0; i < NV; i++)
        l[i] = (float)((i * 37) % NV) / 10.0f; /* a permutation: distinct values */
}

static eng_sampler *open_s(double temp, int top_k, double top_p, uint64_t seed)
{
    eng_sampler *s = NULL;
    eng_err e = {0};
    eng_sampler_opts o = {.temp = temp, .top_k = top_k, .top_p = top_p, .seed = seed};
    REQUIRE_MSG(eng_sampler_open(&s, &o, NV, &e) == 0, "%s", e.msg);
    return s;
}

TEST(greedy_is_argmax)
{
    float l[NV];
    make_logits(l);
    eng_sampler *s = open_s(0, 0, 1, 1);
    int32_t best = 0;
    for (int i = 1; i < NV; i++)
        if (l[i] > l[best])
            best = i;
    CHECK_EQ_INT(eng_sampler_sample(s, l), best);
    float tie[4] = {1, 3, 3, 2};
    CHECK_EQ_INT(eng_argmax(tie, 4), 1); /* lowest id among equals */
    eng_sampler_free(s);
}

/* Draws n tokens; counts[i] how often i came. */
static void draw(eng_sampler *s, const float *l, int n, int *counts)
{
    memset(counts, 0, NV * sizeof *counts);
    for (int i = 0; i < n; i++) {
        int32_t t = eng_sampler_sample(s, l);
        REQUIRE(t >= 0 && t < NV);
        counts[t]++;
    }
}

TEST(top_k_restricts_support)
{
    float l[NV];
    make_logits(l);
    int counts[NV];
    eng_sampler *s = open_s(2.0, 5, 1, 7);
    draw(s, l, 4000, counts);
    int support = 0;
    for (int i = 0; i < NV; i++) {
        int rank = 0; /* how many logits are larger */
        for (int j = 0; j < NV; j++)
            rank += l[j] > l[i];
        if (counts[i])
            support++;
        CHECK_MSG(rank < 5 || counts[i] == 0, "token %d (rank %d) drawn %d times", i, rank, counts[i]);
    }
    CHECK_EQ_INT(support, 5); /* all 5 appear in 4000 draws at temp 2 */
    eng_sampler_free(s);
}

TEST(top_p_restricts_support)
{
    float l[NV];
    make_logits(l);
    /* softmax at temp 1, sorted descending: the smallest prefix with mass >= p */
    double p[NV], z = 0;
    for (int i = 0; i < NV; i++)
        z += (p[i] = exp(l[i] - 4.9));
    int order[NV];
    for (int i = 0; i < NV; i++)
        order[i] = i;
    for (int i = 0; i < NV; i++)
        for (int j = i + 1; j < NV; j++)
            if (l[order[j]] > l[order[i]]) {
                int t = order[i]; order[i] = order[j]; order[j] = t;
            }
    double cum = 0;
    int keep = 0;
    while (cum < 0.6)
        cum += p[order[keep++]] / z;
    int counts[NV];
    eng_sampler *s = open_s(1.0, 0, 0.6, 11);
    draw(s, l, 5000, counts);
    for (int r = 0; r < NV; r++)
        CHECK_MSG(r < keep ? counts[order[r]] > 0 : counts[order[r]] == 0,
                  "rank %d (keep %d) drawn %d times", r, keep, counts[order[r]]);
    /* frequencies follow the renormalised probabilities (5000 draws: ~3 sigma) */
    double top = p[order[0]] / z / cum;
    CHECK_NEAR(counts[order[0]] / 5000.0, top, 0.03);
    eng_sampler_free(s);
}

TEST(same_seed_same_draws)
{
    float l[NV];
    make_logits(l);
    eng_sampler *a = open_s(1.0, 0, 1, 99), *b = open_s(1.0, 0, 1, 99), *c = open_s(1.0, 0, 1, 100);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x = eng_sampler_sample(a, l), y = eng_sampler_sample(b, l);
        CHECK_EQ_INT(x, y);
        differ += x != eng_sampler_sample(c, l);
    }
    CHECK(differ > 0);
    eng_sampler_seed(a, 5);
    eng_sampler_seed(b, 5);
    CHECK(eng_sampler_uniform(a) == eng_sampler_uniform(b));
    eng_sampler_free(a);
    eng_sampler_free(b);
    eng_sampler_free(c);
}

TEST(sampler_rejects_bad_options)
{
    eng_sampler *s = NULL;
    eng_err e = {0};
    eng_sampler_opts o = {.temp = 1, .top_p = 0};
    CHECK_EQ_INT(eng_sampler_open(&s, &o, NV, &e), ENG_EINVAL);
    o.top_p = 1;
    CHECK_EQ_INT(eng_sampler_open(&s, &o, 0, &e), ENG_EINVAL);
}

typedef struct pool_ctx {
    _Atomic int hits[1000];
    _Atomic int bad_thread;
    int n_threads;
} pool_ctx;

static void pool_task(void *ctx, int task, int thread)
{
    pool_ctx *c = ctx;
    c->hits[task]++;
    if (thread < 0 || thread >= c->n_threads)
        c->bad_thread++;
}

TEST(pool_runs_each_task_once)
{
    for (int nt = 1; nt <= 3; nt++) {
        eng_pool *p = NULL;
        eng_err e = {0};
        REQUIRE(eng_pool_open(&p, nt, &e) == 0);
        CHECK_EQ_INT(eng_pool_threads(p), nt);
        pool_ctx *c = tst_alloc(sizeof *c);
        memset(c, 0, sizeof *c);
        c->n_threads = nt;
        for (int rep = 0; rep < 50; rep++)
            eng_pool_run(p, pool_task, c, 1000);
        for (int i = 0; i < 1000; i++)
            CHECK_EQ_INT(c->hits[i], 50);
        CHECK_EQ_INT(c->bad_thread, 0);
        eng_pool_free(p);
    }
}
