/*
 * test_trace.c — routing traces: round trips between every format, the
 * streaming reader against the in-memory trace, the capture writer (and
 * its hook adapter), synthetic traces and statistics.
 */
#include "metrics/synth.h"
#include "metrics/trace.h"
#include "tests/metrics/lrc_util.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>

/* Same shape and ids; weights/token ids/labels compared when `what` asks. */
static void check_same(const met_trace *a, const met_trace *b, int weights, int tokens,
                       int labels, const char *ctx)
{
    REQUIRE_MSG(a && b, "%s: missing trace", ctx);
    CHECK_EQ_INT(a->info.num_layers, b->info.num_layers);
    CHECK_EQ_INT(a->info.num_experts, b->info.num_experts);
    CHECK_EQ_INT(a->info.top_k, b->info.top_k);
    CHECK_EQ_INT(a->info.layer_offset, b->info.layer_offset);
    REQUIRE_MSG(a->info.num_samples == b->info.num_samples && a->info.num_tokens == b->info.num_tokens,
                "%s: %lld/%lld samples, %lld/%lld tokens", ctx, (long long)a->info.num_samples,
                (long long)b->info.num_samples, (long long)a->info.num_tokens,
                (long long)b->info.num_tokens);
    for (int64_t s = 0; s <= a->info.num_samples; s++)
        CHECK_EQ_INT(a->sample_start[s], b->sample_start[s]);
    size_t n = (size_t)a->info.num_tokens * a->info.num_layers * a->info.top_k;
    CHECK_MSG(!memcmp(a->ids, b->ids, n * 2), "%s: ids differ", ctx);
    if (weights) {
        REQUIRE_MSG(a->weights && b->weights, "%s: weights lost", ctx);
        CHECK_MSG(!memcmp(a->weights, b->weights, n * 4), "%s: weights differ", ctx);
    }
    if (tokens) {
        REQUIRE_MSG(a->token_ids && b->token_ids, "%s: token ids lost", ctx);
        CHECK(!memcmp(a->token_ids, b->token_ids, (size_t)a->info.num_tokens * 4));
    }
    for (int64_t s = 0; labels && s < a->info.num_samples; s++) {
        REQUIRE_MSG(a->labels && b->labels, "%s: labels lost", ctx);
        CHECK_EQ_STR(a->labels[s], b->labels[s]);
    }
}

static met_trace *load(const char *path)
{
    met_trace *t = NULL;
    eng_err e = {0};
    CHECK_MSG(!met_trace_load(&t, path, MET_FMT_AUTO, &e), "%s: %s", path, e.msg);
    return t;
}

TEST(roundtrip_every_format)
{
    lrc_rng g = {3};
    uint32_t all = MET_TRACE_WEIGHTS | MET_TRACE_TOKENS | MET_TRACE_LABELS;
    met_trace *t = lrc_random_trace(&g, 3, 20, 3, 7, 15, all);
    met_trace *eq = lrc_random_trace(&g, 2, 100, 4, 6, -9, MET_TRACE_LABELS);
    REQUIRE(t && eq);
    eng_err e = {0};
    REQUIRE_MSG(!met_trace_save(t, tst_path("t.moetrace"), MET_FMT_AUTO, &e), "%s", e.msg);
    REQUIRE_MSG(!met_trace_save(t, tst_path("t.json"), MET_FMT_AUTO, &e), "%s", e.msg);
    REQUIRE_MSG(!met_trace_save(t, tst_path("t.csv"), MET_FMT_AUTO, &e), "%s", e.msg);
    REQUIRE_MSG(!met_trace_save(eq, tst_path("st"), MET_FMT_SAFETENSORS, &e), "%s", e.msg);
    met_trace *a = load(tst_path("t.moetrace")), *b = load(tst_path("t.json"));
    met_trace *c = load(tst_path("t.csv")), *d = load(tst_path("st"));
    check_same(t, a, 1, 1, 1, "moetrace");
    check_same(t, b, 0, 0, 1, "json");
    check_same(t, c, 1, 0, 0, "csv");
    check_same(eq, d, 0, 0, 1, "safetensors");
    met_trace_free(a), met_trace_free(b), met_trace_free(c), met_trace_free(d);
    met_trace_free(t), met_trace_free(eq);
}

/* A model with dense leading layers: the trace's layer offset survives every
 * format; the .moetrace header grows to 72 bytes only then. */
TEST(layer_offset_roundtrips)
{
    lrc_rng g = {7};
    met_trace *t = lrc_random_trace(&g, 3, 20, 3, 8, -12, MET_TRACE_WEIGHTS | MET_TRACE_LABELS);
    REQUIRE(t);
    eng_err e = {0};
    REQUIRE(!met_trace_save(t, tst_path("plain.moetrace"), MET_FMT_AUTO, &e));
    t->info.layer_offset = 3;
    const char *names[] = {"t.moetrace", "t.json", "t.csv", "st"};
    const met_trace_format fmts[] = {MET_FMT_AUTO, MET_FMT_AUTO, MET_FMT_AUTO,
                                     MET_FMT_SAFETENSORS};
    for (int i = 0; i < 4; i++) {
        REQUIRE_MSG(!met_trace_save(t, tst_path(names[i]), fmts[i], &e), "%s", e.msg);
        met_trace *u = load(tst_path(names[i]));
        check_same(t, u, 0, 0, i != 2, names[i]);
        met_trace_free(u);
    }
    size_t n_plain = 0, n_off = 0;
    char *plain = tst_read_file(tst_path("plain.moetrace"), &n_plain);
    char *off = tst_read_file(tst_path("t.moetrace"), &n_off);
    CHECK_EQ_INT(n_off, n_plain + 8);
    uint32_t hs, lo;
    memcpy(&hs, off + 28, 4), memcpy(&lo, off + 64, 4);
    CHECK_EQ_INT(hs, 72);
    CHECK_EQ_INT(lo, 3);
    memcpy(&hs, plain + 28, 4);
    CHECK_EQ_INT(hs, 64);
    /* the streaming reader sees it too, and the CLI prints the model's layers */
    met_trace_reader *r = NULL;
    REQUIRE(!met_trace_reader_open(&r, tst_path("t.moetrace"), MET_FMT_AUTO, &e));
    CHECK_EQ_INT(met_trace_reader_info(r)->layer_offset, 3);
    met_trace_reader_free(r);
    char *out, *err;
    REQUIRE(tst_sh(&out, &err, "%s metrics %s --bootstrap 0 --layers 4", tst_moebench(),
                   tst_path("t.moetrace")) == 0);
    CHECK_CONTAINS(out, "its first 3 layer(s) have a dense FFN");
    CHECK_CONTAINS(out, "\n4        ");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s metrics %s --layers 2", tst_moebench(),
                        tst_path("t.moetrace")), 2);
    CHECK_CONTAINS(err, "layer 2 has a dense FFN (the trace starts at the model's layer 3)");
    REQUIRE(tst_sh(&out, &err, "%s simulate %s --policy lru --cache-experts 4 --layer 5",
                   tst_moebench(), tst_path("t.moetrace")) == 0);
    CHECK_CONTAINS(out, "\n5 ");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s simulate %s --policy lru --cache-experts 4 --layer 1",
                        tst_moebench(), tst_path("t.moetrace")), 2);
    CHECK_CONTAINS(err, "not a layer of the trace (3..5)");
    met_trace_free(t);
}

TEST(convert_chain_through_cli)
{
    lrc_rng g = {5};
    met_trace *t = lrc_random_trace(&g, 2, 16, 2, 4, -11, MET_TRACE_LABELS);
    REQUIRE(!met_trace_save(t, tst_path("a.json"), MET_FMT_AUTO, NULL));
    const char *chain[] = {"a.json", "b.moetrace", "c.csv", "d.st", "e.json", "f.x"};
    for (int i = 0; i + 1 < 6; i++) {
        char *err;
        int rc = tst_sh(NULL, &err, "%s trace convert %s %s %s", tst_moebench(),
                        tst_path(chain[i]), tst_path(chain[i + 1]),
                        i == 2 ? "--to safetensors" : i == 4 ? "--to moetrace" : "");
        CHECK_MSG(rc == 0, "%s -> %s: %s", chain[i], chain[i + 1], err);
    }
    met_trace *u = NULL;
    REQUIRE(!met_trace_load(&u, tst_path("f.x"), MET_FMT_MOETRACE, NULL));
    check_same(t, u, 0, 0, 0, "chain");
    met_trace_free(t), met_trace_free(u);
}

TEST(stream_reader_matches_memory)
{
    lrc_rng g = {11};
    met_trace *t = lrc_random_trace(&g, 4, 9, 3, 10, 20, MET_TRACE_WEIGHTS);
    REQUIRE(!met_trace_write_moetrace(t, tst_path("t.moetrace"), NULL));
    met_trace_reader *r;
    REQUIRE(!met_trace_reader_open(&r, tst_path("t.moetrace"), MET_FMT_AUTO, NULL));
    CHECK(met_trace_reader_trace(r) == NULL); /* really streaming */
    size_t n = (size_t)t->info.num_tokens * 3;
    uint16_t *ids = tst_alloc(n * 2), *want = tst_alloc(n * 2);
    float *w = tst_alloc(n * 4);
    for (int32_t l = 0; l < 4; l++) {
        REQUIRE(!met_trace_reader_layer(r, l, ids, w, NULL));
        met_trace_gather_layer(t, l, want);
        CHECK(!memcmp(ids, want, n * 2));
        for (int64_t gi = 0; gi < t->info.num_tokens; gi++)
            CHECK(w[gi * 3] == t->weights[(gi * 4 + l) * 3]);
    }
    int64_t T = t->sample_start[4] - t->sample_start[3];
    uint16_t *sm = tst_alloc((size_t)(4 * T * 3) * 2);
    REQUIRE(!met_trace_reader_sample(r, 3, sm, NULL, NULL));
    for (int32_t l = 0; l < 4; l++)
        for (int64_t i = 0; i < T * 3; i++)
            CHECK(sm[l * T * 3 + i] ==
                  t->ids[((t->sample_start[3] + i / 3) * 4 + l) * 3 + i % 3]);
    eng_err e = {0};
    CHECK_EQ_INT(met_trace_reader_layer(r, 4, ids, NULL, &e), ENG_EINVAL);
    CHECK_EQ_INT(met_trace_reader_sample(r, 10, sm, NULL, &e), ENG_EINVAL);
    met_trace_reader_free(r);
    met_trace_free(t);
}

/* The engine's routing hook: layers in any order within a token, gaps in
 * positions, labels per sample. */
TEST(writer_through_hook)
{
    met_trace_info in = {.num_layers = 2, .num_experts = 5, .top_k = 2,
                         .flags = MET_TRACE_WEIGHTS | MET_TRACE_TOKENS};
    met_trace_writer *w;
    REQUIRE(!met_trace_writer_open(&w, tst_path("c.moetrace"), &in, NULL));
    REQUIRE(!met_trace_writer_begin_sample(w, "wiki", NULL));
    int32_t ex[][2] = {{0, 1}, {2, 3}, {4, 0}, {1, 2}, {3, 4}, {0, 2}};
    float wt[2] = {0.75f, 0.25f};
    eng_hooks hk = {.user = w, .routing = met_trace_writer_hook}, *h = &hk;
    int64_t pos[] = {5, 5, 9, 9};
    int layer[] = {1, 0, 0, 1};
    for (int i = 0; i < 4; i++) {
        eng_routing_event ev = {.layer = layer[i], .pos = pos[i], .token = 100 + pos[i],
                                .top_k = 2, .experts = ex[i], .weights = wt};
        ENG_HOOK(h, routing, &ev);
    }
    REQUIRE(!met_trace_writer_begin_sample(w, "code", NULL));
    REQUIRE(!met_trace_writer_route(w, 0, 0, 7, 2, ex[4], wt, NULL));
    REQUIRE(!met_trace_writer_route(w, 1, 0, 7, 2, ex[5], wt, NULL));
    eng_err e = {0};
    REQUIRE_MSG(!met_trace_writer_close(w, &e), "%s", e.msg);
    met_trace *t = load(tst_path("c.moetrace"));
    REQUIRE(t);
    CHECK_EQ_INT(t->info.num_samples, 2);
    CHECK_EQ_INT(t->info.num_tokens, 3);
    CHECK_EQ_STR(t->labels[0], "wiki");
    CHECK_EQ_STR(t->labels[1], "code");
    static const uint16_t want[] = {2, 3, 0, 1, 4, 0, 1, 2, 3, 4, 0, 2};
    CHECK(!memcmp(t->ids, want, sizeof want));
    CHECK_EQ_INT(t->token_ids[1], 109);
    CHECK(t->weights[3] == 0.25f);
    met_trace_free(t);
}

/* A prefill batch delivers layer by layer: positions revisit earlier
 * tokens; the file holds the tokens in position order. */
TEST(writer_layer_major_batch)
{
    met_trace_info in = {.num_layers = 3, .num_experts = 6, .top_k = 2, .flags = MET_TRACE_TOKENS};
    met_trace_writer *w;
    REQUIRE(!met_trace_writer_open(&w, tst_path("b.moetrace"), &in, NULL));
    for (int32_t l = 0; l < 3; l++)
        for (int64_t p = 10; p < 14; p++) {
            int32_t ex[2] = {(int32_t)(p % 6), (int32_t)((p + l + 1) % 6)};
            REQUIRE(!met_trace_writer_route(w, l, p, 1000 + p, 2, ex, NULL, NULL));
        }
    int32_t ex[2] = {5, 4};
    for (int32_t l = 2; l >= 0; l--) /* decode token, layers in any order */
        REQUIRE(!met_trace_writer_route(w, l, 14, 1014, 2, ex, NULL, NULL));
    eng_err e = {0};
    REQUIRE_MSG(!met_trace_writer_close(w, &e), "%s", e.msg);
    met_trace *t = load(tst_path("b.moetrace"));
    REQUIRE(t);
    CHECK_EQ_INT(t->info.num_tokens, 5);
    for (int64_t p = 10; p < 14; p++)
        for (int32_t l = 0; l < 3; l++) {
            CHECK_EQ_INT(t->ids[((p - 10) * 3 + l) * 2], p % 6);
            CHECK_EQ_INT(t->ids[((p - 10) * 3 + l) * 2 + 1], (p + l + 1) % 6);
        }
    CHECK_EQ_INT(t->token_ids[2], 1012);
    CHECK_EQ_INT(t->ids[(4 * 3 + 2) * 2], 5);
    met_trace_free(t);
}

TEST(writer_rejects_bad_events)
{
    met_trace_info in = {.num_layers = 2, .num_experts = 5, .top_k = 2};
    int32_t ok[2] = {0, 1}, rep[2] = {3, 3}, big[2] = {0, 5};
    struct { int layer; int64_t pos; const int32_t *ex; int k; const char *msg; } cases[] = {
        {0, 0, rep, 2, "repeated"}, {0, 0, big, 2, "out of range"}, {2, 0, ok, 2, "bad layer"},
        {0, 0, ok, 1, "top_k"},
    };
    for (int i = 0; i < 4; i++) {
        met_trace_writer *w;
        REQUIRE(!met_trace_writer_open(&w, tst_path("w.moetrace"), &in, NULL));
        eng_err e = {0};
        CHECK(met_trace_writer_route(w, cases[i].layer, cases[i].pos, 0, cases[i].k, cases[i].ex,
                                     NULL, &e) != 0);
        CHECK_CONTAINS(e.msg, cases[i].msg);
        CHECK(met_trace_writer_close(w, &e) != 0); /* the error sticks */
    }
    /* a token missing a layer (caught when the sample ends); a layer twice */
    met_trace_writer *w;
    eng_err e = {0};
    REQUIRE(!met_trace_writer_open(&w, tst_path("w.moetrace"), &in, NULL));
    REQUIRE(!met_trace_writer_route(w, 0, 0, 0, 2, ok, NULL, NULL));
    REQUIRE(!met_trace_writer_route(w, 0, 1, 0, 2, ok, NULL, NULL));
    REQUIRE(!met_trace_writer_route(w, 1, 1, 0, 2, ok, NULL, NULL));
    CHECK(met_trace_writer_begin_sample(w, "next", &e) != 0);
    CHECK_CONTAINS(e.msg, "did not get every layer");
    met_trace_writer_close(w, NULL);
    REQUIRE(!met_trace_writer_open(&w, tst_path("w.moetrace"), &in, NULL));
    REQUIRE(!met_trace_writer_route(w, 1, 3, 0, 2, ok, NULL, NULL));
    CHECK(met_trace_writer_route(w, 1, 3, 0, 2, ok, NULL, &e) != 0);
    CHECK_CONTAINS(e.msg, "twice");
    met_trace_writer_close(w, NULL);
    /* a capture that failed leaves no valid file (the index is missing) */
    met_trace *t = NULL;
    CHECK_EQ_INT(met_trace_load(&t, tst_path("w.moetrace"), MET_FMT_AUTO, &e), ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "unfinished capture");
    met_trace_free(t);
}

TEST(synth_reproducible_and_shaped)
{
    met_synth_opts o = {.num_layers = 3, .num_experts = 16, .top_k = 4, .num_samples = 5,
                        .tokens = 40, .zipf = 1.2, .stickiness = 0.7, .segment_len = 8,
                        .seed = 9};
    for (int m = 0; m < 4; m++) {
        o.model = (met_synth_model)m;
        met_trace *a, *b;
        eng_err e = {0};
        REQUIRE_MSG(!met_synth_trace(&a, &o, &e), "%s", e.msg);
        REQUIRE(!met_synth_trace(&b, &o, NULL));
        CHECK(!met_trace_validate(a, "synth", NULL)); /* distinct ids < E */
        check_same(a, b, 0, 0, 0, met_synth_model_name(o.model));
        REQUIRE(!met_synth_write(tst_path("s.moetrace"), MET_FMT_AUTO, &o, NULL));
        met_trace *c = load(tst_path("s.moetrace"));
        check_same(a, c, 0, 0, 0, "streamed");
        o.seed++;
        met_trace *d;
        REQUIRE(!met_synth_trace(&d, &o, NULL));
        CHECK(memcmp(a->ids, d->ids, (size_t)a->info.num_tokens * 12 * 2) != 0);
        o.seed--;
        met_trace_free(a), met_trace_free(b), met_trace_free(c), met_trace_free(d);
    }
}

TEST(stats_on_known_trace)
{
    /* one layer, E = 4, k = 1: tokens 0 0 1 0 | 2 2 -> counts 3,1,2,0 */
    const char *json = "{\"num_experts\":4,\"top_k\":1,\"samples\":[[[0],[0],[1],[0]],[[2],[2]]]}";
    tst_write_file(tst_path("k.json"), json, strlen(json));
    met_trace_reader *r;
    REQUIRE(!met_trace_reader_open(&r, tst_path("k.json"), MET_FMT_AUTO, NULL));
    met_layer_stats *st;
    REQUIRE(!met_trace_stats(r, &st, NULL));
    CHECK_EQ_INT(st[0].counts[0], 3);
    CHECK_EQ_INT(st[0].counts[3], 0);
    double h = -(0.5 * log2(0.5) + (1 / 6.0) * log2(1 / 6.0) + (1 / 3.0) * log2(1 / 3.0));
    CHECK_NEAR(st[0].entropy_bits, h, 1e-12);
    CHECK_NEAR(st[0].entropy_norm, h / 2, 1e-12);
    /* sorted 0,1,2,3: sum (2i - n - 1) x_i / (n sum) = (-3*0 - 1*1 + 1*2 + 3*3) / 24 */
    CHECK_NEAR(st[0].gini, 10.0 / 24, 1e-12);
    CHECK_EQ_INT(st[0].first_use, 3);   /* 0, 1 in sample 0; 2 in sample 1 */
    CHECK_EQ_INT(st[0].reuse[0], 2);    /* distance 1: 0->0, 2->2 */
    CHECK_EQ_INT(st[0].reuse[1], 1);    /* distance 2: 0 at t1 -> t3 */
    met_trace_stats_free(st, 1);
    met_trace_reader_free(r);
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s trace stats %s --json", tst_moebench(), tst_path("k.json")), 0);
    CHECK_CONTAINS(out, "\"gini\":0.41666");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s trace stats %s", tst_moebench(), tst_path("k.json")), 0);
    CHECK_CONTAINS(out, "first use");
}

TEST(synth_cli)
{
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s trace synth --layers 2 --experts 8 --top-k 2 --samples 3 "
                        "--tokens 20 --model zipf --seed 4 -o %s", tst_moebench(),
                        tst_path("a.moetrace")), 0);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s trace synth --layers 2 --experts 8 --top-k 2 --samples 3 "
                        "--tokens 20 --model zipf --seed 4 -o %s", tst_moebench(),
                        tst_path("b.moetrace")), 0);
    CHECK_EQ_INT(tst_sh(NULL, NULL, "cmp %s %s", tst_path("a.moetrace"), tst_path("b.moetrace")), 0);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s trace synth --experts 8 --top-k 9 --samples 3 --tokens 2 "
                        "--model zipf -o %s", tst_moebench(), tst_path("c.moetrace")), 2);
    CHECK_CONTAINS(err, "--top-k");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s trace synth --experts 8 --top-k 2 --samples 3 --tokens 2 "
                        "--model nope -o x", tst_moebench()), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s trace frobnicate", tst_moebench()), 2);
}

/* Prompt batching: written by the writer, kept by .moetrace and JSON (and
 * by a convert between them), dropped by CSV; bad values refused. */
TEST(prompt_batching_roundtrips)
{
    met_trace_info in = {.num_layers = 2, .num_experts = 4, .top_k = 1};
    met_trace_writer *w;
    REQUIRE(!met_trace_writer_open(&w, tst_path("p.moetrace"), &in, NULL));
    const int64_t len[3] = {6, 3, 2};
    const met_trace_prompt pr[3] = {{5, 2}, {0, 0}, {2, 1}};
    for (int s = 0; s < 3; s++) {
        REQUIRE(!met_trace_writer_begin_sample(w, NULL, NULL));
        if (s != 1)
            REQUIRE(!met_trace_writer_set_prompt(w, pr[s], NULL));
        for (int64_t p = 0; p < len[s]; p++)
            for (int32_t l = 0; l < 2; l++) {
                int32_t ex = (int32_t)((p + l + s) % 4);
                REQUIRE(!met_trace_writer_route(w, l, p, 0, 1, &ex, NULL, NULL));
            }
    }
    eng_err e = {0};
    REQUIRE_MSG(!met_trace_writer_close(w, &e), "%s", e.msg);
    met_trace *t = load(tst_path("p.moetrace"));
    REQUIRE(t);
    CHECK(t->info.flags & MET_TRACE_PROMPT);
    for (int s = 0; s < 3; s++) {
        CHECK_EQ_INT(met_trace_prompt_of(t, s).tokens, pr[s].tokens);
        CHECK_EQ_INT(met_trace_prompt_of(t, s).batch, pr[s].batch);
    }
    met_trace_reader *r;
    REQUIRE(!met_trace_reader_open(&r, tst_path("p.moetrace"), MET_FMT_AUTO, &e));
    CHECK_EQ_INT(met_trace_reader_prompt(r, 0).batch, 2);
    CHECK_EQ_INT(met_trace_reader_prompt(r, 2).tokens, 2);
    met_trace_reader_free(r);
    REQUIRE(!met_trace_save(t, tst_path("p.json"), MET_FMT_AUTO, &e));
    met_trace *j = load(tst_path("p.json"));
    REQUIRE(j && j->prompt);
    CHECK(!memcmp(j->prompt, t->prompt, 3 * sizeof *j->prompt));
    REQUIRE(!met_trace_save(j, tst_path("p2.moetrace"), MET_FMT_AUTO, &e));
    met_trace *m2 = load(tst_path("p2.moetrace"));
    REQUIRE(m2 && m2->prompt);
    CHECK(!memcmp(m2->prompt, t->prompt, 3 * sizeof *m2->prompt));
    REQUIRE(!met_trace_save(t, tst_path("p.csv"), MET_FMT_AUTO, &e));
    met_trace *c = load(tst_path("p.csv"));
    REQUIRE(c);
    CHECK(c->prompt == NULL && !(c->info.flags & MET_TRACE_PROMPT));
    /* in memory: a prompt longer than its sample, or batched in 0s */
    CHECK_EQ_INT(met_trace_set_prompt(t, 1, (met_trace_prompt){4, 2}, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "sample 1: prompt of 4 tokens");
    CHECK_EQ_INT(met_trace_set_prompt(t, 0, (met_trace_prompt){3, 0}, &e), ENG_EINVAL);
    met_trace_free(t), met_trace_free(j), met_trace_free(m2), met_trace_free(c);
    /* the writer checks it when the sample ends */
    REQUIRE(!met_trace_writer_open(&w, tst_path("q.moetrace"), &in, NULL));
    REQUIRE(!met_trace_writer_set_prompt(w, (met_trace_prompt){9, 4}, NULL));
    for (int32_t l = 0; l < 2; l++) {
        int32_t ex = 1;
        REQUIRE(!met_trace_writer_route(w, l, 0, 0, 1, &ex, NULL, NULL));
    }
    CHECK_EQ_INT(met_trace_writer_close(w, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "prompt of 9 tokens");
}
