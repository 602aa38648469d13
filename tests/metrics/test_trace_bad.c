/*
 * test_trace_bad.c — hostile trace files: every truncation and every byte
 * flip of a small .moetrace, and one handcrafted broken file per check in
 * each format. Each must give ENG_EFORMAT with a message naming the file
 * and the field, never a crash (the suite also runs under ASan/UBSan), and
 * exit status 2 through the CLI.
 */
#include "metrics/trace.h"
#include "tests/metrics/lrc_util.h"
#include "tests/test.h"

#include <stdlib.h>

static char *small_moetrace(size_t *len)
{
    lrc_rng g = {21};
    met_trace *t = lrc_random_trace(&g, 2, 5, 2, 3, 4,
                                    MET_TRACE_WEIGHTS | MET_TRACE_TOKENS | MET_TRACE_LABELS);
    REQUIRE(!met_trace_write_moetrace(t, tst_path("ok.moetrace"), NULL));
    met_trace_free(t);
    char *b = tst_read_file(tst_path("ok.moetrace"), len);
    REQUIRE(b);
    return b;
}

/* Loading all of it and streaming every layer and sample. */
static int read_all(const char *path, eng_err *e)
{
    met_trace *t = NULL;
    int rc = met_trace_load(&t, path, MET_FMT_MOETRACE, e);
    met_trace_free(t);
    if (rc)
        return rc;
    met_trace_reader *r;
    if ((rc = met_trace_reader_open(&r, path, MET_FMT_MOETRACE, e)))
        return rc;
    const met_trace_info *in = met_trace_reader_info(r);
    size_t n = (size_t)in->num_tokens * in->num_layers * in->top_k + 1;
    uint16_t *ids = malloc(n * 2);
    float *w = malloc(n * 4);
    for (int32_t l = 0; !rc && l < in->num_layers; l++)
        rc = met_trace_reader_layer(r, l, ids, w, e);
    for (int64_t s = 0; !rc && s < in->num_samples; s++)
        rc = met_trace_reader_sample(r, s, ids, w, e);
    free(ids), free(w);
    met_trace_reader_free(r);
    return rc;
}

TEST(moetrace_every_truncation)
{
    size_t len;
    char *b = small_moetrace(&len);
    for (size_t n = 0; n < len; n++) {
        tst_write_file(tst_path("cut.moetrace"), b, n);
        eng_err e = {0};
        int rc = read_all(tst_path("cut.moetrace"), &e);
        CHECK_MSG(rc == ENG_EFORMAT, "truncated to %zu of %zu bytes: rc %d (%s)", n, len, rc, e.msg);
        CHECK_CONTAINS(e.msg, "cut.moetrace");
    }
}

TEST(moetrace_every_byte_flipped)
{
    size_t len;
    char *b = small_moetrace(&len), *c = tst_alloc(len);
    int failures = 0;
    for (size_t i = 0; i < len; i++) {
        memcpy(c, b, len);
        c[i] ^= (char)0xA5;
        tst_write_file(tst_path("flip.moetrace"), c, len);
        eng_err e = {0};
        int rc = read_all(tst_path("flip.moetrace"), &e);
        CHECK_MSG(rc == ENG_OK || rc == ENG_EFORMAT, "byte %zu: rc %d (%s)", i, rc, e.msg);
        failures += rc != ENG_OK;
    }
    CHECK(failures > (int)len / 4); /* most flips are caught (weights may stay finite) */
}

static void patch_and_expect(const char *b, size_t len, size_t off, const void *v, size_t n,
                             const char *needle)
{
    char *c = tst_alloc(len);
    memcpy(c, b, len);
    memcpy(c + off, v, n);
    tst_write_file(tst_path("p.moetrace"), c, len);
    eng_err e = {0};
    CHECK_EQ_INT(read_all(tst_path("p.moetrace"), &e), ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, needle);
}

TEST(moetrace_handcrafted)
{
    size_t len;
    char *b = small_moetrace(&len);
    uint16_t big = 5, first;
    memcpy(&first, b + 64, 2);
    uint32_t v2 = 2, zero = 0, huge32 = 70000;
    uint64_t absurd = (uint64_t)1 << 62;
    patch_and_expect(b, len, 0, "MOETRACX", 8, "magic");
    patch_and_expect(b, len, 8, &v2, 4, "version 2");
    patch_and_expect(b, len, 64, &big, 2, "expert 5 >= num_experts 5");
    patch_and_expect(b, len, 66, &first, 2, "repeated");
    patch_and_expect(b, len, 24, &zero, 4, "top_k");
    patch_and_expect(b, len, 20, &huge32, 4, "experts");
    patch_and_expect(b, len, 32, &absurd, 8, "num_samples");
    patch_and_expect(b, len, 40, &absurd, 8, "num_tokens");
    patch_and_expect(b, len, 48, &absurd, 8, "index_offset");
    uint32_t hdr71 = 71;
    patch_and_expect(b, len, 28, &hdr71, 4, "header_size 71, expected 64 or 72");
    /* the CLI: exit status 2 and the file named */
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s metrics %s --bootstrap 0", tst_moebench(),
                        tst_path("p.moetrace")), 2);
    CHECK_CONTAINS(err, "p.moetrace");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s trace stats %s", tst_moebench(), tst_path("p.moetrace")), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s trace convert %s %s", tst_moebench(),
                        tst_path("p.moetrace"), tst_path("o.json")), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s metrics %s", tst_moebench(), tst_path("none.json")), 2);
}

static void expect_bad(const char *name, const char *text, const char *needle)
{
    tst_write_file(tst_path(name), text, strlen(text));
    met_trace *t = NULL;
    eng_err e = {0};
    int rc = met_trace_load(&t, tst_path(name), MET_FMT_AUTO, &e);
    CHECK_MSG(rc == ENG_EFORMAT, "%s: rc %d for %s", name, rc, text);
    CHECK_CONTAINS(e.msg, needle);
    CHECK_CONTAINS(e.msg, name);
    met_trace_free(t);
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s metrics %s --bootstrap 0", tst_moebench(), tst_path(name)), 2);
}

TEST(json_handcrafted)
{
    expect_bad("a.json", "{\"num_experts\":4,\"top_k\":2,\"samples\":[[[0,4]]]}", "num_experts-1");
    expect_bad("b.json", "{\"num_experts\":4,\"top_k\":2,\"samples\":[[[1,1]]]}", "repeated");
    expect_bad("c.json", "{\"num_experts\":4,\"top_k\":2,\"samples\":[[[1,2,3]]]}", "top_k = 2");
    expect_bad("d.json", "{\"num_layers\":2,\"num_experts\":4,\"top_k\":1,"
                         "\"samples\":[[[[0],[1]],[[0]]]]}", "ragged");
    expect_bad("e.json", "{\"num_experts\":4,\"samples\":[]}", "top_k");
    expect_bad("f.json", "{\"num_experts\":4,\"top_k\":2,\"samples\":[[[0,1]]", "f.json");
    expect_bad("g.json", "{\"num_experts\":99999999,\"top_k\":2,\"samples\":[]}", "out of range");
    expect_bad("h.json", "{\"num_experts\":4,\"top_k\":2,\"samples\":[[[0,-1]]]}", "id 1");
    expect_bad("i.json", "{\"num_experts\":4,\"top_k\":1,\"samples\":[[[0]]],\"labels\":[1]}",
               "labels");
    expect_bad("j.json", "[1,2]", "not an object");
}

TEST(csv_handcrafted)
{
    const char *h = "sample,token,layer,rank,expert,weight\n";
    char buf[512];
    expect_bad("a.csv", "sample,token,expert\n0,0,1\n", "header");
    snprintf(buf, sizeof buf, "%s0,0,0,0,1,\n0,0,0,1,1,\n", h);
    expect_bad("b.csv", buf, "repeated");
    snprintf(buf, sizeof buf, "%s0,0,0,0,1,\n0,0,0,0,2,\n", h);
    expect_bad("c.csv", buf, "repeated rows");        /* rank 0 twice */
    snprintf(buf, sizeof buf, "%s0,0,0,0,1,0.5\n0,0,0,1,2,\n", h);
    expect_bad("d.csv", buf, "weight");
    snprintf(buf, sizeof buf, "%s0,0,0,0,x,\n", h);
    expect_bad("e.csv", buf, "expert");
    snprintf(buf, sizeof buf, "%s0,0,0,0,1,\n0,2,0,0,1,\n", h);
    expect_bad("f.csv", buf, "missing");             /* token 1 missing */
    snprintf(buf, sizeof buf, "# moetrace num_layers=1 num_experts=2 top_k=1\n%s0,0,0,0,5,\n", h);
    expect_bad("g.csv", buf, "shape");
    snprintf(buf, sizeof buf, "%s0,0,0,0,1\n", h);
    expect_bad("h.csv", buf, "6 fields");
}

/* A safetensors file from a header text and data bytes. */
static void write_st(const char *name, const char *hdr, const void *data, size_t n, int64_t hl)
{
    size_t h = strlen(hdr);
    char *b = tst_alloc(8 + h + n);
    uint64_t len = hl >= 0 ? (uint64_t)hl : h;
    memcpy(b, &len, 8);
    memcpy(b + 8, hdr, h);
    memcpy(b + 8 + h, data, n);
    tst_write_file(tst_path(name), b, 8 + h + n);
}

TEST(safetensors_handcrafted)
{
    static const int8_t d[] = {0, 1, 2, 3, 1, 0, 3, 2};
    const char *ok = "{\"wiki\":{\"dtype\":\"I8\",\"shape\":[1,4,2],\"data_offsets\":[0,8]}}";
    write_st("ok.safetensors", ok, d, 8, -1);
    met_trace *t = NULL;
    eng_err e = {0};
    REQUIRE_MSG(!met_trace_load(&t, tst_path("ok.safetensors"), MET_FMT_AUTO, &e), "%s", e.msg);
    CHECK_EQ_INT(t->info.num_experts, 4);
    CHECK_EQ_STR(t->labels[0], "wiki");
    met_trace_free(t);
    struct { const char *hdr; int64_t hl; const char *needle; } cases[] = {
        {ok, 1 << 20, "header length"},
        {"{\"wiki\":{\"dtype\":\"I8\",\"shape\":[1,4,2],\"data_offsets\":[0,9]}}", -1, "data_offsets"},
        {"{\"wiki\":{\"dtype\":\"I8\",\"shape\":[1,2,3],\"data_offsets\":[0,8]}}", -1, "shape needs"},
        {"{\"wiki\":{\"dtype\":\"F32\",\"shape\":[1,1,2],\"data_offsets\":[0,8]}}", -1, "dtype"},
        {"{\"wiki\":{\"dtype\":\"I8\",\"shape\":[8],\"data_offsets\":[0,8]}}", -1, "shape"},
        {"{\"wiki\":{\"dtype\":\"I8\",\"shape\":[1,4,2],\"data_offsets\":[0,8]}", -1, "header JSON"},
        {"{\"wiki\":{\"dtype\":\"I8\",\"shape\":[1,4,2],\"data_offsets\":[0,8]},"
         "\"__metadata__\":{\"num_experts\":\"3\"}}", -1, "expert 3"},
        {"{\"wiki\":{\"dtype\":\"I8\",\"shape\":[2,2,2],\"data_offsets\":[0,8]}}", -1, "repeated"},
    };
    static const int8_t rep[] = {0, 1, 2, 3, 1, 1, 3, 2};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_st("bad.safetensors", cases[i].hdr, i == 7 ? rep : d, 8, cases[i].hl);
        e.msg[0] = 0;
        CHECK_EQ_INT(met_trace_load(&t, tst_path("bad.safetensors"), MET_FMT_AUTO, &e), ENG_EFORMAT);
        CHECK_CONTAINS(e.msg, cases[i].needle);
    }
    tst_write_file(tst_path("tiny.safetensors"), "abc", 3);
    CHECK_EQ_INT(met_trace_load(&t, tst_path("tiny.safetensors"), MET_FMT_AUTO, &e), ENG_EFORMAT);
    /* layers of a directory: k mismatch, names without numbers */
    REQUIRE(!tst_sh(NULL, NULL, "mkdir %s", tst_path("dir")));
    write_st("dir/layer_0.safetensors", ok, d, 8, -1);
    write_st("dir/layer_1.safetensors",
             "{\"wiki\":{\"dtype\":\"I8\",\"shape\":[1,2,4],\"data_offsets\":[0,8]}}", d, 8, -1);
    CHECK_EQ_INT(met_trace_load(&t, tst_path("dir"), MET_FMT_AUTO, &e), ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "differs");
    write_st("dir/layer_1.safetensors", ok, d, 8, -1);
    REQUIRE_MSG(!met_trace_load(&t, tst_path("dir"), MET_FMT_AUTO, &e), "%s", e.msg);
    CHECK_EQ_INT(t->info.num_layers, 2);
    /* export: int8 ids cannot hold E > 128 */
    t->info.num_experts = 200;
    CHECK_EQ_INT(met_trace_save(t, tst_path("out"), MET_FMT_SAFETENSORS, &e), ENG_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "128");
    met_trace_free(t);
    /* layer order is numeric on the trailing number of the file name */
    static const int8_t d2[] = {3, 2, 1, 0, 0, 1, 2, 3};
    REQUIRE(!tst_sh(NULL, NULL, "mkdir %s", tst_path("num")));
    write_st("num/blk.10.safetensors", ok, d2, 8, -1);
    write_st("num/blk.2.safetensors", ok, d, 8, -1);
    REQUIRE_MSG(!met_trace_load(&t, tst_path("num"), MET_FMT_AUTO, &e), "%s", e.msg);
    CHECK_EQ_INT(t->ids[0], 0);  /* token 0, layer 0 (file 2) */
    CHECK_EQ_INT(t->ids[2], 3);  /* token 0, layer 1 (file 10) */
    met_trace_free(t);
    write_st("dir/extra.safetensors", ok, d, 8, -1);
    CHECK_EQ_INT(met_trace_load(&t, tst_path("dir"), MET_FMT_AUTO, &e), ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "layer number");
}

/* The prompt batching fields: a prompt longer than its sample or batches of
 * 0 tokens, in .moetrace (patched index) and JSON. */
TEST(prompt_batching_handcrafted)
{
    met_trace_info in = {.num_layers = 1, .num_experts = 4, .top_k = 1};
    met_trace_writer *w;
    REQUIRE(!met_trace_writer_open(&w, tst_path("ok.moetrace"), &in, NULL));
    REQUIRE(!met_trace_writer_set_prompt(w, (met_trace_prompt){2, 2}, NULL));
    for (int64_t p = 0; p < 3; p++) {
        int32_t ex = (int32_t)p;
        REQUIRE(!met_trace_writer_route(w, 0, p, 0, 1, &ex, NULL, NULL));
    }
    REQUIRE(!met_trace_writer_close(w, NULL));
    size_t len;
    char *b = tst_read_file(tst_path("ok.moetrace"), &len);
    REQUIRE(b);
    uint64_t ioff;
    memcpy(&ioff, b + 48, 8);
    uint32_t four = 4, zero = 0;
    patch_and_expect(b, len, ioff + 16, &four, 4, "prompt of 4 tokens in batches of 2");
    patch_and_expect(b, len, ioff + 20, &zero, 4, "batches of 0");
    expect_bad("p1.json", "{\"num_experts\":4,\"top_k\":1,\"samples\":[[[0],[1]]],"
                          "\"prompt\":[[3,1]]}", "prompt of 3 tokens");
    expect_bad("p2.json", "{\"num_experts\":4,\"top_k\":1,\"samples\":[[[0]]],"
                          "\"prompt\":[[1]]}", "prompt[0]: not [tokens, batch]");
    expect_bad("p3.json", "{\"num_experts\":4,\"top_k\":1,\"samples\":[[[0]]],"
                          "\"prompt\":[]}", "one [tokens, batch] per sample");
}
