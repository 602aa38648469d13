/*
 * test_lowprec.c — the companion expert file (engine/lowprec.h): every
 * expert's bytes equal quantize(dequantize(original row)) bit for bit, the
 * biases are copied, locate points at them; a companion of another model
 * (other weights of the same shapes, another architecture, not a
 * companion at all) is refused naming the key.
 */
#include "tests/test.h"
#include "tests/util/model_util.h"

#include "engine/formats.h"
#include "engine/lowprec.h"

#include <stdlib.h>
#include <string.h>

/* Every expert slice of lp against the model's, requantized here row by row. */
static void check_roundtrip(const eng_model *m, const eng_lowprec *lp, int type)
{
    const eng_hparams *hp = eng_model_hparams(m);
    int64_t checked = 0;
    for (int l = 0; l < hp->n_layer_moe; l++)
        for (int e = 0; e < hp->n_expert; e++) {
            eng_expert_weights w, c;
            eng_err err = {0};
            REQUIRE(eng_expert_locate(m, l, e, &w, &err) == ENG_OK);
            REQUIRE_MSG(eng_lowprec_locate(lp, l, e, &c, &err) == ENG_OK, "%s", err.msg);
            REQUIRE(c.n_slices == w.n_slices);
            uint64_t bytes = 0;
            for (int i = 0; i < w.n_slices; i++) {
                const eng_expert_mat *a = &w.mat[i], *b = &c.mat[i];
                CHECK(b->n_in == a->n_in && b->n_out == a->n_out);
                bytes += (uint64_t)b->n_out * b->row_bytes;
                if (i > ENG_SLICE_DOWN) { /* biases: copied */
                    CHECK_EQ_INT(b->type, a->type);
                    CHECK(!memcmp(a->data, b->data, a->n_out * a->row_bytes));
                    continue;
                }
                CHECK_EQ_INT(b->type, type);
                CHECK_EQ_INT(b->row_bytes, eng_type_row_bytes(type, a->n_in));
                float *row = malloc((size_t)a->n_in * sizeof *row);
                unsigned char *q = malloc(b->row_bytes);
                for (int64_t r = 0; r < a->n_out; r++) {
                    REQUIRE(!eng_dequantize_row(a->type, (const char *)a->data + r * a->row_bytes,
                                                row, a->n_in, NULL));
                    REQUIRE(!eng_quantize_row(type, row, q, a->n_in, NULL));
                    CHECK_MSG(!memcmp(q, (const char *)b->data + r * b->row_bytes, b->row_bytes),
                              "layer %d expert %d slice %d row %lld differs", l, e, i,
                              (long long)r);
                    checked++;
                }
                free(row);
                free(q);
            }
            CHECK_EQ_INT(c.bytes, bytes);
            CHECK_EQ_INT(eng_lowprec_expert_bytes(lp, l), bytes);
        }
    CHECK(checked > 0);
}

static void roundtrip(const char *preset, const char *mtype, int type)
{
    char name[96];
    snprintf(name, sizeof name, "%s-%s.gguf", preset, mtype);
    eng_model *m = tu_open(tu_write_preset(preset, mtype, name));
    const char *cp = tst_path("companion.gguf");
    eng_err err = {0};
    REQUIRE_MSG(eng_lowprec_write(m, type, cp, NULL, NULL, &err) == ENG_OK, "%s", err.msg);
    eng_lowprec *lp = NULL;
    REQUIRE_MSG(eng_lowprec_open(&lp, m, cp, &err) == ENG_OK, "%s", err.msg);
    CHECK_EQ_INT(eng_lowprec_type(lp), type);
    check_roundtrip(m, lp, type);
    eng_lowprec_free(lp);
    eng_model_free(m);
}

TEST(roundtrip_f32_to_q4_0) { roundtrip("tiny-olmoe", "f32", ENG_TYPE_Q4_0); }
TEST(roundtrip_q8_0_to_q4_1) { roundtrip("tiny-mixtral", "q8_0", ENG_TYPE_Q4_1); }
TEST(roundtrip_k_to_q2_k) { roundtrip("tiny-k-qwen3moe", "q4_k_m", ENG_TYPE_Q2_K); }
/* gpt-oss: MXFP4 experts with biases (copied) */
TEST(roundtrip_mxfp4_biases) { roundtrip("tiny-gpt-oss", "mxfp4", ENG_TYPE_Q8_0); }

static int progress_calls;
static void on_progress(void *user, uint64_t done, uint64_t total)
{
    uint64_t *last = user;
    CHECK(done >= *last && done <= total);
    *last = done;
    progress_calls++;
}

TEST(progress_reaches_total)
{
    eng_model *m = tu_open(tu_write_preset("tiny-qwen2moe", "f32", "m.gguf"));
    uint64_t last = 0;
    eng_err err = {0};
    REQUIRE(eng_lowprec_write(m, ENG_TYPE_Q8_0, tst_path("c.gguf"), on_progress, &last, &err) ==
            ENG_OK);
    CHECK(progress_calls > 1);
    const eng_hparams *hp = eng_model_hparams(m);
    uint64_t total = 0;
    for (int l = 0; l < hp->n_layer_moe; l++)
        total += eng_model_expert_bytes(m, l) * (uint64_t)hp->n_expert;
    CHECK_EQ_INT(last, total);
    eng_model_free(m);
}

static int open_err(const eng_model *m, const char *path, eng_err *err)
{
    eng_lowprec *lp = NULL;
    int rc = eng_lowprec_open(&lp, m, path, err);
    CHECK(rc != ENG_OK ? lp == NULL : true);
    eng_lowprec_free(lp);
    return rc;
}

TEST(mismatch_refused)
{
    eng_model *a = tu_open(tu_write_model("tiny-olmoe", "f32", 1, 0, "a.gguf"));
    eng_model *b = tu_open(tu_write_model("tiny-olmoe", "f32", 2, 0, "b.gguf"));
    eng_model *q = tu_open(tu_write_preset("tiny-qwen3moe", "f32", "q.gguf"));
    const char *cp = tst_path("a.q4_0.gguf");
    eng_err err = {0};
    REQUIRE(eng_lowprec_write(a, ENG_TYPE_Q4_0, cp, NULL, NULL, &err) == ENG_OK);
    CHECK_EQ_INT(open_err(a, cp, &err), ENG_OK);
    /* same preset, other seed: same shapes and file size, other weights */
    CHECK_EQ_INT(open_err(b, cp, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "moebench.lowprec.model_hash");
    CHECK_CONTAINS(err.msg, "another model");
    CHECK_EQ_INT(open_err(q, cp, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "general.architecture");
    /* a model is not a companion */
    CHECK_EQ_INT(open_err(a, eng_model_path(a), &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "moebench.lowprec.type");
    CHECK_EQ_INT(open_err(a, tst_path("missing.gguf"), &err), ENG_EIO);
    eng_model_free(a);
    eng_model_free(b);
    eng_model_free(q);
}

TEST(bad_type_refused)
{
    eng_model *m = tu_open(tu_write_preset("tiny-olmoe", "f32", "m.gguf"));
    eng_err err = {0};
    /* rows of 64 (n_embd) do not fit Q4_K's blocks of 256 */
    CHECK_EQ_INT(eng_lowprec_write(m, ENG_TYPE_Q4_K, tst_path("c.gguf"), NULL, NULL, &err),
                 ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "ffn_gate_exps");
    CHECK_CONTAINS(err.msg, "256");
    /* Q8_1 has no quantizer of its own here */
    CHECK(eng_lowprec_write(m, ENG_TYPE_Q8_1, tst_path("c.gguf"), NULL, NULL, &err) != ENG_OK);
    eng_model_free(m);
}

static const uint64_t *g_counts;
static int by_count(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (g_counts[x] != g_counts[y])
        return g_counts[x] < g_counts[y] ? -1 : 1;
    return x - y;
}

/* The least used floor(q * E) of each layer, against a sort. */
TEST(importance_map_brute_force)
{
    enum { L = 3, E = 10 };
    uint64_t counts[L * E];
    uint64_t s = 7;
    for (int i = 0; i < L * E; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        counts[i] = (s >> 33) % 5; /* many ties */
    }
    const double qs[] = {0, 0.05, 0.3, 0.55, 0.999, 1};
    for (size_t qi = 0; qi < sizeof qs / sizeof qs[0]; qi++) {
        uint8_t map[L * E];
        eng_lowprec_importance_map(counts, L, E, qs[qi], map);
        for (int l = 0; l < L; l++) {
            int idx[E];
            for (int e = 0; e < E; e++)
                idx[e] = e;
            g_counts = counts + l * E;
            qsort(idx, E, sizeof *idx, by_count);
            int n_low = (int)(qs[qi] * E), got = 0;
            for (int r = 0; r < E; r++)
                CHECK_EQ_INT(map[l * E + idx[r]], r < n_low);
            for (int e = 0; e < E; e++)
                got += map[l * E + e];
            CHECK_EQ_INT(got, n_low);
        }
    }
}
