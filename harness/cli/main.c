/*
 * main.c — `moebench`: finds the subcommand and hands it the rest of argv.
 */
#include "harness/cli/cli.h"
#include "harness/version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void print_usage(FILE *f)
{
    fprintf(f, "usage: moebench [--help] [--version] COMMAND [ARGS]\n\n"
               "moebench benchmarks and profiles Mixture-of-Experts models under\n"
               "expert offloading.\n\ncommands:\n");
    for (const hx_cli_command *c = hx_cli_commands; c->name; c++)
        fprintf(f, "  %-14s %s\n", c->name, c->summary);
    fprintf(f, "\n'moebench help COMMAND' (or 'moebench COMMAND --help') describes a\n"
               "command; once installed, 'man moebench' has them all. Exit status: 0 ok,\n"
               "1 the work failed, 2 bad usage or bad input (docs/cli.md).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return HX_CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        if (argc < 3 || strcmp(name, "help") != 0) {
            print_usage(stdout);
            return HX_CLI_EXIT_OK;
        }
        /* `moebench help COMMAND` is `moebench COMMAND --help` */
        for (const hx_cli_command *c = hx_cli_commands; c->name; c++)
            if (!strcmp(c->name, argv[2]))
                return c->run(2, (char *[]){argv[2], "--help", NULL});
        fprintf(stderr, "moebench help: unknown command '%s'\nTry 'moebench --help'.\n",
                argv[2]);
        return HX_CLI_EXIT_USAGE;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        printf("moebench %s (commit %s, %s)\n", hx_version_string, hx_version_commit,
               hx_version_cflags);
        return HX_CLI_EXIT_OK;
    }
    hx_cli_sigbus_install();
    for (const hx_cli_command *c = hx_cli_commands; c->name; c++)
        if (!strcmp(c->name, name)) {
            int rc = c->run(argc - 1, argv + 1);
            /* one place for stdout's write errors (a full disk, a closed
             * pipe's reader): no command reports success on lost output */
            if ((fflush(stdout) != 0 || ferror(stdout)) && rc == HX_CLI_EXIT_OK) {
                fprintf(stderr, "moebench %s: writing the output: %s\n", name,
                        strerror(errno ? errno : EIO));
                rc = HX_CLI_EXIT_FAIL;
            }
            return rc;
        }
    fprintf(stderr, "moebench: unknown command '%s'\nTry 'moebench --help'.\n", name);
    return HX_CLI_EXIT_USAGE;
}
