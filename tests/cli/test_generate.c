/* test_generate.c — `moebench generate` as a user meets it: text and
 * summary, the JSON object's keys, --tokens without a tokenizer, --logits,
 * determinism across threads, usage errors. */
#include "tests/test.h"
#include "tests/util/model_util.h"
#include "tests/util/util.h"

#include <jansson.h>

static json_t *run_json(const char *fmt_args, const char *model)
{
    return tu_sh_json("%s generate -m %s %s --json", tst_moebench(), model, fmt_args);
}

TEST(text_and_summary)
{
    const char *m = tu_write_preset("tiny-olmoe", "q8_0", "m.gguf");
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m %s -p 'Hello world' -n 5 --threads 1",
                        tst_moebench(), m), 0);
    CHECK_CONTAINS(err, "generated 5 tokens");
    CHECK_CONTAINS(err, "decode ");
    CHECK_CONTAINS(err, "peak RSS");
}

TEST(json_keys)
{
    const char *m = tu_write_preset("tiny-qwen2moe", "f32", "m.gguf");
    json_t *j = run_json("--tokens 5,6,7,8 -n 6 --ignore-eos", m);
    const char *keys[] = {"prompt_tokens", "tokens", "text", "decode_ms", "summary", "model", "store"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK_MSG(json_object_get(j, keys[i]), "key %s missing", keys[i]);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "prompt_tokens")), 4);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "tokens")), 6);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "decode_ms")), 6);
    json_t *s = json_object_get(j, "summary");
    CHECK_EQ_INT(json_integer_value(json_object_get(s, "generated_tokens")), 6);
    CHECK(json_real_value(json_object_get(s, "decode_tok_s")) > 0);
    CHECK(json_object_get(j, "logits") == NULL);
    json_decref(j);
}

TEST(logits_and_prompt_only)
{
    const char *m = tu_write_preset("tiny-mixtral", "f32", "m.gguf");
    json_t *a = run_json("--tokens 1,2,3 -n 0 --logits", m);
    json_t *b = run_json("--tokens 1,2,3 -n 4 --logits --threads 2", m);
    json_t *la = json_object_get(a, "logits"), *lb = json_object_get(b, "logits");
    CHECK_EQ_INT(json_array_size(la), 512);
    CHECK_EQ_INT(json_array_size(json_object_get(a, "tokens")), 0);
    /* the logits are those of the last prompt position, with or without -n */
    int same = json_array_size(la) == json_array_size(lb);
    for (size_t i = 0; same && i < json_array_size(la); i++)
        same = json_real_value(json_array_get(la, i)) == json_real_value(json_array_get(lb, i));
    CHECK(same);
    json_decref(a);
    json_decref(b);
}

TEST(threads_and_seed_give_same_tokens)
{
    const char *m = tu_write_preset("tiny-qwen3moe", "q4_0", "m.gguf");
    json_t *a = run_json("--tokens 9,8,7 -n 8 --temp 0.8 --top-k 20 --seed 3 --threads 1 --ignore-eos", m);
    json_t *b = run_json("--tokens 9,8,7 -n 8 --temp 0.8 --top-k 20 --seed 3 --threads 2 --ignore-eos", m);
    CHECK(json_equal(json_object_get(a, "tokens"), json_object_get(b, "tokens")));
    json_decref(a);
    json_decref(b);
}

TEST(no_tokenizer_needs_tokens)
{
    const char *m = tu_write_llama("d.gguf", &(tu_llama_opts){.n_expert = 4});
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate -m %s -p hi -n 1", tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "cannot tokenize the prompt");
    CHECK_CONTAINS(err, "--tokens");
    json_t *j = run_json("--tokens 1,2,3 -n 2", m);
    CHECK(json_is_null(json_object_get(j, "text")));
    CHECK_EQ_INT(json_array_size(json_object_get(j, "tokens")), 2);
    json_decref(j);
}

TEST(usage_errors)
{
    const char *m = tu_write_preset("tiny-olmoe", "f32", "m.gguf");
    const char *bad[] = {"", "--tokens 1,x", "--tokens 1 -p hi", "--tokens 1 --logits",
                         "--tokens 1 --top-p 0", "--tokens 1 -n -1", "--tokens 99999",
                         "--tokens 1 --threads 0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *err;
        int st = tst_sh(NULL, &err, "%s generate -m %s %s", tst_moebench(), m, bad[i]);
        CHECK_MSG(st == 2, "'%s': exit %d (%s)", bad[i], st, err);
    }
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate --tokens 1", tst_moebench()), 2);
    CHECK_CONTAINS(err, "-m FILE.gguf is required");
}
