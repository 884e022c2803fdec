#!/usr/bin/env bash
# Runs the benchmarks (all, or those named) against a throw-away PostgreSQL. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv test
if [ -n "${DATABASE_URL:-}" ]; then
  exec .venv/bin/python bench/run.py "$@"
fi
exec .venv/bin/python scripts/pgtmp.py -- .venv/bin/python bench/run.py "$@"
