/* test_gguf_bad.c — hostile GGUF files, one handcrafted file per check
 * (built byte by byte with gguf_bytes.h): each must fail with the right
 * code and a message naming the problem, never crash (these also run under
 * ASan/UBSan in `make sanitize`). */
#include "tests/test.h"
#include "tests/util/gguf_bytes.h"

#include "engine/formats.h"
#include "engine/gguf.h"

#include <sys/stat.h>

/* Opens the bytes from a file on disk (the real path) and from memory; both
 * must agree. Returns the code; err gets the file variant's message. */
static int open_bytes(const gb *b, eng_err *err)
{
    const char *path = tst_path("bad.gguf");
    tst_write_file(path, b->p ? (const void *)b->p : "", b->n);  /* never NULL to fwrite */
    eng_gguf *g = (eng_gguf *)1, *gm = (eng_gguf *)1;
    eng_err em = {0};
    int rc = eng_gguf_open(&g, path, err);
    int rcm = eng_gguf_open_mem(&gm, b->p, b->n, "bad.gguf", &em);
    CHECK_EQ_INT(rc, rcm);
    if (rc) {
        CHECK(g == NULL && gm == NULL);
        CHECK_CONTAINS(err->msg, path);
    }
    eng_gguf_free(g);
    eng_gguf_free(gm);
    return rc;
}

#define EXPECT(b, code, text) do { eng_err e_ = {0};                       \
    CHECK_EQ_INT(open_bytes(&(b), &e_), code); CHECK_CONTAINS(e_.msg, text); } while (0)

TEST(valid_small_file_opens)
{
    gb b = {0};
    gb_valid_small(&b);
    eng_err err = {0};
    CHECK_EQ_INT(open_bytes(&b, &err), ENG_OK);
}

TEST(empty_file)
{
    gb b = {0};
    EXPECT(b, ENG_EFORMAT, "file is empty");
}

TEST(wrong_magic)
{
    gb b = {0};
    gb_valid_small(&b);
    memcpy(b.p, "GGML", 4);
    EXPECT(b, ENG_EFORMAT, "bad magic 47 47 4d 4c (not a GGUF file)");
}

TEST(version_1_and_4_unsupported_2_accepted)
{
    gb b = {0};
    gb_valid_small(&b);
    uint32_t v = 1;
    memcpy(b.p + 4, &v, 4);
    EXPECT(b, ENG_EUNSUPPORTED, "GGUF version 1 is not supported");
    v = 4;
    memcpy(b.p + 4, &v, 4);
    EXPECT(b, ENG_EUNSUPPORTED, "GGUF version 4 is not supported");
    v = 0x03000000;   /* a big-endian v3 file */
    memcpy(b.p + 4, &v, 4);
    EXPECT(b, ENG_EUNSUPPORTED, "big-endian");
    v = 2;
    memcpy(b.p + 4, &v, 4);
    eng_err err = {0};
    CHECK_EQ_INT(open_bytes(&b, &err), ENG_OK);
}

TEST(truncated_at_each_section_boundary)
{
    gb b = {0};
    gb_valid_small(&b);
    /* header 24 bytes; kv0 = 8+20+4+8+5 = 45; kv1 = 8+17+4+4 = 33; info a = 8+1+4+16+4+8 = 41 */
    struct { size_t len; const char *text; } cut[] = {
        {3, "magic: truncated"},         {6, "version: truncated"},
        {12, "tensor_count: truncated"}, {20, "kv_count: truncated"},
        {24, "kv_count 2 is more than"}, {30, "kv_count 2 is more than"},
        {60, "tensor_count 2 is more than the 36 bytes"}, {24 + 45, "tensor_count 2 is more"},
        {24 + 45 + 33, "tensor #0: name: truncated"},
        {24 + 45 + 33 + 41, "tensor #1: name: truncated"}, {b.n - 1, "lies outside"},
    };
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        gb t = {.p = b.p, .n = cut[i].len, .cap = cut[i].len};
        eng_err err = {0};
        CHECK_EQ_INT(open_bytes(&t, &err), ENG_EFORMAT);
        CHECK_CONTAINS(err.msg, cut[i].text);
    }
}

TEST(truncated_at_every_byte_never_opens)
{
    gb b = {0};
    gb_valid_small(&b);
    for (size_t n = 0; n < b.n; n++) {
        eng_gguf *g;
        eng_err err = {0};
        int rc = eng_gguf_open_mem(&g, b.p, n, "cut.gguf", &err);
        CHECK_MSG(rc == ENG_EFORMAT, "prefix of %zu bytes: rc %d (%s)", n, rc, err.msg);
        CHECK_MSG(strncmp(err.msg, "cut.gguf: ", 10) == 0, "message: %s", err.msg);
        eng_gguf_free(g);
    }
}

TEST(truncated_inside_a_key)
{
    gb b = {0};
    gb_header(&b, 3, 0, 1);
    gb_str(&b, "general.name");
    gb_u32(&b, 8);
    gb_u64(&b, 10);
    gb_bytes(&b, "abc", 3);
    EXPECT(b, ENG_EFORMAT, "key #0 'general.name': value: string length 10 at offset 48 exceeds the 3 bytes left");
    gb c = {0};
    gb_header(&c, 3, 0, 1);
    gb_str(&c, "general.name");
    gb_u8(&c, 8);
    EXPECT(c, ENG_EFORMAT, "key #0 'general.name': value type: truncated at offset 44 (needs 4 bytes, 1 left)");
}

TEST(absurd_counts)
{
    gb b = {0};
    gb_header(&b, 3, 0, UINT64_MAX);
    EXPECT(b, ENG_EFORMAT, "kv_count 18446744073709551615 is more than the 0 bytes left can hold");
    gb c = {0};
    gb_header(&c, 3, (uint64_t)1 << 62, 0);
    gb_zeros(&c, 100);
    EXPECT(c, ENG_EFORMAT, "tensor_count 4611686018427387904 is more than");
}

TEST(absurd_string_and_array_lengths)
{
    gb b = {0};
    gb_header(&b, 3, 0, 1);
    gb_u64(&b, UINT64_MAX - 3);   /* key length */
    gb_zeros(&b, 16);
    EXPECT(b, ENG_EFORMAT, "string length 18446744073709551612");
    gb c = {0};
    gb_header(&c, 3, 0, 1);
    gb_str(&c, "arr");
    gb_u32(&c, 9);
    gb_u32(&c, 6);                /* f32 */
    gb_u64(&c, UINT64_MAX / 2);
    gb_zeros(&c, 16);
    EXPECT(c, ENG_EFORMAT, "key #0 'arr': array of 9223372036854775807 f32 exceeds");
    gb d = {0};
    gb_header(&d, 3, 0, 1);
    gb_str(&d, "tokens");
    gb_u32(&d, 9);
    gb_u32(&d, 8);                /* strings */
    gb_u64(&d, 3);
    gb_str(&d, "a");
    gb_u64(&d, 1000);             /* second string runs off the end */
    gb_bytes(&d, "bc", 2);
    gb_zeros(&d, 40);
    EXPECT(d, ENG_EFORMAT, "key #0 'tokens': element 1: array element: string length 1000");
}

TEST(unknown_kv_type_and_nested_array)
{
    gb b = {0};
    gb_header(&b, 3, 0, 1);
    gb_str(&b, "weird");
    gb_u32(&b, 13);
    gb_u32(&b, 0);
    EXPECT(b, ENG_EFORMAT, "key #0 'weird': unknown value type 13");
    gb c = {0};
    gb_header(&c, 3, 0, 1);
    gb_str(&c, "nest");
    gb_u32(&c, 9);
    gb_u32(&c, 9);
    gb_u64(&c, 1);
    gb_zeros(&c, 16);
    EXPECT(c, ENG_EFORMAT, "key #0 'nest': nested arrays are not supported");
    gb d = {0};
    gb_header(&d, 3, 0, 1);
    gb_str(&d, "arr");
    gb_u32(&d, 9);
    gb_u32(&d, 77);
    gb_u64(&d, 0);
    EXPECT(d, ENG_EFORMAT, "key #0 'arr': unknown array element type 77");
}

TEST(duplicate_key_bad_bool_nul_in_key)
{
    gb b = {0};
    gb_header(&b, 3, 0, 2);
    gb_kv_u32(&b, "dup", 1);
    gb_kv_u32(&b, "dup", 2);
    EXPECT(b, ENG_EFORMAT, "key #1 'dup': duplicate key");
    gb c = {0};
    gb_header(&c, 3, 0, 1);
    gb_str(&c, "flag");
    gb_u32(&c, 7);
    gb_u8(&c, 2);
    EXPECT(c, ENG_EFORMAT, "key #0 'flag': invalid bool value 2");
    gb d = {0};
    gb_header(&d, 3, 0, 1);
    gb_u64(&d, 3);
    gb_bytes(&d, "a\0b", 3);
    gb_u32(&d, 4);
    gb_u32(&d, 0);
    EXPECT(d, ENG_EFORMAT, "key #0: key contains a NUL byte");
}

TEST(alignment_must_be_u32_power_of_two)
{
    gb b = {0};
    gb_header(&b, 3, 0, 1);
    gb_kv_u32(&b, "general.alignment", 48);
    EXPECT(b, ENG_EFORMAT, "key #0 'general.alignment': alignment 48 is not a power of 2");
    gb c = {0};
    gb_header(&c, 3, 0, 1);
    gb_kv_u32(&c, "general.alignment", 0);
    EXPECT(c, ENG_EFORMAT, "alignment 0 is not a power of 2");
    gb d = {0};
    gb_header(&d, 3, 0, 1);
    gb_str(&d, "general.alignment");
    gb_u32(&d, 5);  /* i32 */
    gb_u32(&d, 32);
    EXPECT(d, ENG_EFORMAT, "key #0 'general.alignment': type i32, must be u32");
    gb e = {0};
    gb_header(&e, 3, 0, 1);
    gb_kv_u32(&e, "general.alignment", 4);
    EXPECT(e, ENG_EFORMAT, "alignment 4 is not a multiple of 8");
}

/* One-tensor file: info fields given, 64 bytes of data after padding. */
static void one_tensor(gb *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
                       uint64_t offset)
{
    gb_header(b, 3, 1, 0);
    gb_info(b, name, n_dims, ne, type, offset);
    gb_pad(b, 32);
    gb_zeros(b, 64);
}

TEST(tensor_data_out_of_range)
{
    gb b = {0};
    one_tensor(&b, "w", 1, (int64_t[]){32}, 0, 0);   /* 128 bytes, only 64 there */
    EXPECT(b, ENG_EFORMAT, "tensor 'w': data [0, +128) lies outside the 64 bytes of tensor data");
    gb c = {0};
    one_tensor(&c, "w", 1, (int64_t[]){4}, 0, UINT64_MAX - 31);  /* aligned, absurd offset */
    EXPECT(c, ENG_EFORMAT, "tensor 'w': data [18446744073709551584, +16) lies outside");
}

TEST(misaligned_offset)
{
    gb b = {0};
    gb_header(&b, 3, 1, 0);
    gb_info(&b, "blk.3.ffn_down_exps.weight", 1, (int64_t[]){4}, 0, 123);
    gb_pad(&b, 32);
    gb_zeros(&b, 256);
    EXPECT(b, ENG_EFORMAT, "bad.gguf: tensor 'blk.3.ffn_down_exps.weight': offset 123 not aligned to 32");
}

TEST(absurd_dimensions)
{
    gb b = {0};
    one_tensor(&b, "big", 4, (int64_t[]){1 << 20, 1 << 20, 1 << 20, 1 << 20}, 0, 0);
    EXPECT(b, ENG_EFORMAT, "tensor 'big': element count overflows");
    gb c = {0};
    one_tensor(&c, "neg", 2, (int64_t[]){4, -1}, 0, 0);
    EXPECT(c, ENG_EFORMAT, "tensor 'neg': dimension 1 is negative");
    gb d = {0};
    one_tensor(&d, "huge", 2, (int64_t[]){INT64_MAX, 1}, 0, 0);  /* bytes overflow */
    EXPECT(d, ENG_EFORMAT, "tensor 'huge':");
    gb e = {0};
    one_tensor(&e, "dims", 5, (int64_t[]){1, 1, 1, 1, 1}, 0, 0);
    EXPECT(e, ENG_EFORMAT, "tensor 'dims': n_dims 5 exceeds 4");
    gb f = {0};
    one_tensor(&f, "q", 1, (int64_t[]){33}, ENG_TYPE_Q8_0, 0);
    EXPECT(f, ENG_EFORMAT, "tensor 'q': ne0 = 33 is not a multiple of q8_0's block size 32");
    gb g = {0};   /* 2^62 rows of 1 element: elements fit, bytes (x4) overflow */
    one_tensor(&g, "rows", 2, (int64_t[]){1, INT64_C(1) << 62}, 0, 0);
    EXPECT(g, ENG_EFORMAT, "tensor 'rows': byte count overflows");
}

TEST(unknown_tensor_type)
{
    gb b = {0};
    one_tensor(&b, "blk.0.attn_q.weight", 1, (int64_t[]){32}, 4, 0);  /* removed Q4_2 */
    EXPECT(b, ENG_EUNSUPPORTED, "tensor 'blk.0.attn_q.weight': unknown ggml type 4");
    gb c = {0};
    one_tensor(&c, "t", 1, (int64_t[]){32}, 1000, 0);
    EXPECT(c, ENG_EUNSUPPORTED, "unknown ggml type 1000");
}

TEST(duplicate_and_long_tensor_names)
{
    gb b = {0};
    gb_header(&b, 3, 2, 0);
    gb_info(&b, "w", 1, (int64_t[]){4}, 0, 0);
    gb_info(&b, "w", 1, (int64_t[]){4}, 0, 32);
    gb_pad(&b, 32);
    gb_zeros(&b, 64);
    EXPECT(b, ENG_EFORMAT, "tensor 'w': duplicate tensor name");
    char name[65];
    memset(name, 'n', 64);
    name[64] = '\0';
    gb c = {0};
    one_tensor(&c, name, 1, (int64_t[]){4}, 0, 0);
    EXPECT(c, ENG_EFORMAT, "tensor #0: name 'nnnn");
    CHECK(1);
    gb d = {0};
    name[63] = '\0';   /* 63 bytes is the longest allowed */
    one_tensor(&d, name, 1, (int64_t[]){4}, 0, 0);
    eng_err err = {0};
    CHECK_EQ_INT(open_bytes(&d, &err), ENG_OK);
}

TEST(missing_file_and_directory_are_io_errors)
{
    eng_gguf *g;
    eng_err err = {0};
    CHECK_EQ_INT(eng_gguf_open(&g, tst_path("nope.gguf"), &err), ENG_EIO);
    CHECK_CONTAINS(err.msg, "No such file or directory");
    CHECK_EQ_INT(eng_gguf_open(&g, tst_tmpdir(), &err), ENG_EIO);
    CHECK_CONTAINS(err.msg, "not a regular file");
}
