"""Refuse a release whose version and changelog disagree.

The version lives in ``django_connectycube/__init__.py``; the changelog is README's "Changelog"
section, newest entry first (``### 1.2.0 (2026-01-31)``). A release must be that top entry, and
dated: ``(unreleased)`` passes only with ``--draft`` (a rehearsal of the build).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = re.compile(r'^__version__ = "(?P<version>[^"]+)"$', re.M)
ENTRY = re.compile(r"^### (?P<version>\S+) \((?P<when>[^)]*)\)$", re.M)


class ReleaseError(Exception):
    """What is wrong with the version or the changelog, in words a releaser can act on."""


def package_version(init: str) -> str:
    match = VERSION.search(init)
    if match is None:
        raise ReleaseError('django_connectycube/__init__.py has no __version__ = "..." line')
    return match["version"]


def top_changelog_entry(readme: str) -> tuple[str, str]:
    """The newest changelog entry's version and date (or "unreleased")."""
    _, found, changelog = readme.partition("\n## Changelog\n")
    match = ENTRY.search(changelog) if found else None
    if match is None:
        raise ReleaseError(
            'README.md has no "## Changelog" section with a "### X.Y.Z (date)" entry'
        )
    return match["version"], match["when"]


def check(init: str, readme: str, *, draft: bool = False) -> str:
    """The version to release, or :class:`ReleaseError` saying what to fix first."""
    version = package_version(init)
    entry, when = top_changelog_entry(readme)
    if entry != version:
        raise ReleaseError(
            f"__version__ is {version} but the top changelog entry is {entry}: "
            "add an entry for this version (or bump __version__)"
        )
    if when == "unreleased" and not draft:
        raise ReleaseError(f"the changelog entry for {version} is not dated: replace (unreleased)")
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", action="store_true", help="accept an (unreleased) entry")
    args = parser.parse_args(argv)
    try:
        version = check(
            (ROOT / "django_connectycube" / "__init__.py").read_text(),
            (ROOT / "README.md").read_text(),
            draft=args.draft,
        )
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    print(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
