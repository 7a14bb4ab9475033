#!/usr/bin/env bash
# Prepare a fresh machine: system packages (for the MySQL driver, Chromium for the browser test, Redis), uv,
# a virtualenv in .venv with the pinned dependencies (constraints.txt) and this package installed in
# editable mode. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v cc >/dev/null || need_apt+=(build-essential)
dpkg -s default-libmysqlclient-dev >/dev/null 2>&1 || need_apt+=(default-libmysqlclient-dev)
# The Sync page's browser test drives Debian's headless Chromium through its driver (selenium).
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# The Redis target's tests and the Celery deployment test's broker start private redis-server processes.
command -v redis-server >/dev/null || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "Installing system packages: ${need_apt[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if ! command -v uv >/dev/null; then
  echo "Installing uv"
  "$PYTHON" -m pip install --quiet --user uv 2>/dev/null || "$PYTHON" -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

stamp=.venv/.installed-$(cat constraints.txt requirements.in pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || uv venv --quiet --python "$("$PYTHON" -c 'import sys; print(sys.executable)')" .venv
  echo "Installing Python dependencies into .venv (pinned by constraints.txt)"
  uv pip install --quiet --python .venv -c constraints.txt -r requirements.in -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
