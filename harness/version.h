/* version.h — what `moebench --version` prints; the values are compiled in by
 * the Makefile (build/obj/version.c) from VERSION and `git rev-parse`. */
#ifndef HX_VERSION_H
#define HX_VERSION_H
extern const char hx_version_string[]; /* "0.1.0"                      */
extern const char hx_version_commit[]; /* short hash, "-dirty" if so    */
extern const char hx_version_cflags[]; /* optimisation/sanitizer flags  */
#endif
