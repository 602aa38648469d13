#!/bin/sh
# Installs, with apt-get, the Debian 12 packages moebench needs that are not
# installed yet. A no-op (and silent) when everything is present.
# Why each one is needed: docs/dependencies.md.
set -eu

PACKAGES="gcc make pkg-config git
libpapi-dev papi-tools libpfm4-dev
libsqlite3-dev sqlite3
liblua5.4-dev lua5.4
libopenblas-dev
libjansson-dev
valgrind"
# `make fuzz` also needs clang and libFuzzer (a Recommends of clang-14 that
# --no-install-recommends would skip): ./scripts/deps.sh fuzz
if [ "${1:-}" = fuzz ]; then
    PACKAGES="$PACKAGES clang libclang-rt-14-dev"
fi
# `make test-slurm` starts a single-node Slurm cluster: ./scripts/deps.sh slurm
if [ "${1:-}" = slurm ]; then
    PACKAGES="$PACKAGES slurmctld slurmd slurm-client munge"
fi
# `make test-tokenizers` also needs node and npm (any install of them will
# do; Debian's only where there is none): ./scripts/deps.sh tokenizers
if [ "${1:-}" = tokenizers ]; then
    command -v node >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs"
    command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"
fi

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "deps: not root and no sudo; run as root: apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
