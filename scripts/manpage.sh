#!/bin/sh
# Writes moebench(1) to stdout from the binary's own help texts, so the man
# page cannot drift from the program: `moebench --help` gives the command
# list, `moebench COMMAND --help` each command's section (verbatim, in
# no-fill blocks). `make install` runs it; no help2man needed.
#
#   scripts/manpage.sh build/moebench > build/moebench.1
set -eu
bin=${1:?usage: scripts/manpage.sh MOEBENCH}

# troff: a backslash is \e; a line starting with . or ' would be a request.
esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
commands=$("$bin" --help | awk '/^commands:/ {f = 1; next} f && /^  [a-z]/ {print $1} f && /^$/ {exit}')
[ -n "$commands" ] || { echo "manpage.sh: '$bin --help' lists no commands" >&2; exit 1; }
version=$("$bin" --version | sed -n 's/^moebench \([^ ]*\).*/\1/p')

cat <<MAN
.TH MOEBENCH 1 "" "moebench $version" "User Commands"
.SH NAME
moebench \\- benchmark and profile Mixture-of-Experts models under expert offloading
.SH SYNOPSIS
.B moebench
.I COMMAND
.RI [ ARGS ]
.br
.B moebench help
.I COMMAND
.SH DESCRIPTION
.nf
MAN
"$bin" --help | esc
cat <<'MAN'
.fi
.SH COMMANDS
MAN
for c in $commands; do
    printf '.SS "moebench %s"\n.nf\n' "$c"
    "$bin" "$c" --help | esc
    printf '.fi\n'
done
cat <<'MAN'
.SH FILES
.TP
.I PREFIX/share/moebench/lua
Lua modules that suites \fBrequire\fR (sweep, stats, report, models, toycache),
found from the binary's own location (PREFIX/bin/moebench).
.TP
.I PREFIX/share/moebench/suites
the shipped suites; \fBmoebench run ci\fR runs \fIci.lua\fR from here when the
current directory has no file of that name.
.TP
.I results/moebench.db
the default results database, relative to the current directory.
.TP
.I models/
models that suites make with \fBmoebench mkmodel\fR on first use, relative to
the current directory.
.SH ENVIRONMENT
.TP
.B MOEBENCH_LUA_PATH
folders (separated by ':') searched first for Lua modules.
.TP
.B SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_MAX, SLURM_ARRAY_TASK_COUNT
read by \fBmoebench run --shard auto\fR; the Slurm job variables of a run are
recorded with it.
.SH EXIT STATUS
0 ok, 1 the work failed, 2 bad usage or bad input.
.SH SEE ALSO
The user guide in the source tree's docs/ (cli.md, suites.md, database.md).
MAN
