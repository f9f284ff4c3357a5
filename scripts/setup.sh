#!/usr/bin/env bash
# Idempotent set-up on a bare Debian machine: system packages, then .venv with the project.
# Called by every Makefile target (through the .venv/.installed stamp).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v runuser >/dev/null 2>&1 || need_apt+=(util-linux)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)  # bench/failover.py's "by hand" baseline
{ ls /usr/lib/*/libpangoft2-1.0.so.0 || ls /lib/*/libpangoft2-1.0.so.0; } >/dev/null 2>&1 || need_apt+=(libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core)  # WeasyPrint: PDF reports

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${need_apt[*]}" >&2
    echo "setup: this user is not root, so they cannot be installed here." >&2
    echo "setup: run as root:  apt-get update && apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Do not let the packages start their system-wide services: the lab runs its own instances.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv (about a minute the first time)"
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  # (pip's notes about unavailable local mirrors are noise here: keep only real errors)
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import drp, prefect, ansible_runner, psycopg" || {
    echo "setup: the Python packages did not install (see the pip output above)" >&2; exit 1; }
  touch "$stamp"
fi
echo "setup: ready"
