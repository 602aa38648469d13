/*
 * kind.c — the table of experiment kinds. See kind.h; adding a kind is one
 * row here plus its functions in harness/kind_NAME.c.
 */
#include "harness/kind.h"

#include <stddef.h>
#include <string.h>

static const char *const lua_fields[] = {"run", "timeout", NULL};
static const char *const command_fields[] = {"argv", "program", "timeout", "json", NULL};

const hx_kind hx_kinds[] = {
    {"lua", "the measured body is a Lua function run(ctx) returning {metric = number}",
     lua_fields, hx_kind_lua_check, hx_kind_lua_run, NULL, NULL},
    {"command", "runs `moebench ARGV... --json` (or any program) and records its JSON numbers",
     command_fields, hx_kind_command_check, hx_kind_command_run, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL},
};

const hx_kind *hx_kind_find(const char *name)
{
    for (const hx_kind *k = hx_kinds; name && k->name; k++)
        if (!strcmp(k->name, name))
            return k;
    return NULL;
}

int hx_kind_has_field(const hx_kind *k, const char *field)
{
    for (const char *const *f = k->fields; f && *f; f++)
        if (!strcmp(*f, field))
            return 1;
    return 0;
}
