/* test_hooks.c — region names are stable (they are database keys). */
#include "tests/test.h"

#include "engine/hooks.h"

TEST(region_names_are_unique_and_stable)
{
    CHECK_EQ_STR(eng_region_name(ENG_REGION_EMBED), "embed");
    CHECK_EQ_STR(eng_region_name(ENG_REGION_EXPERT_WAIT), "expert_wait");
    CHECK_EQ_STR(eng_region_name(ENG_REGION_SAMPLING), "sampling");
    CHECK_EQ_STR(eng_region_name(ENG_REGION_COUNT), "unknown");
    for (int a = 0; a < ENG_REGION_COUNT; a++)
        for (int b = a + 1; b < ENG_REGION_COUNT; b++)
            CHECK(strcmp(eng_region_name(a), eng_region_name(b)) != 0);
}
