/*
 * kind.c — the table of experiment kinds. See suite.h; adding a kind is one
 * row here plus its functions in harness/kind_NAME.c.
 */
#include "harness/suite/suite.h"

#include <stddef.h>
#include <string.h>

static const char *const lua_fields[] = {"run", "timeout", NULL};
static const char *const command_fields[] = {"argv", "program", "timeout", "json", NULL};

const hx_suite_kind hx_suite_kinds[] = {
    {"lua", "the measured body is a Lua function run(ctx) returning {metric = number}",
     lua_fields, hx_suite_kind_lua_check, hx_suite_kind_lua_run, NULL, NULL},
    {"command", "runs `moebench ARGV... --json` (or any program) and records its JSON numbers",
     command_fields, hx_suite_kind_command_check, hx_suite_kind_command_run, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL},
};

const hx_suite_kind *hx_suite_kind_find(const char *name)
{
    for (const hx_suite_kind *k = hx_suite_kinds; name && k->name; k++)
        if (!strcmp(k->name, name))
            return k;
    return NULL;
}

int hx_suite_kind_has_field(const hx_suite_kind *k, const char *field)
{
    for (const char *const *f = k->fields; f && *f; f++)
        if (!strcmp(*f, field))
            return 1;
    return 0;
}
