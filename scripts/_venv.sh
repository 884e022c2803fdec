# Shared by scripts/run.sh and scripts/test.sh: create .venv and install the project
# (again only when pyproject.toml changed).
ensure_venv() {
  local extra="${1:-}"
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$py" -m venv .venv
  fi
  local stamp=".venv/.installed-${extra:-base}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing dependencies (this takes a minute the first time)"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    if [ -n "$extra" ]; then
      .venv/bin/python -m pip install -q -e ".[${extra}]" 2>&1 | grep -v "^WARNING: Location" || true
    else
      .venv/bin/python -m pip install -q -e . 2>&1 | grep -v "^WARNING: Location" || true
    fi
    .venv/bin/python -c "import django, rest_framework, django_q" || { echo "setup: install failed" >&2; exit 1; }
    touch "$stamp"
  fi
  compile_messages
}

compile_messages() {
  # .mo catalogs are built from the committed .po files.
  if command -v msgfmt >/dev/null 2>&1; then
    for po in locale/*/LC_MESSAGES/*.po; do
      [ -f "$po" ] || continue
      mo="${po%.po}.mo"
      if [ ! -f "$mo" ] || [ "$po" -nt "$mo" ]; then msgfmt -o "$mo" "$po"; fi
    done
  else
    .venv/bin/python manage.py compilemessages >/dev/null 2>&1 || true
  fi
}
