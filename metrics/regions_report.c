/*
 * regions_report.c — derived metrics and the region table (text and JSON)
 * of a met_regions object, built only on the public queries of regions.h
 * and counters.h.
 *
 * Derived metrics need their inputs among the kept events, found by name:
 * instructions = PAPI_TOT_INS | perf::INSTRUCTIONS |
 * perf::PERF_COUNT_HW_INSTRUCTIONS, cycles = PAPI_TOT_CYC | perf::CYCLES |
 * perf::CPU-CYCLES | perf::PERF_COUNT_HW_CPU_CYCLES. An event counts as a
 * "miss" event (per 1000 instructions) when its name contains MISS or it is
 * a PAPI cache/TLB/branch-miss preset (PAPI_*_?CM, PAPI_*_LDM/STM,
 * PAPI_TLB_*, PAPI_BR_MSP).
 * Where an input is missing the value is NAN: printed "-", JSON null.
 */
#include "metrics/regions.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int name_in(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(name, *list))
            return 1;
    return 0;
}

/* Slot of the first kept event named in list, -1 if none. */
static int find_slot(const met_counters *c, const char *const *list)
{
    for (size_t s = 0; s < met_counters_count(c); s++)
        if (name_in(met_counters_event_name(c, s), list))
            return (int)s;
    return -1;
}

static const char *const ins_names[] = {"PAPI_TOT_INS", "perf::INSTRUCTIONS",
                                        "perf::PERF_COUNT_HW_INSTRUCTIONS", NULL};
static const char *const cyc_names[] = {"PAPI_TOT_CYC", "perf::CYCLES", "perf::CPU-CYCLES",
                                        "perf::PERF_COUNT_HW_CPU_CYCLES", NULL};
static const char *const task_clock_names[] = {"perf::TASK-CLOCK",
                                               "perf::PERF_COUNT_SW_TASK_CLOCK", NULL};

static int is_miss_event(const char *name)
{
    if (strcasestr(name, "MISS"))
        return 1;
    if (strncmp(name, "PAPI_", 5))
        return 0;
    /* PAPI_L1_DCM, PAPI_L2_TCM, ... (_?CM) and PAPI_L1_LDM/STM (_LDM, _STM) */
    size_t n = strlen(name);
    int cm = n > 8 && name[n - 4] == '_' && !strcmp(name + n - 2, "CM");
    int ldst = n > 9 && (!strcmp(name + n - 4, "_LDM") || !strcmp(name + n - 4, "_STM"));
    return cm || ldst || !strncmp(name, "PAPI_TLB_", 9) || !strcmp(name, "PAPI_BR_MSP");
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : NAN;
}

int met_regions_derived(const met_regions *r, eng_region reg, met_region_derived *out)
{
    met_region_stats s;
    int rc = met_regions_total(r, reg, &s);
    if (rc)
        return rc;
    const met_counters *c = met_regions_counters(r);
    double wall = (double)s.v[MET_S_WALL_NS];
    int ins = find_slot(c, ins_names), cyc = find_slot(c, cyc_names);
    int tc = find_slot(c, task_clock_names);
    double ninst = ins >= 0 ? (double)s.v[MET_S_EVENT0 + ins] : NAN;
    out->ipc = ins >= 0 && cyc >= 0 ? ratio(ninst, (double)s.v[MET_S_EVENT0 + cyc]) : NAN;
    out->cpu_util = ratio((double)(s.v[MET_S_USER_NS] + s.v[MET_S_SYS_NS]), wall);
    out->task_clock_util = tc >= 0 ? ratio((double)s.v[MET_S_EVENT0 + tc], wall) : NAN;
    out->gflops = s.flops > 0 ? ratio(s.flops, wall) : NAN;
    out->wall_ns_per_token = ratio(wall, (double)met_regions_tokens(r));
    out->token_share = ratio(wall, (double)met_regions_token_time_ns(r));
    for (size_t k = 0; k < MET_COUNTERS_MAX; k++)
        out->mpki[k] = NAN;
    for (size_t k = 0; k < met_counters_count(c); k++)
        if (ins >= 0 && is_miss_event(met_counters_event_name(c, k)))
            out->mpki[k] = ratio(1000.0 * (double)s.v[MET_S_EVENT0 + k], ninst);
    return ENG_OK;
}

/* ---- text ------------------------------------------------------------- */

static void print_num(FILE *f, double v, const char *fmt)
{
    if (isnan(v))
        fprintf(f, " %10s", "-");
    else
        fprintf(f, fmt, v);
}

static void print_events_status(const met_counters *c, FILE *f)
{
    fprintf(f, "counters: backend %s%s", met_backend_name(met_counters_backend(c)),
            met_counters_multiplexed(c) ? ", multiplexed" : "");
    if (met_counters_backend_note(c)[0])
        fprintf(f, " (%s)", met_counters_backend_note(c));
    fprintf(f, "\n  counted:");
    for (size_t k = 0; k < met_counters_count(c); k++)
        fprintf(f, " %s", met_counters_event_name(c, k));
    fprintf(f, "%s\n", met_counters_count(c) ? "" : " no events (wall time and rusage only)");
    for (size_t i = 0; i < met_counters_requested(c); i++) {
        const met_event_status *st = met_counters_status(c, i);
        if (!st->active)
            fprintf(f, "  dropped %s: %s\n", st->name, st->reason);
    }
    char msg[256];
    int te = met_counters_thread_errors(c, msg, sizeof msg);
    if (te)
        fprintf(f, "  %d thread(s) without events: %s\n", te, msg);
}

/* Column heading of an event: the name after its PMU prefix
 * ("perf::TASK-CLOCK" -> "TASK-CLOCK"); the JSON keeps full names. */
static const char *short_name(const char *name)
{
    const char *p = strstr(name, "::");
    return p ? p + 2 : name;
}

static int col_width(const char *name)
{
    int w = (int)strlen(short_name(name));
    return w < 12 ? 12 : w;
}

static void print_region_row(const met_regions *r, eng_region g, FILE *f)
{
    const met_counters *c = met_regions_counters(r);
    met_region_stats s;
    met_region_derived d;
    met_regions_total(r, g, &s);
    met_regions_derived(r, g, &d);
    fprintf(f, "%-14s %9llu %11.3f", eng_region_name(g), (unsigned long long)s.calls,
            (double)s.v[MET_S_WALL_NS] / 1e6);
    print_num(f, d.wall_ns_per_token / 1e3, " %10.1f");
    print_num(f, 100 * d.token_share, " %9.1f%%");
    fprintf(f, " %10.3f %10.3f %8lld %8lld %8lld %8lld", (double)s.v[MET_S_USER_NS] / 1e6,
            (double)s.v[MET_S_SYS_NS] / 1e6, (long long)s.v[MET_S_MINFLT],
            (long long)s.v[MET_S_MAJFLT], (long long)s.v[MET_S_NVCSW],
            (long long)s.v[MET_S_NIVCSW]);
    for (size_t k = 0; k < met_counters_count(c); k++)
        fprintf(f, " %*lld", col_width(met_counters_event_name(c, k)),
                (long long)s.v[MET_S_EVENT0 + k]);
    fprintf(f, "\n");
}

static void print_derived(const met_regions *r, FILE *f)
{
    const met_counters *c = met_regions_counters(r);
    fprintf(f, "\n%-14s %10s %10s %10s %10s  %s\n", "derived", "IPC", "cpu_util", "task_clk",
            "GFLOP/s", "misses/1000 instructions");
    for (int g = 0; g < ENG_REGION_COUNT; g++) {
        met_region_stats s;
        met_region_derived d;
        met_regions_total(r, (eng_region)g, &s);
        if (!s.calls)
            continue;
        met_regions_derived(r, (eng_region)g, &d);
        fprintf(f, "%-14s", eng_region_name((eng_region)g));
        print_num(f, d.ipc, " %10.3f");
        print_num(f, d.cpu_util, " %10.3f");
        print_num(f, d.task_clock_util, " %10.3f");
        print_num(f, d.gflops, " %10.3f");
        fprintf(f, " ");
        for (size_t k = 0; k < met_counters_count(c); k++)
            if (!isnan(d.mpki[k]))
                fprintf(f, " %s=%.3f", met_counters_event_name(c, k), d.mpki[k]);
        fprintf(f, "\n");
    }
}

static void print_tokens_and_loads(const met_regions *r, FILE *f)
{
    size_t nt = met_regions_tokens(r);
    int64_t tt = met_regions_token_time_ns(r);
    fprintf(f, "tokens %zu, token time %.3f ms (%.3f ms/token), threads %d\n", nt, tt / 1e6,
            nt ? tt / 1e6 / (double)nt : 0.0, met_regions_threads(r));
    met_regions_loads l;
    met_regions_load_stats(r, &l);
    met_region_stats ld;
    met_regions_total(r, ENG_REGION_EXPERT_LOAD, &ld);
    if (l.loads)
        fprintf(f, "expert loads %llu, %llu bytes (%.0f bytes/token), %.3f GB/s per load, "
                   "%.3f GB/s over expert_load region time\n",
                (unsigned long long)l.loads, (unsigned long long)l.bytes,
                nt ? (double)l.bytes / (double)nt : 0.0,
                l.ns ? (double)l.bytes / (double)l.ns : 0.0,
                ld.v[MET_S_WALL_NS] > 0 ? (double)l.bytes / (double)ld.v[MET_S_WALL_NS] : 0.0);
    char msg[256];
    uint64_t ne = met_regions_errors(r, msg, sizeof msg);
    if (ne)
        fprintf(f, "nesting errors %llu (first: %s)\n", (unsigned long long)ne, msg);
}

void met_regions_print(const met_regions *r, FILE *f)
{
    const met_counters *c = met_regions_counters(r);
    print_events_status(c, f);
    print_tokens_and_loads(r, f);
    fprintf(f, "\n%-14s %9s %11s %10s %10s %10s %10s %8s %8s %8s %8s", "region", "calls",
            "wall_ms", "us/token", "share", "user_ms", "sys_ms", "minflt", "majflt", "vcsw",
            "ivcsw");
    for (size_t k = 0; k < met_counters_count(c); k++) {
        const char *name = met_counters_event_name(c, k);
        fprintf(f, " %*s", col_width(name), short_name(name));
    }
    fprintf(f, "\n");
    for (int g = 0; g < ENG_REGION_COUNT; g++) {
        met_region_stats s;
        met_regions_total(r, (eng_region)g, &s);
        if (s.calls)
            print_region_row(r, (eng_region)g, f);
    }
    print_derived(r, f);
}
