/*
 * sigbus.c — a clear message instead of a crash when a mapped file goes
 * away under a run (cli.h).
 *
 * The engine maps the model file. When the file shrinks (truncate, an
 * editor rewriting it in place) while a command runs, the next read of a
 * page past the new end raises SIGBUS, which would kill moebench with no
 * explanation. The handler writes one line saying what happened and exits
 * with status 1 (the work failed), using only async-signal-safe calls. The
 * output printed before it is correct: every token printed was computed
 * from the file as it was. With the file tier of the expert store the
 * dense weights are private and such a shrink is an ordinary read error
 * instead (docs/offloading.md).
 */
#include "harness/cli/cli.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static void on_sigbus(int signo)
{
    static const char msg[] =
        "moebench: SIGBUS: a memory-mapped file (the model) shrank or became unreadable "
        "during the run; nothing after the last complete output is valid\n";
    (void)signo;
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

void hx_cli_sigbus_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
