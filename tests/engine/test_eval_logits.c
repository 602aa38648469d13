/*
 * test_eval_logits.c — eng_session_eval_logits: the logits of every
 * position from a given one on, as perplexity needs them.
 *
 * Oracles: token-by-token decode (tu_decode_all), whose logits at position
 * i are what the session computed after feeding tokens[0..i]; and the
 * naive reference (ref_forward.c) of the prefix tokens[0..i]. Each row of
 * eval_logits runs the decode head on the prefill's hidden state, so
 *  - f32: the rows equal decode's within the prefill-vs-decode bound of
 *    test_forward.c (1e-5 of max(1, max |logit|));
 *  - block types: prefill's layers add their integer products in another
 *    float order than decode's, and a near-tie of one activation rounding
 *    can put them ~1e-2 apart after 4 layers, so the rows are checked
 *    against the reference that models the prefill (REF_ACT_PREFILL:
 *    partner forms as decode, Q8_0 input to the head) with
 *    test_forward.c's block-type bound (1e-3), the way test_forward.c
 *    checks the last row of a prefill;
 *  - n_batch = 1: every token takes the decode path, bit-identical to it;
 *  - the rows' head (one block of the output matrix at a time for all rows)
 *    is the per-row head bit for bit: a batch's last row equals the logits
 *    eng_session_eval leaves, which run the per-row head on the same state.
 */
#include "engine/session.h"
#include "tests/engine/ref_forward.h"
#include "tests/util/model_util.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 40 };

static void tokens(int32_t *t)
{
    for (int i = 0; i < N; i++)
        t[i] = (i * 131 + 7) % 512;
}

/* eval_logits of toks[0..N) from `first` with batch `batch` and `threads`:
 * a tst_alloc'd block of (N - first) rows. Also checks the session's own
 * logits are the last row and pos is N. */
static float *rows(const eng_model *m, int threads, int64_t batch, int first)
{
    const int64_t nv = eng_model_hparams(m)->n_vocab;
    int32_t t[N];
    tokens(t);
    eng_session *s = tu_session(m, threads, 64, batch);
    eng_err e = {0};
    float *out = tst_alloc((size_t)(N - first) * (size_t)nv * sizeof *out);
    REQUIRE_MSG(eng_session_eval_logits(s, t, N, first, out, &e) == 0, "%s", e.msg);
    CHECK_EQ_INT(eng_session_pos(s), N);
    CHECK(memcmp(eng_session_logits(s), out + (size_t)(N - 1 - first) * nv,
                 (size_t)nv * sizeof *out) == 0);
    eng_session_free(s);
    return out;
}

static void check_vs_decode(const char *preset, const char *type, double bound)
{
    const char *path = tu_write_preset(preset, type, "m.gguf");
    eng_model *m = tu_open(path);
    const int64_t nv = eng_model_hparams(m)->n_vocab;
    int32_t t[N];
    tokens(t);
    const float *dec = tu_decode_all(path, t, N);
    /* one batch; batches of 13 (13, 13, 13, 1: the last one on the decode
     * path); batch 1 (all decode) */
    static const int64_t batches[] = {0, 13, 1};
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
        const int first = 11;
        const float *r = rows(m, 2, batches[b], first);
        double worst = 0;
        for (int i = first; i < N; i++)
            worst = fmax(worst, tu_max_diff(r + (size_t)(i - first) * nv,
                                            dec + (size_t)i * nv, nv));
        if (batches[b] == 1)
            CHECK_MSG(memcmp(r, dec + (size_t)first * nv,
                             (size_t)(N - first) * nv * sizeof *r) == 0,
                      "%s %s batch 1: rows differ from decode (max %g)", preset, type, worst);
        CHECK_MSG(worst <= bound, "%s %s batch %lld: rows vs decode %g > %g", preset, type,
                  (long long)batches[b], worst, bound);
        printf("%s %s batch %lld: max diff vs decode %.3g\n", preset, type,
               (long long)batches[b], worst);
    }
    eng_model_free(m);
}

TEST(rows_equal_decode_f32)
{
    check_vs_decode("tiny-mixtral", "f32", 1e-5);
    check_vs_decode("tiny-qwen2moe", "f32", 1e-5);
    check_vs_decode("tiny-qwen3moe", "f32", 1e-5);
    check_vs_decode("tiny-olmoe", "f32", 1e-5);
}

/* Rows of a batched eval against the reference of each prefix that models
 * the prefill (REF_ACT_PREFILL); batch 1 against decode, bit for bit. */
static void check_vs_ref(const char *preset, const char *type)
{
    const char *path = tu_write_preset(preset, type, "q.gguf");
    eng_model *m = tu_open(path);
    const int64_t nv = eng_model_hparams(m)->n_vocab;
    int32_t t[N];
    tokens(t);
    const int first = 25;
    const float *r = rows(m, 2, 0, first), *r1 = rows(m, 2, 1, first);
    const float *dec = tu_decode_all(path, t, N);
    double worst = 0;
    for (int i = first; i < N; i++) {
        double *ref = NULL;
        REQUIRE(ref_forward(m, t, i + 1, REF_ACT_PREFILL, &ref) == 0);
        worst = fmax(worst, ref_rel_err(r + (size_t)(i - first) * nv, ref, nv));
        free(ref);
    }
    CHECK_MSG(worst <= 1e-3, "%s %s: rows vs reference %g > 1e-3", preset, type, worst);
    CHECK_MSG(memcmp(r1, dec + (size_t)first * nv, (size_t)(N - first) * nv * sizeof *r1) == 0,
              "%s %s batch 1: rows differ from decode", preset, type);
    printf("%s %s: max rel err vs reference %.3g\n", preset, type, worst);
    eng_model_free(m);
}

TEST(rows_equal_reference_quantized)
{
    check_vs_ref("tiny-olmoe", "q8_0");
    check_vs_ref("tiny-mixtral", "q4_0");
}

/* The same rows for 1, 2 and 3 threads, bit for bit, batched and not. */
TEST(rows_threads_bit_identical)
{
    eng_model *m = tu_open(tu_write_preset("tiny-qwen2moe", "q8_0", "t.gguf"));
    const size_t bytes = (size_t)(N - 5) * (size_t)eng_model_hparams(m)->n_vocab * sizeof(float);
    static const int64_t batches[] = {0, 7};
    for (size_t b = 0; b < 2; b++) {
        const float *r1 = rows(m, 1, batches[b], 5);
        for (int t = 2; t <= 3; t++)
            CHECK_MSG(memcmp(r1, rows(m, t, batches[b], 5), bytes) == 0,
                      "batch %lld: rows differ between 1 and %d threads",
                      (long long)batches[b], t);
    }
    eng_model_free(m);
}

/* Rows from `first` of one call equal the tail of rows from 0. */
TEST(rows_first_is_an_offset)
{
    eng_model *m = tu_open(tu_write_preset("tiny-olmoe", "f32", "o.gguf"));
    const int64_t nv = eng_model_hparams(m)->n_vocab;
    const float *all = rows(m, 2, 9, 0), *tail = rows(m, 2, 9, 30);
    CHECK(memcmp(all + 30 * nv, tail, (size_t)(N - 30) * nv * sizeof *all) == 0);
    eng_model_free(m);
}

TEST(eval_logits_errors)
{
    eng_model *m = tu_open(tu_write_preset("tiny-olmoe", "f32", "e.gguf"));
    eng_session *s = tu_session(m, 1, 8, 0);
    eng_err e = {0};
    int32_t t[N];
    tokens(t);
    float *out = tst_alloc(16 * (size_t)eng_model_hparams(m)->n_vocab * sizeof *out);
    CHECK_EQ_INT(eng_session_eval_logits(s, t, 4, 4, out, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "first");
    CHECK_EQ_INT(eng_session_eval_logits(s, t, 4, -1, out, &e), ENG_EINVAL);
    CHECK_EQ_INT(eng_session_eval_logits(s, t, 4, 0, NULL, &e), ENG_EINVAL);
    CHECK_EQ_INT(eng_session_eval_logits(s, t, 9, 0, out, &e), ENG_ESTATE);
    CHECK_CONTAINS(e.msg, "context");
    CHECK_EQ_INT(eng_session_pos(s), 0);
    eng_session_free(s);
    eng_model_free(m);
}

/* The blocked head of eval_logits against the per-row head of eval on the
 * same batch: bit for bit, for every format of the output matrix, with
 * several blocks (tiny-k f32: 512 rows of 1 KiB = 2 blocks) and more rows
 * than one dispatch takes (40 > max_jobs). */
static void check_head(const char *preset, const char *type)
{
    eng_model *m = tu_open(tu_write_preset(preset, type, "h.gguf"));
    const int64_t nv = eng_model_hparams(m)->n_vocab;
    int32_t t[N];
    tokens(t);
    for (int n = 2; n <= N; n += 19) {
        eng_session *a = tu_session(m, 2, 64, 0), *b = tu_session(m, 2, 64, 0);
        eng_err e = {0};
        float *out = tst_alloc((size_t)n * (size_t)nv * sizeof *out);
        REQUIRE(eng_session_eval(a, t, n, &e) == 0);
        REQUIRE_MSG(eng_session_eval_logits(b, t, n, 0, out, &e) == 0, "%s", e.msg);
        CHECK_MSG(memcmp(eng_session_logits(a), out + (size_t)(n - 1) * nv,
                         (size_t)nv * sizeof *out) == 0,
                  "%s %s, %d rows: blocked head differs from the per-row head", preset, type, n);
        eng_session_free(a);
        eng_session_free(b);
    }
    eng_model_free(m);
}

TEST(blocked_head_is_the_per_row_head)
{
    static const char *const types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q5_0"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        check_head("tiny-qwen2moe", types[i]);
    check_head("tiny-k-olmoe", "f32");
    check_head("tiny-k-mixtral", "q4_k_m"); /* q6_K output */
    check_head("tiny-k-qwen3moe", "q4_k");
}
