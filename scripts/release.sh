#!/usr/bin/env bash
# Build the sdist and wheel for the package index and check them; uploads nothing.
#   scripts/release.sh [--draft]      (--draft: accept an "Unreleased" top entry in CHANGELOG.md)
# Then: twine upload dist/django_connectycube-<version>*
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
version="$("$PY" scripts/release_version.py "$@")"
rm -rf dist build
"$PY" -m build --sdist --wheel --outdir dist .
"$PY" -m twine check --strict dist/*
for artifact in "dist/django_connectycube-$version.tar.gz" \
                "dist/django_connectycube-$version-py3-none-any.whl"; do
    [[ -f "$artifact" ]] || { echo "release: $artifact was not built" >&2; exit 1; }
done
echo "release: dist/ holds django-connectycube $version, checked; upload with twine upload dist/*"
