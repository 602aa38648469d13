/*
 * test_offload.c — the tiered expert store against the memory store and
 * against an independent replay of the same routing through engine/policy.h
 * (eng_policy_demand, the protocol the replay simulator runs with
 * sequential look-up and a cold start).
 *
 * Every run: a tiny synthetic model, a fixed prompt evaluated token by
 * token (n_batch = 1, so every access is per token) or batched, then greedy
 * decode; tokens and every step's logits are compared bit for bit.
 */
#include "engine/mkmodel.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/predict.h"
#include "engine/sample.h"
#include "engine/session.h"
#include "engine/store_tiered.h"
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_PROMPT = 5, N_GEN = 6, N_STEPS = N_PROMPT + N_GEN };

typedef struct run_out {
    int32_t tokens[N_GEN];
    float *logits;           /* [N_GEN][V] after each decode step          */
    int32_t *routing;        /* [N_STEPS][L][k] when captured              */
    int64_t n_routed;        /* routing events seen                        */
    int L, k, E;
} run_out;

static void on_routing(void *user, const eng_routing_event *ev)
{
    run_out *o = user;
    if (!o->routing || ev->pos >= N_STEPS || ev->top_k != o->k)
        return;
    memcpy(o->routing + (ev->pos * o->L + ev->layer) * o->k, ev->experts,
           (size_t)o->k * sizeof(int32_t));
    o->n_routed++;
}

static const char *make_model(const char *preset, int type, const char *name)
{
    eng_mkmodel_opts o = {.preset = preset, .type = type, .seed = 7, .router_locality = 0.5};
    eng_err e;
    const char *path = tst_path(name);
    int rc = eng_mkmodel_write(&o, path, &e);
    REQUIRE_MSG(rc == ENG_OK, "mkmodel %s: %s", preset, e.msg);
    return path;
}

/* Prompt + greedy decode with the given store (NULL: memory store). */
static int run_model(const eng_model *m, eng_store *st, int64_t n_batch, run_out *o,
                     eng_err *e)
{
    const eng_hparams *hp = eng_model_hparams(m);
    o->L = (int)hp->n_layer_moe;
    o->k = (int)hp->n_expert_used;
    o->E = (int)hp->n_expert;
    if (!o->logits)
        o->logits = tst_alloc((size_t)N_GEN * (size_t)hp->n_vocab * sizeof(float));
    eng_hooks h = {.user = o, .routing = on_routing};
    eng_session *s;
    eng_session_opts so = {.n_threads = 2, .n_ctx = 64, .n_batch = n_batch, .hooks = &h,
                           .store = st};
    int rc = eng_session_open(&s, m, &so, e);
    if (rc)
        return rc;
    int32_t prompt[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++)
        prompt[i] = (int32_t)((i * 37 + 11) % hp->n_vocab);
    rc = eng_session_eval(s, prompt, N_PROMPT, e);
    for (int i = 0; !rc && i < N_GEN; i++) {
        o->tokens[i] = eng_argmax(eng_session_logits(s), hp->n_vocab);
        rc = eng_session_decode(s, o->tokens[i], e);
        if (!rc)
            memcpy(o->logits + (size_t)i * (size_t)hp->n_vocab, eng_session_logits(s),
                   (size_t)hp->n_vocab * sizeof(float));
    }
    eng_session_free(s);
    return rc;
}

typedef struct cfg {
    const char *policy;
    eng_cache_scope scope;
    uint32_t slots;
    eng_tier tier;
    eng_prefetch pf;
    int ahead;               /* pregate: layers ahead (0: 1)               */
    bool wrap;               /* pregate: into the next token               */
    eng_link_mode link_mode;
    const eng_predictor *pred; /* predict: the predictor, its kind and n   */
    int kind, pred_n;
    double adaptive;         /* pregate: confidence for the adaptive depth */
    bool correct;            /* cancel unused queued prefetches            */
} cfg;

/* One tiered run compared with the reference; returns its stats total. */
static void check_config(const eng_model *m, const run_out *ref, const eng_routing_plan *plan,
                         const cfg *c, eng_tiered_counts *tot)
{
    const eng_hparams *hp = eng_model_hparams(m);
    eng_tiered_opts o = eng_tiered_defaults();
    o.policy = c->policy;
    o.scope = c->scope;
    o.cache_experts = c->slots;
    o.tier = c->tier;
    o.link_gbps = c->correct ? 0.2 : 200; /* fast: the test is about correctness;
                                              slow enough to queue prefetches that
                                              the correction may cancel */
    o.link_latency_us = 1;
    o.prefetch = c->pf;
    o.pregate_ahead = c->ahead;
    o.pregate_wrap = c->wrap;
    o.pregate_adaptive = c->adaptive;
    o.prefetch_correct = c->correct;
    o.link_mode = c->link_mode;
    o.predictor = c->pred;
    o.predict_kind = c->kind;
    o.predict_n = c->pred_n;
    o.plan = plan;
    o.n_loaders = 2;
    eng_store *st;
    eng_err e;
    int rc = eng_store_open_tiered(&st, m, &o, &e);
    REQUIRE_MSG(rc == ENG_OK, "%s: %s", c->policy, e.msg);
    run_out r = {0};
    rc = run_model(m, st, 1, &r, &e);
    CHECK_MSG(rc == ENG_OK, "%s/%u: %s", c->policy, c->slots, e.msg);
    CHECK_MSG(memcmp(r.tokens, ref->tokens, sizeof r.tokens) == 0, "%s/%u scope %d tier %d: tokens",
              c->policy, c->slots, c->scope, c->tier);
    CHECK_MSG(memcmp(r.logits, ref->logits, (size_t)N_GEN * (size_t)hp->n_vocab * 4) == 0,
              "%s/%u scope %d tier %d pf %d: logits differ", c->policy, c->slots, c->scope,
              c->tier, c->pf);
    eng_tiered_stats ts;
    REQUIRE(eng_tiered_get_stats(st, &ts, &e) == ENG_OK);
    *tot = ts.total;
    /* counters add up */
    uint64_t want =
        (uint64_t)N_STEPS * (uint64_t)hp->n_layer_moe * (uint64_t)hp->n_expert_used;
    CHECK_MSG(ts.total.accesses == want, "%s: accesses %lu want %lu", c->policy,
              (unsigned long)ts.total.accesses, (unsigned long)want);
    CHECK(ts.total.hits + ts.total.misses == ts.total.accesses);
    CHECK(ts.total.bytes_demand == ts.total.misses * ts.slot_bytes);
    CHECK(ts.total.bytes_prefetch == (ts.total.pf_issued - ts.total.pf_cancelled) * ts.slot_bytes);
    CHECK(ts.total.bytes_cancelled == ts.total.pf_cancelled * ts.slot_bytes);
    CHECK(c->correct || ts.total.pf_cancelled == 0);
    CHECK(ts.total.pf_useful <= ts.total.pf_issued);
    CHECK(ts.total.pf_late_stall_ns <= ts.total.stall_ns);
    CHECK(ts.total.pf_useful_load_ns <= ts.total.load_ns);
    CHECK(ts.total.pf_useful > 0 || ts.total.pf_useful_load_ns == 0);
    eng_store_stats ss;
    eng_store_get_stats(st, &ss);
    CHECK(ss.acquires == ts.total.accesses && ss.hits == ts.total.hits);
    CHECK(ss.bytes_loaded == ts.total.bytes_demand + ts.total.bytes_prefetch);
    uint64_t sum = 0;
    for (int l = 0; l < ts.n_layer; l++)
        sum += ts.layers[l].accesses;
    CHECK(sum == ts.total.accesses);
    eng_store_free(st);
}

/* Independent replay: hits of `policy` over the captured routing. */
static uint64_t replay_hits(const run_out *r, const char *policy, eng_cache_scope scope,
                            uint32_t cap)
{
    const int pools = scope == ENG_SCOPE_LAYER ? r->L : 1;
    uint64_t hits = 0;
    for (int p = 0; p < pools; p++) {
        int64_t n = 0, per = pools > 1 ? r->k : (int64_t)r->L * r->k;
        uint32_t *keys = tst_alloc((size_t)(N_STEPS * per) * sizeof *keys);
        int64_t *ts = tst_alloc((N_STEPS + 1) * sizeof *ts);
        for (int t = 0; t < N_STEPS; t++) {
            ts[t] = n;
            for (int l = 0; l < r->L; l++)
                for (int j = 0; pools == 1 || l == p ? j < r->k : 0; j++) {
                    int32_t ex = r->routing[(t * r->L + l) * r->k + j];
                    keys[n++] = pools > 1 ? (uint32_t)ex : (uint32_t)(l * r->E + ex);
                }
        }
        ts[N_STEPS] = n;
        eng_policy_future f = {keys, n, ts, N_STEPS};
        eng_policy_config pc = {.capacity = cap,
                                .n_keys = (uint32_t)(pools > 1 ? r->E : r->L * r->E),
                                .seed = 1, .lookahead = 1,
                                .keys_per_layer = pools > 1 ? 0 : (uint32_t)r->E};
        eng_policy *pol;
        eng_err e;
        REQUIRE_MSG(eng_policy_open(&pol, policy, &pc, &e) == ENG_OK, "%s", e.msg);
        REQUIRE_MSG(eng_policy_reset(pol, &f, &e) == ENG_OK, "%s", e.msg);
        for (int64_t i = 0; i < n; i++) {
            eng_policy_result res;
            REQUIRE_MSG(eng_policy_demand(pol, keys[i], i, &res, &e) == ENG_OK, "%s", e.msg);
            hits += (uint64_t)res.hit;
        }
        eng_policy_free(pol);
    }
    return hits;
}

/* A predictor learnt from the reference run's routing. */
static eng_predictor *predictor_of(const eng_model *m, const run_out *r)
{
    eng_predictor *p;
    eng_err e;
    REQUIRE(eng_predictor_new(&p, r->L, r->E, r->k, (int)eng_model_hparams(m)->n_layer_dense,
                              &e) == ENG_OK);
    uint16_t *ids = tst_alloc((size_t)N_STEPS * (size_t)(r->L * r->k) * sizeof *ids);
    for (size_t i = 0; i < (size_t)N_STEPS * (size_t)(r->L * r->k); i++)
        ids[i] = (uint16_t)r->routing[i];
    REQUIRE_MSG(eng_predictor_add_sample(p, ids, N_STEPS, &e) == ENG_OK, "%s", e.msg);
    return p;
}

/* Prediction accuracy of the store's predict prefetcher, replayed: the
 * prediction for each unit made at the unit before it (per-token units). */
static void replay_predictions(const run_out *r, const eng_predictor *p, int kind, int n,
                               uint64_t *made, uint64_t *used)
{
    int32_t out[256], prev[64];
    double scratch[256];
    *made = *used = 0;
    for (int t = 0; t < N_STEPS; t++)
        for (int l = 0; l < r->L; l++) {
            if (t == 0 && l == 0)
                continue;
            const int32_t *cur = r->routing + ((l ? t : t - 1) * r->L + (l ? l - 1 : r->L - 1)) *
                                                  r->k;
            for (int j = 0; t > 0 && j < r->k; j++)
                prev[j] = r->routing[((t - 1) * r->L + l) * r->k + j];
            int np = eng_predictor_predict(p, (eng_predict_kind)kind, l, cur, r->k, prev,
                                           t > 0 ? r->k : 0, n, out, scratch);
            const int32_t *act = r->routing + (t * r->L + l) * r->k;
            for (int i = 0; i < np; i++) {
                (*made)++;
                for (int j = 0; j < r->k; j++)
                    *used += act[j] == out[i];
            }
        }
}

static void reference(const eng_model *m, run_out *ref, eng_routing_plan *plan)
{
    const eng_hparams *hp = eng_model_hparams(m);
    ref->routing = tst_alloc((size_t)N_STEPS * (size_t)hp->n_layer_moe *
                             (size_t)hp->n_expert_used * sizeof(int32_t));
    ref->L = (int)hp->n_layer_moe;
    ref->k = (int)hp->n_expert_used;
    ref->E = (int)hp->n_expert;
    eng_err e;
    REQUIRE_MSG(run_model(m, NULL, 1, ref, &e) == ENG_OK, "%s", e.msg);
    REQUIRE(ref->n_routed == (int64_t)N_STEPS * hp->n_layer_moe);
    *plan = (eng_routing_plan){ref->routing, N_STEPS, ref->L, ref->k};
}

static void sweep_model(const char *preset, int type)
{
    const char *path = make_model(preset, type, "m.gguf");
    eng_model *m;
    eng_err e;
    REQUIRE_MSG(eng_model_open(&m, path, NULL, &e) == ENG_OK, "%s", e.msg);
    run_out ref = {0};
    eng_routing_plan plan;
    reference(m, &ref, &plan);
    const int k = ref.k;
    const char *pols[] = {"lru", "lfu", "fifo", "random", "belady", "fsf", "hobbit"};
    const uint32_t sizes[] = {1, (uint32_t)k, 3u * (uint32_t)k};
    for (size_t p = 0; p < sizeof pols / sizeof *pols; p++)
        for (size_t z = 0; z < 3; z++)
            for (int scope = 0; scope < 2; scope++) {
                cfg c = {pols[p], (eng_cache_scope)scope, sizes[z],
                         (z + p) % 2 ? ENG_TIER_LINK : ENG_TIER_FILE,
                         (p + (size_t)scope) % 2 ? ENG_PREFETCH_ORACLE : ENG_PREFETCH_NONE, 0, false,
                         (eng_link_mode)(z % 2), NULL, 0, 0, 0, z == 1};
                eng_tiered_counts tot;
                check_config(m, &ref, &plan, &c, &tot);
                if (c.pf == ENG_PREFETCH_NONE) {
                    uint64_t h = replay_hits(&ref, c.policy, c.scope, c.slots);
                    CHECK_MSG(tot.hits == h, "%s %s/%u scope %d: engine %lu hits, replay %lu",
                              preset, c.policy, c.slots, scope, (unsigned long)tot.hits,
                              (unsigned long)h);
                }
            }
    /* the pre-gating prefetcher (predictions from the hidden state), 1 to 3
     * layers ahead, with and without wrapping into the next token */
    for (int scope = 0; scope < 2; scope++)
        for (size_t z = 0; z < 3; z++)
            for (int ahead = 1; ahead <= 3; ahead++) {
                eng_tiered_counts tot;
                cfg c = {z == 2 ? "belady" : "lru", (eng_cache_scope)scope, sizes[z],
                         (z + (size_t)ahead) % 2 ? ENG_TIER_LINK : ENG_TIER_FILE,
                         ENG_PREFETCH_PREGATE, ahead, (ahead + scope) % 2 == 0,
                         (eng_link_mode)(ahead % 2), NULL, 0, 0, 0, scope == 1};
                check_config(m, &ref, &plan, &c, &tot);
                if (sizes[z] > (uint32_t)k)
                    CHECK_MSG(tot.pf_issued > 0, "%s: pregate issued no prefetch", preset);
                if (ahead < 2)
                    continue;
                /* HOBBIT's adaptive depth: some deeper predictions left out.
                 * C = 1 calls a prediction confident only when its first
                 * expert holds all of the top-k's weight, which a softmax
                 * or sigmoid router never gives k >= 2 experts, so every
                 * round stops after its first layer whatever the model's
                 * routing looks like (a C below 1 depends on the weights).
                 * A model of two layers has no deeper layer to leave out:
                 * pregate looks at most L - 1 layers ahead */
                eng_tiered_counts ad;
                c.adaptive = 1.0;
                check_config(m, &ref, &plan, &c, &ad);
                CHECK_MSG(k < 2 || ref.L < 3 || ad.pg_skipped > 0,
                          "%s adaptive ahead %d: nothing skipped", preset, ahead);
            }
    /* the predict prefetcher (a predictor learnt from this input's routing),
     * each kind, 1 .. 2k experts per unit: logits bit-identical, and the
     * store's prediction accuracy equals a replay of the routing */
    eng_predictor *pred = predictor_of(m, &ref);
    for (int kind = 0; kind < 3; kind++)
        for (int scope = 0; scope < 2; scope++)
            for (size_t z = 0; z < 3; z++) {
                eng_tiered_counts tot;
                int n = (int)z + kind == 0 ? 1 : (int)z * k;
                cfg c = {z == 1 ? "lfu" : "lru", (eng_cache_scope)scope, sizes[z],
                         (z + (size_t)kind) % 2 ? ENG_TIER_LINK : ENG_TIER_FILE,
                         ENG_PREFETCH_PREDICT, 0, false, (eng_link_mode)(z % 2), pred, kind,
                         n, 0, (kind + (int)z) % 2 == 1};
                check_config(m, &ref, &plan, &c, &tot);
                uint64_t made, used;
                replay_predictions(&ref, pred, kind, n ? n : k, &made, &used);
                CHECK_MSG(tot.pred_made == made && tot.pred_used == used,
                          "%s predict kind %d n %d: store %lu/%lu, replay %lu/%lu", preset, kind,
                          n, (unsigned long)tot.pred_used, (unsigned long)tot.pred_made,
                          (unsigned long)used, (unsigned long)made);
                if (sizes[z] > (uint32_t)k)
                    CHECK_MSG(tot.pf_issued > 0, "%s: predict issued no prefetch", preset);
            }
    /* a batched prefill (n_batch > 1) through a one-slot cache, without and
     * with the predict prefetcher (predictions from a batch's experts) */
    for (int pf = 0; pf < 2; pf++) {
        eng_tiered_opts o = eng_tiered_defaults();
        o.cache_experts = pf ? 3 * (uint32_t)k : 1;
        o.prefetch = pf ? ENG_PREFETCH_PREDICT : ENG_PREFETCH_NONE;
        o.predictor = pred;
        eng_store *st;
        REQUIRE(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK);
        run_out r = {0}, rb = {0};
        REQUIRE_MSG(run_model(m, st, 16, &r, &e) == ENG_OK, "%s", e.msg);
        REQUIRE(run_model(m, NULL, 16, &rb, &e) == ENG_OK);
        CHECK(memcmp(r.tokens, rb.tokens, sizeof r.tokens) == 0);
        CHECK_MSG(memcmp(r.logits, rb.logits,
                         (size_t)N_GEN * (size_t)eng_model_hparams(m)->n_vocab * 4) == 0,
                  "%s batched, prefetch %d: logits differ", preset, pf);
        eng_store_free(st);
    }
    eng_predictor_free(pred);
    eng_model_free(m);
}

TEST(bitident_mixtral_f32) { sweep_model("tiny-mixtral", ENG_MK_F32); }
TEST(bitident_qwen2moe_q8_0) { sweep_model("tiny-qwen2moe", ENG_MK_Q8_0); }
TEST(bitident_qwen3moe_q4_0) { sweep_model("tiny-qwen3moe", ENG_MK_Q4_0); }
TEST(bitident_olmoe_q8_0) { sweep_model("tiny-olmoe", ENG_MK_Q8_0); }
TEST(bitident_olmoe_f32) { sweep_model("tiny-olmoe", ENG_MK_F32); }
/* dense leading layer, shared experts, grouped sigmoid routing, MLA */
TEST(bitident_deepseek2_q8_0) { sweep_model("tiny-deepseek2", ENG_MK_Q8_0); }
TEST(bitident_deepseek2_lite_f32) { sweep_model("tiny-deepseek2-lite", ENG_MK_F32); }
/* gpt-oss: the experts' biases travel with their slices through the store */
TEST(bitident_gpt_oss_q8_0) { sweep_model("tiny-gpt-oss", ENG_MK_Q8_0); }
TEST(bitident_glm4moe_f32) { sweep_model("tiny-glm4moe", ENG_MK_F32); }
/* the later integer prefill kernels: the q2_k mix (Q2_K, Q3_K, Q4_K, Q5_K,
 * Q6_K matrices) and Q5_1 with its Q8_1 activations */
TEST(bitident_k_olmoe_q2_k) { sweep_model("tiny-k-olmoe", ENG_MK_Q2_K_MIX); }
TEST(bitident_mixtral_q5_1) { sweep_model("tiny-mixtral", ENG_MK_Q5_1); }

/* belady beats every online policy; a cache holding the model misses only
 * the first touch of each expert. */
TEST(belady_bound_and_full_cache)
{
    const char *path = make_model("tiny-olmoe", ENG_MK_Q8_0, "m.gguf");
    eng_model *m;
    eng_err e;
    REQUIRE(eng_model_open(&m, path, NULL, &e) == ENG_OK);
    run_out ref = {0};
    eng_routing_plan plan;
    reference(m, &ref, &plan);
    const char *online[] = {"lru", "lfu", "fifo", "random", "fsf", "hobbit"};
    for (uint32_t cap = 1; cap <= 12; cap += 5) {
        eng_tiered_counts b;
        check_config(m, &ref, &plan, &(cfg){"belady", ENG_SCOPE_GLOBAL, cap, ENG_TIER_FILE, 0, 0, false, 0, NULL, 0, 0, 0, false},
                     &b);
        for (size_t i = 0; i < sizeof online / sizeof *online; i++) {
            eng_tiered_counts o;
            check_config(m, &ref, &plan,
                         &(cfg){online[i], ENG_SCOPE_GLOBAL, cap, ENG_TIER_FILE, 0, 0, false, 0, NULL, 0, 0, 0, false}, &o);
            CHECK_MSG(b.hits >= o.hits, "cap %u: belady %lu < %s %lu", cap,
                      (unsigned long)b.hits, online[i], (unsigned long)o.hits);
        }
    }
    /* all experts fit: misses = distinct experts touched */
    uint8_t *seen = tst_alloc((size_t)ref.L * (size_t)ref.E);
    uint64_t distinct = 0;
    for (int64_t i = 0; i < (int64_t)N_STEPS * ref.L * ref.k; i++) {
        int l = (int)((i / ref.k) % ref.L);
        int32_t key = l * ref.E + ref.routing[i];
        distinct += !seen[key];
        seen[key] = 1;
    }
    eng_tiered_counts full;
    check_config(m, &ref, &plan,
                 &(cfg){"lru", ENG_SCOPE_GLOBAL, (uint32_t)(ref.L * ref.E), ENG_TIER_LINK, 0, 0,
                        false, ENG_LINK_MAP, NULL, 0, 0, 0, false},
                 &full);
    CHECK_EQ_INT((long long)full.misses, (long long)distinct);
    CHECK_EQ_INT((long long)full.evictions, 0);
    eng_model_free(m);
}

/* The file the store reads shrinks under a running generation: ENG_EIO
 * naming the file, never wrong output. */
TEST(file_truncated_while_running)
{
    const char *path = make_model("tiny-mixtral", ENG_MK_F32, "m.gguf");
    const char *copy = tst_path("copy.gguf");
    char *out, *err;
    REQUIRE(tst_sh(&out, &err, "cp '%s' '%s'", path, copy) == 0);
    eng_model *m;
    eng_err e;
    REQUIRE(eng_model_open(&m, path, NULL, &e) == ENG_OK);
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = 1;
    o.file = copy;
    eng_store *st;
    REQUIRE_MSG(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK, "%s", e.msg);
    eng_session *s;
    REQUIRE(eng_session_open(&s, m, &(eng_session_opts){.n_threads = 1, .n_ctx = 32, .store = st},
                             &e) == ENG_OK);
    int32_t prompt[3] = {1, 2, 3};
    REQUIRE(eng_session_eval(s, prompt, 3, &e) == ENG_OK);
    REQUIRE(truncate(copy, 4096) == 0);
    int rc = ENG_OK;
    for (int i = 0; i < 4 && rc == ENG_OK; i++)
        rc = eng_session_decode(s, 5, &e);
    CHECK_EQ_INT(rc, ENG_EIO);
    CHECK_CONTAINS(e.msg, "copy.gguf");
    CHECK_CONTAINS(e.msg, "shorter");
    eng_session_free(s);
    eng_store_free(st);
    /* already too short at open */
    rc = eng_store_open_tiered(&st, m, &o, &e);
    CHECK_EQ_INT(rc, ENG_EIO);
    CHECK_CONTAINS(e.msg, "too short");
    eng_model_free(m);
}

/* The model file itself shrinks under a running generation. With the
 * dense weights private (eng_model_opts.private_dense) and the file tier,
 * only the store's pread touches the file after open: the shrink is
 * ENG_EIO naming the file, never a SIGBUS (the test process would die; it
 * does without private_dense) and never wrong output; before it, outputs
 * are those of the memory store. */
TEST(model_truncated_while_running_private_dense)
{
    const char *path = make_model("tiny-mixtral", ENG_MK_F32, "m.gguf");
    const char *copy = tst_path("mine.gguf");
    char *out, *err;
    REQUIRE(tst_sh(&out, &err, "cp '%s' '%s'", path, copy) == 0);
    eng_model *ref_m, *m;
    eng_err e;
    REQUIRE(eng_model_open(&ref_m, path, NULL, &e) == ENG_OK);
    run_out ref = {0}, r = {0};
    REQUIRE(run_model(ref_m, NULL, 1, &ref, &e) == ENG_OK);
    REQUIRE_MSG(eng_model_open(&m, copy, &(eng_model_opts){.private_dense = true}, &e) == ENG_OK,
                "%s", e.msg);
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = 1;
    eng_store *st;
    REQUIRE_MSG(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK, "%s", e.msg);
    REQUIRE_MSG(run_model(m, st, 1, &r, &e) == ENG_OK, "%s", e.msg);
    const size_t V = (size_t)eng_model_hparams(m)->n_vocab;
    CHECK(memcmp(r.tokens, ref.tokens, sizeof r.tokens) == 0);
    CHECK(memcmp(r.logits, ref.logits, (size_t)N_GEN * V * sizeof(float)) == 0);
    eng_session *s;
    REQUIRE(eng_session_open(&s, m, &(eng_session_opts){.n_threads = 1, .n_ctx = 32, .store = st},
                             &e) == ENG_OK);
    int32_t prompt[3] = {1, 2, 3};
    REQUIRE(eng_session_eval(s, prompt, 3, &e) == ENG_OK);
    REQUIRE(truncate(copy, 4096) == 0);
    int rc = ENG_OK;
    for (int i = 0; i < 4 && rc == ENG_OK; i++)
        rc = eng_session_decode(s, 5, &e);
    CHECK_EQ_INT(rc, ENG_EIO);
    CHECK_CONTAINS(e.msg, "mine.gguf");
    CHECK_CONTAINS(e.msg, "shorter");
    eng_session_free(s);
    eng_store_free(st);
    eng_model_free(m);
    /* shrunk after open, before the store: ENG_EIO at the store's open */
    REQUIRE(tst_sh(&out, &err, "cp '%s' '%s'", path, copy) == 0);
    REQUIRE(eng_model_open(&m, copy, &(eng_model_opts){.private_dense = true}, &e) == ENG_OK);
    REQUIRE(truncate(copy, 8192) == 0);
    CHECK_EQ_INT(eng_store_open_tiered(&st, m, &o, &e), ENG_EIO);
    CHECK_CONTAINS(e.msg, "too short");
    eng_model_free(m);
    eng_model_free(ref_m);
}

TEST(bad_options)
{
    const char *path = make_model("tiny-mixtral", ENG_MK_F32, "m.gguf");
    eng_model *m;
    eng_err e;
    REQUIRE(eng_model_open(&m, path, NULL, &e) == ENG_OK);
    eng_store *st;
    eng_tiered_opts o = eng_tiered_defaults();
    o.policy = "nope";
    o.cache_experts = 2;
    CHECK_EQ_INT(eng_store_open_tiered(&st, m, &o, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "nope");
    o.policy = "belady";
    CHECK_EQ_INT(eng_store_open_tiered(&st, m, &o, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "routing");
    o.policy = "lru";
    o.cache_experts = 0;
    o.cache_bytes = 100;
    CHECK_EQ_INT(eng_store_open_tiered(&st, m, &o, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "holds no expert");
    o.cache_bytes = 0;
    o.cache_experts = 1;
    o.tier = ENG_TIER_LINK;
    o.link_gbps = 0;
    CHECK_EQ_INT(eng_store_open_tiered(&st, m, &o, &e), ENG_EINVAL);
    o.link_gbps = 25;
    o.link_mode = (eng_link_mode)7;
    CHECK_EQ_INT(eng_store_open_tiered(&st, m, &o, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "link mode");
    o.link_mode = ENG_LINK_COPY;
    o.pregate_ahead = 65;
    CHECK_EQ_INT(eng_store_open_tiered(&st, m, &o, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "pregate");
    o.pregate_ahead = 0;
    o.tier = ENG_TIER_FILE;
    o.file = tst_path("missing.gguf");
    CHECK_EQ_INT(eng_store_open_tiered(&st, m, &o, &e), ENG_EIO);
    CHECK_CONTAINS(e.msg, "missing.gguf");
    eng_model_free(m);
}

/* Paced copies take at least the target (strict); the upper bound is lax
 * (2 x target + 4 unpaced copies + 100 ms) because on a loaded shared
 * machine a sleeping thread wakes tens of ms late. The accuracy on a quiet
 * machine is measured by scripts/bench/offload.sh (docs/offloading.md). */
TEST(link_pacing)
{
    const uint64_t sizes[] = {64 << 10, 1 << 20, 4 << 20};
    unsigned char *src = tst_alloc(4 << 20), *dst = tst_alloc(4 << 20);
    memset(src, 0x5a, 4 << 20);
    memset(dst, 0, 4 << 20); /* fault the pages in: the link copies, not the kernel */
    for (size_t i = 0; i < 3; i++) {
        const double gbps = 0.5, lat = 50.0;
        double target = lat * 1e3 + (double)sizes[i] / gbps;
        double raw = (double)eng_link_copy(dst, src, sizes[i], 1e5, 0);
        memset(dst, 0, sizes[i]);
        uint64_t ns = eng_link_copy(dst, src, sizes[i], gbps, lat);
        CHECK_MSG((double)ns >= target, "size %lu: %lu ns < target %.0f",
                  (unsigned long)sizes[i], (unsigned long)ns, target);
        CHECK_MSG((double)ns <= 2 * target + 4 * raw + 1e8, "size %lu: %lu ns vs target %.0f",
                  (unsigned long)sizes[i], (unsigned long)ns, target);
        CHECK(memcmp(dst, src, sizes[i]) == 0);
    }
    CHECK(eng_link_preset_find("pcie4x16") && eng_link_preset_find("nvme") &&
          eng_link_preset_find("ufs4") && eng_link_preset_find("pcie5x16"));
    CHECK(eng_link_preset_find("bogus") == NULL);
}

/* Link mode map copies nothing: a wait of n bytes takes at least latency +
 * n / bandwidth (strict), and at a link far faster than memcpy (1000 GB/s)
 * a 4 MiB transfer ends near its 14 us target, where a copy cannot. Lax
 * upper bound as above. */
TEST(link_map_pacing)
{
    const uint64_t sizes[] = {64 << 10, 1 << 20, 4 << 20};
    for (size_t i = 0; i < 3; i++) {
        const double gbps = 0.5, lat = 50.0;
        double target = lat * 1e3 + (double)sizes[i] / gbps;
        uint64_t ns = eng_link_wait(sizes[i], gbps, lat);
        CHECK_MSG((double)ns >= target, "size %lu: %lu ns < target %.0f",
                  (unsigned long)sizes[i], (unsigned long)ns, target);
        CHECK_MSG((double)ns <= 2 * target + 1e8, "size %lu: %lu ns vs target %.0f",
                  (unsigned long)sizes[i], (unsigned long)ns, target);
    }
    uint64_t fast = eng_link_wait(4 << 20, 1000, 10);
    CHECK_MSG(fast >= 14194 && fast < 100 * 1000 * 1000, "4 MiB at 1000 GB/s: %lu ns",
              (unsigned long)fast);
}

/* A tiered store driven by hand: acquire and release one expert. */
static void use(eng_store *st, int layer, int expert, int64_t pos, bool want_hit)
{
    eng_expert_weights w;
    eng_err e;
    REQUIRE_MSG(eng_store_acquire(st, layer, expert, pos, &w, &e) == ENG_OK, "%s", e.msg);
    CHECK_MSG(w.miss == !want_hit, "layer %d expert %d: %s", layer, expert,
              w.miss ? "miss" : "hit");
    eng_store_release(st, &w);
}

/* tiny-olmoe (q8_0), checked to have room for `sets` disjoint sets of
 * top-k experts and 3 MoE layers; *k = top-k. */
static eng_model *open_tiny_olmoe(int sets, int *k)
{
    const char *path = make_model("tiny-olmoe", ENG_MK_Q8_0, "m.gguf");
    eng_model *m;
    eng_err e;
    REQUIRE_MSG(eng_model_open(&m, path, NULL, &e) == ENG_OK, "%s", e.msg);
    const eng_hparams *hp = eng_model_hparams(m);
    *k = (int)hp->n_expert_used;
    REQUIRE(hp->n_expert >= sets * *k && hp->n_layer_moe >= 3 && *k >= 3);
    return m;
}

/* A pregate hint never evicts what the prepared layer or a nearer hint of
 * the same layer still needs; once the layer moves on it may. Global lru,
 * 2k slots, disjoint expert sets A, B, C of k experts each. */
TEST(pregate_hint_never_evicts_needed)
{
    int k;
    eng_model *m = open_tiny_olmoe(3, &k);
    eng_err e;
    int32_t a[64], b[64], c[64];
    for (int j = 0; j < k; j++)
        a[j] = j, b[j] = k + j, c[j] = 2 * k + j;
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = (uint32_t)(2 * k);
    o.prefetch = ENG_PREFETCH_PREGATE;
    o.pregate_ahead = 2;
    eng_store *st;
    REQUIRE_MSG(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK, "%s", e.msg);
    CHECK_EQ_INT(eng_store_hint_ahead(st, NULL), 2);
    eng_store_prepare(st, 0, a, k, 0); /* sequence start: A resident */
    for (int j = 0; j < k; j++)
        use(st, 0, a[j], 0, false);
    eng_store_prepare(st, 0, a, k, 1);
    eng_store_hint(st, 1, b, NULL, k, 1);    /* k free slots: B prefetched */
    eng_store_hint(st, 2, c, NULL, k, 1);    /* full; A (prepared), B (nearer) guarded */
    eng_tiered_stats ts;
    REQUIRE(eng_tiered_get_stats(st, &ts, &e) == ENG_OK);
    CHECK_EQ_INT((long long)ts.total.pf_issued, k);
    CHECK_EQ_INT((long long)ts.total.evictions, 0);
    for (int j = 0; j < k; j++)
        use(st, 0, a[j], 1, true);
    eng_store_prepare(st, 1, b, k, 1);
    eng_store_hint(st, 2, c, NULL, k, 1);    /* A no longer needed: C replaces it */
    for (int j = 0; j < k; j++)
        use(st, 1, b[j], 1, true);
    eng_store_prepare(st, 2, c, k, 1);
    for (int j = 0; j < k; j++)
        use(st, 2, c[j], 1, true);
    REQUIRE(eng_tiered_get_stats(st, &ts, &e) == ENG_OK);
    CHECK_EQ_INT((long long)ts.total.pf_issued, 2 * k);
    CHECK_EQ_INT((long long)ts.total.pf_useful, 2 * k);
    CHECK_EQ_INT((long long)ts.total.evictions, k);
    eng_store_free(st);
    /* without pregate the store asks for no hints */
    o.prefetch = ENG_PREFETCH_NONE;
    REQUIRE(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK);
    bool wrap = true;
    CHECK_EQ_INT(eng_store_hint_ahead(st, &wrap), 0);
    CHECK(!wrap);
    eng_store_free(st);
    eng_model_free(m);
}

/* A demand that waits for a prefetch still in the loader's queue moves it
 * to the front: with 2k prefetches queued on a link where one load takes
 * T = 50 ms, waiting for the last one takes about 2T (the load in flight,
 * then it), never the 2k T of the queue order (a strict lower bound when it
 * is not promoted, 8T for tiny-olmoe's k = 4, so the test cannot pass by
 * luck; 6T leaves room for a loaded machine's late wake-ups: one run with
 * T = 20 ms and a bound of 5T waited 5.2T at a load average of 6). */
TEST(demand_promotes_queued_prefetch)
{
    int k;
    eng_model *m = open_tiny_olmoe(3, &k);
    eng_err e;
    int32_t a[64], b[64], c[64];
    for (int j = 0; j < k; j++)
        a[j] = j, b[j] = k + j, c[j] = 2 * k + j;
    const double T = 50e6; /* ns per load */
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = (uint32_t)(4 * k);
    o.prefetch = ENG_PREFETCH_PREGATE;
    o.tier = ENG_TIER_LINK;
    o.link_mode = ENG_LINK_MAP;
    o.link_latency_us = 0;
    o.link_gbps = (double)eng_model_expert_bytes(m, 1) / T;
    eng_store *st;
    REQUIRE_MSG(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK, "%s", e.msg);
    eng_store_prepare(st, 0, a, k, 0);
    eng_store_hint(st, 1, b, NULL, k, 0);
    eng_store_hint(st, 2, c, NULL, k, 0);
    eng_expert_weights w;
    REQUIRE_MSG(eng_store_acquire(st, 2, c[k - 1], 0, &w, &e) == ENG_OK, "%s", e.msg);
    CHECK(!w.miss && w.waited);
    eng_store_release(st, &w);
    eng_tiered_stats ts;
    REQUIRE(eng_tiered_get_stats(st, &ts, &e) == ENG_OK);
    CHECK_EQ_INT((long long)ts.total.pf_issued, 2 * k);
    CHECK_MSG((double)ts.total.pf_late_stall_ns < 6 * T, "waited %.1f ms for a queued prefetch",
              (double)ts.total.pf_late_stall_ns / 1e6);
    eng_store_free(st);
    eng_model_free(m);
}

/* ExpertFlow's correction: when layer 1 is prepared with its real routing,
 * its prefetches still queued that the routing does not use are cancelled
 * (slot and policy entry freed, no bytes read); the one in flight, the used
 * ones and another layer's stay. One loader on a link where a load takes
 * T = 50 ms: of layer 1's k prefetches only the first can have started, the
 * third only after 2T, so the count is exact unless this thread stalls for
 * 100 ms between the hints and the prepare. */
TEST(correction_cancels_unused_queued_prefetches)
{
    int k;
    eng_model *m = open_tiny_olmoe(4, &k);
    eng_err e;
    int32_t a[64], b[64], c[64], real[64];
    for (int j = 0; j < k; j++)
        a[j] = j, b[j] = k + j, c[j] = 2 * k + j, real[j] = j < 2 ? b[j] : 3 * k + j;
    for (int correct = 0; correct < 2; correct++) {
        eng_tiered_opts o = eng_tiered_defaults();
        o.cache_experts = (uint32_t)(4 * k);
        o.prefetch = ENG_PREFETCH_PREGATE;
        o.pregate_ahead = 2;
        o.prefetch_correct = correct;
        o.tier = ENG_TIER_LINK;
        o.link_mode = ENG_LINK_MAP;
        o.link_latency_us = 0;
        o.link_gbps = (double)eng_model_expert_bytes(m, 1) / 50e6;
        eng_store *st;
        REQUIRE_MSG(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK, "%s", e.msg);
        eng_store_prepare(st, 0, a, k, 0);
        eng_store_hint(st, 1, b, NULL, k, 0);
        eng_store_hint(st, 2, c, NULL, k, 0);
        eng_store_prepare(st, 1, real, k, 0);
        eng_tiered_stats ts;
        REQUIRE(eng_tiered_get_stats(st, &ts, &e) == ENG_OK);
        const uint64_t xb = eng_model_expert_bytes(m, 1);
        CHECK_EQ_INT((long long)ts.total.pf_issued, 2 * k);
        CHECK_EQ_INT((long long)ts.layers[1].pf_cancelled, correct ? k - 2 : 0);
        CHECK_EQ_INT((long long)ts.layers[2].pf_cancelled, 0);
        CHECK_EQ_INT((long long)ts.total.bytes_cancelled, correct ? (k - 2) * (long long)xb : 0);
        CHECK_EQ_INT((long long)ts.total.bytes_prefetch,
                     (correct ? k + 2 : 2 * k) * (long long)xb);
        use(st, 1, b[0], 0, true);
        use(st, 1, b[1], 0, true);
        use(st, 1, b[2], 0, !correct); /* cancelled: not resident any more */
        REQUIRE(eng_tiered_get_stats(st, &ts, &e) == ENG_OK);
        CHECK_EQ_INT((long long)ts.total.pf_wasted, 0);
        eng_store_free(st);
    }
    eng_model_free(m);
}

/* --cache-warm with a cache as large as the model: no misses at all, every
 * expert loaded once as a warm-up prefetch; outputs unchanged. */
TEST(warm_full_cache_never_misses)
{
    const char *path = make_model("tiny-qwen2moe", ENG_MK_Q8_0, "m.gguf");
    eng_model *m;
    eng_err e;
    REQUIRE(eng_model_open(&m, path, NULL, &e) == ENG_OK);
    run_out ref = {0};
    eng_routing_plan plan;
    reference(m, &ref, &plan);
    for (int tier = 0; tier < 2; tier++) {
        eng_tiered_opts o = eng_tiered_defaults();
        o.cache_experts = (uint32_t)(ref.L * ref.E);
        o.warm = true;
        o.tier = (eng_tier)tier;
        o.link_gbps = 100;
        eng_store *st;
        REQUIRE_MSG(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK, "%s", e.msg);
        /* never evicts: a whole layer at once, one dispatch as the memory store */
        CHECK_EQ_INT(eng_store_max_held(st), ref.k);
        run_out r = {0};
        REQUIRE_MSG(run_model(m, st, 1, &r, &e) == ENG_OK, "%s", e.msg);
        CHECK(memcmp(r.tokens, ref.tokens, sizeof r.tokens) == 0);
        CHECK(memcmp(r.logits, ref.logits,
                     (size_t)N_GEN * (size_t)eng_model_hparams(m)->n_vocab * 4) == 0);
        eng_tiered_stats ts;
        REQUIRE(eng_tiered_get_stats(st, &ts, &e) == ENG_OK);
        CHECK_EQ_INT((long long)ts.total.misses, 0);
        CHECK_EQ_INT((long long)ts.total.pf_issued, (long long)ref.L * ref.E);
        CHECK(ts.total.hits == ts.total.accesses);
        eng_store_free(st);
    }
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = (uint32_t)(ref.L * ref.E - 1); /* one short: evicts, one at a time */
    eng_store *st;
    REQUIRE(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK);
    CHECK_EQ_INT(eng_store_max_held(st), 1);
    eng_store_free(st);
    o.cache_experts = 2;
    o.warm = true;
    o.policy = "belady";
    o.plan = &plan;
    CHECK_EQ_INT(eng_store_open_tiered(&st, m, &o, &e), ENG_EINVAL);
    eng_model_free(m);
}

typedef struct ev_count {
    uint64_t n[5];
    uint64_t wait_begin, wait_end;
} ev_count;

static void on_cache(void *user, const eng_cache_event *ev)
{
    ((ev_count *)user)->n[ev->kind]++;
}

static void on_begin(void *user, eng_region r)
{
    if (r == ENG_REGION_EXPERT_WAIT)
        __atomic_add_fetch(&((ev_count *)user)->wait_begin, 1, __ATOMIC_RELAXED);
}

static void on_end(void *user, eng_region r)
{
    if (r == ENG_REGION_EXPERT_WAIT)
        __atomic_add_fetch(&((ev_count *)user)->wait_end, 1, __ATOMIC_RELAXED);
}

/* Cache events through the hook table agree with the counters; every
 * demand miss is one EXPERT_WAIT region on the forward thread. */
TEST(cache_events_match_counters)
{
    const char *path = make_model("tiny-mixtral", ENG_MK_Q8_0, "m.gguf");
    eng_model *m;
    eng_err e;
    REQUIRE(eng_model_open(&m, path, NULL, &e) == ENG_OK);
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = 3;
    eng_store *st;
    REQUIRE(eng_store_open_tiered(&st, m, &o, &e) == ENG_OK);
    ev_count c = {0};
    eng_hooks h = {.user = &c, .cache = on_cache, .region_begin = on_begin,
                   .region_end = on_end};
    eng_session *s;
    REQUIRE(eng_session_open(&s, m, &(eng_session_opts){.n_threads = 2, .n_ctx = 32,
                                                         .n_batch = 1, .hooks = &h, .store = st},
                             &e) == ENG_OK);
    int32_t prompt[4] = {3, 1, 4, 1};
    REQUIRE(eng_session_eval(s, prompt, 4, &e) == ENG_OK);
    for (int i = 0; i < 6; i++)
        REQUIRE(eng_session_decode(s, 5 + i, &e) == ENG_OK);
    eng_tiered_stats ts;
    REQUIRE(eng_tiered_get_stats(st, &ts, &e) == ENG_OK);
    CHECK_EQ_INT((long long)c.n[ENG_CACHE_HIT], (long long)ts.total.hits);
    CHECK_EQ_INT((long long)c.n[ENG_CACHE_MISS], (long long)ts.total.misses);
    CHECK_EQ_INT((long long)c.n[ENG_CACHE_EVICT], (long long)ts.total.evictions);
    CHECK(c.n[ENG_CACHE_LOAD_DONE] <= ts.total.misses);
    CHECK(c.n[ENG_CACHE_LOAD_DONE] + 3 >= ts.total.misses); /* <= 3 never reported */
    CHECK_EQ_INT((long long)c.wait_begin, (long long)c.wait_end);
    CHECK(c.wait_begin >= 1 && c.wait_begin <= ts.total.misses);
    eng_session_free(s);
    eng_store_free(st);
    eng_model_free(m);
}
