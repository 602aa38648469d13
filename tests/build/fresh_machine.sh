#!/bin/sh
# The first `make demo` / `make test` on a machine that lacks the packages.
#
# CI runs where every Debian package is installed, so it cannot see a build
# that reads pkg-config before `make deps` has run (issue: lua.h not found on
# the first run, fine on the second). This test plays the fresh machine:
# a pkg-config on PATH that finds nothing until the deps step has run, and a
# deps step (DEPS_SCRIPT) that marks itself done and then runs the real
# scripts/deps.sh (a no-op where the packages are installed). Each target is
# built from a copy of the tree into an empty build folder, as on a first run.
#
#   tests/build/fresh_machine.sh        (run by .ci/run; about a minute)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/moebench-fresh.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
real_pkg_config=$(command -v pkg-config) || { echo "fresh_machine: pkg-config not installed" >&2; exit 1; }

mkdir -p "$tmp/bin" "$tmp/src"
cat > "$tmp/bin/pkg-config" <<SH
#!/bin/sh
[ -e "$tmp/deps-ran" ] && exec "$real_pkg_config" "\$@"
echo "Package \$* was not found in the pkg-config search path." >&2
exit 1
SH
cat > "$tmp/deps" <<SH
#!/bin/sh
touch "$tmp/deps-ran"
exec "$top/scripts/deps.sh" "\$@"
SH
chmod +x "$tmp/bin/pkg-config" "$tmp/deps"

# The tree as it is (tracked and new files), without build outputs or models.
(cd "$top" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$top" && xargs -0 cp --parents -t "$tmp/src" 2>/dev/null) || true
cd "$tmp/src"
fails=0
fresh() { rm -rf "$tmp/deps-ran" build; }
run() { # NAME EXPECT_RC GREP -- make arguments
    name=$1 want=$2 pattern=$3; shift 4
    fresh
    rc=0
    PATH="$tmp/bin:$PATH" make --no-print-directory DEPS_SCRIPT="$tmp/deps" "$@" > "$tmp/$name.log" 2>&1 || rc=$?
    if [ "$rc" -ne "$want" ] || ! grep -q -- "$pattern" "$tmp/$name.log"; then
        echo "FAIL $name: exit $rc (want $want), output lacks '$pattern'; last lines:" >&2
        tail -n 15 "$tmp/$name.log" >&2
        fails=$((fails + 1))
    else
        echo "ok   $name"
    fi
}
# A plain build installs nothing: it names what is missing and stops.
run make-without-deps 2 "run 'make deps'" -- 
# The two commands of README's first lines, each on its first run.
run make-demo 0 "stored in results/moebench.db" -- demo
run make-test 0 " passed, 0 failed" -- test TESTFLAGS=engine/gguf
[ "$fails" -eq 0 ] || exit 1
echo "fresh_machine: make, make demo and make test behave on a machine without the packages"
