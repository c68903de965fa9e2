#!/usr/bin/env bash
# The example site against the built-in ConnectyCube emulator, both on localhost.
# DEMO_PORT (8000) and EMULATOR_PORT (8765) move them; CONNECTYCUBE_API_URL set to anything else
# points the site at that server instead and starts no emulator. With CELERY_BROKER_URL set
# (e.g. redis://127.0.0.1:6379/0) a Celery worker and beat start too; without it, tasks run
# in-process.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DEMO_PORT="${DEMO_PORT:-8000}"
EMULATOR_PORT="${EMULATOR_PORT:-8765}"
EMULATOR_STATE_FILE="${EMULATOR_STATE_FILE:-example_project/.emulator-state.sqlite3}"
export CONNECTYCUBE_APPLICATION_ID="${CONNECTYCUBE_APPLICATION_ID:-1}"
export CONNECTYCUBE_AUTH_KEY="${CONNECTYCUBE_AUTH_KEY:-emulator-auth-key}"
export CONNECTYCUBE_AUTH_SECRET="${CONNECTYCUBE_AUTH_SECRET:-emulator-auth-secret}"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if [ -z "${CONNECTYCUBE_API_URL:-}" ]; then
  export CONNECTYCUBE_API_URL="http://127.0.0.1:${EMULATOR_PORT}"
  # The emulator keeps its users in a file next to the site's database, so a second run finds
  # the users that the database remembers (delete both files to start afresh).
  "$PY" -m django_connectycube.emulator --host 127.0.0.1 --port "$EMULATOR_PORT" \
    --app-id "$CONNECTYCUBE_APPLICATION_ID" --auth-key "$CONNECTYCUBE_AUTH_KEY" \
    --auth-secret "$CONNECTYCUBE_AUTH_SECRET" --state-file "$EMULATOR_STATE_FILE" \
    ${CONNECTYCUBE_ADMIN_API_KEY:+--admin-api-key "$CONNECTYCUBE_ADMIN_API_KEY"} &
  pids+=($!)
  "$PY" - "$CONNECTYCUBE_API_URL" <<'PYEOF'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1] + "/_emulator/state", timeout=1)
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("the emulator did not start")
PYEOF
fi

bash scripts/vendor_sdk.sh
"$PY" manage.py migrate --noinput -v0
if ! "$PY" manage.py shell -c "from django.contrib.auth import get_user_model as g; import sys; sys.exit(0 if g().objects.filter(username='admin').exists() else 1)"; then
  DJANGO_SUPERUSER_PASSWORD=admin "$PY" manage.py createsuperuser --noinput \
    --username admin --email admin@example.com
fi
if [ -n "${CELERY_BROKER_URL:-}" ]; then
  .venv/bin/celery -A example_project worker --loglevel=INFO --concurrency=2 -B \
    --schedule "${TMPDIR:-/tmp}/example-celerybeat-schedule" &
  pids+=($!)
  worker_note="Celery worker + beat on ${CELERY_BROKER_URL}"
else
  worker_note="no broker: tasks run in-process (set CELERY_BROKER_URL for a real worker)"
fi
cat <<MSG

  Example site:  http://127.0.0.1:${DEMO_PORT}/      (admin: http://127.0.0.1:${DEMO_PORT}/admin/, user admin / password admin)
  ConnectyCube:  ${CONNECTYCUBE_API_URL}   (state: ${CONNECTYCUBE_API_URL}/_emulator/state, kept in ${EMULATOR_STATE_FILE})
  Tasks:         ${worker_note}
  Stop with Ctrl-C.

MSG
"$PY" manage.py runserver "127.0.0.1:${DEMO_PORT}" &
pids+=($!)
wait "${pids[@]}"
