/*
 * counters_perf.c — the perf_event_open(2) backend of met_counters, used
 * where PAPI's perf_event component is disabled or PAPI cannot start (and
 * when forced with MET_BACKEND_PERF).
 *
 * Names are encoded by libpfm4 (pfm_get_os_event_encoding, user level only
 * so that perf_event_paranoid = 2 allows them), the same library PAPI's
 * perf_event component uses, so perf::TASK-CLOCK and a CPU's native names
 * mean the same here as there. PAPI presets are not libpfm4 names: the few
 * with a generic perf equivalent are mapped (the status's `via` says to
 * what), the others are dropped.
 *
 * Layout: without multiplexing all events form one group (slot 0 leads) so
 * one read(2) returns every value, and an event that does not fit in the
 * group with the ones before it is dropped at set-up; with multiplexing each
 * event is its own group, the kernel time-shares counters between groups,
 * and each interval's growth is scaled by that interval's time_enabled /
 * time_running (the cumulative times are kept per slot for
 * met_counters_running_fraction). The one group of the unmultiplexed
 * layout is scaled the same way (it runs all the time unless another user
 * of the PMU pushes it off).
 */
#include "metrics/counters_impl.h"

#include <errno.h>
#include <perfmon/pfmlib_perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct {
    const char *preset, *perf;
} preset_map[] = {
    {"PAPI_TOT_INS", "perf::INSTRUCTIONS"},
    {"PAPI_TOT_CYC", "perf::CYCLES"},
    {"PAPI_REF_CYC", "perf::REF-CYCLES"},
    {"PAPI_BR_INS", "perf::BRANCH-INSTRUCTIONS"},
    {"PAPI_BR_MSP", "perf::BRANCH-MISSES"},
    {"PAPI_L1_DCM", "perf::L1-DCACHE-LOAD-MISSES"},
    {"PAPI_L1_ICM", "perf::L1-ICACHE-LOAD-MISSES"},
    {"PAPI_L3_TCM", "perf::LLC-LOAD-MISSES"},
    {"PAPI_TLB_DM", "perf::DTLB-LOAD-MISSES"},
    {"PAPI_TLB_IM", "perf::ITLB-LOAD-MISSES"},
};

static const char *map_preset(const char *name)
{
    for (size_t i = 0; i < sizeof preset_map / sizeof *preset_map; i++)
        if (!strcmp(name, preset_map[i].preset))
            return preset_map[i].perf;
    return NULL;
}

static int perf_open(struct perf_event_attr *a, int group_fd)
{
    return (int)syscall(SYS_perf_event_open, a, 0 /* this thread */, -1 /* any cpu */,
                        group_fd, PERF_FLAG_FD_CLOEXEC);
}

/* libpfm4 encoding of `name` into *a; 0 ok, else pfm's error code. */
static int encode(const char *name, struct perf_event_attr *a)
{
    memset(a, 0, sizeof *a);
    pfm_perf_encode_arg_t arg;
    memset(&arg, 0, sizeof arg);
    arg.attr = a;
    arg.size = sizeof arg;
    int rc = pfm_get_os_event_encoding(name, PFM_PLM3, PFM_OS_PERF_EVENT, &arg);
    if (rc != PFM_SUCCESS)
        return rc;
    a->size = sizeof *a;
    a->read_format = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED |
                     PERF_FORMAT_TOTAL_TIME_RUNNING;
    a->disabled = 0;
    a->inherit = 0;
    return 0;
}

/* Opens slot s's fd on the calling thread into fds[] (the group leader is
 * fds[0] unless multiplexing). Returns the fd or -1 with errno. */
static int open_slot(const met_counters *c, struct perf_event_attr *a, size_t s, const int *fds)
{
    int leader = c->multiplex || s == 0 ? -1 : fds[0];
    return perf_open(a, leader);
}

static void close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* Tries name i (encoded in *a) on top of the kept slots open in fds[]. */
static void probe_one(met_counters *c, size_t i, struct perf_event_attr *a, const char *via,
                      int *fds)
{
    size_t s = c->n;
    int fd = open_slot(c, a, s, fds);
    if (fd < 0) {
        int e = errno;
        int alone = s > 0 && !c->multiplex ? perf_open(a, -1) : -1;
        char as[160] = "";
        if (via)
            snprintf(as, sizeof as, " (as %s)", via);
        if (alone >= 0) {
            close(alone);
            met_counters_drop(c, i, "perf_event_open%s: does not fit in one group with the "
                                    "events before it (%s; try multiplexing)", as, strerror(e));
        } else {
            met_counters_drop(c, i, "perf_event_open%s: %s%s", as, strerror(e),
                              e == ENOENT ? " (no PMU counts it here: a VM without hardware "
                                            "counters?)"
                                          : e == EACCES || e == EPERM
                                              ? " (see /proc/sys/kernel/perf_event_paranoid)"
                                              : "");
        }
        return;
    }
    fds[s] = fd;
    c->attr[s] = *a;
    met_counters_keep(c, i, via);
}

int met_counters_setup_perf(met_counters *c, const char *const *names, size_t n, eng_err *err)
{
    int rc = pfm_initialize();
    if (rc != PFM_SUCCESS)
        return eng_err_set(err, ENG_EUNSUPPORTED, "libpfm4: %s", pfm_strerror(rc));
    struct perf_event_attr attr[MET_COUNTERS_MAX];
    const char *via[MET_COUNTERS_MAX];
    for (size_t i = 0; i < n; i++) { /* every name known before anything is probed */
        via[i] = map_preset(names[i]);
        if (!via[i] && !strncmp(names[i], "PAPI_", 5))
            continue; /* a preset without a perf equivalent: dropped below */
        rc = encode(via[i] ? via[i] : names[i], &attr[i]);
        if (rc != 0)
            return eng_err_set(err, ENG_EINVAL, "unknown event '%s' (libpfm4: %s)", names[i],
                               pfm_strerror(rc));
    }
    int fds[MET_COUNTERS_MAX];
    for (size_t i = 0; i < MET_COUNTERS_MAX; i++)
        fds[i] = -1;
    for (size_t i = 0; i < n; i++) {
        if (!via[i] && !strncmp(names[i], "PAPI_", 5))
            met_counters_drop(c, i, "PAPI preset without a perf_event_open equivalent");
        else
            probe_one(c, i, &attr[i], via[i], fds);
    }
    close_all(fds, MET_COUNTERS_MAX);
    return ENG_OK;
}

int met_counters_attach_perf(met_counters_thread *t, char *msg, size_t cap)
{
    met_counters *c = t->c;
    for (size_t s = 0; s < c->n; s++) {
        t->fd[s] = open_slot(c, &c->attr[s], s, t->fd);
        if (t->fd[s] < 0) {
            snprintf(msg, cap, "perf_event_open on a new thread: %s: %s",
                     met_counters_event_name(c, s), strerror(errno));
            close_all(t->fd, c->n);
            return -1;
        }
    }
    return 0;
}

/* Scales the growth since the last read by that interval's
 * enabled / running time and adds it to a running sum, so the difference of
 * two readings is the interval's own estimate. (Scaling the cumulative count
 * by the cumulative ratio instead would let a small change of the ratio
 * swing a short interval's difference by a share of the whole count.) An
 * interval in which the event never ran adds 0. */
static int64_t scale_step(met_counters_thread *t, size_t s, uint64_t v, uint64_t en,
                          uint64_t run)
{
    uint64_t dv = v - t->raw[s];
    uint64_t den = en - __atomic_load_n(&t->enabled[s], __ATOMIC_RELAXED);
    uint64_t drun = run - __atomic_load_n(&t->running[s], __ATOMIC_RELAXED);
    if (drun > 0)
        t->scaled[s] += drun >= den ? (int64_t)dv
                                    : (int64_t)((double)dv * ((double)den / (double)drun));
    t->raw[s] = v;
    __atomic_store_n(&t->enabled[s], en, __ATOMIC_RELAXED);
    __atomic_store_n(&t->running[s], run, __ATOMIC_RELAXED);
    return t->scaled[s];
}

int met_counters_read_perf(met_counters_thread *t, int64_t *vals)
{
    const met_counters *c = t->c;
    uint64_t buf[3 + MET_COUNTERS_MAX]; /* nr, time_enabled, time_running, values */
    if (!c->multiplex) {
        size_t want = (3 + c->n) * sizeof *buf;
        if (read(t->fd[0], buf, want) != (ssize_t)want || buf[0] != c->n)
            return -1;
        for (size_t s = 0; s < c->n; s++)
            vals[s] = scale_step(t, s, buf[3 + s], buf[1], buf[2]);
        return 0;
    }
    for (size_t s = 0; s < c->n; s++) {
        if (read(t->fd[s], buf, 4 * sizeof *buf) != 4 * sizeof *buf || buf[0] != 1)
            return -1;
        vals[s] = scale_step(t, s, buf[3], buf[1], buf[2]);
    }
    return 0;
}

void met_counters_detach_perf(met_counters_thread *t)
{
    close_all(t->fd, MET_COUNTERS_MAX);
}
