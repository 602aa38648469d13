/*
 * test_subset.c — PreMoe subsets (metrics/subset.h): the score and the kept
 * experts against a hand-made trace, a trace without weights (counts),
 * byte budgets, the file round trip and broken files.
 */
#include "metrics/subset.h"
#include "tests/test.h"
#include "tests/util/util.h"

#include <math.h>
#include <string.h>

/* 2 layers, 4 experts, top-2, 4 tokens; layer 0: (0,1) (1,2) (1,3) (2,0). */
static met_trace *hand(int weights)
{
    met_trace_info in = {.num_layers = 2, .num_experts = 4, .top_k = 2,
                         .flags = weights ? MET_TRACE_WEIGHTS : 0, .num_samples = 1};
    int64_t T = 4;
    met_trace *t;
    eng_err e;
    REQUIRE(met_trace_alloc(&t, &in, &T, &e) == ENG_OK);
    static const uint16_t ids[4][2][2] = {{{0, 1}, {3, 2}}, {{1, 2}, {3, 2}},
                                          {{1, 3}, {2, 3}}, {{2, 0}, {3, 0}}};
    static const float w[4][2] = {{0.6f, 0.4f}, {0.7f, 0.3f}, {0.9f, 0.1f}, {0.5f, 0.5f}};
    for (int tok = 0; tok < 4; tok++)
        for (int l = 0; l < 2; l++)
            for (int r = 0; r < 2; r++) {
                t->ids[(tok * 2 + l) * 2 + r] = ids[tok][l][r];
                if (weights)
                    t->weights[(tok * 2 + l) * 2 + r] = w[tok][r];
            }
    REQUIRE(met_trace_validate(t, "hand", &e) == ENG_OK);
    return t;
}

TEST(subset_scores_by_hand)
{
    met_trace *t = hand(1);
    met_subset *s;
    eng_err e;
    REQUIRE(met_subset_build(t, &(met_subset_opts){.keep = 2}, &s, &e) == ENG_OK);
    /* layer 0: e0 .6+.5, e1 .4+.7+.9, e2 .3+.5, e3 .1 -> / 4 */
    const double want[4] = {1.1 / 4, 2.0 / 4, 0.8 / 4, 0.1 / 4};
    for (int x = 0; x < 4; x++)
        CHECK_NEAR(s->score[x], want[x], 1e-6);
    CHECK(s->n_keep[0] == 2 && s->keep[0] == 1 && s->keep[1] == 0);
    CHECK(s->weighted == 1 && s->profile_tokens == 4);
    met_subset_free(s);
    /* threshold 0.5: e1 .7+.9, e0 .6+.5, e2 .5 */
    REQUIRE(met_subset_build(t, &(met_subset_opts){.keep = 3, .min_weight = 0.5}, &s, &e) == 0);
    CHECK_NEAR(s->score[2], 0.5 / 4, 1e-6);
    CHECK_NEAR(s->score[3], 0, 0);
    CHECK(s->keep[0] == 1 && s->keep[1] == 0 && s->keep[2] == 2);
    uint8_t *m = met_subset_mask(s);
    CHECK(m[0] && m[1] && m[2] && !m[3]);
    free(m);
    met_subset_free(s);
    met_trace_free(t);
    /* without weights: counts; layer 0 e1 3, e0 2, e2 2 (tie: lower id), e3 1;
     * layer 1 e3 4, e2 3, e0 1 */
    t = hand(0);
    REQUIRE(met_subset_build(t, &(met_subset_opts){.keep = 2}, &s, &e) == ENG_OK);
    CHECK(s->weighted == 0);
    CHECK_NEAR(s->score[4 + 3], 1.0, 1e-12);
    CHECK(s->keep[0] == 1 && s->keep[1] == 0 && s->keep[4] == 3 && s->keep[5] == 2);
    met_subset_free(s);
    /* bytes: 2 layers, 100 B per expert, 600 B -> 3 per layer; 300 B -> 1.5 < k */
    double eb[2] = {100, 100};
    REQUIRE(met_subset_build(t, &(met_subset_opts){.keep_bytes = 600, .expert_bytes = eb}, &s,
                             &e) == ENG_OK);
    CHECK(s->n_keep[0] == 3 && s->n_keep[1] == 3);
    met_subset_free(s);
    CHECK(met_subset_build(t, &(met_subset_opts){.keep_bytes = 300, .expert_bytes = eb}, &s,
                           &e) == ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "at least top-k = 2");
    CHECK(met_subset_build(t, &(met_subset_opts){.keep = 5}, &s, &e) == ENG_EINVAL);
    met_trace_free(t);
}

TEST(subset_file_roundtrip_and_bad_files)
{
    met_trace *t = hand(1);
    met_subset *s, *q;
    eng_err e;
    REQUIRE(met_subset_build(t, &(met_subset_opts){.keep = 3}, &s, &e) == ENG_OK);
    const char *path = tst_path("s.json");
    REQUIRE(met_subset_save(s, path, &e) == ENG_OK);
    REQUIRE_MSG(met_subset_load(&q, path, &e) == ENG_OK, "%s", e.msg);
    CHECK(q->num_layers == 2 && q->num_experts == 4 && q->top_k == 2 && q->n_keep[1] == 3);
    CHECK(memcmp(q->keep, s->keep, 3 * sizeof *s->keep) == 0); /* the kept, per layer */
    CHECK(memcmp(q->keep + 4, s->keep + 4, 3 * sizeof *s->keep) == 0);
    CHECK(memcmp(q->score, s->score, 8 * sizeof *s->score) == 0); /* 17 digits round-trip */
    met_subset_free(q);
    static const struct { const char *text, *want; } bad[] = {
        {"[1]", "not a JSON object"},
        {"{\"format\": \"x\"}", "field 'format'"},
        {"{\"format\": \"moebench-expert-subset\", \"version\": 2}", "field 'version'"},
        {"{\"format\": \"moebench-expert-subset\", \"version\": 1, \"num_layers\": 1, "
         "\"num_experts\": 4, \"top_k\": 5}", "field 'top_k'"},
        {"{\"format\": \"moebench-expert-subset\", \"version\": 1, \"num_layers\": 1, "
         "\"num_experts\": 4, \"top_k\": 2, \"layer_offset\": 0, \"profile_tokens\": 1, "
         "\"layers\": [{\"layer\": 0, \"keep\": [0, 9], \"score\": [0, 0, 0, 0]}]}",
         "layers[0].keep[1]: not an expert id"},
        {"{\"format\": \"moebench-expert-subset\", \"version\": 1, \"num_layers\": 1, "
         "\"num_experts\": 4, \"top_k\": 2, \"layer_offset\": 0, \"profile_tokens\": 1, "
         "\"layers\": [{\"layer\": 0, \"keep\": [0], \"score\": [0, 0, 0, 0]}]}",
         "layers[0].keep: 1 experts"},
        {"{\"format\": \"moebench-expert-subset\", \"version\": 1, \"num_layers\": 1, "
         "\"num_experts\": 4, \"top_k\": 2, \"layer_offset\": 0, \"profile_tokens\": 1, "
         "\"layers\": [{\"layer\": 0, \"keep\": [0, 1], \"score\": [0, 0]}]}",
         "layers[0].score: 4 numbers"},
        {"{\"format\": \"moebench-expert-subset\", \"version\": 1, \"num_layers\": 1, "
         "\"num_experts\": 4, \"top_k\": 2, \"layer_offset\": 0, \"profile_tokens\": 1, "
         "\"layers\": [{\"layer\": 3, \"keep\": [0, 1], \"score\": [0, 0, 0, 0]}]}",
         "layers[0]: an object with \"layer\": 0"},
        {"{\"format\": ", "bad.json:1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *bp = tu_write_text("bad.json", bad[i].text);
        q = NULL;
        CHECK_MSG(met_subset_load(&q, bp, &e) == ENG_EFORMAT && !q, "case %zu", i);
        CHECK_CONTAINS(e.msg, bad[i].want);
    }
    CHECK(met_subset_load(&q, tst_path("missing.json"), &e) == ENG_EIO);
    met_subset_free(s);
    met_trace_free(t);
}
