#!/usr/bin/env bash
# Runs the product on a fresh machine: virtual environment, install, migrate, demo data,
# an admin login (printed), then the web server and a django-q2 cluster together.
# Ctrl-C stops both. Embedded SQLite by default; DATABASE_URL=postgres://... for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv

PORT="${PORT:-8000}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://localhost:${PORT}}"
export DEBUG="${DEBUG:-1}"
PY=.venv/bin/python

$PY manage.py migrate --noinput -v0
$PY manage.py createcachetable
$PY manage.py setup_schedules >/dev/null
$PY manage.py seed_demo
$PY manage.py collectstatic --noinput -v0
echo
$PY manage.py ensure_admin
echo "API docs: ${PUBLIC_BASE_URL}/api/docs/   (create a key: .venv/bin/python manage.py create_api_key NAME)"
echo

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

$PY manage.py qcluster &
pids+=($!)
if [ "${DEBUG}" = "1" ]; then
  $PY manage.py runserver --noreload "0.0.0.0:${PORT}" &
else
  .venv/bin/gunicorn config.wsgi:application --bind "0.0.0.0:${PORT}" --workers "${WEB_WORKERS:-3}" &
fi
pids+=($!)
# Whichever stops first stops the other.
wait -n "${pids[@]}"
