/* test_policy.c — each eviction policy on hand-written sequences with the
 * expected evictions, the handle's checks, and properties through the
 * replay simulator: the reference's worked example, Belady never beaten,
 * static never evicting, random reproducible, a full-size cache. */
#include "tests/test.h"

#include "engine/policy.h"
#include "metrics/simulate.h"
#include "tests/metrics/simtest.h"

#include <stdio.h>

/* Drives the demand protocol over keys[n] (positions 0..n-1) and returns
 * the evicted keys as "a b c" (tst_alloc'd). tokens: accesses per token
 * for the future view (oracles), 0 = no future. */
static const char *drive(const char *name, eng_policy_config cfg, const uint32_t *keys,
                         int64_t n, int64_t per_token, int *hits)
{
    eng_policy *p = NULL;
    eng_err err = {0};
    REQUIRE_MSG(eng_policy_open(&p, name, &cfg, &err) == 0, "%s", err.msg);
    int64_t ntok = per_token ? (n + per_token - 1) / per_token : 0;
    int64_t *ts = tst_alloc((size_t)(ntok + 1) * sizeof *ts);
    for (int64_t t = 0; t <= ntok; t++)
        ts[t] = t * per_token < n ? t * per_token : n;
    eng_policy_future f = {keys, n, ts, ntok};
    REQUIRE_MSG(eng_policy_reset(p, per_token ? &f : NULL, &err) == 0, "%s", err.msg);
    char *out = tst_alloc(4096);
    size_t len = 0;
    *hits = 0;
    for (int64_t i = 0; i < n; i++) {
        eng_policy_result r;
        REQUIRE_MSG(eng_policy_demand(p, keys[i], i, &r, &err) == 0, "%s", err.msg);
        *hits += r.hit;
        if (r.evicted)
            len += (size_t)snprintf(out + len, 4096 - len, "%s%u", len ? " " : "", r.victim);
    }
    eng_policy_free(p);
    return out;
}

TEST(registry_lists_every_policy)
{
    const char *names[] = {"lru", "lfu", "fifo", "random", "static", "belady", "fsf", "hobbit"};
    CHECK_EQ_INT(eng_policy_builtin_count(), 8);
    for (size_t i = 0; i < 8; i++) {
        const eng_policy_ops *o = eng_policy_find(names[i]);
        REQUIRE(o);
        CHECK_EQ_STR(o->name, names[i]);
        CHECK(o->summary && strlen(o->summary) > 10);
        CHECK(eng_policy_builtin(i) != NULL);
    }
    CHECK(eng_policy_builtin(8) == NULL);
    CHECK(eng_policy_find("nope") == NULL);
    CHECK(eng_policy_find(NULL) == NULL);
}

TEST(lru_evicts_least_recent)
{
    uint32_t k[] = {0, 1, 0, 2, 1, 3};
    int h;
    CHECK_EQ_STR(drive("lru", (eng_policy_config){.capacity = 2, .n_keys = 4}, k, 6, 0, &h),
                 "1 0 2");
    CHECK_EQ_INT(h, 1);
}

TEST(fifo_evicts_oldest_insert)
{
    uint32_t k[] = {0, 1, 0, 2, 1, 3};
    int h;
    CHECK_EQ_STR(drive("fifo", (eng_policy_config){.capacity = 2, .n_keys = 4}, k, 6, 0, &h),
                 "0 1");
    CHECK_EQ_INT(h, 2);
}

TEST(lfu_counts_uncached_accesses_and_ties_to_lru)
{
    uint32_t k[] = {0, 0, 1, 2, 1, 3};
    int h;
    CHECK_EQ_STR(drive("lfu", (eng_policy_config){.capacity = 2, .n_keys = 4}, k, 6, 0, &h),
                 "1 2 0");
}

TEST(lfu_aging_halves_counts)
{
    /* without aging 0 (3 accesses) outranks 1 (2); with age 4 the counts
     * are halved at the 4th access (0: 3 -> 1, 1: 1 -> 0), 1's next access
     * ties it with 0 and the tie goes to the least recent, 0 */
    uint32_t k[] = {0, 0, 0, 1, 1, 2};
    int h;
    CHECK_EQ_STR(drive("lfu", (eng_policy_config){.capacity = 2, .n_keys = 3}, k, 6, 0, &h),
                 "1");
    CHECK_EQ_STR(drive("lfu", (eng_policy_config){.capacity = 2, .n_keys = 3, .lfu_age = 4},
                       k, 6, 0, &h), "0");
}

TEST(belady_evicts_farthest_and_highest_never_used)
{
    uint32_t k[] = {0, 1, 2, 0, 1, 3, 0};
    int h;
    CHECK_EQ_STR(drive("belady", (eng_policy_config){.capacity = 2, .n_keys = 4}, k, 7, 1,
                       &h), "1 2 1");
    uint32_t k2[] = {0, 1, 2};
    CHECK_EQ_STR(drive("belady", (eng_policy_config){.capacity = 2, .n_keys = 3}, k2, 3, 1,
                       &h), "1");
}

TEST(fsf_counts_the_window_then_lru)
{
    uint32_t k[] = {0, 1, 2, 0, 1, 3};   /* tokens [0,1] [2,0] [1,3] */
    int h;
    CHECK_EQ_STR(drive("fsf", (eng_policy_config){.capacity = 2, .n_keys = 4, .lookahead = 1},
                       k, 6, 2, &h), "1 2 0");
    CHECK_EQ_STR(drive("fsf", (eng_policy_config){.capacity = 2, .n_keys = 4, .lookahead = 2},
                       k, 6, 2, &h), "0 2 0");
}

TEST(random_is_reproducible_per_seed)
{
    uint32_t k[400];
    uint64_t s = 5;
    for (int i = 0; i < 400; i++)
        k[i] = (uint32_t)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 33) % 16;
    int h1, h2, h3;
    const char *a = drive("random", (eng_policy_config){.capacity = 4, .n_keys = 16, .seed = 7},
                          k, 400, 0, &h1);
    const char *b = drive("random", (eng_policy_config){.capacity = 4, .n_keys = 16, .seed = 7},
                          k, 400, 0, &h2);
    const char *c = drive("random", (eng_policy_config){.capacity = 4, .n_keys = 16, .seed = 8},
                          k, 400, 0, &h3);
    CHECK_EQ_STR(a, b);
    CHECK_EQ_INT(h1, h2);
    CHECK(strcmp(a, c) != 0);
}

TEST(static_pins_the_profile_top_and_never_evicts)
{
    uint64_t prof[5] = {1, 9, 3, 9, 0};   /* top 2: keys 1 and 3 (tie to lower key) */
    eng_policy_config cfg = {.capacity = 2, .n_keys = 5, .profile = prof};
    eng_policy *p;
    eng_err err = {0};
    REQUIRE(eng_policy_open(&p, "static", &cfg, &err) == 0);
    REQUIRE(eng_policy_reset(p, NULL, &err) == 0);
    uint32_t k[] = {0, 1, 2, 3, 4, 1, 3, 0, 2};
    int hits = 0, inserted = 0;
    for (int i = 0; i < 9; i++) {
        eng_policy_result r;
        REQUIRE_MSG(eng_policy_demand(p, k[i], i, &r, &err) == 0, "%s", err.msg);
        CHECK(!r.evicted);
        hits += r.hit;
        inserted += r.inserted;
        CHECK_EQ_INT(r.inserted, !r.hit && (k[i] == 1 || k[i] == 3));
    }
    CHECK_EQ_INT(hits, 2);
    CHECK_EQ_INT(inserted, 2);
    CHECK(eng_policy_is_cached(p, 1) && eng_policy_is_cached(p, 3) && !eng_policy_is_cached(p, 0));
    cfg.profile = NULL;
    eng_policy_free(p);
    CHECK_EQ_INT(eng_policy_open(&p, "static", &cfg, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "profile");
}

TEST(pinned_keys_are_never_victims)
{
    const char *names[] = {"lru", "lfu", "fifo", "random", "belady", "fsf"};
    uint32_t keys[] = {0, 1, 2, 3, 4, 5};
    int64_t ts[] = {0, 1, 2, 3, 4, 5, 6};
    eng_policy_future f = {keys, 6, ts, 6};
    for (int i = 0; i < 6; i++) {
        eng_policy *p;
        eng_err err = {0};
        eng_policy_config cfg = {.capacity = 3, .n_keys = 6, .seed = 3};
        REQUIRE(eng_policy_open(&p, names[i], &cfg, &err) == 0);
        REQUIRE_MSG(eng_policy_reset(p, &f, &err) == 0, "%s", err.msg);
        for (uint32_t k = 0; k < 3; k++) {
            eng_policy_result r;
            REQUIRE(eng_policy_demand(p, k, k, &r, &err) == 0);
        }
        REQUIRE(eng_policy_pin(p, 0, &err) == 0);
        REQUIRE(eng_policy_pin(p, 2, &err) == 0);
        uint32_t v = 99;
        REQUIRE_MSG(eng_policy_victim(p, &v, &err) == 0, "%s: %s", names[i], err.msg);
        CHECK_MSG(v == 1, "%s chose %u", names[i], v);
        CHECK_EQ_INT(eng_policy_evict(p, 0, &err), ENG_ESTATE);
        REQUIRE(eng_policy_pin(p, 1, &err) == 0);
        CHECK_EQ_INT(eng_policy_victim(p, &v, &err), ENG_ESTATE);
        CHECK_CONTAINS(err.msg, "nothing to evict");
        CHECK_EQ_INT(eng_policy_pin(p, 4, &err), ENG_ESTATE);
        eng_policy_unpin(p, 0);
        REQUIRE(eng_policy_victim(p, &v, &err) == 0);
        CHECK_EQ_INT(v, 0);
        eng_policy_free(p);
    }
}

/* A broken user policy: names a key that is not cached. */
static int bad_create(void **st, const eng_policy_config *c, eng_err *e) { *st = &bad_create; return 0; }
static void bad_destroy(void *st) {}
static int bad_reset(void *st, const eng_policy_future *f, eng_err *e) { return 0; }
static void bad_access(void *st, uint32_t k, int64_t pos, int hit) {}
static void bad_insert(void *st, uint32_t k, int64_t pos) {}
static int bad_victim(void *st, const uint8_t *pinned, uint32_t *k) { *k = 7; return 0; }
static void bad_evict(void *st, uint32_t k) {}

TEST(handle_rejects_a_policy_naming_a_bad_victim)
{
    static const eng_policy_ops bad = {
        .name = "bad", .summary = "test", .create = bad_create, .destroy = bad_destroy,
        .reset = bad_reset, .access = bad_access, .insert = bad_insert,
        .victim = bad_victim, .evict = bad_evict,
    };
    eng_policy *p;
    eng_err err = {0};
    eng_policy_config cfg = {.capacity = 1, .n_keys = 8};
    REQUIRE(eng_policy_open_ops(&p, &bad, &cfg, &err) == 0);
    eng_policy_result r;
    REQUIRE(eng_policy_demand(p, 1, 0, &r, &err) == 0);
    CHECK_EQ_INT(eng_policy_insert(p, 1, 1, &err), ENG_ESTATE);   /* twice: the caller's */
    CHECK_EQ_INT(eng_policy_access(p, 9, 1, 0, &err), ENG_EINVAL); /* mistakes, not sticky */
    CHECK_EQ_INT(eng_policy_status(p, NULL), ENG_OK);
    CHECK_EQ_INT(eng_policy_demand(p, 2, 1, &r, &err), ENG_ESTATE);
    CHECK_CONTAINS(err.msg, "chose key 7, which is not cached");
    /* the policy's own bug sticks: every later call returns it */
    eng_err again = {0};
    CHECK_EQ_INT(eng_policy_access(p, 3, 2, 0, &again), ENG_ESTATE);
    CHECK_EQ_STR(again.msg, err.msg);
    CHECK_EQ_INT(eng_policy_reset(p, NULL, &again), ENG_ESTATE);
    CHECK_EQ_INT(eng_policy_status(p, &again), ENG_ESTATE);
    CHECK_EQ_STR(again.msg, err.msg);
    CHECK_EQ_INT(eng_policy_admit(p, 3), 0);
    eng_policy_free(p);
    static const eng_policy_ops incomplete = {.name = "half", .create = bad_create};
    CHECK_EQ_INT(eng_policy_open_ops(&p, &incomplete, &cfg, &err), ENG_EINVAL);
    cfg.capacity = 0;
    CHECK_EQ_INT(eng_policy_open(&p, "lru", &cfg, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "capacity");
    CHECK_EQ_INT(eng_policy_open(&p, "mru", &cfg, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown policy 'mru'");
}

/* A policy whose callback fails reports it through status: the handle
 * returns that error, naming the callback, from then on. */
static int failing_access_calls;
static void fa_access(void *st, uint32_t k, int64_t pos, int hit) { failing_access_calls++; }
static int fa_status(void *st, eng_err *e)
{
    return failing_access_calls >= 2 ? eng_err_set(e, ENG_EIO, "fa: access: disk on fire") : 0;
}

TEST(a_failing_callback_is_a_sticky_error_naming_it)
{
    static const eng_policy_ops fa = {
        .name = "fa", .summary = "test", .create = bad_create, .destroy = bad_destroy,
        .reset = bad_reset, .access = fa_access, .insert = bad_insert,
        .victim = bad_victim, .evict = bad_evict, .status = fa_status,
    };
    eng_policy *p;
    eng_err err = {0};
    eng_policy_config cfg = {.capacity = 2, .n_keys = 8};
    REQUIRE(eng_policy_open_ops(&p, &fa, &cfg, &err) == 0);
    eng_policy_result r;
    CHECK_EQ_INT(eng_policy_demand(p, 1, 0, &r, &err), ENG_OK);
    CHECK_EQ_INT(eng_policy_demand(p, 2, 1, &r, &err), ENG_EIO);
    CHECK_EQ_STR(err.msg, "fa: access: disk on fire");
    CHECK_EQ_INT(failing_access_calls, 2);
    CHECK_EQ_INT(eng_policy_demand(p, 3, 2, &r, &err), ENG_EIO);
    CHECK_EQ_INT(failing_access_calls, 2);       /* the policy is not called again */
    CHECK_EQ_INT(eng_policy_insert(p, 4, 3, &err), ENG_EIO);
    CHECK_EQ_STR(err.msg, "fa: access: disk on fire");
    eng_policy_free(p);
}

TEST(oracles_need_a_matching_future)
{
    eng_policy *p;
    eng_err err = {0};
    eng_policy_config cfg = {.capacity = 2, .n_keys = 4};
    REQUIRE(eng_policy_open(&p, "belady", &cfg, &err) == 0);
    eng_policy_result r;
    CHECK_EQ_INT(eng_policy_demand(p, 0, 0, &r, &err), ENG_ESTATE);   /* no reset */
    CHECK_EQ_INT(eng_policy_reset(p, NULL, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "oracle");
    uint32_t keys[] = {0, 1, 5};
    int64_t ts[] = {0, 3};
    eng_policy_future f = {keys, 3, ts, 1};
    CHECK_EQ_INT(eng_policy_reset(p, &f, &err), ENG_EINVAL);          /* key 5 >= 4 */
    keys[2] = 2;
    int64_t bad_ts[] = {0, 2};
    f.token_start = bad_ts;
    CHECK_EQ_INT(eng_policy_reset(p, &f, &err), ENG_EINVAL);
    f.token_start = ts;
    REQUIRE(eng_policy_reset(p, &f, &err) == 0);
    REQUIRE(eng_policy_demand(p, 0, 0, &r, &err) == 0);
    CHECK_EQ_INT(eng_policy_demand(p, 2, 1, &r, &err), ENG_ESTATE);   /* trace says 1 */
    CHECK_CONTAINS(err.msg, "does not match the trace");
    CHECK_EQ_INT(eng_policy_demand(p, 0, 0, &r, &err), ENG_ESTATE);   /* goes back */
    CHECK_EQ_INT(eng_policy_demand(p, 2, 3, &r, &err), ENG_ESTATE);   /* past the end */
    eng_policy_free(p);
}

static met_sim_config sim_cfg(const char *policy, int64_t c, met_sim_lookup lk,
                              met_sim_start st)
{
    met_sim_config cfg;
    met_sim_config_default(&cfg);
    cfg.policy = policy;
    cfg.cache_experts = c;
    cfg.lookup = lk;
    cfg.start = st;
    return cfg;
}

static int64_t sim_hits(const met_trace *t, met_sim_config cfg)
{
    met_sim_result *r;
    eng_err err = {0};
    REQUIRE_MSG(met_sim_run(t, &cfg, &r, &err) == 0, "%s", err.msg);
    int64_t h = r->total.hits;
    met_sim_result_free(r);
    return h;
}

TEST(worked_example_through_the_simulator)
{
    /* reference/lrc-metrics.md: E = 4, k = 2, one sample [0,1] [2,3] [0,2] [1,0] */
    uint16_t ids[] = {0, 1, 2, 3, 0, 2, 1, 0};
    int64_t T = 4;
    met_trace *t = st_trace(1, 4, 2, 1, &T, ids);
    const char *pol[] = {"lru", "lfu", "belady", "fsf"};
    int64_t want[4][4] = {{1, 4, 5, 8}, {1, 4, 5, 8}, {1, 4, 6, 8}, {1, 4, 6, 8}};
    for (int p = 0; p < 4; p++)
        for (int c = 1; c <= 4; c++) {
            met_sim_config cfg = sim_cfg(pol[p], c, MET_SIM_LOOKUP_TOKEN, MET_SIM_START_WARM);
            cfg.lookahead = 2;
            CHECK_MSG(sim_hits(t, cfg) == want[p][c - 1], "%s c=%d: %lld hits, want %lld",
                      pol[p], c, (long long)sim_hits(t, cfg), (long long)want[p][c - 1]);
        }
}

TEST(belady_is_never_beaten_by_an_online_policy)
{
    const char *online[] = {"lru", "lfu", "fifo", "random", "fsf", "hobbit"};
    for (uint64_t seed = 1; seed <= 12; seed++) {
        met_trace *t = st_random_trace(seed, 2, 12, 2, 2, 60, 0.3 * (double)(seed % 3), 1.0);
        for (int64_t c = 1; c <= 12; c += 2)
            for (int st = 0; st < 2; st++)
                for (int sc = 0; sc < 2; sc++) {
                    met_sim_config cfg = sim_cfg("belady", c, MET_SIM_LOOKUP_SEQUENTIAL, st);
                    cfg.scope = sc;
                    int64_t best = sim_hits(t, cfg);
                    for (int p = 0; p < 6; p++) {
                        cfg.policy = online[p];
                        cfg.lookahead = 3;
                        int64_t h = sim_hits(t, cfg);
                        CHECK_MSG(h <= best, "seed %llu c %lld %s: %lld > belady %lld",
                                  (unsigned long long)seed, (long long)c, online[p],
                                  (long long)h, (long long)best);
                    }
                }
    }
}

TEST(static_never_evicts_in_a_replay)
{
    met_trace *t = st_random_trace(9, 3, 16, 2, 3, 50, 0.2, 1.5);
    for (int64_t c = 1; c <= 16; c *= 2) {
        met_sim_config cfg = sim_cfg("static", c, MET_SIM_LOOKUP_SEQUENTIAL, MET_SIM_START_COLD);
        met_sim_result *r;
        eng_err err = {0};
        REQUIRE_MSG(met_sim_run(t, &cfg, &r, &err) == 0, "%s", err.msg);
        CHECK_EQ_INT(r->total.evictions, 0);
        CHECK(c == 16 ? r->total.uncached == 0 : r->total.uncached > 0);
        met_sim_result_free(r);
    }
}

TEST(random_replay_is_reproducible)
{
    met_trace *t = st_random_trace(4, 2, 16, 2, 2, 80, 0.1, 0.5);
    met_sim_config cfg = sim_cfg("random", 5, MET_SIM_LOOKUP_SEQUENTIAL, MET_SIM_START_COLD);
    cfg.seed = 42;
    int64_t a = sim_hits(t, cfg), b = sim_hits(t, cfg);
    CHECK_EQ_INT(a, b);
    int differs = 0;
    for (uint64_t s = 43; s < 53; s++) {
        cfg.seed = s;
        differs |= sim_hits(t, cfg) != a;
    }
    CHECK(differs);
}

TEST(cache_as_large_as_the_key_space_misses_only_first_uses)
{
    met_trace *t = st_random_trace(6, 3, 10, 3, 4, 40, 0.2, 0.8);
    const char *pol[] = {"lru", "lfu", "fifo", "random", "static", "belady", "fsf"};
    for (int p = 0; p < 7; p++)
        for (int sc = 0; sc < 2; sc++) {
            met_sim_config cfg = sim_cfg(pol[p], sc ? 30 : 10, MET_SIM_LOOKUP_SEQUENTIAL,
                                         MET_SIM_START_COLD);
            cfg.scope = sc;
            met_sim_result *r;
            eng_err err = {0};
            REQUIRE_MSG(met_sim_run(t, &cfg, &r, &err) == 0, "%s", err.msg);
            /* cold: exactly one miss per distinct (layer, expert) per sample */
            int64_t distinct = 0;
            for (int64_t s = 0; s < 4; s++) {
                uint8_t seen[30] = {0};
                for (int64_t tok = t->sample_start[s]; tok < t->sample_start[s + 1]; tok++)
                    for (int l = 0; l < 3; l++)
                        for (int r2 = 0; r2 < 3; r2++) {
                            int g = l * 10 + t->ids[(tok * 3 + l) * 3 + r2];
                            distinct += !seen[g];
                            seen[g] = 1;
                        }
            }
            CHECK_MSG(r->total.misses == distinct, "%s scope %d: %lld misses, %lld distinct",
                      pol[p], sc, (long long)r->total.misses, (long long)distinct);
            CHECK_EQ_INT(r->total.evictions, 0);
            met_sim_result_free(r);
            cfg.start = MET_SIM_START_WARM;
            CHECK_EQ_INT(sim_hits(t, cfg), t->info.num_tokens * 9);
        }
}

/* A prefetch's victim step checked against a model's choice `best` (-1:
 * nothing evictable): the handle must agree, then the victim is evicted.
 * Returns it, or -1 when there was none (the prefetch is skipped). */
static int check_prefetch_victim(eng_policy *pol, int best, const char *what, int op)
{
    uint32_t v;
    eng_err err = {0};
    if (best < 0) {
        CHECK_EQ_INT(eng_policy_victim(pol, &v, &err), ENG_ESTATE);
        return -1;
    }
    REQUIRE(eng_policy_victim(pol, &v, &err) == 0);
    CHECK_MSG((int)v == best, "%s op %d: prefetch victim %u, model %d", what, op, v, best);
    REQUIRE(eng_policy_evict(pol, v, &err) == 0);
    return (int)v;
}

/* Random demand accesses, pins and prefetch-style inserts against a naive
 * model that recomputes lru/lfu/fifo priorities from the history: every
 * victim must match (this exercises the heap's pinned-skipping search and
 * the list walk), and "nothing to evict" must happen exactly when every
 * resident key is pinned. */
TEST(victims_match_a_naive_model_under_random_pins)
{
    const char *names[] = {"lru", "lfu", "fifo"};
    enum { NK = 12, CAP = 5, OPS = 4000 };
    for (int p = 0; p < 3; p++) {
        eng_policy *pol;
        eng_err err = {0};
        eng_policy_config cfg = {.capacity = CAP, .n_keys = NK};
        REQUIRE(eng_policy_open(&pol, names[p], &cfg, &err) == 0);
        REQUIRE(eng_policy_reset(pol, NULL, &err) == 0);
        int64_t touch[NK] = {0}, ins[NK] = {0}, count[NK] = {0}, last[NK];
        uint8_t cached[NK] = {0}, pinned[NK] = {0};
        for (int i = 0; i < NK; i++)
            last[i] = -1;
        uint64_t s = 99 + (uint64_t)p;
        int64_t ev = 0, pos = 0;
        for (int op = 0; op < OPS; op++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t key = (uint32_t)(s >> 40) % NK, kind = (uint32_t)(s >> 20) % 10;
            if (kind < 2) {                      /* toggle a pin */
                if (cached[key] && !pinned[key]) {
                    REQUIRE(eng_policy_pin(pol, key, &err) == 0);
                    pinned[key] = 1;
                } else if (pinned[key]) {
                    eng_policy_unpin(pol, key);
                    pinned[key] = 0;
                }
                continue;
            }
            int n = 0, best = -1;
            for (int k = 0; k < NK; k++) {
                n += cached[k];
                if (!cached[k] || pinned[k])
                    continue;
                int better;
                if (best < 0)
                    better = 1;
                else if (p == 0)
                    better = touch[k] < touch[best];
                else if (p == 1)
                    better = count[k] < count[best] ||
                             (count[k] == count[best] && last[k] < last[best]);
                else
                    better = ins[k] < ins[best];
                if (better)
                    best = k;
            }
            int prefetch = kind == 2;
            if (prefetch && cached[key])
                continue;
            if (!prefetch) {                     /* a demand access */
                eng_policy_result r;
                int rc = eng_policy_demand(pol, key, pos, &r, &err);
                count[key]++;
                last[key] = pos++;
                if (!cached[key] && n == CAP && best < 0) {
                    CHECK_EQ_INT(rc, ENG_ESTATE);
                    continue;
                }
                REQUIRE_MSG(rc == 0, "%s op %d: %s", names[p], op, err.msg);
                CHECK_EQ_INT(r.hit, cached[key]);
                if (cached[key]) {
                    touch[key] = ++ev;
                    continue;
                }
                CHECK_EQ_INT(r.evicted, n == CAP);
                if (r.evicted) {
                    CHECK_MSG((int)r.victim == best, "%s op %d: victim %u, model %d", names[p],
                              op, r.victim, best);
                    cached[r.victim] = 0;
                }
            } else {                             /* prefetch: evict + insert, no access */
                if (n == CAP) {
                    int v = check_prefetch_victim(pol, best, names[p], op);
                    if (v < 0)
                        continue;
                    cached[v] = 0;
                }
                REQUIRE(eng_policy_insert(pol, key, pos, &err) == 0);
            }
            cached[key] = 1;
            touch[key] = ins[key] = ++ev;
        }
        eng_policy_free(pol);
    }
}

/* hobbit's score recomputed from the history, independently of the policy's
 * bookkeeping (docs/policies.md): R min-max over the resident set's last
 * touch, F count / resident maximum, H high / reported, D cyclic nearness
 * of the key's layer after the last accessed one. */
typedef struct hob_model {
    int64_t touch[24], count[24], high[24], uses[24];
    uint8_t cached[24], pinned[24];
    int cur, per_layer, layers;
    double w[4];
} hob_model;

static int hob_best(const hob_model *m, int nk)
{
    int64_t tmin = INT64_MAX, tmax = INT64_MIN, cmax = 0;
    for (int k = 0; k < nk; k++)
        if (m->cached[k]) {
            tmin = m->touch[k] < tmin ? m->touch[k] : tmin;
            tmax = m->touch[k] > tmax ? m->touch[k] : tmax;
            cmax = m->count[k] > cmax ? m->count[k] : cmax;
        }
    int best = -1;
    double bp = 0;
    for (int k = 0; k < nk; k++) {
        if (!m->cached[k] || m->pinned[k])
            continue;
        double r = tmax > tmin ? (double)(m->touch[k] - tmin) / (double)(tmax - tmin) : 1.0;
        double f = cmax ? (double)m->count[k] / (double)cmax : 0.0;
        double h = m->uses[k] ? (double)m->high[k] / (double)m->uses[k] : 1.0;
        double d = 0;
        if (m->per_layer && m->layers > 1) {
            int dist = ((k / m->per_layer - m->cur) % m->layers + m->layers) % m->layers;
            d = 1.0 - (double)dist / (double)(m->layers - 1);
        }
        double p = m->w[0] * r + m->w[1] * f + m->w[2] * h + m->w[3] * d;
        if (best < 0 || p < bp) { /* ascending k: ties keep the lower key */
            best = k;
            bp = p;
        }
    }
    return best;
}

/* Random demand accesses with random precisions, prefetch inserts and pins,
 * over a global key space (4 layers x 6) and a per-layer one, with several
 * weightings: every victim equals the brute-force recomputation. */
TEST(hobbit_victims_match_a_brute_force_score)
{
    static const double ws[][4] = {{0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0},
                                   {0, 0, 0, 1}, {0.5, 2, 1, 0.25}, {1, 1, 3, 1}};
    enum { NK = 24, CAP = 7, OPS = 3000 };
    int64_t victims = 0;
    for (size_t wi = 0; wi < sizeof ws / sizeof *ws; wi++)
        for (int per_layer = 0; per_layer <= 6; per_layer += 6) {
            eng_policy_config cfg = {.capacity = CAP, .n_keys = NK,
                                     .keys_per_layer = (uint32_t)per_layer};
            memcpy(cfg.hobbit_w, ws[wi], sizeof cfg.hobbit_w);
            eng_policy *pol;
            eng_err err = {0};
            REQUIRE_MSG(eng_policy_open(&pol, "hobbit", &cfg, &err) == 0, "%s", err.msg);
            REQUIRE(eng_policy_reset(pol, NULL, &err) == 0);
            hob_model m = {.per_layer = per_layer, .layers = per_layer ? NK / per_layer : 1};
            const int dflt = wi == 0;
            for (int i = 0; i < 4; i++)
                m.w[i] = dflt ? 1.0 : ws[wi][i];
            int64_t tick = 0, pos = 0;
            uint64_t s = 7 + wi * 31 + (uint64_t)per_layer;
            for (int op = 0; op < OPS; op++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                /* skewed keys, so counts and precisions differ */
                uint32_t key = (uint32_t)(((s >> 40) % NK) * ((s >> 30) % NK) / NK);
                uint32_t kind = (uint32_t)(s >> 20) % 10;
                int n = 0;
                for (int k = 0; k < NK; k++)
                    n += m.cached[k];
                int best = hob_best(&m, NK);
                if (kind < 2) { /* toggle a pin */
                    if (m.cached[key] && !m.pinned[key]) {
                        REQUIRE(eng_policy_pin(pol, key, &err) == 0);
                        m.pinned[key] = 1;
                    } else if (m.pinned[key]) {
                        eng_policy_unpin(pol, key);
                        m.pinned[key] = 0;
                    }
                    continue;
                }
                if (kind == 2) { /* a prefetch: victim + insert, no access */
                    if (m.cached[key])
                        continue;
                    if (n == CAP) {
                        char what[32];
                        snprintf(what, sizeof what, "hobbit w%zu L%d", wi, per_layer);
                        int v = check_prefetch_victim(pol, best, what, op);
                        if (v < 0)
                            continue;
                        m.cached[v] = 0;
                        victims++;
                    }
                    REQUIRE(eng_policy_insert(pol, key, pos, &err) == 0);
                    m.cached[key] = 1;
                    m.touch[key] = tick++;
                    continue;
                }
                /* a demand access: access (tick, count, current layer), then
                 * the victim is chosen with the access counted */
                eng_policy_result r;
                int rc = eng_policy_demand(pol, key, pos++, &r, &err);
                m.count[key]++;
                m.touch[key] = tick++;
                if (per_layer)
                    m.cur = (int)key / per_layer;
                best = hob_best(&m, NK);
                if (!m.cached[key] && n == CAP && best < 0) {
                    CHECK_EQ_INT(rc, ENG_ESTATE);
                    break; /* the handle's error is sticky */
                }
                REQUIRE_MSG(rc == 0, "op %d: %s", op, err.msg);
                CHECK_EQ_INT(r.hit, m.cached[key]);
                if (!m.cached[key]) {
                    CHECK_EQ_INT(r.evicted, n == CAP);
                    if (r.evicted) {
                        CHECK_MSG((int)r.victim == best, "w%zu L%d op %d: victim %u, model %d",
                                  wi, per_layer, op, r.victim, best);
                        m.cached[r.victim] = 0;
                        victims++;
                    }
                    m.cached[key] = 1;
                    m.touch[key] = tick++; /* insert */
                }
                int high = (s >> 10) % 3 != 0;
                REQUIRE(eng_policy_precision(pol, key, high, &err) == 0);
                m.uses[key]++;
                m.high[key] += high;
            }
            eng_policy_free(pol);
        }
    CHECK(victims > 1000);
}

/* Hand-worked: with only the precision weight, the expert served low goes
 * first; with only nearness in a 3-layer pool, the layer just computed. */
TEST(hobbit_precision_and_layer_distance)
{
    eng_policy_config cfg = {.capacity = 3, .n_keys = 6, .hobbit_w = {0, 0, 1, 0}};
    eng_policy *p;
    eng_err err = {0};
    eng_policy_result r;
    REQUIRE(eng_policy_open(&p, "hobbit", &cfg, &err) == 0);
    const uint32_t keys[] = {3, 1, 4};
    for (int i = 0; i < 3; i++) {
        REQUIRE(eng_policy_demand(p, keys[i], i, &r, &err) == 0);
        REQUIRE(eng_policy_precision(p, keys[i], keys[i] != 1, &err) == 0);
    }
    REQUIRE(eng_policy_demand(p, 5, 3, &r, &err) == 0);
    CHECK(r.evicted && r.victim == 1);
    eng_policy_free(p);
    /* layers of 2 keys: 0-1, 2-3, 4-5; the last access is at layer 2 (key
     * 4), so layer 1 (keys 2, 3) is the farthest ahead */
    cfg = (eng_policy_config){.capacity = 3, .n_keys = 6, .keys_per_layer = 2,
                              .hobbit_w = {0, 0, 0, 1}};
    REQUIRE(eng_policy_open(&p, "hobbit", &cfg, &err) == 0);
    const uint32_t k2[] = {0, 3, 4, 5};
    for (int i = 0; i < 4; i++)
        REQUIRE(eng_policy_demand(p, k2[i], i, &r, &err) == 0);
    CHECK(r.evicted && r.victim == 3);
    eng_policy_free(p);
    /* the handle checks the configuration */
    cfg.keys_per_layer = 4;
    CHECK_EQ_INT(eng_policy_open(&p, "hobbit", &cfg, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "does not divide");
    cfg.keys_per_layer = 2;
    cfg.hobbit_w[1] = -1;
    CHECK_EQ_INT(eng_policy_open(&p, "hobbit", &cfg, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "hobbit weight 2");
}
