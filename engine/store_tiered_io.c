/*
 * store_tiered_io.c — the tiered store's slow tier: reading an expert's
 * slices from the file (O_DIRECT or buffered + fadvise) or over the
 * emulated link, and the loader threads that run those reads off the
 * forward pass (store_tiered_impl.h; design notes in store_tiered.c).
 */
#include "engine/store_tiered_impl.h"

#include "engine/lowprec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- I/O ----------------------------------------------------------------- */

/* Reads len bytes at off, up to EOF; returns bytes read or -errno. */
static int64_t pread_full(int fd, void *buf, uint64_t len, uint64_t off)
{
    uint64_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        got += (uint64_t)r;
    }
    return (int64_t)got;
}

const char *tiered_file_name(const tiered *t)
{
    return t->o.file ? t->o.file : eng_model_path(t->m);
}

/* The file a slot's copy is read from (the model's, or the companion's for
 * a low copy): descriptors and name. */
typedef struct src_file {
    const int *fd_direct;
    int fd_buf;
    const char *name;
} src_file;

/* One slice into dst (region bytes); *p points at the slice. Unlocked. */
static int read_slice(const src_file *f, unsigned char *dst, const eng_expert_mat *mat,
                      const void **p, eng_err *err)
{
    const uint64_t len = (uint64_t)mat->n_out * mat->row_bytes, off = mat->file_offset;
    const int fd_direct = __atomic_load_n(f->fd_direct, __ATOMIC_RELAXED);
    if (fd_direct >= 0) {
        uint64_t a0 = off & ~(uint64_t)(ALIGN - 1);
        uint64_t a1 = (off + len + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
        int64_t r = pread_full(fd_direct, dst, a1 - a0, a0);
        if (r >= 0 && (uint64_t)r >= off + len - a0) {
            *p = dst + (off - a0);
            return ENG_OK;
        }
        if (r != -EINVAL && r >= 0)
            return eng_err_set(err, ENG_EIO,
                               "%s: read %" PRId64 " of %" PRIu64 " bytes at offset %" PRIu64
                               ": the file is shorter than the model (truncated?)",
                               f->name,
                               r > (int64_t)(off - a0) ? r - (int64_t)(off - a0) : 0, len, off);
        if (r != -EINVAL)
            return eng_err_set(err, ENG_EIO, "%s: read at offset %" PRIu64 ": %s",
                               f->name, off, strerror((int)-r));
        /* O_DIRECT refused late: documented fallback to buffered reads */
    }
    int64_t r = pread_full(f->fd_buf, dst, len, off);
    if (r < 0)
        return eng_err_set(err, ENG_EIO, "%s: read at offset %" PRIu64 ": %s", f->name,
                           off, strerror((int)-r));
    if ((uint64_t)r < len)
        return eng_err_set(err, ENG_EIO,
                           "%s: read %" PRId64 " of %" PRIu64 " bytes at offset %" PRIu64
                           ": the file is shorter than the model (truncated?)",
                           f->name, r, len, off);
    (void)posix_fadvise(f->fd_buf, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
    *p = dst;
    return ENG_OK;
}

/* With a companion, slot buffers fit the copy loaded into them (the
 * slot is LOADING and pinned: only this loader touches it). */
static int size_buffer(tiered *t, slot *sl, const uint64_t *region, int n, eng_err *err)
{
    uint64_t need = 0;
    for (int i = 0; i < n; i++)
        need += region[i];
    if (!t->o.lowprec || (t->o.tier == ENG_TIER_LINK && t->o.link_mode == ENG_LINK_MAP) ||
        sl->buf_cap == need)
        return ENG_OK;
    free(sl->buf);
    sl->buf_cap = 0;
    if (posix_memalign((void **)&sl->buf, ALIGN, need) != 0) {
        sl->buf = NULL;
        return eng_err_set(err, ENG_ENOMEM, "tiered store: out of memory for a slot of %" PRIu64
                           " bytes", need);
    }
    sl->buf_cap = need;
    return ENG_OK;
}

static int load_slot(tiered *t, slot *sl, eng_err *err)
{
    eng_expert_weights w;
    const int layer = sl->key / t->E, expert = sl->key % t->E;
    int rc = sl->low ? eng_lowprec_locate(t->o.lowprec, layer, expert, &w, err)
                     : eng_expert_locate(t->m, layer, expert, &w, err);
    if (rc)
        return rc;
    const int n = w.n_slices;
    const uint64_t *region = sl->low ? t->lp_region : t->region;
    if ((rc = size_buffer(t, sl, region, n, err)))
        return rc;
    unsigned char *dst[ENG_SLICE_MAX] = {NULL}; /* no buffers in link mode map */
    uint64_t off = 0;
    for (int i = 0; sl->buf && i < n; off += region[i++])
        dst[i] = sl->buf + off;
    if (t->o.tier == ENG_TIER_LINK) {
        void *d[ENG_SLICE_MAX];
        const void *src[ENG_SLICE_MAX];
        uint64_t len[ENG_SLICE_MAX];
        for (int i = 0; i < n; i++) {
            d[i] = dst[i];
            src[i] = w.mat[i].data;
            len[i] = (uint64_t)w.mat[i].n_out * w.mat[i].row_bytes;
            /* map: the slot refers to the bytes in RAM, no copy */
            sl->p[i] = t->o.link_mode == ENG_LINK_MAP ? src[i] : dst[i];
        }
        uint64_t ns = t->o.link_mode == ENG_LINK_MAP
                          ? eng_link_wait(w.bytes, t->o.link_gbps, t->o.link_latency_us)
                          : eng_link_copy_segs(d, src, len, n, t->o.link_gbps,
                                               t->o.link_latency_us);
        double target = t->o.link_latency_us * 1e3 + (double)w.bytes / t->o.link_gbps;
        pthread_mutex_lock(&t->mu);
        t->link_target_ns += target;
        t->link_actual_ns += (double)ns;
        pthread_mutex_unlock(&t->mu);
        return ENG_OK;
    }
    const src_file f = sl->low ? (src_file){&t->fdl_direct, t->fdl_buf,
                                            eng_lowprec_path(t->o.lowprec)}
                               : (src_file){&t->fd_direct, t->fd_buf, tiered_file_name(t)};
    for (int i = 0; i < n; i++)
        if ((rc = read_slice(&f, dst[i], &w.mat[i], &sl->p[i], err)))
            return rc;
    return ENG_OK;
}

void *tiered_loader_main(void *arg)
{
    tiered *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->stop && t->q_len == 0)
            pthread_cond_wait(&t->qcv, &t->mu);
        if (t->stop)
            break;
        int si = t->q[t->q_head];
        t->q_head = (t->q_head + 1) % (t->n_slots + 1);
        t->q_len--;
        slot *sl = &t->slots[si];
        pthread_mutex_unlock(&t->mu);
        ENG_HOOK(&t->s->hooks, region_begin, ENG_REGION_EXPERT_LOAD);
        uint64_t t0 = tiered_now_ns();
        eng_err e = {0};
        int rc = load_slot(t, sl, &e);
        uint64_t dt = tiered_now_ns() - t0;
        ENG_HOOK(&t->s->hooks, region_end, ENG_REGION_EXPERT_LOAD);
        pthread_mutex_lock(&t->mu);
        sl->state = rc ? SLOT_FAILED : SLOT_READY;
        if (rc)
            sl->err = e;
        sl->load_ns = dt;
        sl->done_pending = true;
        t->lc[sl->key / t->E].load_ns += dt;
        tiered_slot_sync_pin(t, si);
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Queues a load (demand loads jump ahead of prefetches). Lock held. */
void tiered_enqueue(tiered *t, int si, bool front)
{
    int cap = t->n_slots + 1;
    if (front) {
        t->q_head = (t->q_head + cap - 1) % cap;
        t->q[t->q_head] = si;
    } else {
        t->q[(t->q_head + t->q_len) % cap] = si;
    }
    t->q_len++;
    pthread_cond_signal(&t->qcv);
}

/* Takes slot si's load out of the queue if no loader has started it;
 * returns whether it did. Lock held. */
bool tiered_dequeue(tiered *t, int si)
{
    const int cap = t->n_slots + 1;
    for (int i = 0; i < t->q_len; i++) {
        if (t->q[(t->q_head + i) % cap] != si)
            continue;
        for (int j = i; j + 1 < t->q_len; j++)
            t->q[(t->q_head + j) % cap] = t->q[(t->q_head + j + 1) % cap];
        t->q_len--;
        return true;
    }
    return false;
}

/* A demand waits on slot si, a prefetch still queued: its load goes to the
 * front, ahead of prefetches for later layers. Lock held. */
void tiered_promote(tiered *t, int si)
{
    const int cap = t->n_slots + 1;
    for (int i = 0; i < t->q_len; i++) {
        if (t->q[(t->q_head + i) % cap] != si)
            continue;
        for (int j = i; j > 0; j--)
            t->q[(t->q_head + j) % cap] = t->q[(t->q_head + j - 1) % cap];
        t->q[t->q_head] = si;
        return;
    }
}
