"""Refuse a release whose version and changelog disagree.

The version lives in ``django_connectycube/__init__.py``; the changelog is CHANGELOG.md in the
Keep a Changelog form, newest version first (``## [1.2.0] - 2026-01-31``, after an optional
``## [Unreleased]`` heading that collects changes not yet given a version). A release must be
the top version, and dated: ``Unreleased`` passes only with ``--draft`` (a rehearsal of the
build).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = re.compile(r'^__version__ = "(?P<version>[^"]+)"$', re.M)
ENTRY = re.compile(r"^## \[(?P<version>\d[^\]]*)\] - (?P<when>\S+)$", re.M)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ReleaseError(Exception):
    """What is wrong with the version or the changelog, in words a releaser can act on."""


def package_version(init: str) -> str:
    match = VERSION.search(init)
    if match is None:
        raise ReleaseError('django_connectycube/__init__.py has no __version__ = "..." line')
    return match["version"]


def top_changelog_entry(changelog: str) -> tuple[str, str]:
    """The newest version's number and date (or "Unreleased")."""
    match = ENTRY.search(changelog)
    if match is None:
        raise ReleaseError('CHANGELOG.md has no "## [X.Y.Z] - YYYY-MM-DD" entry')
    return match["version"], match["when"]


def check(init: str, changelog: str, *, draft: bool = False) -> str:
    """The version to release, or :class:`ReleaseError` saying what to fix first."""
    version = package_version(init)
    entry, when = top_changelog_entry(changelog)
    if entry != version:
        raise ReleaseError(
            f"__version__ is {version} but the top changelog entry is {entry}: "
            "add an entry for this version (or bump __version__)"
        )
    if DATE.match(when):
        return version
    if when == "Unreleased" and draft:
        return version
    if when == "Unreleased":
        raise ReleaseError(f"the changelog entry for {version} is not dated: replace Unreleased")
    raise ReleaseError(f"the changelog entry for {version} is dated {when!r}, not YYYY-MM-DD")
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", action="store_true", help="accept an (unreleased) entry")
    args = parser.parse_args(argv)
    try:
        version = check(
            (ROOT / "django_connectycube" / "__init__.py").read_text(),
            (ROOT / "CHANGELOG.md").read_text(),
            draft=args.draft,
        )
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    print(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
