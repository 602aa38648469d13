/* test_tokenize.c — `moebench tokenize` (ids and pieces, -p/-f/--jsonl,
 * special tokens, errors), `mkmodel --vocab-from` end to end, and
 * `generate --no-special`. */
#include "tests/test.h"

#include <stdlib.h>

static const char *synthetic_model(void)
{
    const char *path = tst_path("m.gguf");
    char *out, *err;
    REQUIRE(tst_sh(&out, &err, "%s mkmodel --preset tiny-qwen3moe --layers 1 -o %s",
                   tst_moebench(), path) == 0);
    return path;
}

/* A small Qwen-style tokenizer.json with special and user-defined tokens. */
static const char k_json[] =
    "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [\n"
    "   {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n"
    "\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
    "\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\"},\n"
    "   {\"type\": \"ByteLevel\", \"use_regex\": false}]},\n"
    " \"added_tokens\": [{\"id\": 9, \"content\": \"<|im_start|>\", \"special\": true},\n"
    "                  {\"id\": 10, \"content\": \"<think>\", \"special\": false}],\n"
    " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"\\u0120\": 3,"
    " \"ab\": 4, \"abc\": 5, \"<\": 6, \"|\": 7, \">\": 8, \"\\u010a\": 11, \"i\": 12, \"m\": 13,"
    " \"_\": 14, \"s\": 15, \"t\": 16, \"r\": 17},\n"
    "   \"merges\": [\"a b\", \"ab c\"]}}\n";

static const char *json_model(void)
{
    const char *json = tst_path("tokenizer.json"), *path = tst_path("j.gguf");
    tst_write_file(json, k_json, strlen(k_json));
    char *out, *err;
    int rc = tst_sh(&out, &err, "%s mkmodel --preset tiny-qwen3moe --layers 1 --vocab-from %s -o %s",
                    tst_moebench(), json, path);
    REQUIRE_MSG(rc == 0, "%s", err);
    return path;
}

TEST(tokenize_help_and_usage_errors)
{
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize --help", tst_moebench()), 0);
    CHECK_CONTAINS(out, "usage: moebench tokenize -m FILE.gguf");
    CHECK_CONTAINS(out, "--no-special");
    static const struct {
        const char *args, *msg;
    } bad[] = {
        {"-p x", "-m FILE.gguf is required"},
        {"-m m.gguf", "give exactly one of -p TEXT, -f FILE and --jsonl FILE"},
        {"-m m.gguf -p x -f y", "give exactly one of"},
        {"-m m.gguf -f y --escape", "--escape applies to -p TEXT"},
        {"-m m.gguf -p x --frobnicate", "unknown option '--frobnicate'"},
        {"-m m.gguf -p x extra", "unexpected argument 'extra'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize %s", tst_moebench(), bad[i].args), 2);
        CHECK_CONTAINS(err, bad[i].msg);
    }
}

TEST(tokenize_prints_ids_and_pieces)
{
    const char *m = synthetic_model();
    char *out, *err, *ids;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s -p 'The model. 42'", tst_moebench(), m), 0);
    CHECK_EQ_STR(err, "");
    /* every line: a right-aligned id, an arrow, the quoted piece */
    size_t nlines = 0;
    char pieces[256] = "";
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"), nlines++) {
        int id, n = 0;
        CHECK_MSG(sscanf(l, "%6d -> '%n", &id, &n) == 1 && n > 0, "line '%s'", l);
        size_t len = strlen(l);
        REQUIRE(len > (size_t)n && l[len - 1] == '\'');
        strncat(pieces, l + n, len - (size_t)n - 1);
    }
    CHECK_EQ_STR(pieces, "The model. 42"); /* the pieces spell the text */
    CHECK(nlines >= 4 && nlines < 13);     /* merges apply; qwen2 splits digits */
    CHECK_EQ_INT(tst_sh(&ids, &err, "%s tokenize -m %s -p 'The model. 42' --ids", tst_moebench(), m), 0);
    CHECK(ids[0] == '[' && strstr(ids, "]\n"));
    /* -f reads the bytes as they are, a final newline included: one more token */
    tst_write_file(tst_path("t.txt"), "The model. 42\n", 14);
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s -f %s --ids", tst_moebench(), m,
                        tst_path("t.txt")), 0);
    CHECK(!strncmp(out, ids, strlen(ids) - 2) && strlen(out) > strlen(ids));
    /* --escape, and pieces with control characters escaped */
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s -e -p 'a\\tb\\n'", tst_moebench(), m), 0);
    CHECK_CONTAINS(out, "'\\t'");
    CHECK_CONTAINS(out, "'\\n'");
    /* --jsonl: one list per string */
    tst_write_file(tst_path("c.jsonl"), "\"The model. 42\"\n\n\"x\"\n", 21);
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s --jsonl %s", tst_moebench(), m,
                        tst_path("c.jsonl")), 0);
    CHECK(!strncmp(out, ids, strlen(ids) - 1));
    CHECK_EQ_INT(strchr(out, '\n') && strchr(strchr(out, '\n') + 1, '\n') &&
                 !strchr(strchr(strchr(out, '\n') + 1, '\n') + 1, '\n'), 1); /* two lines */
    tst_write_file(tst_path("bad.jsonl"), "\"ok\"\n42\n", 8);
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s --jsonl %s", tst_moebench(), m,
                        tst_path("bad.jsonl")), 2);
    CHECK_CONTAINS(err, "bad.jsonl:2: not a JSON string");
}

TEST(tokenize_bad_files)
{
    char *out, *err;
    /* a missing file cannot be read: exit 1, as generate */
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s -p x", tst_moebench(), tst_path("no.gguf")), 1);
    CHECK_CONTAINS(err, "no.gguf");
    tst_write_file(tst_path("junk.gguf"), "GGUF junk", 9);
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s -p x", tst_moebench(), tst_path("junk.gguf")), 2);
    CHECK_CONTAINS(err, "junk.gguf");
    const char *m = synthetic_model();
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s -f %s", tst_moebench(), m,
                        tst_path("missing.txt")), 1);
    CHECK_CONTAINS(err, "missing.txt");
}

TEST(vocab_from_tokenizer_json_end_to_end)
{
    const char *m = json_model();
    char *out, *err;
    /* n_vocab follows the tokenizer: 18 ids */
    CHECK_EQ_INT(tst_sh(&out, &err, "%s info %s --kv", tst_moebench(), m), 0);
    CHECK_CONTAINS(out, "token_embd.weight");
    CHECK_CONTAINS(out, "64 x 18");
    CHECK_CONTAINS(out, "tokenizer.ggml.pre");
    CHECK_CONTAINS(out, "qwen2");
    /* special tokens parsed by default; user-defined ones always */
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s -p '<|im_start|>abc<think>ab' --ids",
                        tst_moebench(), m), 0);
    CHECK_EQ_STR(out, "[9, 5, 10, 4]\n");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s -p '<|im_start|>abc<think>ab' --ids "
                        "--no-special", tst_moebench(), m), 0);
    CHECK_EQ_STR(out, "[6, 7, 12, 13, 14, 15, 16, 0, 17, 16, 7, 8, 5, 10, 4]\n");
    /* a control token shows its text */
    CHECK_EQ_INT(tst_sh(&out, &err, "%s tokenize -m %s -p '<|im_start|>'", tst_moebench(), m), 0);
    CHECK_CONTAINS(out, "     9 -> '<|im_start|>'");
}

TEST(vocab_from_errors)
{
    char *out, *err;
    const char *json = tst_path("tokenizer.json");
    tst_write_file(json, "{\"model\": 5", 11);
    CHECK_EQ_INT(tst_sh(&out, &err, "%s mkmodel --preset tiny-qwen3moe --vocab-from %s -o %s",
                        tst_moebench(), json, tst_path("x.gguf")), 2);
    CHECK_CONTAINS(err, "tokenizer.json: line 1");
    tst_write_file(json, k_json, strlen(k_json));
    CHECK_EQ_INT(tst_sh(&out, &err, "%s mkmodel --preset tiny-qwen3moe --vocab-from %s "
                        "--vocab-pre klingon -o %s", tst_moebench(), json, tst_path("x.gguf")), 2);
    CHECK_CONTAINS(err, "'klingon' is not supported");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s mkmodel --preset tiny-qwen3moe --vocab-pre gpt-4o -o %s",
                        tst_moebench(), tst_path("x.gguf")), 2);
    CHECK_CONTAINS(err, "--vocab-pre needs --vocab-from");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s mkmodel --preset tiny-qwen3moe --vocab spm --vocab-from "
                        "%s -o %s", tst_moebench(), json, tst_path("x.gguf")), 2);
    CHECK_CONTAINS(err, "exclude each other");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s mkmodel --preset tiny-qwen3moe --vocab-from %s -o %s",
                        tst_moebench(), tst_path("none.json"), tst_path("x.gguf")), 1);
    CHECK_CONTAINS(err, "none.json");
}

TEST(generate_parses_special_tokens_unless_no_special)
{
    const char *m = synthetic_model();
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m %s -p 'hi<|endoftext|>' -n 0 --json",
                        tst_moebench(), m), 0);
    CHECK_CONTAINS(out, "\"prompt_tokens\":3");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m %s -p 'hi<|endoftext|>' -n 0 --json "
                        "--no-special", tst_moebench(), m), 0);
    CHECK(!strstr(out, "\"prompt_tokens\":3"));
    CHECK_CONTAINS(out, "\"prompt_tokens\":");
}
