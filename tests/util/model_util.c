/* model_util.c — see model_util.h. */
#include "tests/util/model_util.h"

#include "engine/formats.h"
#include "engine/gguf.h"
#include "engine/mkmodel.h"
#include "engine/session.h"
#include "tests/test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tu_write_model(const char *preset, const char *type, uint64_t seed,
                           double locality, const char *name)
{
    eng_mkmodel_opts o = {.preset = preset, .seed = seed, .router_locality = locality};
    eng_err e = {0};
    REQUIRE_MSG(eng_mkmodel_type_parse(type, &o.type) == 0, "type %s", type);
    const char *path = tst_path(name);
    REQUIRE_MSG(eng_mkmodel_write(&o, path, &e) == 0, "mkmodel %s %s: %s", preset, type, e.msg);
    return path;
}

const char *tu_write_preset(const char *preset, const char *type, const char *name)
{
    return tu_write_model(preset, type, 7, 0, name);
}

eng_model *tu_open(const char *path)
{
    eng_model *m = NULL;
    eng_err e = {0};
    REQUIRE_MSG(eng_model_open(&m, path, NULL, &e) == 0, "open %s: %s", path, e.msg);
    return m;
}

eng_session *tu_session(const eng_model *m, int threads, int64_t n_ctx, int64_t n_batch)
{
    eng_session *s = NULL;
    eng_err e = {0};
    eng_session_opts o = {.n_threads = threads, .n_ctx = n_ctx, .n_batch = n_batch};
    REQUIRE_MSG(eng_session_open(&s, m, &o, &e) == 0, "session: %s", e.msg);
    return s;
}

float *tu_decode_all(const char *path, const int32_t *toks, int n)
{
    eng_model *m = tu_open(path);
    eng_session *s = tu_session(m, 1, n + 8, 0);
    const int64_t nv = eng_model_hparams(m)->n_vocab;
    float *out = tst_alloc((size_t)(n * nv) * sizeof *out);
    eng_err e = {0};
    for (int i = 0; i < n; i++) {
        REQUIRE_MSG(eng_session_decode(s, toks[i], &e) == 0, "decode %d: %s", i, e.msg);
        memcpy(out + i * nv, eng_session_logits(s), (size_t)nv * sizeof *out);
    }
    eng_session_free(s);
    eng_model_free(m);
    return out;
}

double tu_max_diff(const float *a, const float *b, int64_t n)
{
    double md = 0, mx = 1;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)b[i]));
    }
    return md / mx;
}

enum { D = 64, L = 2, NH = 4, NKV = 2, HD = 16, FF = 96, V = 128 };

typedef struct tdef {
    char name[64];
    int n_dims;
    int64_t ne[3];
    int type;
} tdef;

static int add(tdef *t, int n, const char *name, int type, int nd, int64_t a, int64_t b, int64_t c)
{
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].n_dims = nd;
    t[n].ne[0] = a, t[n].ne[1] = b, t[n].ne[2] = c;
    t[n].type = type;
    return n + 1;
}

static int list_tensors(const tu_llama_opts *o, tdef *t)
{
    int n = 0, mt = o->type, E = o->n_expert;
    char nm[64];
    n = add(t, n, "token_embd.weight", mt, 2, D, V, 1);
    n = add(t, n, "output_norm.weight", 0, 1, D, 1, 1);
    n = add(t, n, "output.weight", mt, 2, D, V, 1);
    for (int il = 0; il < L; il++) {
#define LT(suffix, type, nd, a, b, c) \
    (snprintf(nm, sizeof nm, "blk.%d." suffix, il), n = add(t, n, nm, type, nd, a, b, c))
        LT("attn_norm.weight", 0, 1, D, 1, 1);
        LT("attn_q.weight", mt, 2, D, NH * HD, 1);
        LT("attn_k.weight", mt, 2, D, NKV * HD, 1);
        LT("attn_v.weight", mt, 2, D, NKV * HD, 1);
        LT("attn_output.weight", mt, 2, NH * HD, D, 1);
        LT("ffn_norm.weight", 0, 1, D, 1, 1);
        if (E == 0) {
            LT("ffn_gate.weight", mt, 2, D, FF, 1);
            LT("ffn_up.weight", mt, 2, D, FF, 1);
            LT("ffn_down.weight", mt, 2, FF, D, 1);
        } else {
            LT("ffn_gate_inp.weight", 0, 2, D, E, 1);
            LT("ffn_gate_exps.weight", mt, 3, D, FF, E);
            LT("ffn_up_exps.weight", mt, 3, D, FF, E);
            LT("ffn_down_exps.weight", mt, 3, FF, D, E);
        }
#undef LT
    }
    return n;
}

static void set_keys(eng_gguf_writer *w, const tu_llama_opts *o, const char *arch)
{
    eng_err e = {0};
    char key[128];
    REQUIRE(eng_gguf_writer_set_str(w, "general.architecture", arch, &e) == 0);
    struct { const char *k; uint32_t v; } u[] = {
        {"block_count", L}, {"context_length", 256}, {"embedding_length", D},
        {"feed_forward_length", FF}, {"attention.head_count", NH},
        {"attention.head_count_kv", NKV}, {"expert_count", (uint32_t)o->n_expert},
        {"expert_used_count", 2},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        if ((o->skip_key && !strcmp(o->skip_key, u[i].k)) || (o->n_expert == 0 && i >= 6))
            continue;
        snprintf(key, sizeof key, "%s.%s", arch, u[i].k);
        uint32_t v = o->set_key && !strcmp(o->set_key, u[i].k) ? o->set_value : u[i].v;
        REQUIRE(eng_gguf_writer_set_u32(w, key, v, &e) == 0);
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    REQUIRE(eng_gguf_writer_set_f32(w, key, 1e-5f, &e) == 0);
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    REQUIRE(eng_gguf_writer_set_f32(w, key, 10000.0f, &e) == 0);
}

/* Deterministic values in about [-0.5, 0.5), norms around 1. */
static void fill(float *x, int64_t n, uint64_t seed, bool norm)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float r = (float)((s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
        x[i] = norm ? 1.0f + 0.2f * r : r;
    }
}

const char *tu_write_llama(const char *name, const tu_llama_opts *o)
{
    tdef t[64];
    int n = list_tensors(o, t);
    const char *path = tst_path(name);
    eng_gguf_writer *w = NULL;
    eng_err e = {0};
    REQUIRE(eng_gguf_writer_open(&w, path, &e) == 0);
    set_keys(w, o, o->arch ? o->arch : "llama");
    int64_t idx[64];
    int nw = 0;
    for (int i = 0; i < n; i++) {
        if (o->skip && !strcmp(o->skip, t[i].name))
            continue;
        if (o->bad && !strcmp(o->bad, t[i].name))
            t[i].ne[1] /= 2;
        REQUIRE_MSG(eng_gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne,
                                               &idx[i], &e) == 0, "%s", e.msg);
        nw++;
    }
    REQUIRE(eng_gguf_writer_write_header(w, &e) == 0);
    for (int i = 0; i < n; i++) {
        if (o->skip && !strcmp(o->skip, t[i].name))
            continue;
        int64_t cnt = t[i].ne[0] * t[i].ne[1] * t[i].ne[2];
        float *f = malloc((size_t)cnt * sizeof *f);
        fill(f, cnt, (uint64_t)i + 1, strstr(t[i].name, "norm") != NULL);
        uint64_t nb = eng_type_row_bytes(t[i].type, t[i].ne[0]) * (uint64_t)(cnt / t[i].ne[0]);
        void *buf = malloc(nb);
        for (int64_t r = 0; r < cnt / t[i].ne[0]; r++)
            REQUIRE(eng_quantize_row(t[i].type, f + r * t[i].ne[0],
                                     (char *)buf + r * eng_type_row_bytes(t[i].type, t[i].ne[0]),
                                     t[i].ne[0], &e) == 0);
        REQUIRE_MSG(eng_gguf_writer_write_tensor_data(w, idx[i], buf, nb, &e) == 0, "%s", e.msg);
        free(f);
        free(buf);
    }
    REQUIRE_MSG(eng_gguf_writer_finish(w, &e) == 0, "%s", e.msg);
    eng_gguf_writer_free(w);
    (void)nw;
    return path;
}
