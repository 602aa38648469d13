/*
 * sigbus.h — turns a SIGBUS (a memory-mapped file shrank under the run)
 * into one line on stderr and exit status 1. main() installs it for every
 * command.
 */
#ifndef HX_SIGBUS_H
#define HX_SIGBUS_H

void hx_sigbus_install(void);

#endif
