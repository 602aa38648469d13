/*
 * policy_impl.h — internals shared by the built-in policies (engine/
 * policy_*.c): an indexed binary heap and an intrusive list over keys, a
 * seeded generator, and the ops tables the registry lists. Not part of the
 * public contract (engine/policy.h is).
 */
#ifndef ENG_POLICY_IMPL_H
#define ENG_POLICY_IMPL_H

#include "engine/policy.h"

#include <stdint.h>

/* Indexed min-heap of keys ordered by (a, b, key) lexicographically: the
 * key tie-break makes every choice deterministic. O(log n) set/remove,
 * O(1) min, O(p log p)-ish min excluding p pinned keys. */
typedef struct eng_pheap {
    uint32_t *heap;    /* [n] keys, heap order                          */
    int64_t *pa, *pb;  /* [n_keys] priority of each key (valid if in heap) */
    int32_t *idx;      /* [n_keys] position in heap, -1 when absent      */
    uint32_t *stack;   /* [n_keys] scratch for eng_pheap_min             */
    uint32_t n, n_keys;
} eng_pheap;

int eng_pheap_init(eng_pheap *h, uint32_t n_keys, eng_err *err);
void eng_pheap_free(eng_pheap *h);
void eng_pheap_clear(eng_pheap *h);
/* Inserts key or changes its priority. */
void eng_pheap_set(eng_pheap *h, uint32_t key, int64_t a, int64_t b);
void eng_pheap_remove(eng_pheap *h, uint32_t key);
static inline int eng_pheap_has(const eng_pheap *h, uint32_t key) { return h->idx[key] >= 0; }
/* Smallest key whose pinned[key] is 0 (pinned may be NULL). 0 on success,
 * -1 when there is none. */
int eng_pheap_min(eng_pheap *h, const uint8_t *pinned, uint32_t *key);

/* Doubly linked list of keys, head = most recent. */
typedef struct eng_plist {
    int32_t *prev, *next;  /* [n_keys]; -1 = none                        */
    uint8_t *in;           /* [n_keys] 1 when on the list                */
    int32_t head, tail;
} eng_plist;

int eng_plist_init(eng_plist *l, uint32_t n_keys, eng_err *err);
void eng_plist_free(eng_plist *l);
void eng_plist_clear(eng_plist *l);
void eng_plist_push_head(eng_plist *l, uint32_t key);
void eng_plist_remove(eng_plist *l, uint32_t key);
/* Key nearest the tail that is not pinned; -1 when none. */
int eng_plist_last_unpinned(const eng_plist *l, const uint8_t *pinned, uint32_t *key);

/* splitmix64: small, seedable, good enough to pick victims. */
static inline uint64_t eng_prng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* calloc that reports a named failure. */
void *eng_policy_calloc(size_t n, size_t size, const char *what, eng_err *err);

extern const eng_policy_ops eng_policy_lru_ops;
extern const eng_policy_ops eng_policy_fifo_ops;
extern const eng_policy_ops eng_policy_lfu_ops;
extern const eng_policy_ops eng_policy_random_ops;
extern const eng_policy_ops eng_policy_static_ops;
extern const eng_policy_ops eng_policy_belady_ops;
extern const eng_policy_ops eng_policy_fsf_ops;
extern const eng_policy_ops eng_policy_hobbit_ops;

#endif
