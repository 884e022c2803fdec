#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs, starts a throw-away PostgreSQL and
# headless Chromium's Debian package when missing, runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv test

# Browser tests drive Debian's Chromium (never a downloaded browser build).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "test: could not install chromium; browser tests will be skipped"
  else
    echo "test: chromium is not installed; browser tests will be skipped"
  fi
fi

export DJANGO_SETTINGS_MODULE=config.settings.test
mkdir -p test-artifacts
set +e
if [ -n "${DATABASE_URL:-}" ]; then
  echo "test: using DATABASE_URL from the environment"
  .venv/bin/python -m pytest "$@"
  status=$?
else
  .venv/bin/python scripts/pgtmp.py -- .venv/bin/python -m pytest "$@"
  status=$?
  if [ $status -eq 3 ]; then
    echo "test: PostgreSQL is NOT installed: running on SQLite, tests that need PostgreSQL are skipped" >&2
    DATABASE_URL="sqlite:///$(pwd)/var/test.sqlite3" .venv/bin/python -m pytest "$@"
    status=$?
  fi
fi
set -e
exit $status
