/*
 * cmd_events.c — `moebench events`: which PAPI presets and native events
 * (libpfm4 names) can be counted on this machine, and why not where not.
 */
#include "harness/cli.h"
#include "harness/commands.h"
#include "metrics/papi.h"

#include <getopt.h>
#include <jansson.h>
#include <papi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench events [--json] [--presets | --native] [--countable]\n"
    "                       [--match TEXT]\n\n"
    "Lists PAPI preset events and the native events of PAPI's active components\n"
    "(libpfm4 names such as perf::TASK-CLOCK), each probed by starting it alone:\n"
    "'yes' means it counted here, 'no' comes with PAPI's reason.\n\n"
    "  --json        one JSON object: papi_version, components, events\n"
    "  --presets     presets only\n"
    "  --native      native events only\n"
    "  --countable   only events that can be counted here\n"
    "  --match TEXT  only events whose name contains TEXT (case-insensitive)\n"
    "  -h, --help    this text\n";

typedef struct events_opts {
    int json, kinds, countable_only;
    const char *match;
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

int hx_cmd_events(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'},     {"presets", no_argument, 0, 'p'},
        {"native", no_argument, 0, 'n'},   {"countable", no_argument, 0, 'c'},
        {"match", required_argument, 0, 'm'}, {"help", no_argument, 0, 'h'},
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
        case 'h': fputs(usage_text, stdout); return HX_EXIT_OK;
        default: return hx_usage_error("events", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hx_usage_error("events", "unexpected argument '%s'", argv[optind]);

    eng_err err = {0};
    met_papi_component *comps = NULL;
    met_event_info *ev = NULL;
    size_t nc = 0, n = 0;
    int rc = met_papi_components(&comps, &nc, &err);
    if (!rc)
        rc = met_events_list(o.kinds, &ev, &n, &err);
    if (rc) {
        free(comps);
        return hx_fail("events", ENG_EIO, "%s", err.msg);
    }
    if (o.json)
        print_json(&o, comps, nc, ev, n);
    else
        print_table(&o, comps, nc, ev, n);
    free(comps);
    free(ev);
    return HX_EXIT_OK;
}
