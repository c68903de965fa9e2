#!/usr/bin/env bash
# Installs the pinned official ConnectyCube JS SDK (example_project/frontend/package-lock.json)
# from npm and copies its browser bundle to example_project/static/vendor/. Without npm it says
# so and exits 0: the rest of the demo works, the chat identity page explains what is missing.
set -euo pipefail
cd "$(dirname "$0")/../example_project"
target=static/vendor/connectycube.min.js
bundle=frontend/node_modules/connectycube/dist/connectycube.min.js
if [ -f "$target" ] && [ -f "$bundle" ] && cmp -s "$bundle" "$target"; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: the chat identity page will run without the ConnectyCube SDK" >&2
  exit 0
fi
if [ ! -f "$bundle" ]; then
  npm ci --prefix frontend --no-audit --no-fund --loglevel=error
fi
mkdir -p static/vendor
cp "$bundle" "$target"
