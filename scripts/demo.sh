#!/usr/bin/env bash
# The example site against the built-in ConnectyCube emulator, both on 127.0.0.1 (`make demo`).
# Run with --help for the environment variables it reads (ports, broker, state file).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<USAGE
Usage: make demo            (or: bash scripts/demo.sh)

Serves the example site and the ConnectyCube emulator on 127.0.0.1 until Ctrl-C.

Environment:
  DEMO_PORT=8000              the example site's port
  EMULATOR_PORT=8765          the emulator's port
  EMULATOR_STATE_FILE=example_project/.emulator-state.sqlite3
                              where the emulator keeps its users across runs
  CONNECTYCUBE_API_URL=URL    use that ConnectyCube (or emulator) instead; none is started
  CELERY_BROKER_URL=URL       start a Celery worker and beat on this broker
                              (e.g. redis://127.0.0.1:6379/0); without it tasks run in-process
  DATABASE_URL, MEDIA_ROOT    the site's database and uploads (example_project/settings.py)

Example: DEMO_PORT=8001 EMULATOR_PORT=8766 make demo
USAGE
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

PY=.venv/bin/python
DEMO_PORT="${DEMO_PORT-8000}"
EMULATOR_PORT="${EMULATOR_PORT-8765}"
EMULATOR_STATE_FILE="${EMULATOR_STATE_FILE:-example_project/.emulator-state.sqlite3}"
export CONNECTYCUBE_APPLICATION_ID="${CONNECTYCUBE_APPLICATION_ID:-1}"
export CONNECTYCUBE_AUTH_KEY="${CONNECTYCUBE_AUTH_KEY:-emulator-auth-key}"
export CONNECTYCUBE_AUTH_SECRET="${CONNECTYCUBE_AUTH_SECRET:-emulator-auth-secret}"

# Every port is checked before anything starts: a port another process holds would otherwise
# surface as a banner for a site that is not ours, or a hang.
check_port() {  # VARIABLE PORT
  "$PY" - "$1" "$2" <<'PYEOF'
import errno, socket, sys
name, value = sys.argv[1], sys.argv[2]
if not (value.isdigit() and 1 <= int(value) <= 65535):
    sys.exit(f"demo: {name}={value!r} is not a port number (1-65535).")
port = int(value)
with socket.socket() as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as exc:
        why = "another process is listening there" if exc.errno == errno.EADDRINUSE else exc.strerror
        sys.exit(
            f"demo: port {port} ({name}) on 127.0.0.1 is taken: {why}. Stop that process, or "
            f"pick another port: {name}={port + 1 if port < 65535 else 8001} make demo"
        )
PYEOF
}
check_port DEMO_PORT "$DEMO_PORT"
if [ -z "${CONNECTYCUBE_API_URL:-}" ]; then
  check_port EMULATOR_PORT "$EMULATOR_PORT"
  if [ "$DEMO_PORT" = "$EMULATOR_PORT" ]; then
    echo "demo: DEMO_PORT and EMULATOR_PORT are both $DEMO_PORT; give them different ports." >&2
    exit 1
  fi
fi

# Background children ignore SIGINT (bash does that without job control): on Ctrl-C the script
# stops them itself, then exits 0, so `make` reports no error.
pids=()
stop_children() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
on_interrupt() {
  printf '\ndemo: stopping...\n' >&2
  stop_children
  echo "demo: stopped."
  exit 0
}
trap on_interrupt INT TERM
trap stop_children EXIT

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
"$PY" manage.py runserver "127.0.0.1:${DEMO_PORT}" --noreload &
pids+=($!)
# Any child ending on its own (a crash, a port lost to a race) ends the demo, not a silent hang.
status=0
wait -n "${pids[@]}" || status=$?
echo "demo: a process stopped (exit status $status); stopping the others." >&2
stop_children
exit $((status == 0 ? 1 : status))
