/*
 * test_perplexity.c — `moebench perplexity` against a brute-force
 * computation: the engine's logits from token-by-token decode
 * (tu_decode_all) of each chunk as llama-perplexity builds it (BOS first
 * when the vocabulary adds it), an independent log-softmax in double, the
 * mean over positions ctx/2 .. ctx-2 and llama.cpp's error formula; KL,
 * top-1 agreement and the perplexity difference the same way. Then KL = 0
 * and 100 % agreement for every lossless policy against the in-memory
 * base, the --trace-out samples, and bad input (exit 2, a clear message).
 *
 * Tolerances: with --batch 1 the command's logits are decode's bit for bit
 * (test_eval_logits.c), so only its float log-softmax differs from the
 * double one here (~1e-7 relative on -log p); batched, an f32 file's rows
 * differ from decode's within the prefill-vs-decode bound (1e-5 of the
 * logits' scale), which moves -log p by as much; a q8_0 file's batched
 * layers do not quantize their activations and decode's do (~1e-2 apart
 * in the logits, test_eval_logits.c): 1e-3 relative on the perplexity.
 */
#include "engine/mkmodel.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "metrics/stats.h"
#include "metrics/trace.h"
#include "tests/test.h"
#include "tests/util/model_util.h"
#include "tests/util/util.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NT = 150, CTX = 32 };

static const char *spm_model(const char *type, const char *name)
{
    eng_mkmodel_opts o = {.preset = "tiny-mixtral", .seed = 3, .vocab = ENG_MK_VOCAB_SPM};
    eng_err e = {0};
    REQUIRE(eng_mkmodel_type_parse(type, &o.type) == 0);
    const char *path = tst_path(name);
    REQUIRE_MSG(eng_mkmodel_write(&o, path, &e) == 0, "%s", e.msg);
    return path;
}

static int32_t k_toks[NT];

/* NT pseudo-random ids as a --tokens-file; returns its path. */
static const char *tokens_file(const char *name, unsigned seed)
{
    char buf[NT * 8 + 4], *p = buf;
    p += sprintf(p, "[");
    for (int i = 0; i < NT; i++) {
        k_toks[i] = (int32_t)((i * 131u + seed * 17u + 7u) % 509u) + 3;
        p += sprintf(p, "%s%d", i ? ", " : "", k_toks[i]);
    }
    sprintf(p, "]\n");
    return tu_write_text(name, buf);
}

/* BOS put first in each chunk, or -1, as the file's tokenizer says. */
static int32_t bos_of(const char *path)
{
    eng_model *m = tu_open(path);
    eng_tokenizer *t = NULL;
    eng_err e = {0};
    int32_t bos = -1;
    if (eng_tokenizer_open_gguf(&t, eng_model_gguf(m), &e) == 0 && eng_tokenizer_add_bos(t))
        bos = eng_tokenizer_bos(t);
    eng_tokenizer_free(t);
    eng_model_free(m);
    return bos;
}

/* Per scored position (chunk-major): log p of every token, in double. */
typedef struct brute {
    int64_t nv, n;      /* vocabulary, scored positions */
    double *lp;         /* [n][nv] */
    int32_t *target;    /* [n] */
} brute;

static brute brute_run(const char *path, int chunks)
{
    eng_model *m = tu_open(path);
    brute b = {.nv = eng_model_hparams(m)->n_vocab};
    eng_model_free(m);
    const int32_t bos = bos_of(path);
    const int first = CTX / 2, per = CTX - 1 - first;
    b.lp = tst_alloc((size_t)(chunks * per * b.nv) * sizeof *b.lp);
    b.target = tst_alloc((size_t)(chunks * per) * sizeof *b.target);
    for (int c = 0; c < chunks; c++) {
        int32_t ch[CTX];
        memcpy(ch, k_toks + c * CTX, sizeof ch);
        if (bos >= 0)
            ch[0] = bos;
        const float *l = tu_decode_all(path, ch, CTX);
        for (int p = first; p <= CTX - 2; p++, b.n++) {
            const float *row = l + (size_t)p * b.nv;
            double mx = row[0], s = 0;
            for (int64_t i = 1; i < b.nv; i++)
                mx = fmax(mx, row[i]);
            for (int64_t i = 0; i < b.nv; i++)
                s += exp(row[i] - mx);
            for (int64_t i = 0; i < b.nv; i++)
                b.lp[b.n * b.nv + i] = row[i] - mx - log(s);
            b.target[b.n] = k_toks[c * CTX + p + 1];
        }
    }
    return b;
}

static double brute_ppl(const brute *b, double *err)
{
    double s = 0, s2 = 0;
    for (int64_t t = 0; t < b->n; t++) {
        double v = -b->lp[t * b->nv + b->target[t]];
        s += v, s2 += v * v;
    }
    double mean = s / (double)b->n, ppl = exp(mean);
    *err = ppl * sqrt((s2 / (double)b->n - mean * mean) / (double)(b->n - 1));
    return ppl;
}

static double jnum(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    REQUIRE_MSG(json_is_number(v), "no number '%s' in the output", k);
    return json_number_value(v);
}

static json_t *ppl_json(const char *m, const char *args)
{
    return tu_sh_json("%s perplexity -m '%s' --ctx %d --threads 2 --json %s", tu_mb(), m, CTX,
                      args);
}

TEST(help)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s perplexity --help", tu_mb()), 0);
    CHECK_CONTAINS(out, "usage: moebench perplexity -m FILE.gguf");
    CHECK_CONTAINS(out, "--kl-against");
    CHECK_CONTAINS(out, "--cache-experts");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s --help", tu_mb()), 0);
    CHECK_CONTAINS(out, "perplexity");
}

/* The figures of one file against the brute force: batch 1 (decode path)
 * and batched; BOS (SentencePiece vocabulary) or not (BPE). */
static void check_ppl(const char *m, int32_t want_bos, double batched_tol)
{
    char args[512];
    snprintf(args, sizeof args, "--tokens-file '%s'", tokens_file("t.txt", 1));
    CHECK_EQ_INT(bos_of(m), want_bos);
    const int chunks = NT / CTX; /* 4 */
    brute b = brute_run(m, chunks);
    double err, ppl = brute_ppl(&b, &err);
    static const char *const batch[] = {"--batch 1", "", "--batch 5"};
    for (int i = 0; i < 3; i++) {
        char a2[600];
        snprintf(a2, sizeof a2, "%s %s", args, batch[i]);
        json_t *j = ppl_json(m, a2);
        const double tol = i ? batched_tol : 1e-6;
        CHECK_MSG(fabs(jnum(j, "ppl") / ppl - 1) <= tol, "%s: ppl %.10g, brute force %.10g",
                  batch[i], jnum(j, "ppl"), ppl);
        CHECK_MSG(fabs(jnum(j, "ppl_err") / err - 1) <= 100 * tol,
                  "%s: ppl_err %.10g, brute force %.10g", batch[i], jnum(j, "ppl_err"), err);
        CHECK_EQ_INT(jnum(j, "tokens_scored"), chunks * (CTX - 1 - CTX / 2));
        CHECK_EQ_INT(jnum(j, "chunks"), chunks);
        CHECK_EQ_INT(jnum(j, "bos"), want_bos);
        CHECK(jnum(j, "tokens_per_s") > 0);
        printf("%s %s: ppl %.8f (brute force %.8f) +/- %.6f\n", m, batch[i], jnum(j, "ppl"), ppl,
               jnum(j, "ppl_err"));
        json_decref(j);
    }
    json_t *j = ppl_json(m, strcat(args, " --chunks 2"));
    CHECK_EQ_INT(jnum(j, "chunks"), 2);
    CHECK_EQ_INT(jnum(j, "tokens_scored"), 2 * (CTX - 1 - CTX / 2));
    json_decref(j);
}

TEST(ppl_brute_force_bos)
{
    check_ppl(spm_model("f32", "spm.gguf"), 1, 2e-5);
}

TEST(ppl_brute_force_no_bos)
{
    check_ppl(tu_write_model("tiny-qwen2moe", "f32", 3, 0.5, "bpe.gguf"), -1, 2e-5);
    check_ppl(tu_write_model("tiny-qwen2moe", "q8_0", 3, 0.5, "bpe8.gguf"), -1, 1e-3);
}

/* -f TEXT is the file's tokens (tokenize --ids, no special tokens parsed);
 * one trailing newline is dropped, as llama.cpp's -f does. */
TEST(text_file_is_tokenized_like_llama)
{
    const char *m = tu_write_model("tiny-olmoe", "f32", 3, 0, "o.gguf");
    char text[4000] = "";
    for (int i = 0; i < 30; i++)
        strcat(text, "The quick brown fox jumps over the lazy dog. <|endoftext|> ");
    const char *t0 = tu_write_text("t0.txt", text);
    strcat(text, "\n");
    const char *t1 = tu_write_text("t1.txt", text);
    const char *ids = tst_path("ids.txt");
    REQUIRE(tst_sh(NULL, NULL, "%s tokenize -m '%s' -f '%s' --ids --no-special > '%s'", tu_mb(),
                   m, t0, ids) == 0);
    char a[3][600];
    snprintf(a[0], sizeof a[0], "-f '%s'", t0);
    snprintf(a[1], sizeof a[1], "-f '%s'", t1);
    snprintf(a[2], sizeof a[2], "--tokens-file '%s'", ids);
    json_t *j[3];
    for (int i = 0; i < 3; i++)
        j[i] = ppl_json(m, a[i]);
    CHECK(jnum(j[0], "tokens_scored") > 0);
    for (int i = 1; i < 3; i++) {
        CHECK_MSG(jnum(j[i], "ppl") == jnum(j[0], "ppl"), "%s: %.10g vs %.10g", a[i],
                  jnum(j[i], "ppl"), jnum(j[0], "ppl"));
        CHECK_EQ_INT(jnum(j[i], "tokens_scored"), jnum(j[0], "tokens_scored"));
        json_decref(j[i]);
    }
    json_decref(j[0]);
}

/* KL of a q8_0 copy against the f32 base, both token by token. */
TEST(kl_brute_force)
{
    const char *f = spm_model("f32", "f.gguf"), *q = spm_model("q4_0", "q.gguf");
    const char *base = tst_path("f.klbase");
    char args[800];
    snprintf(args, sizeof args, "--batch 1 --tokens-file '%s' --kl-base '%s'",
             tokens_file("t.txt", 2), base);
    json_decref(ppl_json(f, args));
    snprintf(args, sizeof args, "--batch 1 --kl-against '%s' --kl-other-model", base);
    json_t *j = ppl_json(q, args);
    brute bf = brute_run(f, NT / CTX), bq = brute_run(q, NT / CTX);
    REQUIRE(bf.n == bq.n);
    double *kl = tst_alloc((size_t)bf.n * sizeof *kl), sum = 0, mx = 0;
    int same = 0;
    for (int64_t t = 0; t < bf.n; t++) {
        const double *a = bf.lp + t * bf.nv, *b = bq.lp + t * bq.nv;
        int ta = 0, tb = 0;
        kl[t] = 0;
        for (int64_t i = 0; i < bf.nv; i++) {
            kl[t] += exp(a[i]) * (a[i] - b[i]);
            ta = a[i] > a[ta] ? (int)i : ta;
            tb = b[i] > b[tb] ? (int)i : tb;
        }
        same += ta == tb;
        sum += kl[t];
        mx = fmax(mx, kl[t]);
    }
    double e, ppl_f = brute_ppl(&bf, &e), ppl_q = brute_ppl(&bq, &e);
    /* float log-probabilities: ~2 ulp of |log p| <= 10 per term */
    CHECK_NEAR(jnum(j, "kl_mean"), sum / (double)bf.n, 3e-6);
    CHECK_NEAR(jnum(j, "kl_max"), mx, 3e-6);
    CHECK_NEAR(jnum(j, "kl_p99"), met_stats_percentile(kl, (size_t)bf.n, 99), 3e-6);
    CHECK_NEAR(jnum(j, "top1"), (double)same / (double)bf.n, 1e-12);
    CHECK_NEAR(jnum(j, "ppl_base"), ppl_f, 1e-6 * ppl_f);
    CHECK_NEAR(jnum(j, "ppl"), ppl_q, 1e-6 * ppl_q);
    CHECK_NEAR(jnum(j, "ppl_delta"), ppl_q - ppl_f, 2e-6 * ppl_q);
    CHECK(jnum(j, "kl_mean") > 1e-6); /* q4_0 is not f32 */
    printf("q4_0 vs f32: kl_mean %.6g (brute force %.6g), top1 %.4f, ppl %.4f vs %.4f\n",
           jnum(j, "kl_mean"), sum / (double)bf.n, jnum(j, "top1"), ppl_q, ppl_f);
    json_decref(j);
}

static void check_lossless(const char *m, const char *base, const char *args)
{
    char a[1200];
    snprintf(a, sizeof a, "--kl-against '%s' %s", base, args);
    json_t *j = ppl_json(m, a);
    CHECK_MSG(jnum(j, "kl_mean") == 0 && jnum(j, "kl_max") == 0 && jnum(j, "kl_p99") == 0,
              "%s: KL mean %g max %g", args, jnum(j, "kl_mean"), jnum(j, "kl_max"));
    CHECK_MSG(jnum(j, "top1") == 1, "%s: top-1 agreement %g", args, jnum(j, "top1"));
    CHECK_MSG(jnum(j, "ppl_delta") == 0, "%s: ppl delta %g", args, jnum(j, "ppl_delta"));
    json_t *c = json_object_get(j, "cache");
    CHECK_MSG(json_is_object(c) && jnum(c, "misses") > 0, "%s: no cache misses", args);
    json_decref(j);
}

/* Every lossless policy against the in-memory base: KL exactly 0. */
TEST(lossless_policies_have_zero_kl)
{
    const char *m = tu_write_model("tiny-qwen3moe", "q8_0", 5, 0.5, "m.gguf");
    const char *base = tst_path("b.klbase"), *base1 = tst_path("b1.klbase");
    const char *trace = tst_path("t.moetrace");
    char args[1200];
    snprintf(args, sizeof args, "--tokens-file '%s' --kl-base '%s'", tokens_file("t.txt", 3),
             base);
    json_decref(ppl_json(m, args));
    static const char *const batched[] = {
        "--cache-experts 3 --policy lru",
        "--cache-experts 3 --policy lfu --cache-scope layer",
        "--cache-experts 5 --policy fifo --link pcie4x16",
        "--cache-experts 3 --policy random --seed 9 --link pcie4x16 --link-copy map",
        "--cache-experts 4 --policy lru --prefetch pregate --pregate-ahead 2",
    };
    for (size_t i = 0; i < sizeof batched / sizeof *batched; i++)
        check_lossless(m, base, batched[i]);
    /* the oracles replay one sequence recorded token by token */
    snprintf(args, sizeof args, "--tokens-file '%s' --batch 1 --chunks 1 --kl-base '%s'"
             " --trace-out '%s'", tst_path("t.txt"), base1, trace);
    json_decref(ppl_json(m, args));
    static const char *const oracles[] = {"--policy belady", "--policy fsf --lookahead 2",
                                          "--policy lru --prefetch oracle",
                                          "--policy lfu --prefetch pregate --pregate-wrap"};
    for (size_t i = 0; i < sizeof oracles / sizeof *oracles; i++) {
        snprintf(args, sizeof args, "--batch 1 --cache-experts 3 --trace-in '%s' %s", trace,
                 oracles[i]);
        check_lossless(m, base1, args);
    }
}

/* --trace-out: one sample per chunk, ctx tokens each, the prompt batches
 * recorded. */
TEST(trace_out_one_sample_per_chunk)
{
    const char *m = tu_write_model("tiny-olmoe", "q8_0", 3, 0.5, "m.gguf");
    const char *trace = tst_path("p.moetrace");
    char args[800];
    snprintf(args, sizeof args, "--tokens-file '%s' --batch 8 --trace-out '%s'",
             tokens_file("t.txt", 4), trace);
    json_decref(ppl_json(m, args));
    met_trace *t = NULL;
    eng_err e = {0};
    REQUIRE_MSG(met_trace_load(&t, trace, MET_FMT_AUTO, &e) == 0, "%s", e.msg);
    CHECK_EQ_INT(t->info.num_samples, NT / CTX);
    for (int64_t s = 0; s < t->info.num_samples; s++) {
        CHECK_EQ_INT(t->sample_start[s + 1] - t->sample_start[s], CTX);
        CHECK_EQ_INT(met_trace_prompt_of(t, s).batch, 8);
    }
    met_trace_free(t);
}

/* Exit 2 and stderr containing want. */
static void bad(const char *want, const char *fmt, const char *a1, const char *a2)
{
    char cmd[2000], *err;
    snprintf(cmd, sizeof cmd, fmt, a1, a2);
    int rc = tst_sh(NULL, &err, "%s perplexity %s", tu_mb(), cmd);
    CHECK_MSG(rc == 2, "'%s': exit %d, want 2 (%s)", cmd, rc, err);
    CHECK_CONTAINS(err, want);
}

TEST(bad_input)
{
    const char *m = spm_model("f32", "m.gguf"), *o = spm_model("q8_0", "o.gguf");
    const char *t = tokens_file("t.txt", 5), *base = tst_path("b.klbase");
    char a[800];
    snprintf(a, sizeof a, "-m '%s' --ctx %d --tokens-file '%s' --kl-base '%s' --json", m, CTX, t,
             base);
    REQUIRE(tst_sh(NULL, NULL, "%s perplexity %s", tu_mb(), a) == 0);
    bad("needs at least 160", "-m '%s' --ctx 80 --tokens-file '%s'", m, t);
    bad("-f /nonexistent.txt: No such file", "-m '%s' -f /nonexistent.txt%s", m, "");
    bad("--tokens-file /nonexistent.ids", "-m '%s' --tokens-file /nonexistent.ids%s", m, "");
    const char *junk = tu_write_text("junk.ids", "1, 2, x");
    bad("token 2 ('x') is not an id", "-m '%s' --tokens-file '%s'", m, junk);
    bad("--kl-against: /nonexistent.klbase: No such file",
        "-m '%s' --kl-against /nonexistent.klbase%s", m, "");
    bad("not a moebench KL base file", "-m '%s' --kl-against '%s'", m, t);
    bad("another --ctx", "-m '%s' --ctx 16 --kl-against '%s'", m, base);
    bad("another model file", "-m '%s' --kl-against '%s'", o, base);
    const char *t2 = tokens_file("t2.txt", 6);
    snprintf(a, sizeof a, "--tokens-file '%s' --kl-against '%s'", t2, base);
    bad("other tokens", "-m '%s' %s", m, a);
    bad("give the text", "-m '%s'%s", m, "");
    bad("do not go together", "-m '%s' --kl-base x --kl-against '%s'", m, base);
    snprintf(a, sizeof a,
             "--ctx 32 --tokens-file '%s' --cache-experts 2 --policy belady --trace-in '%s'", t, t);
    bad("--chunks 1", "-m '%s' %s", m, a);
    bad("unknown option", "-m '%s' --frobnicate%s", m, "");
    bad("moebench perplexity: --policy: unknown policy 'nope'", "-m '%s' --policy nope%s", m, "");
    bad("moebench perplexity: offloading options need a cache size",
        "-m '%s' --tier link --tokens-file '%s'", m, t);
    /* a model without a tokenizer cannot read a text */
    const char *l = tu_write_llama("l.gguf", &(tu_llama_opts){.n_expert = 4});
    bad("cannot tokenize", "-m '%s' -f '%s'", l, t);
    /* a vocabulary that adds EOS: llama-perplexity asserts it does not */
    size_t len;
    char *bytes = tst_read_file(m, &len);
    REQUIRE(bytes);
    const char *key = "tokenizer.ggml.add_eos_token";
    char *k = memmem(bytes, len, key, strlen(key));
    REQUIRE(k && k[strlen(key)] == 7 && k[strlen(key) + 4] == 0); /* bool false */
    k[strlen(key) + 4] = 1;
    const char *eos = tst_path("eos.gguf");
    FILE *f = fopen(eos, "wb");
    REQUIRE(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0);
    bad("adds EOS", "-m '%s' --tokens-file '%s'", eos, t);
    /* the same base, complete and right, is accepted without a text */
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s perplexity -m '%s' --kl-against '%s' --threads 2", tu_mb(),
                        m, base), 0);
    CHECK_CONTAINS(out, "Same top p: 100.000");
    CHECK_CONTAINS(out, "Final estimate: PPL = ");
    /* batched otherwise than the base: said on stderr, KL above 0 */
    char *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s perplexity -m '%s' --kl-against '%s' --batch 4 --threads 2"
                        " --json", tu_mb(), m, base), 0);
    CHECK_CONTAINS(err, "the base ran in batches of 32, this run in batches of 4");
}

/* A suite's command experiments running `perplexity --json`: the figures
 * become samples with the output's directions, the cache becomes
 * cache_stats rows, and the report gets its speed-vs-quality section. */
TEST(suite_stores_quality_and_report)
{
    const char *m = tu_write_model("tiny-olmoe", "q8_0", 3, 0.5, "m.gguf");
    const char *t = tokens_file("t.txt", 7), *base = tst_path("b.klbase");
    char src[2000];
    snprintf(src, sizeof src,
             "suite{name='quality'}\n"
             "experiment{name='base', argv={'perplexity', '-m', '%s', '--tokens-file', '%s',"
             " '--ctx', '32', '--threads', '2', '--json', '--kl-base', '%s'}}\n"
             "for _, p in ipairs{'lru', 'lfu'} do for _, c in ipairs{2, 6} do\n"
             "  experiment{name='ppl', params={policy=p, cache_m=c}, argv={'perplexity', '-m',"
             " '%s', '--ctx', '32', '--threads', '2', '--json', '--kl-against', '%s',"
             " '--policy', p, '--cache-experts', tostring(c)}}\n"
             "end end\n",
             m, t, base, m, base);
    const char *suite = tu_write_text("q.lua", src), *db = tst_path("q.db");
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "%s run %s --db %s -q", tu_mb(), suite, db) == 0, "%s", err);
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'ppl'"), "5");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'kl_mean' and value = 0"),
                 "4");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'top1' and value = 1"),
                 "4");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'hit_rate'"), "4");
    CHECK_EQ_STR(tu_q1(db, "select count(distinct experiment_id) from series where metric = 'chunk_ms'"),
                 "5");
    CHECK_EQ_STR(tu_q1(db, "select group_concat(pattern || '=' || direction, ' ') from (select"
                           " distinct pattern, direction from metric_direction where pattern in"
                           " ('ppl', 'kl_*', 'top1') order by pattern)"),
                 "kl_*=lower ppl=lower top1=higher");
    /* the cache rows: the total and one per MoE layer (olmoe: 4) */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from cache_stats where layer = -1"), "4");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from cache_stats where layer >= 0"), "16");
    CHECK_EQ_STR(tu_q1(db, "select count(distinct value) from sample where metric = 'ppl'"), "1");
    const char *md = tst_path("r.md");
    REQUIRE(tst_sh(NULL, &err, "%s report --db %s -o %s", tu_mb(), db, md) == 0);
    char *text = tst_read_file(md, NULL);
    REQUIRE(text);
    CHECK_CONTAINS(text, "## Speed and quality by policy");
    CHECK_CONTAINS(text, "| policy | cache size | tokens/s | stall share | perplexity | KL mean |");
    CHECK_CONTAINS(text, "| lfu | 6 | ");
    CHECK_CONTAINS(text, " | 0 | 1 |\n"); /* lossless: KL 0, top-1 agreement 1 */
    CHECK_CONTAINS(text, "![KL divergence vs tokens/s](r-quality.svg)");
    CHECK(tst_read_file(tst_path("r-quality.svg"), NULL) != NULL);
}
