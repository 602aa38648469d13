/* test_deepseek2_cli.c — a DeepSeek-shaped model as a user meets it:
 * mkmodel, info (how the engine reads it), generate from text with and
 * without an expert cache (same tokens), a trace of the MoE layers with
 * the model's layer numbers, metrics on it, and --list. */
#include "tests/test.h"

#include <jansson.h>
#include <string.h>

TEST(deepseek2_end_to_end)
{
    const char *m = tst_path("ds.gguf"), *t = tst_path("t.moetrace");
    char *out, *err, *a, *b;
    REQUIRE(tst_sh(&out, &err, "%s mkmodel --preset tiny-deepseek2 --type q8_0 "
                               "--router-locality 0.5 -o %s", tst_moebench(), m) == 0);
    REQUIRE(tst_sh(&out, &err, "%s info %s", tst_moebench(), m) == 0);
    CHECK_CONTAINS(out, "runs 4 layers (1 dense FFN, 3 MoE); attention mla, KV cache 768 bytes");
    CHECK_CONTAINS(out, "router:      sigmoid, 2 of 4 expert groups");
    /* both traced: a trace still evaluates the prompt token by token (the
     * oracles need it), which changes quantized numerics a little */
    REQUIRE_MSG(tst_sh(&a, &err, "%s generate -m %s -p 'Once upon a time' -n 24 --ignore-eos "
                                 "--trace-out %s", tst_moebench(), m, tst_path("u.moetrace")) == 0,
                "%s", err);
    REQUIRE_MSG(tst_sh(&b, &err, "%s generate -m %s -p 'Once upon a time' -n 24 --ignore-eos "
                                 "--cache-experts 5 --policy lfu --trace-out %s",
                       tst_moebench(), m, t) == 0, "%s", err);
    CHECK_EQ_STR(a, b);
    CHECK_CONTAINS(err, "hit rate");
    REQUIRE(tst_sh(&out, &err, "%s metrics %s --bootstrap 0 --json", tst_moebench(), t) == 0);
    json_t *j = json_loads(out, 0, NULL);
    REQUIRE(j);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "num_layers")), 3);
    json_t *ml = json_object_get(j, "model_layers");
    REQUIRE(json_array_size(ml) == 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(json_integer_value(json_array_get(ml, (size_t)i)), i + 1);
    json_decref(j);
    REQUIRE(tst_sh(&out, &err, "%s trace stats %s", tst_moebench(), t) == 0);
    CHECK_CONTAINS(out, "3 layers, 8 experts, top-2");
    REQUIRE(tst_sh(&out, &err, "%s mkmodel --list", tst_moebench()) == 0);
    CHECK_CONTAINS(out, "deepseek-v3");
    CHECK_CONTAINS(out, "kimi-k2");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s mkmodel --preset tiny-olmoe --mla-legacy -o %s",
                        tst_moebench(), tst_path("x.gguf")), 2);
    CHECK_CONTAINS(err, "legacy MLA form is for deepseek2 presets");
}
