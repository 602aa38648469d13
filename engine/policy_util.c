/*
 * policy_util.c — the indexed heap and the key list the built-in policies
 * share (see policy_impl.h).
 *
 * Heap invariant: for every i > 0, less(heap[(i-1)/2], heap[i]) or equal;
 * idx[heap[i]] == i; idx[k] == -1 for keys not in the heap. Priorities are
 * compared as (pa, pb, key), so no two keys compare equal.
 */
#include "engine/policy_impl.h"

#include <stdlib.h>

void *eng_policy_calloc(size_t n, size_t size, const char *what, eng_err *err)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        eng_err_set(err, ENG_ENOMEM, "policy: out of memory for %s (%zu x %zu bytes)", what,
                    n, size);
    return p;
}

int eng_pheap_init(eng_pheap *h, uint32_t n_keys, eng_err *err)
{
    h->n = 0;
    h->n_keys = n_keys;
    h->heap = eng_policy_calloc(n_keys, sizeof *h->heap, "heap", err);
    h->pa = eng_policy_calloc(n_keys, sizeof *h->pa, "heap", err);
    h->pb = eng_policy_calloc(n_keys, sizeof *h->pb, "heap", err);
    h->idx = eng_policy_calloc(n_keys, sizeof *h->idx, "heap", err);
    h->stack = eng_policy_calloc(n_keys, sizeof *h->stack, "heap", err);
    if (!h->heap || !h->pa || !h->pb || !h->idx || !h->stack) {
        eng_pheap_free(h);
        return ENG_ENOMEM;
    }
    for (uint32_t k = 0; k < n_keys; k++)
        h->idx[k] = -1;
    return ENG_OK;
}

void eng_pheap_free(eng_pheap *h)
{
    free(h->heap);
    free(h->pa);
    free(h->pb);
    free(h->idx);
    free(h->stack);
    h->heap = h->stack = NULL;
    h->pa = h->pb = NULL;
    h->idx = NULL;
    h->n = 0;
}

void eng_pheap_clear(eng_pheap *h)
{
    for (uint32_t i = 0; i < h->n; i++)
        h->idx[h->heap[i]] = -1;
    h->n = 0;
}

static int less(const eng_pheap *h, uint32_t x, uint32_t y)
{
    if (h->pa[x] != h->pa[y])
        return h->pa[x] < h->pa[y];
    if (h->pb[x] != h->pb[y])
        return h->pb[x] < h->pb[y];
    return x < y;
}

static void place(eng_pheap *h, uint32_t i, uint32_t key)
{
    h->heap[i] = key;
    h->idx[key] = (int32_t)i;
}

static void sift_up(eng_pheap *h, uint32_t i)
{
    uint32_t key = h->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!less(h, key, h->heap[parent]))
            break;
        place(h, i, h->heap[parent]);
        i = parent;
    }
    place(h, i, key);
}

static void sift_down(eng_pheap *h, uint32_t i)
{
    uint32_t key = h->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && less(h, h->heap[c + 1], h->heap[c]))
            c++;
        if (!less(h, h->heap[c], key))
            break;
        place(h, i, h->heap[c]);
        i = c;
    }
    place(h, i, key);
}

void eng_pheap_set(eng_pheap *h, uint32_t key, int64_t a, int64_t b)
{
    h->pa[key] = a;
    h->pb[key] = b;
    if (h->idx[key] < 0) {
        place(h, h->n++, key);
        sift_up(h, h->n - 1);
        return;
    }
    uint32_t i = (uint32_t)h->idx[key];
    sift_up(h, i);
    sift_down(h, (uint32_t)h->idx[key]);
}

void eng_pheap_remove(eng_pheap *h, uint32_t key)
{
    if (h->idx[key] < 0)
        return;
    uint32_t i = (uint32_t)h->idx[key];
    h->idx[key] = -1;
    uint32_t last = h->heap[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    sift_up(h, i);
    sift_down(h, (uint32_t)h->idx[last]);
}

/* Best-first walk that descends only through pinned nodes: an unpinned node
 * is a candidate and its subtree cannot beat it (heap order), and a subtree
 * whose root is not better than the best candidate is skipped. */
int eng_pheap_min(eng_pheap *h, const uint8_t *pinned, uint32_t *key)
{
    if (h->n == 0)
        return -1;
    if (!pinned || !pinned[h->heap[0]]) {
        *key = h->heap[0];
        return 0;
    }
    int64_t best = -1;
    uint32_t sp = 0;
    h->stack[sp++] = 0;
    while (sp > 0) {
        uint32_t i = h->stack[--sp], k = h->heap[i];
        if (best >= 0 && !less(h, k, h->heap[best]))
            continue;
        if (!pinned[k]) {
            best = i;
            continue;
        }
        for (uint32_t c = 2 * i + 1; c <= 2 * i + 2 && c < h->n; c++)
            h->stack[sp++] = c;
    }
    if (best < 0)
        return -1;
    *key = h->heap[best];
    return 0;
}

int eng_plist_init(eng_plist *l, uint32_t n_keys, eng_err *err)
{
    l->prev = eng_policy_calloc(n_keys, sizeof *l->prev, "list", err);
    l->next = eng_policy_calloc(n_keys, sizeof *l->next, "list", err);
    l->in = eng_policy_calloc(n_keys, sizeof *l->in, "list", err);
    if (!l->prev || !l->next || !l->in) {
        eng_plist_free(l);
        return ENG_ENOMEM;
    }
    l->head = l->tail = -1;
    return ENG_OK;
}

void eng_plist_free(eng_plist *l)
{
    free(l->prev);
    free(l->next);
    free(l->in);
    l->prev = l->next = NULL;
    l->in = NULL;
}

void eng_plist_clear(eng_plist *l)
{
    for (int32_t k = l->head; k >= 0; k = l->next[k])
        l->in[k] = 0;
    l->head = l->tail = -1;
}

void eng_plist_push_head(eng_plist *l, uint32_t key)
{
    l->prev[key] = -1;
    l->next[key] = l->head;
    if (l->head >= 0)
        l->prev[l->head] = (int32_t)key;
    else
        l->tail = (int32_t)key;
    l->head = (int32_t)key;
    l->in[key] = 1;
}

void eng_plist_remove(eng_plist *l, uint32_t key)
{
    if (!l->in[key])
        return;
    int32_t p = l->prev[key], n = l->next[key];
    if (p >= 0)
        l->next[p] = n;
    else
        l->head = n;
    if (n >= 0)
        l->prev[n] = p;
    else
        l->tail = p;
    l->in[key] = 0;
}

int eng_plist_last_unpinned(const eng_plist *l, const uint8_t *pinned, uint32_t *key)
{
    for (int32_t k = l->tail; k >= 0; k = l->prev[k]) {
        if (!pinned || !pinned[k]) {
            *key = (uint32_t)k;
            return 0;
        }
    }
    return -1;
}
