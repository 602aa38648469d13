/*
 * cmd_events.c — `moebench events`: which PAPI presets and native events
 * (libpfm4 names) can be counted on this machine, and why not where not.
 * With --preset NAME or --events LIST it instead builds the event set that
 * a run would use (metrics/counters.h) and shows which events it keeps,
 * which it drops and why.
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "metrics/counters.h"
#include "metrics/papi.h"

#include <getopt.h>
#include <jansson.h>
#include <papi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench events [--json] [--presets | --native] [--countable]\n"
    "                       [--match TEXT]\n"
    "       moebench events (--preset NAME | --events LIST) [--backend B]\n"
    "                       [--multiplex] [--json]\n\n"
    "Lists PAPI preset events and the native events of PAPI's active components\n"
    "(libpfm4 names such as perf::TASK-CLOCK), each probed by starting it alone:\n"
    "'yes' means it counted here, 'no' comes with PAPI's reason. Where PAPI's\n"
    "perf_event component is disabled (no PMU found), the perf:: events are\n"
    "listed and probed through perf_event_open(2), the backend a run falls back to.\n\n"
    "  --json        one JSON object: papi_version, components, events\n"
    "  --presets     presets only\n"
    "  --native      native events only\n"
    "  --countable   only events that can be counted here\n"
    "  --match TEXT  only events whose name contains TEXT (case-insensitive)\n"
    "  --preset NAME the event set preset NAME would give here: default, cache,\n"
    "                branch, software, or all (every preset)\n"
    "  --events LIST the same for a comma-separated list of event names\n"
    "  --backend B   with --preset/--events: auto (default), papi or perf\n"
    "                (perf_event_open + libpfm4, without PAPI)\n"
    "  --multiplex   with --preset/--events: let events share counters\n"
    "  -h, --help    this text\n";

typedef struct events_opts {
    int json, kinds, countable_only;
    const char *match;
    const char *preset, *list;   /* --preset / --events: show a set instead */
    met_counters_opts copts;
} events_opts;

static int keep(const events_opts *o, const met_event_info *e)
{
    if (o->countable_only && !e->countable)
        return 0;
    return !o->match || strcasestr(e->name, o->match) != NULL;
}

static void print_json(const events_opts *o, const met_papi_component *comps, size_t nc,
                       const met_event_info *ev, size_t n)
{
    json_t *root = json_object();
    char ver[32];
    snprintf(ver, sizeof ver, "%d.%d.%d", PAPI_VERSION_MAJOR(PAPI_VERSION),
             PAPI_VERSION_MINOR(PAPI_VERSION), PAPI_VERSION_REVISION(PAPI_VERSION));
    json_object_set_new(root, "papi_version", json_string(ver));
    json_t *jc = json_array();
    for (size_t i = 0; i < nc; i++)
        json_array_append_new(jc, json_pack("{s:s, s:b, s:s, s:i}", "name", comps[i].name,
                                            "enabled", comps[i].enabled, "reason",
                                            comps[i].reason, "native_events",
                                            comps[i].num_native));
    json_object_set_new(root, "components", jc);
    /* Which backend counts perf:: events here (see metrics/papi.h). */
    json_object_set_new(root, "perf_events_via",
                        json_string(met_papi_perf_component_active() ? "papi"
                                                                     : "perf_event_open"));
    json_t *je = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!keep(o, &ev[i]))
            continue;
        json_t *e = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s}", "name", ev[i].name, "kind",
                              ev[i].kind == MET_EVENT_PRESET ? "preset" : "native",
                              "component", ev[i].component, "countable", ev[i].countable,
                              "reason", ev[i].reason, "description", ev[i].descr);
        json_array_append_new(je, e);
    }
    json_object_set_new(root, "events", je);
    json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(root);
}

static void print_table(const events_opts *o, const met_papi_component *comps, size_t nc,
                        const met_event_info *ev, size_t n)
{
    printf("PAPI components:\n");
    for (size_t i = 0; i < nc; i++)
        printf("  %-20s %s%s\n", comps[i].name, comps[i].enabled ? "active" : "disabled: ",
               comps[i].enabled ? "" : comps[i].reason);
    if (!met_papi_perf_component_active())
        printf("  %-20s fallback: perf:: events are counted through perf_event_open(2)\n",
               "perf_event_open");
    size_t shown = 0, countable = 0;
    printf("\n%-44s %-6s %s\n", "EVENT", "COUNT", "DESCRIPTION / WHY NOT");
    for (size_t i = 0; i < n; i++) {
        if (!keep(o, &ev[i]))
            continue;
        shown++;
        countable += ev[i].countable != 0;
        printf("%-44s %-6s %s\n", ev[i].name, ev[i].countable ? "yes" : "no",
               ev[i].countable ? ev[i].descr : ev[i].reason);
    }
    printf("\n%zu events listed, %zu countable here.\n", shown, countable);
}

/* ---- --preset / --events: the set a run would use ---------------------- */

static json_t *set_json(const char *label, const met_counters *c)
{
    json_t *ev = json_array();
    for (size_t i = 0; i < met_counters_requested(c); i++) {
        const met_event_status *s = met_counters_status(c, i);
        json_array_append_new(ev, json_pack("{s:s, s:b, s:s, s:s}", "name", s->name, "used",
                                            s->active, "via", s->via, "reason", s->reason));
    }
    return json_pack("{s:s, s:s, s:s, s:b, s:I, s:o}", "set", label, "backend",
                     met_backend_name(met_counters_backend(c)), "backend_note",
                     met_counters_backend_note(c), "multiplexed", met_counters_multiplexed(c),
                     "used", (json_int_t)met_counters_count(c), "events", ev);
}

static void set_text(const char *label, const met_counters *c)
{
    printf("%s: backend %s%s%s%s\n", label, met_backend_name(met_counters_backend(c)),
           met_counters_multiplexed(c) ? ", multiplexed" : "",
           met_counters_backend_note(c)[0] ? " — " : "", met_counters_backend_note(c));
    for (size_t i = 0; i < met_counters_requested(c); i++) {
        const met_event_status *s = met_counters_status(c, i);
        if (s->active)
            printf("  %-28s used%s%s\n", s->name, s->via[0] ? " as " : "", s->via);
        else
            printf("  %-28s DROPPED: %s\n", s->name, s->reason);
    }
    printf("  %zu of %zu events used; wall time and getrusage are always recorded.\n",
           met_counters_count(c), met_counters_requested(c));
}

/* Opens one set; prints it (or appends it to arr). Returns an ENG code. */
static int show_set(const events_opts *o, const char *preset, const char *list, json_t *arr,
                    eng_err *err)
{
    met_counters *c;
    int rc = preset ? met_counters_open_preset(&c, preset, &o->copts, err)
                    : met_counters_open_list(&c, list, &o->copts, err);
    if (rc)
        return rc;
    char label[160];
    snprintf(label, sizeof label, preset ? "preset %s" : "events %s", preset ? preset : list);
    if (arr)
        json_array_append_new(arr, set_json(label, c));
    else
        set_text(label, c);
    met_counters_free(c);
    return ENG_OK;
}

static int run_sets(const events_opts *o)
{
    eng_err err = {0};
    json_t *arr = o->json ? json_array() : NULL;
    int rc = ENG_OK;
    if (o->list) {
        rc = show_set(o, NULL, o->list, arr, &err);
    } else if (!strcmp(o->preset, "all")) {
        for (size_t i = 0; !rc && met_preset_name(i); i++) {
            if (i && !arr)
                putchar('\n');
            rc = show_set(o, met_preset_name(i), NULL, arr, &err);
        }
    } else {
        rc = show_set(o, o->preset, NULL, arr, &err);
    }
    if (!rc && arr) {
        json_t *root = json_pack("{s:o}", "sets", arr);
        json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(root);
    } else if (arr) {
        json_decref(arr);
    }
    return rc ? hx_cli_fail("events", rc, "%s", err.msg) : HX_CLI_EXIT_OK;
}

static int parse_backend(const char *v, met_backend *b)
{
    if (!strcmp(v, "auto"))
        *b = MET_BACKEND_AUTO;
    else if (!strcmp(v, "papi"))
        *b = MET_BACKEND_PAPI;
    else if (!strcmp(v, "perf"))
        *b = MET_BACKEND_PERF;
    else
        return hx_cli_usage_error("events", "--backend: '%s' is not auto, papi or perf", v);
    return 0;
}

static int run_catalogue(const events_opts *o);

int hx_cli_cmd_events(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'},     {"presets", no_argument, 0, 'p'},
        {"native", no_argument, 0, 'n'},   {"countable", no_argument, 0, 'c'},
        {"match", required_argument, 0, 'm'}, {"help", no_argument, 0, 'h'},
        {"preset", required_argument, 0, 'P'}, {"events", required_argument, 0, 'E'},
        {"backend", required_argument, 0, 'B'}, {"multiplex", no_argument, 0, 'X'},
        {0, 0, 0, 0},
    };
    events_opts o = {.kinds = MET_EVENT_PRESET | MET_EVENT_NATIVE};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': o.json = 1; break;
        case 'p': o.kinds = MET_EVENT_PRESET; break;
        case 'n': o.kinds = MET_EVENT_NATIVE; break;
        case 'c': o.countable_only = 1; break;
        case 'm': o.match = optarg; break;
        case 'P': o.preset = optarg; break;
        case 'E': o.list = optarg; break;
        case 'X': o.copts.multiplex = 1; break;
        case 'B':
            if (parse_backend(optarg, &o.copts.backend))
                return HX_CLI_EXIT_USAGE;
            break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("events", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hx_cli_usage_error("events", "unexpected argument '%s'", argv[optind]);
    if (o.preset && o.list)
        return hx_cli_usage_error("events", "--preset and --events exclude each other");
    return o.preset || o.list ? run_sets(&o) : run_catalogue(&o);
}

/* The probed catalogue of every preset and native event. */
static int run_catalogue(const events_opts *po)
{
    events_opts o = *po;
    eng_err err = {0};
    met_papi_component *comps = NULL;
    met_event_info *ev = NULL;
    size_t nc = 0, n = 0;
    int rc = met_papi_components(&comps, &nc, &err);
    if (!rc)
        rc = met_events_list(o.kinds, &ev, &n, &err);
    if (rc) {
        free(comps);
        return hx_cli_fail("events", ENG_EIO, "%s", err.msg);
    }
    if (o.json)
        print_json(&o, comps, nc, ev, n);
    else
        print_table(&o, comps, nc, ev, n);
    free(comps);
    free(ev);
    return HX_CLI_EXIT_OK;
}
