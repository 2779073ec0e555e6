#!/usr/bin/env bash
# The deploy tests start their own Postgres and Redis (imageflow_dagster_tests/services.py) from Debian's
# server binaries; install them when missing and we may (root, apt available), else say what to install.
set -euo pipefail

have_postgres() {
  command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
  # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<major>/bin.
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null && compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

have_redis() {
  command -v redis-server >/dev/null 2>&1
}

missing=()
have_postgres || missing+=(postgresql)
have_redis || missing+=(redis-server)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian ${missing[*]} for the deploy tests..."
  apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  # A fresh image has no package lists, and old lists may name files the mirror has dropped:
  # refresh them when the packages are unknown or the first attempt fails.
  if ! apt-cache show "${missing[@]}" >/dev/null 2>&1 || ! apt_install; then
    apt-get update -qq >/dev/null
    apt_install
  fi
else
  echo "${missing[*]} not installed and cannot be installed here; the deploy tests will fail." >&2
  echo "install them, e.g.: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
fi
