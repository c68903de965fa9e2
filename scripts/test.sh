#!/usr/bin/env bash
# Runs the suite in three parts:
#   1. the unit tests on the embedded default (SQLite in memory, no broker), spread over the
#      cores (pytest-xdist), with the repository checks (`meta`: the import contracts of
#      docs/architecture.md, packaging, the docs, scripts) and the whole property-test budget;
#   2. the mirroring tests again with a UUID-pk user model;
#   3. on real PostgreSQL and Redis, every test that touches the database, a broker or the
#      browser, integration tests included (real Celery worker processes, on Redis and on
#      RabbitMQ): TEST_DATABASE_URL / TEST_BROKER_URL / TEST_AMQP_URL, defaulting to the local
#      servers. Tests that touch none of them ran in part 1 and would only repeat it.
#      Without the services, part 3 is skipped with a message, unless CI is set: then it runs
#      and fails.
# Parts 2 and 3 run a tenth of the property-test budget (HYPOTHESIS_PROFILE=quick, tests/budget.py).
# `scripts/test.sh unit` or `scripts/test.sh integration` runs one part; extra args go to pytest.
# With STAGE_TIMES=<file>, each part appends "<seconds> <name>" to that file.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
part="${1:-all}"
[ $# -gt 0 ] && shift

ci() { case "${CI:-}" in ""|0|false|no) return 1 ;; *) return 0 ;; esac; }

timed() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  echo "== $name: $((SECONDS - start)) s"
  if [ -n "${STAGE_TIMES:-}" ]; then echo "$((SECONDS - start)) $name" >>"$STAGE_TIMES"; fi
}

if [ "$part" = all ] || [ "$part" = unit ]; then
  echo "== unit tests (SQLite, in-memory broker)"
  timed "unit tests (SQLite)" env -u DATABASE_URL -u CELERY_BROKER_URL \
    "$PY" -m pytest -m "not integration and not browser" -n auto "$@"
  echo "== mirroring tests with a UUID-pk user model"
  timed "UUID-pk tests" env -u DATABASE_URL -u CELERY_BROKER_URL HYPOTHESIS_PROFILE=quick \
    "$PY" -m pytest -m "not integration" --ds=tests.settings_uuid -p no:cacheprovider \
    tests/sync/test_sync.py tests/sync/test_signals.py tests/sync/test_sync_command.py \
    tests/sync/test_sweep_scale.py "$@"
fi

if [ "$part" = all ] || [ "$part" = integration ]; then
  export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  export CELERY_BROKER_URL="${TEST_BROKER_URL:-redis://127.0.0.1:6379/0}"
  # The worker tests run on RabbitMQ as well (they skip it when it is unreachable, outside CI).
  export CELERY_AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672//}"
  if ci || "$PY" scripts/services.py reachable "$DATABASE_URL" "$CELERY_BROKER_URL"; then
    echo "== tests that touch PostgreSQL, Redis, RabbitMQ or the browser, with real Celery" \
         "workers ($CELERY_BROKER_URL, $CELERY_AMQP_URL)"
    timed "services tests (PostgreSQL, Redis, RabbitMQ, Chromium)" env HYPOTHESIS_PROFILE=quick \
      "$PY" -m pytest -m "not meta" --services-only "$@"
  else
    echo "== integration tests skipped: PostgreSQL or Redis is not reachable" \
         "(set TEST_DATABASE_URL / TEST_BROKER_URL, or CI=true to make this a failure)"
  fi
fi
