#!/usr/bin/env bash
# Runs the suite in two parts:
#   1. unit tests on the embedded default (SQLite in memory, no broker);
#   2. integration tests on real PostgreSQL and Redis (TEST_DATABASE_URL / TEST_BROKER_URL,
#      defaulting to the local servers). Without them, part 2 is skipped with a message, unless
#      CI is set, in which case it runs and fails.
# `scripts/test.sh unit` or `scripts/test.sh integration` runs one part; extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
part="${1:-all}"
[ $# -gt 0 ] && shift

ci() { case "${CI:-}" in ""|0|false|no) return 1 ;; *) return 0 ;; esac; }

if [ "$part" = all ] || [ "$part" = unit ]; then
  echo "== unit tests (SQLite, in-memory broker)"
  env -u DATABASE_URL -u CELERY_BROKER_URL "$PY" -m pytest -m "not integration" "$@"
fi

if [ "$part" = all ] || [ "$part" = integration ]; then
  export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  export CELERY_BROKER_URL="${TEST_BROKER_URL:-redis://127.0.0.1:6379/0}"
  if ci || "$PY" scripts/services.py reachable "$DATABASE_URL" "$CELERY_BROKER_URL"; then
    echo "== integration tests (PostgreSQL: ${DATABASE_URL%%@*}@…, broker: $CELERY_BROKER_URL)"
    "$PY" -m pytest -m integration "$@"
  else
    echo "== integration tests skipped: PostgreSQL or Redis is not reachable" \
         "(set TEST_DATABASE_URL / TEST_BROKER_URL, or CI=true to make this a failure)"
  fi
fi
