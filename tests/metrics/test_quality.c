/*
 * test_quality.c — metrics/quality.c against brute-force computations in
 * double (log-softmax, perplexity and its error, KL over the whole
 * vocabulary, percentiles by counting), the base file round trip (sparse
 * and dense rows) and a broken base file per check of the reader.
 */
#include "tests/test.h"

#include "metrics/quality.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NV = 300 };

/* Deterministic logits: xorshift in [-spread, spread]. */
static void logits_fill(float *l, int n, unsigned seed, float spread)
{
    unsigned s = seed * 2654435761u + 7;
    for (int i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;
        l[i] = spread * ((float)(s % 20001) / 10000.0f - 1.0f);
    }
}

static void log_softmax_d(const float *l, int n, double *lp)
{
    double m = l[0], s = 0;
    for (int i = 1; i < n; i++)
        m = fmax(m, l[i]);
    for (int i = 0; i < n; i++)
        s += exp((double)l[i] - m);
    for (int i = 0; i < n; i++)
        lp[i] = (double)l[i] - m - log(s);
}

TEST(nll_matches_double_log_softmax)
{
    float l[NV];
    double lp[NV];
    for (unsigned seed = 1; seed < 20; seed++) {
        logits_fill(l, NV, seed, seed < 10 ? 3.0f : 40.0f);
        log_softmax_d(l, NV, lp);
        for (int t = 0; t < NV; t += 37)
            CHECK_NEAR(met_quality_nll(l, NV, t), -lp[t], 1e-5 * fmax(1, fabs(lp[t])));
    }
}

TEST(ppl_and_error_by_hand)
{
    static const double v[] = {1.0, 2.0, 4.0, 3.5, 0.25};
    met_quality_ppl p = {0};
    double err;
    CHECK(isnan(met_quality_ppl_value(&p, &err)) && isnan(err));
    met_quality_ppl_add(&p, v[0]);
    CHECK_NEAR(met_quality_ppl_value(&p, &err), exp(1.0), 1e-12);
    CHECK(isnan(err)); /* one value: no uncertainty */
    for (int i = 1; i < 5; i++)
        met_quality_ppl_add(&p, v[i]);
    double mean = 0, ss = 0;
    for (int i = 0; i < 5; i++)
        mean += v[i] / 5;
    for (int i = 0; i < 5; i++)
        ss += (v[i] - mean) * (v[i] - mean);
    /* llama.cpp: ppl * sqrt(population variance / (n - 1)) */
    double want = exp(mean) * sqrt(ss / 5 / 4);
    CHECK_NEAR(met_quality_ppl_value(&p, &err), exp(mean), 1e-12);
    CHECK_NEAR(err, want, 1e-12 * want);
    CHECK_EQ_INT(p.count, 5);
}

/* KL(base || run) over the whole vocabulary in double. */
static double kl_brute(const float *base, const float *run, int n)
{
    double a[NV], b[NV], kl = 0;
    log_softmax_d(base, n, a);
    log_softmax_d(run, n, b);
    for (int i = 0; i < n; i++)
        kl += exp(a[i]) * (a[i] - b[i]);
    return kl;
}

static int argmax(const float *l, int n)
{
    int m = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[m])
            m = i;
    return m;
}

TEST(kl_matches_brute_force_sparse_and_dense)
{
    float b[NV], q[NV], lp[NV], lp2[NV];
    int32_t ids[NV];
    for (unsigned seed = 1; seed < 12; seed++) {
        /* spread 3: every token kept (dense); 60: most below e^-16 (sparse) */
        const float spread = seed % 2 ? 3.0f : 60.0f;
        logits_fill(b, NV, seed, spread);
        memcpy(q, b, sizeof q);
        for (int i = 0; i < NV; i += 3)
            q[i] += 0.3f * (float)((i * 7 + (int)seed) % 5) - 0.6f;
        met_quality_row r;
        met_quality_row_of(&r, b, NV, (int32_t)seed, ids, lp);
        CHECK(seed % 2 ? r.id == NULL && r.n == NV : r.id != NULL && r.n < NV / 2);
        CHECK_EQ_INT(r.top1, argmax(b, NV));
        int32_t top;
        double kl = met_quality_kl(&r, q, NV, &top, lp2);
        double want = kl_brute(b, q, NV);
        /* float log-probabilities: each term off by ~2 ulp of |log p| <= 20
         * (5e-6 in all); sparse rows also leave out the p < e^-16 terms: at
         * most NV * 1.2e-7 * 40 */
        const double tol = 5e-6 + (seed % 2 ? 0 : NV * 1.2e-7 * 40);
        CHECK_MSG(fabs(kl - want) <= tol, "seed %u: kl %.9g vs %.9g", seed, kl, want);
        CHECK_EQ_INT(top, argmax(q, NV));
        /* the same logits: exactly 0 */
        CHECK(met_quality_kl(&r, b, NV, &top, lp2) == 0.0);
    }
}

static double brute_pct(const double *x, int n, double p)
{
    double s[64];
    memcpy(s, x, (size_t)n * sizeof *s);
    for (int i = 0; i < n; i++) /* insertion sort, independent of qsort */
        for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
            double t = s[j];
            s[j] = s[j - 1], s[j - 1] = t;
        }
    double h = (n - 1) * p;
    int lo = (int)floor(h);
    return lo + 1 < n ? s[lo] + (h - lo) * (s[lo + 1] - s[lo]) : s[lo];
}

TEST(kl_accumulator_figures)
{
    enum { P = 40 };
    float b[NV], q[NV], lp[NV], scratch[NV];
    int32_t ids[NV];
    met_quality_kl_acc a = {0};
    eng_err e = {0};
    double kls[P], nq[P], nb[P];
    int same = 0;
    for (int t = 0; t < P; t++) {
        logits_fill(b, NV, (unsigned)t + 100, 4.0f);
        memcpy(q, b, sizeof q);
        q[t] += (float)(t % 4); /* every 4th position unchanged */
        met_quality_row r;
        met_quality_row_of(&r, b, NV, t, ids, lp);
        nb[t] = r.nll;
        nq[t] = met_quality_nll(q, NV, t);
        kls[t] = kl_brute(b, q, NV);
        same += argmax(b, NV) == argmax(q, NV);
        REQUIRE(met_quality_kl_add(&a, &r, q, NV, nq[t], scratch, &e) == 0);
    }
    met_quality_kl_result k;
    met_quality_kl_result_of(&a, &k);
    double mean = 0, mq = 0, mb = 0, max = 0;
    for (int t = 0; t < P; t++)
        mean += kls[t] / P, mq += nq[t] / P, mb += nb[t] / P, max = fmax(max, kls[t]);
    CHECK_EQ_INT(k.count, P);
    /* float log-probabilities: 2 ulp of |log p| <= 16 per position */
    CHECK_NEAR(k.kl_mean, mean, 4e-6);
    CHECK_NEAR(k.kl_max, max, 4e-6);
    CHECK_NEAR(k.kl_p99, brute_pct(kls, P, 0.99), 4e-6);
    CHECK_NEAR(k.kl_median, brute_pct(kls, P, 0.5), 4e-6);
    CHECK_NEAR(k.top1, (double)same / P, 1e-12);
    CHECK_NEAR(k.ppl, exp(mq), 1e-9 * exp(mq));
    CHECK_NEAR(k.ppl_base, exp(mb), 1e-9 * exp(mb));
    CHECK_NEAR(k.ppl_delta, exp(mq) - exp(mb), 1e-9 * exp(mq));
    CHECK(k.ppl_delta_err >= 0 && k.kl_mean_err > 0);
    met_quality_kl_free(&a);
}

/* ---- base file ------------------------------------------------------------- */

enum { CTX = 8, CHUNKS = 3, FIRST = CTX / 2, ROWS = CHUNKS * (CTX - 1 - FIRST) };

static int32_t k_tokens[CHUNKS * CTX];

static met_quality_base_info info(void)
{
    for (int i = 0; i < CHUNKS * CTX; i++)
        k_tokens[i] = (i * 31 + 5) % NV;
    return (met_quality_base_info){.model = "dir/m.gguf", .model_size = 12345, .n_vocab = NV,
                                   .n_ctx = CTX, .n_chunks = CHUNKS, .first = FIRST,
                                   .n_batch = 4, .bos = 1, .tokens = k_tokens};
}

/* Writes ROWS rows (odd ones sparse) to path; keeps their logits. */
static void write_base(const char *path, float (*l)[NV], int rows)
{
    met_quality_base_info in = info();
    met_quality_base_writer *w;
    eng_err e = {0};
    REQUIRE_MSG(met_quality_base_create(&w, path, &in, &e) == 0, "%s", e.msg);
    int32_t ids[NV];
    float lp[NV];
    for (int i = 0; i < rows; i++) {
        logits_fill(l[i], NV, (unsigned)i + 1, i % 2 ? 60.0f : 2.0f);
        met_quality_row r;
        met_quality_row_of(&r, l[i], NV, i, ids, lp);
        REQUIRE(met_quality_base_write(w, &r, &e) == 0);
    }
    int rc = met_quality_base_close(w, &e);
    if (rows == ROWS)
        REQUIRE_MSG(rc == 0, "%s", e.msg);
    else
        CHECK_EQ_INT(rc, ENG_ESTATE);
}

TEST(base_round_trip)
{
    static float l[ROWS][NV];
    const char *path = tst_path("b.klbase");
    write_base(path, l, ROWS);
    met_quality_base_reader *r;
    eng_err e = {0};
    REQUIRE_MSG(met_quality_base_open(&r, path, &e) == 0, "%s", e.msg);
    const met_quality_base_info *in = met_quality_base_info_of(r);
    CHECK_EQ_STR(in->model, "dir/m.gguf");
    CHECK_EQ_INT(in->model_size, 12345);
    CHECK_EQ_INT(in->n_vocab, NV);
    CHECK_EQ_INT(in->n_ctx, CTX);
    CHECK_EQ_INT(in->n_chunks, CHUNKS);
    CHECK_EQ_INT(in->first, FIRST);
    CHECK_EQ_INT(in->n_batch, 4);
    CHECK_EQ_INT(in->bos, 1);
    CHECK(memcmp(in->tokens, k_tokens, sizeof k_tokens) == 0);
    float lp[NV];
    for (int i = 0; i < ROWS; i++) {
        met_quality_row row;
        REQUIRE_MSG(met_quality_base_next(r, &row, &e) == 0, "row %d: %s", i, e.msg);
        CHECK(i % 2 ? row.id != NULL : row.id == NULL);
        CHECK_NEAR(row.nll, met_quality_nll(l[i], NV, i), 0);
        CHECK_EQ_INT(row.top1, argmax(l[i], NV));
        int32_t top;
        CHECK(met_quality_kl(&row, l[i], NV, &top, lp) == 0.0); /* bit-exact log-probs */
    }
    met_quality_row row;
    CHECK_EQ_INT(met_quality_base_next(r, &row, &e), ENG_ESTATE);
    met_quality_base_free(r);
}

TEST(base_unfinished_leaves_nothing)
{
    static float l[ROWS][NV];
    const char *path = tst_path("u.klbase");
    write_base(path, l, ROWS - 1);
    FILE *f = fopen(path, "rb");
    CHECK(f == NULL);
    if (f)
        fclose(f);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK((f = fopen(tmp, "rb")) == NULL);
    if (f)
        fclose(f);
}

/* ---- broken files: one per check ---------------------------------------------- */

static unsigned char *g_file;
static size_t g_len;

static void load_good(void)
{
    static float l[ROWS][NV];
    const char *path = tst_path("g.klbase");
    write_base(path, l, ROWS);
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    g_len = (size_t)ftell(f);
    rewind(f);
    g_file = tst_alloc(g_len);
    REQUIRE(fread(g_file, 1, g_len, f) == g_len);
    fclose(f);
}

/* Writes the good file with bytes [off, off + n) replaced (or cut to off
 * when val is NULL) and expects open-or-read to fail with code and a
 * message containing what. */
static void expect_broken(const char *name, size_t off, const void *val, size_t n, int code,
                          const char *what)
{
    const char *path = tst_path(name);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    unsigned char *b = tst_alloc(g_len);
    memcpy(b, g_file, g_len);
    if (val)
        memcpy(b + off, val, n);
    fwrite(b, 1, val ? g_len : off, f);
    fclose(f);
    met_quality_base_reader *r = NULL;
    eng_err e = {0};
    int rc = met_quality_base_open(&r, path, &e);
    for (int i = 0; !rc && i < ROWS; i++) {
        met_quality_row row;
        rc = met_quality_base_next(r, &row, &e);
    }
    met_quality_base_free(r);
    CHECK_MSG(rc == code, "%s: rc %d, want %d (%s)", name, rc, code, e.msg);
    CHECK_CONTAINS(e.msg, what);
    CHECK_CONTAINS(e.msg, name);
}

static const unsigned char k_ff[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};

TEST(base_broken_files)
{
    load_good();
    const size_t tok = 72 + strlen("dir/m.gguf"), row0 = tok + 4 * CHUNKS * CTX;
    expect_broken("magic.klbase", 0, "MBKLBASX", 8, ENG_EFORMAT, "magic");
    expect_broken("version.klbase", 8, "\x02\0\0\0", 4, ENG_EFORMAT, "version");
    expect_broken("modellen.klbase", 12, "\xff\xff\0\0", 4, ENG_EFORMAT, "out of range");
    expect_broken("vocab.klbase", 24, "\0\0\0\0\0\0\0\0", 8, ENG_EFORMAT, "out of range");
    expect_broken("chunks.klbase", 40, k_ff, 8, ENG_EFORMAT, "out of range");
    expect_broken("first.klbase", 48, "\x07\0\0\0\0\0\0\0", 8, ENG_EFORMAT, "out of range");
    expect_broken("manychunks.klbase", 40, "\x00\x00\x01\0\0\0\0\0", 8, ENG_EFORMAT,
                  "past the end");
    expect_broken("token.klbase", tok, "\x2c\x01\0\0", 4, ENG_EFORMAT, "vocabulary");
    expect_broken("cut.klbase", g_len - 5, NULL, 0, ENG_EFORMAT, "did not finish");
    expect_broken("cutrows.klbase", row0 + 100, NULL, 0, ENG_EFORMAT, "did not finish");
    expect_broken("endcount.klbase", g_len - 8, "\x0a\0\0\0\0\0\0\0", 8, ENG_EFORMAT,
                  "end mark");
    expect_broken("nll.klbase", row0, k_ff, 8, ENG_EFORMAT, "nll");
    expect_broken("top1.klbase", row0 + 8, "\x2c\x01\0\0", 4, ENG_EFORMAT, "top-1");
    expect_broken("count.klbase", row0 + 12, "\x2d\x01\0\0", 4, ENG_EFORMAT, "count");
    /* row 0 is dense (NV floats): a positive log-probability in it */
    expect_broken("lp.klbase", row0 + 16, "\0\0\x80\x3f", 4, ENG_EFORMAT, "log-probability");
    /* row 1 (sparse): its first id made larger than the second */
    const size_t row1 = row0 + 16 + 4 * NV;
    expect_broken("order.klbase", row1 + 16, "\x2b\x01\0\0", 4, ENG_EFORMAT, "order");
    /* the last row's count made one that runs into the end mark */
    size_t last = row0;
    for (int i = 0; i < ROWS - 1; i++) {
        uint32_t n = g_file[last + 12] | (uint32_t)g_file[last + 13] << 8;
        last += 16 + (n == NV ? 4 : 8) * (size_t)n;
    }
    expect_broken("long.klbase", last + 12, "\x2b\x01\0\0", 4, ENG_EFORMAT, "end mark");
    met_quality_base_reader *r;
    eng_err e = {0};
    CHECK_EQ_INT(met_quality_base_open(&r, tst_path("absent.klbase"), &e), ENG_EIO);
    CHECK_CONTAINS(e.msg, "absent.klbase");
    CHECK_EQ_INT(met_quality_base_open(&r, tst_tmpdir(), &e), ENG_EIO);
    CHECK_CONTAINS(e.msg, "regular file");
}
