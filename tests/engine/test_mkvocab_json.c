/* test_mkvocab_json.c — the tokenizer.json reader of `mkmodel
 * --vocab-from`: handcrafted byte-level and SentencePiece-style files read
 * as llama.cpp's converter would write them, the files beside it, and one
 * handcrafted broken file per check (hostile input). */
#include "tests/test.h"

#include "engine/mkvocab.h"
#include "engine/tokenizer.h"

#include <stdlib.h>

/* Qwen-style: ByteLevel + the Qwen2 split, merges in both formats, added
 * tokens: special, not special but looking special, user-defined. */
static const char k_bpe[] =
    "{\"version\": \"1.0\", \"normalizer\": {\"type\": \"NFC\"},\n"
    " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [\n"
    "   {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n"
    "\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
    "\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false},\n"
    "   {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]},\n"
    " \"decoder\": {\"type\": \"ByteLevel\"},\n"
    " \"added_tokens\": [\n"
    "   {\"id\": 9, \"content\": \"<|im_start|>\", \"special\": true},\n"
    "   {\"id\": 10, \"content\": \"<|fim_pad|>\", \"special\": false},\n"
    "   {\"id\": 11, \"content\": \"<think>\", \"special\": false},\n"
    "   {\"id\": 13, \"content\": \"a\\u2581b\", \"special\": false}],\n"
    " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"\\u0120\": 3,"
    " \"ab\": 4, \"\\u0120a\": 5, \"abc\": 6, \"x y\": 7, \"\\u0120ab\": 8},\n"
    "   \"merges\": [\"a b\", [\"\\u0120\", \"a\"], [\"ab\", \"c\"], [\"x\", \" y\"]]}}\n";

static const char k_spm[] =
    "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\","
    " \"prepend\": \"\\u2581\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"},"
    " \"content\": \"\\u2581\"}]},\n"
    " \"pre_tokenizer\": null,\n"
    " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteFallback\"}]},\n"
    " \"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
    " {\"id\": 1, \"content\": \"<s>\", \"special\": true},"
    " {\"id\": 2, \"content\": \"</s>\", \"special\": true}],\n"
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\":"
    " {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]},\n"
    " \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"unk_token\": \"<unk>\",\n"
    "   \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0x41>\": 3, \"\\u2581\": 4,"
    " \"h\": 5, \"i\": 6, \"hi\": 7, \"\\u2581hi\": 8, \"\\u2581h\": 9},\n"
    "   \"merges\": [\"h i\", \"\\u2581 hi\", \"\\u2581 h\"]}}\n";

static void write_text(const char *name, const char *text)
{
    tst_write_file(tst_path(name), text, strlen(text));
}

static void read_mem(eng_mkvocab *v, const char *json, const char *pre)
{
    eng_err e = {0};
    REQUIRE_MSG(eng_mkvocab_from_json_mem(v, json, strlen(json), "tok.json", pre, &e) == ENG_OK,
                "%s", e.msg);
}

TEST(byte_level_bpe_as_the_converter_writes_it)
{
    eng_mkvocab v;
    read_mem(&v, k_bpe, NULL);
    CHECK(v.from_json && !v.spm);
    CHECK_EQ_STR(v.pre, "qwen2"); /* detected from the Split regex */
    REQUIRE(v.n_tokens == 14);   /* ids 0..13; 12 is missing: padding */
    CHECK_EQ_STR(v.tokens[12], "[PAD12]");
    CHECK_EQ_INT(v.types[12], ENG_TOKEN_UNUSED);
    CHECK_EQ_INT(v.types[4], ENG_TOKEN_NORMAL);
    CHECK_EQ_INT(v.types[9], ENG_TOKEN_CONTROL);      /* special */
    CHECK_EQ_INT(v.types[10], ENG_TOKEN_CONTROL);     /* looks special: <|...|> */
    CHECK_EQ_INT(v.types[11], ENG_TOKEN_USER_DEFINED);
    CHECK_EQ_STR(v.tokens[13], "a b");                /* U+2581 as a space */
    REQUIRE(v.n_merges == 4);
    CHECK_EQ_STR(v.merges[0], "a b");
    CHECK_EQ_STR(v.merges[1], "\xc4\xa0 a");          /* a pair, joined */
    CHECK_EQ_STR(v.merges[3], "x \xc4\xa0y");         /* a space inside: U+0120 */
    CHECK(!v.has_bos && !v.has_eos && v.add_bos == -1 && v.add_eos == -1);
    /* the vocabulary tokenizes: merges, then special and user-defined texts */
    const char *toks[14];
    for (size_t i = 0; i < 14; i++)
        toks[i] = v.tokens[i];
    eng_tokenizer_desc d = {.model = "gpt2", .pre = v.pre, .n_tokens = v.n_tokens, .tokens = toks,
                            .token_types = v.types, .n_merges = v.n_merges,
                            .merges = (const char *const *)v.merges, .bos_id = -1, .eos_id = -1};
    eng_tokenizer *t;
    eng_err e = {0};
    REQUIRE_MSG(eng_tokenizer_open(&t, &d, &e) == ENG_OK, "%s", e.msg);
    int32_t *ids;
    size_t n;
    REQUIRE(eng_tokenizer_encode(t, "<|im_start|>abc ab<think>", 25, ENG_TOK_PARSE_SPECIAL, &ids,
                                 &n, &e) == ENG_OK);
    /* " ab": "a b" (rank 0) first, so the pair ("\u0120", "a") no longer applies */
    CHECK(n == 5 && ids[0] == 9 && ids[1] == 6 && ids[2] == 3 && ids[3] == 4 && ids[4] == 11);
    free(ids);
    eng_tokenizer_free(t);
    eng_mkvocab_free(&v);
    read_mem(&v, k_bpe, "deepseek-v3"); /* named: written as given */
    CHECK_EQ_STR(v.pre, "deepseek-v3");
    eng_mkvocab_free(&v);
    read_mem(&v, k_bpe, "llama3"); /* an alias: llama.cpp's main name */
    CHECK_EQ_STR(v.pre, "llama-bpe");
    eng_mkvocab_free(&v);
}

TEST(sentencepiece_style_bpe_as_a_sentencepiece_model)
{
    eng_mkvocab v;
    read_mem(&v, k_spm, NULL);
    CHECK(v.from_json && v.spm && v.add_space_prefix);
    REQUIRE(v.n_tokens == 10);
    CHECK_EQ_INT(v.types[0], ENG_TOKEN_UNKNOWN);
    CHECK_EQ_INT(v.types[1], ENG_TOKEN_CONTROL);
    CHECK_EQ_INT(v.types[3], ENG_TOKEN_BYTE);
    CHECK_EQ_INT(v.types[7], ENG_TOKEN_NORMAL);
    /* scores: minus the first merge that makes the token; others below */
    CHECK_EQ_INT((int)v.scores[7], 0);
    CHECK_EQ_INT((int)v.scores[8], -1);
    CHECK_EQ_INT((int)v.scores[9], -2);
    CHECK(v.scores[5] < -2 && v.scores[4] < -2);
    CHECK_EQ_INT(v.scores[1], 0);
    /* no tokenizer_config.json: the template adds BOS, no ids are named */
    CHECK(v.add_bos == 1 && !v.has_bos);
    eng_mkvocab_free(&v);
    eng_err e = {0};
    CHECK(eng_mkvocab_from_json_mem(&v, k_spm, strlen(k_spm), "t.json", "qwen2", &e) ==
          ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "no pre-tokenizer");
}

/* The files beside tokenizer.json: tokenizer_config.json names the special
 * tokens and add_bos; config.json pads the vocabulary and names the rest. */
TEST(tokenizer_config_and_config_beside_it)
{
    write_text("tokenizer.json", k_spm);
    write_text("tokenizer_config.json",
                   "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\","
                   " \"add_bos_token\": false, \"model_max_length\": "
                   "1000000000000000019884624838656}");
    write_text("config.json", "{\"vocab_size\": 16, \"pad_token_id\": 2,"
                                            " \"eos_token_id\": 7}");
    eng_mkvocab v;
    eng_err e = {0};
    REQUIRE_MSG(eng_mkvocab_from_json(&v, tst_path("tokenizer.json"), NULL, &e) == ENG_OK, "%s",
                e.msg);
    CHECK(v.has_bos && v.bos_id == 1 && v.has_eos && v.eos_id == 2); /* the config wins */
    CHECK(v.has_pad && v.pad_id == 2);
    CHECK_EQ_INT(v.add_bos, 0);
    CHECK_EQ_INT(v.n_tokens, 16);
    CHECK_EQ_STR(v.tokens[15], "[PAD15]");
    eng_mkvocab_free(&v);
    CHECK(eng_mkvocab_from_json(&v, tst_path("nothere.json"), NULL, &e) == ENG_EIO);
    CHECK_CONTAINS(e.msg, "nothere.json");
    write_text("config.json", "{\"vocab_size\": 16,");
    CHECK(eng_mkvocab_from_json(&v, tst_path("tokenizer.json"), NULL, &e) == ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "config.json: line");
}

/* A byte-level file with one field replaced: "%s" in the template takes
 * the model object, added tokens fixed. */
static char *bpe_with_model(const char *model)
{
    const char *fmt = "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true},"
                      " \"added_tokens\": [{\"id\": 3, \"content\": \"<|e|>\", \"special\": true}],"
                      " \"model\": %s}";
    char *s = tst_alloc(strlen(fmt) + strlen(model) + 1);
    sprintf(s, fmt, model);
    return s;
}

TEST(hostile_files_each_a_clear_error)
{
    static const struct {
        const char *json; /* a whole file, or with "M:" a model object */
        int rc;
        const char *msg;
    } k_bad[] = {
        {"{", ENG_EFORMAT, "line 1"},
        {"[]", ENG_EFORMAT, "not a JSON object"},
        {"{\"a\": 1, \"a\": 2}", ENG_EFORMAT, "duplicate"},
        {"{}", ENG_EFORMAT, "model: missing"},
        {"M:{\"type\": \"Unigram\", \"vocab\": []}", ENG_EUNSUPPORTED, "'Unigram'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", ENG_EUNSUPPORTED,
         "neither byte-level"},
        {"M:{\"type\": \"BPE\"}", ENG_EFORMAT, "model.vocab: missing"},
        {"M:{\"type\": \"BPE\", \"vocab\": {}}", ENG_EFORMAT, "model.vocab: missing or empty"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": \"0\"}}", ENG_EFORMAT, "not an integer id"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 0.5}}", ENG_EFORMAT, "not an integer id"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": -1}}", ENG_EFORMAT, "id -1 out of range"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 1e30}}", ENG_EFORMAT, "not an integer id"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 99999999}}", ENG_EFORMAT, "out of range"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}", ENG_EFORMAT, "given twice"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 11111118}}", ENG_EFORMAT,
         "ids up to 11111118 for 3 tokens: 11111116 ids would be padding"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"<|e|>\": 0}}", ENG_EFORMAT, "duplicate token texts"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": {}}", ENG_EFORMAT,
         "model.merges"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}", ENG_EFORMAT,
         "merges[0]: not 'A B'"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\", 7]}", ENG_EFORMAT,
         "merges[1]: neither"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\", \"b\", \"c\"]]}",
         ENG_EFORMAT, "neither"},
        {"M:{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"\", \"b\"]]}", ENG_EFORMAT,
         "neither"},
        {"{\"added_tokens\": 5, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true},"
         " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", ENG_EFORMAT,
         "added_tokens: not an array"},
        {"{\"added_tokens\": [{\"id\": 1, \"content\": \"\"}], \"pre_tokenizer\": {\"type\":"
         " \"ByteLevel\", \"use_regex\": true}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}",
         ENG_EFORMAT, "added_tokens[].content"},
        {"{\"added_tokens\": [{\"content\": \"x\"}], \"pre_tokenizer\": {\"type\":"
         " \"ByteLevel\", \"use_regex\": true}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}",
         ENG_EFORMAT, "added_tokens[].id"},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}},"
         " \"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\","
         " \"vocab\": {\"a\": 0}}}", ENG_EUNSUPPORTED, "--vocab-pre"},
    };
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        const char *j = k_bad[i].json;
        if (!strncmp(j, "M:", 2))
            j = bpe_with_model(j + 2);
        eng_mkvocab v;
        eng_err e = {0};
        int rc = eng_mkvocab_from_json_mem(&v, j, strlen(j), "bad.json", NULL, &e);
        CHECK_MSG(rc == k_bad[i].rc, "case %zu: rc %d, want %d (%s)", i, rc, k_bad[i].rc, e.msg);
        CHECK_MSG(strstr(e.msg, k_bad[i].msg) && strstr(e.msg, "bad.json"),
                  "case %zu: '%s' lacks '%s'", i, e.msg, k_bad[i].msg);
        CHECK(v.tokens == NULL && v.n_tokens == 0); /* nothing left allocated */
    }
    eng_mkvocab v;
    eng_err e = {0};
    CHECK(eng_mkvocab_from_json_mem(&v, k_bpe, strlen(k_bpe), "t.json", "klingon", &e) ==
          ENG_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "'klingon'");
}
