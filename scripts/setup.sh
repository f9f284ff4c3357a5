#!/usr/bin/env bash
# Idempotent set-up on a bare Debian machine: system packages, then .venv with exactly the
# packages of requirements.lock (hash-checked) and the project itself, editable. Called by every
# Makefile target; does nothing when everything is in place. `--tools`: only .venv and uv (for
# `make lock`).
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

# uv, at the version and hashes of the lock, installed with the interpreter's own pip: it makes
# the lock (`make lock`) and installs it (seconds, where pip takes minutes).
uv_version=$(sed -n 's/^uv==\([^ ]*\) .*/\1/p' requirements.lock)
if [ -z "$uv_version" ]; then
  echo "setup: requirements.lock pins no uv (hint: git checkout requirements.lock)" >&2; exit 1
fi
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
  echo "setup: installing uv $uv_version (the lock's installer)"
  req=$(mktemp)
  "$PY" scripts/lockfile.py pin uv > "$req"
  # (pip's notes about unavailable local mirrors are noise here: keep only real errors)
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
    -r "$req" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  rm -f "$req"
  [ -x .venv/bin/uv ] || { echo "setup: uv did not install (see the pip output above)" >&2; exit 1; }
fi
[ "${1:-}" = "--tools" ] && exit 0  # `make lock` needs only uv

# Re-install when the lock or pyproject.toml changed (by content, not by date).
stamp=.venv/.installed
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # The lock must be made from pyproject.toml as it is now (a dependency added without
  # `make lock` would otherwise be silently missing).
  "$PY" scripts/lockfile.py inputs-current
  # ... and for this interpreter (markers such as python_full_version decide what it holds).
  lock_python=$(sed -n 's/^# python: //p' requirements.lock)
  venv_python=$(.venv/bin/python -c 'import platform; print(platform.python_version())')
  if [ "$lock_python" != "$venv_python" ]; then
    echo "setup: requirements.lock was made for Python $lock_python, .venv runs $venv_python" >&2
    echo "setup: hint: rm -rf .venv && PYTHON=/path/to/python$lock_python make setup," \
      "or lock for this one: make lock" >&2
    exit 1
  fi
  echo "setup: installing requirements.lock into .venv"
  rm -f "$stamp"
  # sync: exactly the lock (what is not in it is removed), every file checked against its hash.
  # Bytecode compiled now (half a minute of CPU): where PYTHONDONTWRITEBYTECODE is set nothing
  # is cached later, and every process (worker, flow run, pytest, drp) would compile Prefect
  # again: about 2 s of CPU each.
  .venv/bin/uv pip sync --native-tls --quiet --python .venv/bin/python --require-hashes \
    --compile-bytecode requirements.lock
  # drp itself, editable, without dependencies (they are the lock's) and without a build
  # environment of its own (setuptools is in the lock too).
  .venv/bin/uv pip install --native-tls --quiet --python .venv/bin/python --no-deps \
    --no-build-isolation -e .
  .venv/bin/uv pip check --quiet --python .venv/bin/python || {
    echo "setup: the installed packages' requirements are not met (hint: make lock)" >&2; exit 1; }
  .venv/bin/python -c "import drp, prefect, ansible_runner, psycopg" || {
    echo "setup: the Python packages did not install (see the output above)" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
# Every time (a quarter of a second): what is installed is the lock, nothing more, nothing less.
.venv/bin/python scripts/lockfile.py verify-env
echo "setup: ready"
