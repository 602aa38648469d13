/*
 * fuzz_policy.c — libFuzzer target: an arbitrary byte string drives every
 * built-in policy through the handle (demand accesses, pins, unpins,
 * prefetch-style victim/evict/insert, resets). The handle must answer every
 * call with a code, never crash, and keep its invariants: a victim is
 * resident and unpinned, the resident count never exceeds the capacity.
 *
 *   make fuzz && build-fuzz/fuzz_policy -max_total_time=60
 */
#include "engine/policy.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_policy(const char *name, const uint8_t *d, size_t n)
{
    enum { NK = 16 };
    uint32_t keys[256];
    int64_t ts[257];
    size_t na = n < 256 ? n : 256;
    for (size_t i = 0; i < na; i++) {
        keys[i] = d[i] % NK;
        ts[i] = (int64_t)i;
    }
    ts[na] = (int64_t)na;
    eng_policy_future f = {keys, (int64_t)na, ts, (int64_t)na};
    uint64_t prof[NK];
    for (int i = 0; i < NK; i++)
        prof[i] = (uint64_t)(i * 7 % 5);
    eng_policy_config cfg = {.capacity = n ? 1u + d[0] % 8 : 1, .n_keys = NK, .seed = n,
                             .lookahead = 1 + (int)(n % 4), .lfu_age = (int64_t)(n % 3),
                             .profile = prof};
    eng_policy *p;
    eng_err err = {0};
    if (eng_policy_open(&p, name, &cfg, &err) || eng_policy_reset(p, &f, &err)) {
        eng_policy_free(p);
        return;
    }
    int64_t pos = 0;
    for (size_t i = 0; i < na; i++) {
        uint8_t op = d[i] >> 4;
        uint32_t key = keys[i], v;
        eng_policy_result r;
        if (op < 10) {
            eng_policy_demand(p, keys[pos < (int64_t)na ? pos : 0], pos, &r, &err);
            pos++;
        } else if (op < 12) {
            eng_policy_pin(p, key, &err);
        } else if (op < 14) {
            eng_policy_unpin(p, key);
        } else if (op == 14 && eng_policy_victim(p, &v, &err) == 0) {
            if (!eng_policy_is_cached(p, v) || eng_policy_evict(p, v, &err) != 0)
                abort();
            eng_policy_insert(p, key, pos, &err);
        } else if (op == 15 && d[i] == 0xff) {
            eng_policy_reset(p, &f, &err);
            pos = 0;
        }
        if (eng_policy_cached_count(p) > eng_policy_capacity(p))
            abort();
    }
    eng_policy_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < eng_policy_builtin_count(); i++)
        run_policy(eng_policy_builtin(i)->name, data, size);
    return 0;
}
