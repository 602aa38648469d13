/*
 * test_llamacpp_golden.c — decode logits bit for bit equal to llama.cpp
 * 82bb485's, on the tiny preset of every architecture.
 *
 * The hashes below are FNV-1a of the logits (16 positions x 512 floats, as
 * bytes) that llama.cpp computed token by token on the same files (CPU,
 * F32 KV cache, flash attention off, no weight repacking, 1 thread),
 * recorded outside the repository (`golden.sh`, docs/engine.md "Checking
 * against llama.cpp") once with its native AVX-512 build and once with
 * ggml-cpu built for AVX2; each is checked against the engine's path of
 * that instruction set, where the CPU has it. f32 files are the sensitive
 * case: no activation rounding hides an ulp, so every operation of the
 * forward pass must be ggml's (matrix products, attention, softmax, RoPE,
 * SwiGLU, norms); q8_0 and q4_k_m add the activation conversions. (f16,
 * bf16 and mxfp4, whose bf16 matrices, depend on the CPU's AVX512-FP16 /
 * AVX512-BF16 extensions, are left to the comparison outside.)
 *
 * The files come from mkmodel (seed 5, router locality 0.5), whose bytes
 * are hashed too: if mkmodel's output changes, that check fails first and
 * the logits' hashes must be recorded again with llama.cpp.
 */
#include "engine/formats.h"
#include "engine/model.h"
#include "engine/session.h"
#include "tests/util/model_util.h"
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *preset, *type;
    uint64_t file, avx512, avx2;   /* FNV-1a of the GGUF bytes, of llama.cpp's logits per build */
} k_golden[] = {
    {"tiny-mixtral", "f32", 0xdc8e8c34d30e6ab3ull, 0x30ba1369e79e0f0full, 0x053ac98a890d9e35ull},
    {"tiny-mixtral", "q8_0", 0xdf6e0f5c3457df8full, 0x587a33a697939940ull, 0x587a33a697939940ull},
    {"tiny-mixtral", "q4_k_m", 0x3e71c0be41dfe21cull, 0x75bb9fc59a252dc0ull, 0x75bb9fc59a252dc0ull},
    {"tiny-qwen2moe", "f32", 0xb9a9e475bd1229fbull, 0xb020b0daa6935dbfull, 0x69beef6e47a78a64ull},
    {"tiny-qwen2moe", "q8_0", 0xc77ceb402c89dd42ull, 0x857945e576c4d343ull, 0x800da711542cdb14ull},
    {"tiny-qwen2moe", "q4_k_m", 0x619828779f8902e9ull, 0xb3f660f81e5d80fcull, 0xb3f660f81e5d80fcull},
    {"tiny-qwen3moe", "f32", 0x7aad70267aac91b6ull, 0x50cdaf7b25bd7473ull, 0xbb4210d78558697aull},
    {"tiny-qwen3moe", "q8_0", 0xf2813bbe6b29c4e6ull, 0x0e0ceb7086f3224aull, 0x0e0ceb7086f3224aull},
    {"tiny-qwen3moe", "q4_k_m", 0x659824b80148ab2cull, 0xd659ca0926a22cacull, 0xd659ca0926a22cacull},
    {"tiny-olmoe", "f32", 0x2618af9bc33da9c3ull, 0x105ed426cceff692ull, 0xa639b813593893a4ull},
    {"tiny-olmoe", "q8_0", 0xe25eb575e9628548ull, 0xde2bbd5e2ee50c87ull, 0xde2bbd5e2ee50c87ull},
    {"tiny-olmoe", "q4_k_m", 0xb02dc2334c824eb2ull, 0xe49f72b028248718ull, 0xe49f72b028248718ull},
    {"tiny-deepseek2", "f32", 0xf71cd9dc642b7f85ull, 0x2f810834f624b10full, 0x1c55a0e169f1ad99ull},
    {"tiny-deepseek2", "q8_0", 0x3282963cc953cfd0ull, 0xe3f2b6d33228100bull, 0x413c2832cb8652ddull},
    {"tiny-deepseek2", "q4_k_m", 0x5a4509d20d5e54a0ull, 0x88da969f4ba2348aull, 0x88da969f4ba2348aull},
    {"tiny-deepseek2-lite", "f32", 0x8bd574848816730cull, 0xe456079a5875de08ull, 0x16d26b7ce0b7e4eeull},
    {"tiny-deepseek2-lite", "q8_0", 0x349ced99535e09c1ull, 0x259e01a2e2de9c1aull, 0x259e01a2e2de9c1aull},
    {"tiny-deepseek2-lite", "q4_k_m", 0x8117913146653548ull, 0xc15347222102c8ddull, 0xc15347222102c8ddull},
    {"tiny-gpt-oss", "f32", 0xa8080535d081701aull, 0x0d2586b3a38a36a8ull, 0x8d8691a53ed565e2ull},
    {"tiny-gpt-oss", "q8_0", 0xd477286df09a1d5bull, 0xd4ac062ddce395ddull, 0xd4ac062ddce395ddull},
    {"tiny-gpt-oss", "q4_k_m", 0x8848b6dcf7dc9cabull, 0x5a39f9a45aa618ceull, 0x5a39f9a45aa618ceull},
    {"tiny-glm4moe", "f32", 0x675ac8415159e6e3ull, 0x7f305ea1da08667eull, 0xdfc877157e499dbaull},
    {"tiny-glm4moe", "q8_0", 0x7ea683d0abaff492ull, 0xaf978c852b09d817ull, 0xaf978c852b09d817ull},
    {"tiny-glm4moe", "q4_k_m", 0x1c4d6b36764eac5dull, 0xb2ab6d6952eda357ull, 0xb2ab6d6952eda357ull},
};

static const int32_t k_tokens[] = {1, 17, 42, 99, 5, 300, 7, 255, 33, 411, 12, 64, 200, 9, 150, 77};
enum { NT = sizeof k_tokens / sizeof k_tokens[0] };

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= ((const uint8_t *)p)[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t file_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    REQUIRE_MSG(f, "open %s", path);
    uint64_t h = 1469598103934665603ull;
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        h = fnv1a(h, buf, n);
    fclose(f);
    return h;
}

/* The logits of the tokens decoded one by one on SIMD path simd, hashed. */
static uint64_t logits_hash(const char *path, const char *simd)
{
    setenv("MOEBENCH_SIMD", simd, 1);   /* each test runs in its own process */
    eng_model *m = tu_open(path);
    eng_session *s = tu_session(m, 1, NT + 16, 0);
    const int64_t nv = eng_model_hparams(m)->n_vocab;
    eng_err e = {0};
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < NT; i++) {
        REQUIRE_MSG(eng_session_decode(s, k_tokens[i], &e) == 0, "decode: %s", e.msg);
        h = fnv1a(h, eng_session_logits(s), (size_t)nv * sizeof(float));
    }
    eng_session_free(s);
    eng_model_free(m);
    unsetenv("MOEBENCH_SIMD");
    return h;
}

TEST(decode_logits_bit_identical_to_llama_cpp)
{
    const bool has[2] = {eng_simd_available(ENG_SIMD_AVX512), eng_simd_available(ENG_SIMD_AVX2)};
    if (!has[0] && !has[1]) {
        printf("neither AVX-512 nor AVX2 here: no llama.cpp build to compare with\n");
        return;
    }
    int checked = 0;
    for (size_t i = 0; i < sizeof k_golden / sizeof k_golden[0]; i++) {
        const char *path = tu_write_model(k_golden[i].preset, k_golden[i].type, 5, 0.5, "g.gguf");
        const uint64_t fh = file_hash(path);
        CHECK_MSG(fh == k_golden[i].file,
                  "%s %s: mkmodel wrote other bytes (hash %016llx, recorded %016llx): record the "
                  "logits' hashes again with llama.cpp", k_golden[i].preset, k_golden[i].type,
                  (unsigned long long)fh, (unsigned long long)k_golden[i].file);
        if (fh != k_golden[i].file)
            continue;
        for (int b = 0; b < 2; b++) {
            if (!has[b])
                continue;
            const char *simd = b ? "avx2" : "avx512";
            const uint64_t want = b ? k_golden[i].avx2 : k_golden[i].avx512;
            const uint64_t got = logits_hash(path, simd);
            CHECK_MSG(got == want, "%s %s on %s: logits hash %016llx, llama.cpp's %016llx",
                      k_golden[i].preset, k_golden[i].type, simd, (unsigned long long)got,
                      (unsigned long long)want);
            checked++;
        }
    }
    printf("%d files x paths bit-identical to llama.cpp\n", checked);
}
