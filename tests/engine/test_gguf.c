/* test_gguf.c — GGUF writer -> reader round trips: every metadata type,
 * every tensor type, two alignments, the offset rule, writer errors, the
 * typed getters. Bad files are in test_gguf_bad.c. */
#include "tests/test.h"

#include "engine/formats.h"
#include "engine/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static eng_gguf_writer *wopen(const char *path)
{
    eng_gguf_writer *w;
    eng_err err = {0};
    REQUIRE_MSG(eng_gguf_writer_open(&w, path, &err) == ENG_OK, "%s", err.msg);
    return w;
}

#define OKE(call) do { int rc_ = (call); REQUIRE_MSG(rc_ == ENG_OK, "%s -> %d: %s", #call, rc_, err.msg); } while (0)

static void write_all_kv_types(eng_gguf_writer *w, eng_err *err_)
{
    eng_err err = {0};
    (void)err_;
    OKE(eng_gguf_writer_set_u8(w, "t.u8", 250, &err));
    OKE(eng_gguf_writer_set_i8(w, "t.i8", -100, &err));
    OKE(eng_gguf_writer_set_u16(w, "t.u16", 65000, &err));
    OKE(eng_gguf_writer_set_i16(w, "t.i16", -32000, &err));
    OKE(eng_gguf_writer_set_u32(w, "t.u32", 4000000000u, &err));
    OKE(eng_gguf_writer_set_i32(w, "t.i32", -2000000000, &err));
    OKE(eng_gguf_writer_set_f32(w, "t.f32", 1.5e-6f, &err));
    OKE(eng_gguf_writer_set_bool(w, "t.bool", true, &err));
    OKE(eng_gguf_writer_set_str(w, "t.str", "hello", &err));
    OKE(eng_gguf_writer_set_strn(w, "t.odd", "a\0b\xff\n", 5, &err));
    OKE(eng_gguf_writer_set_strn(w, "t.empty", "", 0, &err));
    OKE(eng_gguf_writer_set_u64(w, "t.u64", UINT64_MAX, &err));
    OKE(eng_gguf_writer_set_i64(w, "t.i64", INT64_MIN, &err));
    OKE(eng_gguf_writer_set_f64(w, "t.f64", -2.25e300, &err));
    uint8_t au8[3] = {1, 2, 255};
    int8_t ai8[2] = {-128, 127};
    uint16_t au16[2] = {0, 65535};
    int16_t ai16[2] = {-32768, 5};
    uint32_t au32[2] = {7, 4294967295u};
    int32_t ai32[4] = {1, -2, 3, -4};
    float af32[3] = {0.5f, -1e30f, 3.0f};
    uint8_t abool[3] = {1, 0, 1};
    uint64_t au64[2] = {0, UINT64_MAX};
    int64_t ai64[2] = {INT64_MIN, INT64_MAX};
    double af64[2] = {1e-300, -7.0};
    OKE(eng_gguf_writer_set_arr(w, "a.u8", ENG_GGUF_U8, au8, 3, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.i8", ENG_GGUF_I8, ai8, 2, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.u16", ENG_GGUF_U16, au16, 2, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.i16", ENG_GGUF_I16, ai16, 2, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.u32", ENG_GGUF_U32, au32, 2, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.i32", ENG_GGUF_I32, ai32, 4, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.f32", ENG_GGUF_F32, af32, 3, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.bool", ENG_GGUF_BOOL, abool, 3, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.u64", ENG_GGUF_U64, au64, 2, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.i64", ENG_GGUF_I64, ai64, 2, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.f64", ENG_GGUF_F64, af64, 2, &err));
    OKE(eng_gguf_writer_set_arr(w, "a.empty", ENG_GGUF_I32, NULL, 0, &err));
    const char *strs[4] = {"x", "", "with space", "\xe2\x96\x81tok"};
    OKE(eng_gguf_writer_set_arr_str(w, "a.str", strs, 4, &err));
    const char *odd[2] = {"n\0ul", "z"};
    size_t lens[2] = {4, 1};
    OKE(eng_gguf_writer_set_arr_strn(w, "a.strn", odd, lens, 2, &err));
    OKE(eng_gguf_writer_set_arr_str(w, "a.noStr", NULL, 0, &err));
}

static int64_t arr_int(const eng_gguf *g, const char *key, uint64_t j)
{
    int64_t i, v = 0;
    eng_err err = {0};
    OKE(eng_gguf_get_arr(g, key, &i, &err));
    OKE(eng_gguf_kv_arr_int(g, i, j, &v, &err));
    return v;
}

static void check_all_kv_types(const eng_gguf *g)
{
    eng_err err = {0};
    const eng_gguf_kv *kv = eng_gguf_kv_at(g, eng_gguf_find_key(g, "t.u8"));
    REQUIRE(kv);
    CHECK_EQ_INT(kv->type, ENG_GGUF_U8);
    CHECK_EQ_INT(kv->v.u, 250);
    kv = eng_gguf_kv_at(g, eng_gguf_find_key(g, "t.i8"));
    CHECK(kv && kv->type == ENG_GGUF_I8 && kv->v.i == -100);
    kv = eng_gguf_kv_at(g, eng_gguf_find_key(g, "t.u16"));
    CHECK(kv && kv->type == ENG_GGUF_U16 && kv->v.u == 65000);
    kv = eng_gguf_kv_at(g, eng_gguf_find_key(g, "t.i16"));
    CHECK(kv && kv->type == ENG_GGUF_I16 && kv->v.i == -32000);
    uint32_t u32;
    OKE(eng_gguf_get_u32(g, "t.u32", &u32, &err));
    CHECK(u32 == 4000000000u);
    int32_t i32;
    OKE(eng_gguf_get_i32(g, "t.i32", &i32, &err));
    CHECK_EQ_INT(i32, -2000000000);
    float f;
    OKE(eng_gguf_get_f32(g, "t.f32", &f, &err));
    CHECK(f == 1.5e-6f);
    bool b = false;
    OKE(eng_gguf_get_bool(g, "t.bool", &b, &err));
    CHECK(b);
    eng_gguf_str s;
    OKE(eng_gguf_get_str(g, "t.str", &s, &err));
    CHECK(s.len == 5 && memcmp(s.ptr, "hello", 5) == 0);
    OKE(eng_gguf_get_str(g, "t.odd", &s, &err));
    CHECK(s.len == 5 && memcmp(s.ptr, "a\0b\xff\n", 5) == 0);
    OKE(eng_gguf_get_str(g, "t.empty", &s, &err));
    CHECK_EQ_INT(s.len, 0);
    char *dup = NULL;
    OKE(eng_gguf_get_strdup(g, "t.str", &dup, &err));
    CHECK_EQ_STR(dup, "hello");
    free(dup);
    uint64_t u64;
    OKE(eng_gguf_get_u64(g, "t.u64", &u64, &err));
    CHECK(u64 == UINT64_MAX);
    int64_t i64;
    OKE(eng_gguf_get_i64(g, "t.i64", &i64, &err));
    CHECK(i64 == INT64_MIN);
    kv = eng_gguf_kv_at(g, eng_gguf_find_key(g, "t.f64"));
    CHECK(kv && kv->type == ENG_GGUF_F64 && kv->v.f == -2.25e300);

    CHECK_EQ_INT(arr_int(g, "a.u8", 2), 255);
    CHECK_EQ_INT(arr_int(g, "a.i8", 0), -128);
    CHECK_EQ_INT(arr_int(g, "a.u16", 1), 65535);
    CHECK_EQ_INT(arr_int(g, "a.i16", 0), -32768);
    CHECK_EQ_INT(arr_int(g, "a.u32", 1), 4294967295ll);
    CHECK_EQ_INT(arr_int(g, "a.i32", 3), -4);
    CHECK_EQ_INT(arr_int(g, "a.bool", 1), 0);
    CHECK_EQ_INT(arr_int(g, "a.u64", 0), 0);
    CHECK(arr_int(g, "a.i64", 0) == INT64_MIN && arr_int(g, "a.i64", 1) == INT64_MAX);
    int64_t ai;
    OKE(eng_gguf_get_arr(g, "a.u64", &ai, &err));
    int64_t v;
    CHECK_EQ_INT(eng_gguf_kv_arr_int(g, ai, 1, &v, &err), ENG_EFORMAT);  /* UINT64_MAX > INT64_MAX */
    CHECK_EQ_INT(eng_gguf_kv_arr_int(g, ai, 2, &v, &err), ENG_EINVAL);   /* out of range */
    OKE(eng_gguf_get_arr(g, "a.f32", &ai, &err));
    OKE(eng_gguf_kv_arr_f32(g, ai, 1, &f, &err));
    CHECK(f == -1e30f);
    CHECK_EQ_INT(eng_gguf_kv_arr_int(g, ai, 0, &v, &err), ENG_EFORMAT);
    CHECK_CONTAINS(err.msg, "a.f32");
    OKE(eng_gguf_get_arr(g, "a.f64", &ai, &err));
    OKE(eng_gguf_kv_arr_f32(g, ai, 1, &f, &err));
    CHECK(f == -7.0f);
    OKE(eng_gguf_get_arr(g, "a.empty", &ai, &err));
    CHECK_EQ_INT(eng_gguf_kv_at(g, ai)->arr_len, 0);
    CHECK_EQ_INT(eng_gguf_kv_at(g, ai)->arr_type, ENG_GGUF_I32);
    OKE(eng_gguf_get_arr(g, "a.str", &ai, &err));
    CHECK_EQ_INT(eng_gguf_kv_at(g, ai)->arr_len, 4);
    OKE(eng_gguf_kv_arr_str(g, ai, 2, &s, &err));
    CHECK(s.len == 10 && memcmp(s.ptr, "with space", 10) == 0);
    OKE(eng_gguf_kv_arr_str(g, ai, 1, &s, &err));
    CHECK_EQ_INT(s.len, 0);
    OKE(eng_gguf_kv_arr_str(g, ai, 3, &s, &err));
    CHECK(s.len == 6 && memcmp(s.ptr, "\xe2\x96\x81tok", 6) == 0);
    OKE(eng_gguf_get_arr(g, "a.strn", &ai, &err));
    OKE(eng_gguf_kv_arr_str(g, ai, 0, &s, &err));
    CHECK(s.len == 4 && memcmp(s.ptr, "n\0ul", 4) == 0);
    OKE(eng_gguf_get_arr(g, "a.noStr", &ai, &err));
    CHECK_EQ_INT(eng_gguf_kv_at(g, ai)->arr_len, 0);
}

TEST(roundtrip_every_metadata_type)
{
    const char *path = tst_path("kv.gguf");
    eng_gguf_writer *w = wopen(path);
    eng_err err = {0};
    write_all_kv_types(w, &err);
    OKE(eng_gguf_writer_finish(w, &err));
    eng_gguf_writer_free(w);
    eng_gguf *g;
    OKE(eng_gguf_open(&g, path, &err));
    CHECK_EQ_INT(eng_gguf_version(g), 3);
    CHECK_EQ_INT(eng_gguf_tensor_count(g), 0);
    CHECK_EQ_INT(eng_gguf_kv_count(g), 29);
    CHECK_EQ_INT(eng_gguf_alignment(g), 32);
    CHECK_EQ_INT(eng_gguf_data_offset(g), eng_gguf_file_size(g));  /* no tensors, no padding */
    check_all_kv_types(g);
    /* iteration order is file order */
    CHECK_EQ_STR(eng_gguf_kv_at(g, 0)->key, "t.u8");
    CHECK(eng_gguf_kv_at(g, 29) == NULL && eng_gguf_kv_at(g, -1) == NULL);
    eng_gguf_free(g);
}

TEST(getters_are_lenient_about_integer_width_and_strict_about_kind)
{
    const char *path = tst_path("g.gguf");
    eng_gguf_writer *w = wopen(path);
    eng_err err = {0};
    write_all_kv_types(w, &err);
    OKE(eng_gguf_writer_finish(w, &err));
    eng_gguf_writer_free(w);
    eng_gguf *g;
    OKE(eng_gguf_open(&g, path, &err));
    uint32_t u32;
    int64_t i64;
    OKE(eng_gguf_get_u32(g, "t.u8", &u32, &err));       /* u8 widens */
    CHECK_EQ_INT(u32, 250);
    OKE(eng_gguf_get_i64(g, "t.u32", &i64, &err));      /* u32 into i64 */
    CHECK_EQ_INT(i64, 4000000000ll);
    CHECK_EQ_INT(eng_gguf_get_u32(g, "t.i8", &u32, &err), ENG_EFORMAT);  /* negative */
    CHECK_CONTAINS(err.msg, "key 't.i8': value -100 out of range for u32");
    CHECK_EQ_INT(eng_gguf_get_u32(g, "t.u64", &u32, &err), ENG_EFORMAT);
    CHECK_EQ_INT(eng_gguf_get_i64(g, "t.u64", &i64, &err), ENG_EFORMAT);
    CHECK_EQ_INT(eng_gguf_get_u32(g, "t.str", &u32, &err), ENG_EFORMAT);
    CHECK_CONTAINS(err.msg, "key 't.str': type string, expected an integer");
    CHECK_CONTAINS(err.msg, path);
    float f;
    OKE(eng_gguf_get_f32(g, "t.f64", &f, &err));       /* f64 narrows */
    CHECK(isinf(f));
    CHECK_EQ_INT(eng_gguf_get_f32(g, "t.u32", &f, &err), ENG_EFORMAT);
    CHECK_EQ_INT(eng_gguf_get_u32(g, "no.such", &u32, &err), ENG_EFORMAT);
    CHECK_CONTAINS(err.msg, "key 'no.such' is missing");
    CHECK(!eng_gguf_has(g, "no.such") && eng_gguf_find_key(g, "no.such") == -1);
    OKE(eng_gguf_get_u32_or(g, "no.such", 77, &u32, &err));
    CHECK_EQ_INT(u32, 77);
    OKE(eng_gguf_get_f32_or(g, "no.such", 1e4f, &f, &err));
    CHECK(f == 1e4f);
    bool b = false;
    OKE(eng_gguf_get_bool_or(g, "no.such", true, &b, &err));
    CHECK(b);
    CHECK_EQ_INT(eng_gguf_get_u32_or(g, "t.str", 1, &u32, &err), ENG_EFORMAT);  /* present, wrong */
    eng_gguf_str s;
    CHECK_EQ_INT(eng_gguf_get_str(g, "t.u8", &s, &err), ENG_EFORMAT);
    int64_t ai;
    CHECK_EQ_INT(eng_gguf_get_arr(g, "t.u8", &ai, &err), ENG_EFORMAT);
    CHECK_EQ_INT(eng_gguf_kv_arr_str(g, 0, 0, &s, &err), ENG_EINVAL);  /* kv 0 is no array */
    char buf[4];
    OKE(eng_gguf_get_str(g, "t.str", &s, &err));
    CHECK_EQ_STR(eng_gguf_str_copy(s, buf, sizeof buf), "hel");         /* truncates safely */
    eng_gguf_free(g);
}

/* Writes one tensor of each listed type and checks bytes, offsets, sizes. */
static void roundtrip_tensors(uint32_t align)
{
    static const int types[] = {ENG_TYPE_F32, ENG_TYPE_F16, ENG_TYPE_BF16, ENG_TYPE_Q8_0,
                                ENG_TYPE_Q4_0, ENG_TYPE_Q4_K, ENG_TYPE_Q6_K, ENG_TYPE_Q5_0,
                                ENG_TYPE_I32, ENG_TYPE_MXFP4};
    enum { NT = sizeof types / sizeof types[0] };
    const char *path = tst_path("t.gguf");
    eng_gguf_writer *w = wopen(path);
    eng_err err = {0};
    if (align != 32)
        OKE(eng_gguf_writer_set_u32(w, "general.alignment", align, &err));
    OKE(eng_gguf_writer_set_str(w, "general.architecture", "test", &err));
    uint8_t *data[NT];
    uint64_t nb[NT];
    for (int i = 0; i < NT; i++) {
        char name[32];
        snprintf(name, sizeof name, "blk.%d.%s", i, eng_type_name(types[i]));
        int64_t ne[3] = {eng_format_get(types[i])->blck * 3, 5, 1 + i % 2};
        int64_t idx;
        OKE(eng_gguf_writer_add_tensor(w, name, types[i], 2 + i % 2, ne, &idx, &err));
        CHECK_EQ_INT(idx, i);
        nb[i] = eng_gguf_writer_tensor_nbytes(w, i);
        CHECK_EQ_INT(nb[i], eng_type_row_bytes(types[i], ne[0]) * 5 * (1 + i % 2));
        data[i] = tst_alloc(nb[i]);
        for (uint64_t j = 0; j < nb[i]; j++)
            data[i][j] = (uint8_t)(j * 7 + i);
    }
    OKE(eng_gguf_writer_write_header(w, &err));
    for (int i = 0; i < NT; i++) {
        if (i % 2)   /* odd tensors streamed in uneven chunks */
            for (uint64_t off = 0; off < nb[i]; off += 7)
                OKE(eng_gguf_writer_append(w, data[i] + off, nb[i] - off < 7 ? nb[i] - off : 7, &err));
        else
            OKE(eng_gguf_writer_write_tensor_data(w, i, data[i], nb[i], &err));
    }
    OKE(eng_gguf_writer_finish(w, &err));
    eng_gguf_writer_free(w);

    eng_gguf *g;
    OKE(eng_gguf_open(&g, path, &err));
    CHECK_EQ_INT(eng_gguf_alignment(g), align);
    CHECK_EQ_INT(eng_gguf_tensor_count(g), NT);
    CHECK_EQ_INT(eng_gguf_data_offset(g) % align, 0);
    uint64_t expect_off = 0;
    for (int i = 0; i < NT; i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
        REQUIRE(t);
        CHECK(eng_gguf_find_tensor(g, t->name) == t);
        CHECK_EQ_INT(t->type, types[i]);
        CHECK_EQ_INT(t->n_dims, 2 + i % 2);
        CHECK_EQ_INT(t->ne[1], 5);
        CHECK_EQ_INT(t->ne[3], 1);
        CHECK_EQ_INT(t->nbytes, nb[i]);
        CHECK_EQ_INT(t->offset, expect_off);    /* llama.cpp's offset rule */
        CHECK_EQ_INT(t->file_offset, eng_gguf_data_offset(g) + t->offset);
        CHECK_EQ_INT(t->file_offset % align, 0);
        CHECK_EQ_INT(((uintptr_t)t->data) % align, 0);
        CHECK(memcmp(t->data, data[i], nb[i]) == 0);
        expect_off = (t->offset + t->nbytes + align - 1) / align * align;
    }
    CHECK(eng_gguf_find_tensor(g, "nope") == NULL);
    const eng_gguf_tensor *last = eng_gguf_tensor_at(g, NT - 1);
    CHECK_EQ_INT(eng_gguf_file_size(g), last->file_offset + last->nbytes);
    eng_gguf_free(g);
}

TEST(roundtrip_every_tensor_type_align_32) { roundtrip_tensors(32); }
TEST(roundtrip_every_tensor_type_align_64) { roundtrip_tensors(64); }
TEST(roundtrip_every_tensor_type_align_4096) { roundtrip_tensors(4096); }

TEST(open_mem_matches_open)
{
    const char *path = tst_path("m.gguf");
    eng_gguf_writer *w = wopen(path);
    eng_err err = {0};
    write_all_kv_types(w, &err);
    OKE(eng_gguf_writer_finish(w, &err));
    eng_gguf_writer_free(w);
    size_t len;
    char *bytes = tst_read_file(path, &len);
    REQUIRE(bytes);
    eng_gguf *g;
    OKE(eng_gguf_open_mem(&g, bytes, len, "mem.gguf", &err));
    CHECK_EQ_STR(eng_gguf_path(g), "mem.gguf");
    CHECK_EQ_INT(eng_gguf_file_size(g), len);
    check_all_kv_types(g);
    eng_gguf_free(g);
}

TEST(writer_rejects_misuse_and_leaves_no_file)
{
    const char *path = tst_path("bad.gguf");
    eng_gguf_writer *w = wopen(path);
    eng_err err = {0};
    int64_t ne[2] = {32, 2};
    OKE(eng_gguf_writer_set_u32(w, "k", 1, &err));
    CHECK_EQ_INT(eng_gguf_writer_set_u32(w, "k", 2, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "duplicate key 'k'");
    CHECK_EQ_INT(eng_gguf_writer_set_u32(w, "general.alignment", 48, &err), ENG_EINVAL);
    CHECK_EQ_INT(eng_gguf_writer_set_u32(w, "general.alignment", 4, &err), ENG_EINVAL);
    CHECK_EQ_INT(eng_gguf_writer_add_tensor(w, "q", ENG_TYPE_Q8_0, 2, (int64_t[]){33, 1}, NULL, &err),
                 ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "block size");
    CHECK_EQ_INT(eng_gguf_writer_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123",
                                            ENG_TYPE_F32, 2, ne, NULL, &err), ENG_EINVAL);
    CHECK_EQ_INT(eng_gguf_writer_add_tensor(w, "x", 4, 2, ne, NULL, &err), ENG_EINVAL);
    CHECK_EQ_INT(eng_gguf_writer_add_tensor(w, "x", ENG_TYPE_F32, 5, ne, NULL, &err), ENG_EINVAL);
    OKE(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 2, ne, NULL, &err));
    OKE(eng_gguf_writer_add_tensor(w, "b", ENG_TYPE_F32, 2, ne, NULL, &err));
    CHECK_EQ_INT(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 2, ne, NULL, &err), ENG_EINVAL);
    CHECK_EQ_INT(eng_gguf_writer_set_u32(w, "general.alignment", 64, &err), ENG_ESTATE);
    OKE(eng_gguf_writer_write_header(w, &err));
    CHECK_EQ_INT(eng_gguf_writer_set_u32(w, "late", 1, &err), ENG_ESTATE);
    float buf[64] = {0};
    CHECK_EQ_INT(eng_gguf_writer_write_tensor_data(w, 1, buf, 256, &err), ENG_EINVAL);  /* order */
    CHECK_CONTAINS(err.msg, "out of order");
    CHECK_EQ_INT(eng_gguf_writer_write_tensor_data(w, 0, buf, 255, &err), ENG_EINVAL);  /* size */
    CHECK_CONTAINS(err.msg, "255 bytes given, 256 expected");
    OKE(eng_gguf_writer_write_tensor_data(w, 0, buf, 256, &err));
    CHECK_EQ_INT(eng_gguf_writer_finish(w, &err), ENG_EINVAL);       /* 'b' missing */
    CHECK_CONTAINS(err.msg, "tensor 'b'");
    eng_gguf_writer_free(w);
    CHECK(access(path, F_OK) != 0);
    char *ls;
    CHECK_EQ_INT(tst_sh(&ls, NULL, "ls -A %s | grep -v '^.sh'; true", tst_tmpdir()), 0);
    CHECK_EQ_STR(ls, "");       /* temporary file removed too */
}

TEST(writer_open_fails_cleanly)
{
    eng_gguf_writer *w;
    eng_err err = {0};
    CHECK_EQ_INT(eng_gguf_writer_open(&w, "/nonexistent-dir/x.gguf", &err), ENG_EIO);
    CHECK(w == NULL);
    CHECK_CONTAINS(err.msg, "/nonexistent-dir/x.gguf");
}

TEST(empty_tensors_and_zero_tensors)
{
    const char *path = tst_path("e.gguf");
    eng_gguf_writer *w = wopen(path);
    eng_err err = {0};
    OKE(eng_gguf_writer_add_tensor(w, "empty", ENG_TYPE_F32, 2, (int64_t[]){0, 4}, NULL, &err));
    OKE(eng_gguf_writer_add_tensor(w, "one", ENG_TYPE_F32, 1, (int64_t[]){1}, NULL, &err));
    OKE(eng_gguf_writer_write_header(w, &err));
    float one = 1.0f;
    OKE(eng_gguf_writer_write_tensor_data(w, 1, &one, 4, &err));  /* skips the empty one */
    OKE(eng_gguf_writer_finish(w, &err));
    eng_gguf_writer_free(w);
    eng_gguf *g;
    OKE(eng_gguf_open(&g, path, &err));
    CHECK_EQ_INT(eng_gguf_tensor_at(g, 0)->nbytes, 0);
    CHECK_EQ_INT(eng_gguf_tensor_at(g, 1)->offset, 0);
    CHECK(*(const float *)eng_gguf_tensor_at(g, 1)->data == 1.0f);
    eng_gguf_free(g);
}
