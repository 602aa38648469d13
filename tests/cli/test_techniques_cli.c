/*
 * test_techniques_cli.c — prediction-based prefetch and PreMoe subsets
 * end to end: `trace predictor` / `trace subset` on a trace `generate`
 * recorded; `generate --prefetch predict:FILE` gives the memory run's
 * tokens and the same prediction counts as `simulate --prefetch
 * predict:FILE` on the run's own trace; perplexity with it has KL 0;
 * `--expert-subset` keeping every expert is the full model, a smaller one
 * has KL > 0 against it; the subset file holds PreMoe's score computed by
 * hand from the trace; bad input gives clear errors.
 */
#include "metrics/trace.h"
#include "tests/test.h"
#include "tests/util/model_util.h"
#include "tests/util/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static long long jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static double jnum(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A model and a profile trace of it recorded token by token. */
static const char *profile(const char *m, const char *name)
{
    const char *trace = tst_path(name);
    REQUIRE(tst_sh(NULL, NULL, "%s generate -m '%s' --tokens 5,9,13,2,40,41 -n 24 --ignore-eos "
                   "--threads 2 --batch 1 --trace-out '%s' >/dev/null", tu_mb(), m, trace) == 0);
    return trace;
}

TEST(predict_prefetch_generate_and_simulate_agree)
{
    const char *m = tu_write_model("tiny-olmoe", "q8_0", 3, 0.7, "m.gguf");
    const char *trace = profile(m, "p.moetrace"), *pred = tst_path("p.pred");
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "%s trace predictor '%s' -o '%s'", tu_mb(), trace, pred) == 0,
                "%s", err);
    CHECK_CONTAINS(err, "tokens of 1 samples");
    const char *gen = "generate -m '%s' --tokens 5,9,13,2,40,41 -n 24 --ignore-eos --threads 2 "
                      "--batch 1 --json";
    char cmd0[1200];
    snprintf(cmd0, sizeof cmd0, gen, m);
    json_t *ref = tu_sh_json("%s %s", tu_mb(), cmd0);
    for (int kind = 0; kind < 3; kind++) {
        static const char *const kinds[] = {"transition", "history", "frequency"};
        char cmd[1200];
        snprintf(cmd, sizeof cmd, gen, m);
        json_t *j = tu_sh_json("%s %s --cache-experts 10 --prefetch predict:'%s' --predict-kind %s",
                       tu_mb(), cmd, pred, kinds[kind]);
        CHECK(json_equal(json_object_get(j, "tokens"), json_object_get(ref, "tokens")));
        json_t *c = json_object_get(j, "cache");
        CHECK_EQ_STR(json_string_value(json_object_get(c, "prefetch")), "predict");
        CHECK_EQ_STR(json_string_value(json_object_get(c, "predict_kind")), kinds[kind]);
        long long made = jint(c, "predicted"), used = jint(c, "predicted_used");
        CHECK(made > 0 && used > 0 && used <= made && jint(c, "prefetch_issued") > 0);
        CHECK_NEAR(jnum(c, "prediction_accuracy"), (double)used / (double)made, 1e-12);
        CHECK(jnum(c, "prefetch_hidden_ms") >= 0);
        /* the replay asks the same predictor the same questions */
        json_t *s = tu_sh_json("%s simulate '%s' --policy lru --cache-experts 10 --prefetch "
                               "predict:'%s' --predict-kind %s --json", tu_mb(), trace, pred,
                               kinds[kind]);
        json_t *t = json_object_get(s, "totals");
        CHECK_MSG(jint(t, "predicted") == made && jint(t, "predicted_used") == used,
                  "%s: engine %lld/%lld, simulate %lld/%lld", kinds[kind], used, made,
                  jint(t, "predicted_used"), jint(t, "predicted"));
        json_decref(s);
        json_decref(j);
    }
    json_decref(ref);
}

TEST(predict_prefetch_perplexity_kl_zero)
{
    const char *m = tu_write_model("tiny-qwen3moe", "q8_0", 5, 0.5, "m.gguf");
    const char *trace = profile(m, "p.moetrace"), *pred = tst_path("p.pred");
    const char *base = tst_path("b.klbase");
    REQUIRE(tst_sh(NULL, NULL, "%s trace predictor '%s' -o '%s'", tu_mb(), trace, pred) == 0);
    char ids[2000], *p = ids;
    for (int i = 0; i < 160; i++)
        p += sprintf(p, "%s%d", i ? "," : "", (i * 131 + 7) % 509 + 3);
    const char *tf = tu_write_text("t.ids", ids);
    json_decref(tu_sh_json("%s perplexity -m '%s' --ctx 80 --threads 2 --tokens-file '%s' "
                           "--kl-base '%s' --json", tu_mb(), m, tf, base));
    json_t *j = tu_sh_json("%s perplexity -m '%s' --ctx 80 --threads 2 --tokens-file '%s' "
                           "--kl-against '%s' --cache-experts 4 --prefetch predict:'%s' "
                           "--predict-n 6 --json", tu_mb(), m, tf, base, pred);
    CHECK(jnum(j, "kl_mean") == 0 && jnum(j, "kl_max") == 0 && jnum(j, "top1") == 1);
    CHECK(jint(json_object_get(j, "cache"), "prefetch_issued") > 0);
    json_decref(j);
}

/* PreMoe's score of expert e at layer l, by hand from the trace. */
static double tcess(const met_trace *t, int l, int e, double r)
{
    double s = 0;
    const int L = t->info.num_layers, k = t->info.top_k;
    for (int64_t tok = 0; tok < t->info.num_tokens; tok++)
        for (int j = 0; j < k; j++) {
            size_t i = ((size_t)tok * L + l) * k + j;
            if (t->ids[i] == e && t->weights[i] >= r)
                s += t->weights[i];
        }
    return s / (double)t->info.num_tokens;
}

TEST(expert_subset_scores_full_and_lossy)
{
    const char *m = tu_write_model("tiny-qwen3moe", "q8_0", 5, 0.5, "m.gguf");
    const char *trace = profile(m, "p.moetrace");
    const char *all = tst_path("all.json"), *few = tst_path("few.json");
    REQUIRE(tst_sh(NULL, NULL, "%s trace subset '%s' --keep 16 -o '%s'", tu_mb(), trace, all) ==
            0);
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "%s trace subset '%s' --keep-mb 0.2 -m '%s' --min-weight 0.1 "
                       "-o '%s'", tu_mb(), trace, m, few) == 0, "%s", err);
    /* the file: PreMoe's score per expert, the best kept first */
    json_t *f = json_load_file(few, 0, NULL);
    REQUIRE(f);
    met_trace *t;
    eng_err e;
    REQUIRE(met_trace_load(&t, trace, MET_FMT_AUTO, &e) == ENG_OK && t->weights);
    json_t *layers = json_object_get(f, "layers");
    REQUIRE(json_array_size(layers) == (size_t)t->info.num_layers);
    int bad = 0;
    size_t kept = json_array_size(json_object_get(json_array_get(layers, 0), "keep"));
    for (int l = 0; l < t->info.num_layers; l++) {
        json_t *jl = json_array_get(layers, (size_t)l);
        json_t *score = json_object_get(jl, "score"), *keep = json_object_get(jl, "keep");
        for (int x = 0; x < t->info.num_experts; x++)
            bad += fabs(json_number_value(json_array_get(score, (size_t)x)) -
                        tcess(t, l, x, 0.1)) > 1e-12;
        double worst_kept = INFINITY;
        uint8_t in[64] = {0};
        for (size_t i = 0; i < json_array_size(keep); i++) {
            int x = (int)json_integer_value(json_array_get(keep, i));
            in[x] = 1;
            worst_kept = fmin(worst_kept, tcess(t, l, x, 0.1));
        }
        for (int x = 0; x < t->info.num_experts; x++)
            bad += !in[x] && tcess(t, l, x, 0.1) > worst_kept; /* a better one was dropped */
    }
    CHECK_MSG(bad == 0, "%d scores or choices differ from the hand computation", bad);
    CHECK(kept >= (size_t)t->info.top_k && kept < (size_t)t->info.num_experts);
    met_trace_free(t);
    json_decref(f);
    /* every expert kept: the full model; a subset: lossy, KL > 0 */
    json_t *ref = tu_sh_json("%s generate -m '%s' --tokens 5,9 -n 12 --ignore-eos --json", tu_mb(),
                             m);
    json_t *j = tu_sh_json("%s generate -m '%s' --tokens 5,9 -n 12 --ignore-eos --json "
                           "--expert-subset '%s'", tu_mb(), m, all);
    CHECK(json_equal(json_object_get(j, "tokens"), json_object_get(ref, "tokens")));
    CHECK(jint(json_object_get(j, "expert_subset"), "kept_min") == 16);
    json_decref(j);
    json_decref(ref);
    char ids[2000], *p = ids;
    for (int i = 0; i < 160; i++)
        p += sprintf(p, "%s%d", i ? "," : "", (i * 131 + 7) % 509 + 3);
    const char *tf = tu_write_text("t.ids", ids), *base = tst_path("b.klbase");
    json_decref(tu_sh_json("%s perplexity -m '%s' --ctx 80 --tokens-file '%s' --kl-base '%s' "
                           "--json", tu_mb(), m, tf, base));
    j = tu_sh_json("%s perplexity -m '%s' --ctx 80 --tokens-file '%s' --kl-against '%s' "
                   "--expert-subset '%s' --json", tu_mb(), m, tf, base, all);
    CHECK(jnum(j, "kl_mean") == 0 && jnum(j, "top1") == 1);
    json_decref(j);
    j = tu_sh_json("%s perplexity -m '%s' --ctx 80 --tokens-file '%s' --kl-against '%s' "
                   "--expert-subset '%s' --json", tu_mb(), m, tf, base, few);
    CHECK_MSG(jnum(j, "kl_mean") > 0, "kl_mean %g", jnum(j, "kl_mean"));
    CHECK(jint(json_object_get(j, "expert_subset"), "kept_max") == (long long)kept);
    json_decref(j);
}

/* cmd fails with exit code `code` and stderr containing `want`. */
static void fails(int code, const char *want, const char *cmd)
{
    char *err;
    int rc = tst_sh(NULL, &err, "%s %s", tu_mb(), cmd);
    CHECK_MSG(rc == code, "'%s': exit %d, want %d (%s)", cmd, rc, code, err);
    CHECK_CONTAINS(err, want);
}

TEST(techniques_bad_input)
{
    const char *m = tu_write_model("tiny-olmoe", "q8_0", 3, 0.5, "m.gguf");
    const char *o = tu_write_model("tiny-gpt-oss", "q8_0", 3, 0.5, "o.gguf"); /* 8 experts */
    const char *trace = profile(m, "p.moetrace"), *pred = tst_path("p.pred");
    const char *sub = tst_path("s.json"), *junk = tu_write_text("junk.txt", "hello, this is not a predictor nor a subset\n");
    REQUIRE(tst_sh(NULL, NULL, "%s trace predictor '%s' -o '%s'", tu_mb(), trace, pred) == 0);
    REQUIRE(tst_sh(NULL, NULL, "%s trace subset '%s' --keep 8 -o '%s'", tu_mb(), trace, sub) == 0);
    char c[1500];
    const char *g = "generate --tokens 5 -n 2";
#define FAILS(code, want, ...) (snprintf(c, sizeof c, __VA_ARGS__), fails(code, want, c))
    FAILS(2, "expected TRACE and -o FILE", "trace predictor '%s'", trace);
    FAILS(2, "No such file", "trace predictor /nonexistent.moetrace -o '%s'", pred);
    FAILS(2, "give one budget", "trace subset '%s' -o '%s'", trace, sub);
    FAILS(2, "give one budget", "trace subset '%s' --keep 4 --keep-mb 1 -m '%s' -o x", trace, m);
    FAILS(2, "--keep-mb needs -m", "trace subset '%s' --keep-mb 1 -o '%s'", trace, sub);
    FAILS(2, "it needs at least top-k = 4", "trace subset '%s' --keep 3 -o '%s'", trace, sub);
    FAILS(2, "raise the byte budget", "trace subset '%s' --keep-mb 0.001 -m '%s' -o '%s'", trace,
          m, sub);
    FAILS(2, "the trace has 4 x 16", "trace subset '%s' --keep-mb 1 -m '%s' -o '%s'", trace, o,
          sub);
    FAILS(2, "not none, oracle, pregate or predict:FILE", "%s -m '%s' --cache-experts 4 "
          "--prefetch predict:", g, m);
    FAILS(2, "go with --prefetch predict:FILE", "%s -m '%s' --cache-experts 4 --predict-n 2", g,
          m);
    FAILS(2, "is not transition, history or frequency", "%s -m '%s' --cache-experts 4 "
          "--prefetch predict:'%s' --predict-kind markov", g, m, pred);
    FAILS(2, "offloading options need a cache size", "%s -m '%s' --prefetch predict:'%s'", g, m,
          pred);
    FAILS(2, "No such file", "%s -m '%s' --cache-experts 4 --prefetch predict:/nonexistent.pred",
          g, m);
    FAILS(2, "not a moebench predictor", "%s -m '%s' --cache-experts 4 --prefetch predict:'%s'",
          g, m, junk);
    FAILS(2, "does not fit the model", "%s -m '%s' --cache-experts 4 --prefetch predict:'%s'", g,
          o, pred);
    FAILS(2, "not a moebench predictor", "simulate '%s' --policy lru --cache-experts 4 "
          "--prefetch predict:'%s'", trace, junk);
    FAILS(2, "needs --lookup sequential", "simulate '%s' --policy lru --cache-experts 4 "
          "--prefetch predict:'%s' --paper", trace, pred);
    FAILS(2, "replay every layer", "simulate '%s' --policy lru --cache-experts 4 --prefetch "
          "predict:'%s' --layer 1", trace, pred);
    FAILS(2, "go with --prefetch predict:FILE", "simulate '%s' --policy lru --cache-experts 4 "
          "--predict-kind history", trace);
    FAILS(2, "junk.txt:1", "%s -m '%s' --expert-subset '%s'", g, m, junk);
    FAILS(2, "does not fit the model", "%s -m '%s' --expert-subset '%s'", g, o, sub);
    const char *few = tu_write_text("few.json",
        "{\"format\": \"moebench-expert-subset\", \"version\": 1, \"num_layers\": 4, "
        "\"num_experts\": 16, \"top_k\": 4, \"layer_offset\": 0, \"profile_tokens\": 1, "
        "\"layers\": [{\"layer\": 0, \"keep\": [1, 2, 3], \"score\": []}]}");
    FAILS(2, "field 'layers': an array of num_layers = 4", "%s -m '%s' --expert-subset '%s'", g,
          m, few);
    const char *dup = tu_write_text("dup.json",
        "{\"format\": \"moebench-expert-subset\", \"version\": 1, \"num_layers\": 1, "
        "\"num_experts\": 4, \"top_k\": 2, \"layer_offset\": 0, \"profile_tokens\": 1, "
        "\"layers\": [{\"layer\": 0, \"keep\": [1, 1], \"score\": [0, 0, 0, 0]}]}");
    FAILS(2, "layers[0].keep[1]: expert listed twice", "%s -m '%s' --expert-subset '%s'", g, m,
          dup);
#undef FAILS
}

/* A suite's command experiments: the predictor's figures and the subset's
 * quality land in the results database like any metric. */
TEST(suite_records_prediction_and_subset)
{
    const char *m = tu_write_model("tiny-olmoe", "q8_0", 3, 0.7, "m.gguf");
    const char *trace = profile(m, "p.moetrace"), *pred = tst_path("p.pred");
    const char *sub = tst_path("s.json"), *base = tst_path("b.klbase");
    REQUIRE(tst_sh(NULL, NULL, "%s trace predictor '%s' -o '%s'", tu_mb(), trace, pred) == 0);
    REQUIRE(tst_sh(NULL, NULL, "%s trace subset '%s' --keep 6 -o '%s'", tu_mb(), trace, sub) == 0);
    char ids[2000], *p = ids;
    for (int i = 0; i < 80; i++)
        p += sprintf(p, "%s%d", i ? "," : "", (i * 131 + 7) % 509 + 3);
    const char *tf = tu_write_text("t.ids", ids);
    char src[3000];
    snprintf(src, sizeof src,
             "suite{name='techniques'}\n"
             "experiment{name='predict', argv={'generate', '-m', '%s', '--tokens', '5,9,13',"
             " '-n', '16', '--ignore-eos', '--json', '--cache-experts', '10', '--prefetch',"
             " 'predict:%s'}}\n"
             "experiment{name='base', argv={'perplexity', '-m', '%s', '--tokens-file', '%s',"
             " '--ctx', '32', '--json', '--kl-base', '%s'}}\n"
             "experiment{name='premoe', argv={'perplexity', '-m', '%s', '--tokens-file', '%s',"
             " '--ctx', '32', '--json', '--kl-against', '%s', '--expert-subset', '%s'}}\n",
             m, pred, m, tf, base, m, tf, base, sub);
    const char *suite = tu_write_text("t.lua", src), *db = tst_path("t.db");
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "%s run %s --db %s -q", tu_mb(), suite, db) == 0, "%s", err);
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = "
                           "'cache.prediction_accuracy' and value > 0 and value <= 1"), "1");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'cache.predicted' and "
                           "value > 0"), "1");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from cache_stats where layer = -1 and "
                           "prefetch_issued > 0"), "1");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'kl_mean' and value > 0"),
                 "1");
}
