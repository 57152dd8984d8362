#!/usr/bin/env bash
# Put promtool (and amtool, to validate the Alertmanager config) into .tools/bin, offline-friendly:
# they come out of Debian's prometheus / prometheus-alertmanager packages, unpacked with dpkg-deb
# rather than installed, so no service is started and nothing outside the repo changes.
# The same way: prometheus itself and the node/postgres exporters, which the tests run for real
# (tests/ops/test_exporters.py) to check the rules' and dashboards' metric names on real scrapes.
# Idempotent; exits 0 with a message when it cannot (no apt, no network): the tests then skip.
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.tools/bin"
mkdir -p "$bin"

have() { [ -x "$bin/$1" ] && "$bin/$1" --version >/dev/null 2>&1; }

TOOLS="promtool amtool prometheus prometheus-node-exporter prometheus-postgres-exporter"
all_there() { for t in $TOOLS; do have "$t" || return 1; done; }

if all_there; then
    echo "install-promtool: $("$bin/promtool" --version 2>&1 | head -n1) already in $bin"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "install-promtool: no apt-get/dpkg-deb here; promtool not installed (monitoring checks will skip)"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# apt-get download needs no root, but an empty package list does need an update (root only).
fetch() {
    (cd "$work" && apt-get download "$@" >/dev/null 2>&1) && return 0
    if [ "$(id -u)" = 0 ]; then
        apt-get update >/dev/null 2>&1 || true
        (cd "$work" && apt-get download "$@" >/dev/null 2>&1) && return 0
    fi
    return 1
}

install_tool() {  # package, binary
    have "$2" && return 0
    if ! compgen -G "$work/$1_*.deb" >/dev/null && ! fetch "$1"; then
        echo "install-promtool: could not download Debian package $1; $2 not installed"
        return 1
    fi
    mkdir -p "$work/$1"
    dpkg-deb -x "$work/$1"_*.deb "$work/$1" &&
        install -m 0755 "$work/$1/usr/bin/$2" "$bin/$2" &&
        echo "install-promtool: $("$bin/$2" --version 2>&1 | head -n1) -> $bin/$2"
}

install_tool prometheus promtool || exit 0
install_tool prometheus-alertmanager amtool || true
install_tool prometheus prometheus || true
install_tool prometheus-node-exporter prometheus-node-exporter || true
install_tool prometheus-postgres-exporter prometheus-postgres-exporter || true
exit 0
