#!/usr/bin/env bash
# `make e2e`: prepares a Docker engine when run as root on Debian (installs docker.io and
# iptables if missing, starts dockerd if it is not running), then runs the stack suite
# (tests/e2e). The suite builds stand-in images where no image registry answers.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[e2e $(date +%H:%M:%S)] $*"; }

# Docker from Debian where none is installed (a CI runner has its own engine: left alone).
# mmdebstrap, for the stand-in base image, is installed by the suite only when it needs one.
if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing docker.io and iptables from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq docker.io iptables >/dev/null
  fi
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: /var/log/minitwit-e2e-dockerd.log)"
    setsid dockerd >/var/log/minitwit-e2e-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
  fi
fi
docker info >/dev/null 2>&1 || { echo "e2e: no Docker engine answers (run as root, or start dockerd)" >&2; exit 2; }

exec .venv/bin/python tests/e2e "$@"
