#!/bin/sh
# make demo: builds (done by make), makes the default model, runs the
# quick-start suite into results/moebench.db and prints the comparison.
# Until the engine and the harness land, there is nothing to run yet.
set -eu
BIN=${1:-build/moebench}
if [ -f suites/quickstart.lua ] && "$BIN" run --help >/dev/null 2>&1; then
    mkdir -p results
    exec "$BIN" run suites/quickstart.lua --db results/moebench.db
fi
echo "moebench demo: nothing to demo yet (the engine and the quick-start suite are not built)."
"$BIN" --version
