"""The release script refuses a version the changelog does not announce."""

import importlib.util
from pathlib import Path

import pytest

# About the repository and its tooling: run once per CI run (scripts/test.sh).
pytestmark = pytest.mark.meta

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "release_version.py"
spec = importlib.util.spec_from_file_location("release_version", SCRIPT)
release = importlib.util.module_from_spec(spec)
spec.loader.exec_module(release)

INIT = '__version__ = "1.2.0"\n'


def changelog(*entries: str) -> str:
    return "# Changelog\n\n## [Unreleased]\n\n" + "\n".join(
        f"## [{version}] - {when}\n\n### Added\n\n- change\n"
        for version, when in (entry.split(" ") for entry in entries)
    )


def test_a_dated_top_entry_for_the_version_passes():
    assert release.check(INIT, changelog("1.2.0 2026-01-31", "1.1.0 2025-12-01")) == "1.2.0"


def test_a_version_the_changelog_does_not_announce_is_refused():
    with pytest.raises(release.ReleaseError, match=r"__version__ is 1\.2\.0 .* top .* is 1\.1\.0"):
        release.check(INIT, changelog("1.1.0 2025-12-01", "1.2.0 2026-01-31"))


def test_an_undated_entry_passes_only_as_a_draft():
    with pytest.raises(release.ReleaseError, match="not dated"):
        release.check(INIT, changelog("1.2.0 Unreleased"))
    assert release.check(INIT, changelog("1.2.0 Unreleased"), draft=True) == "1.2.0"


@pytest.mark.parametrize(
    ("init", "text", "message"),
    [
        ("VERSION = 1", changelog("1.2.0 2026-01-31"), "no __version__"),
        (INIT, "# Changelog\n\n## [Unreleased]\n", r'no "## \[X\.Y\.Z\]'),
        (INIT, changelog("1.2.0 31.01.2026"), "not YYYY-MM-DD"),
    ],
)
def test_missing_pieces_are_named(init, text, message):
    with pytest.raises(release.ReleaseError, match=message):
        release.check(init, text)


def test_this_repositorys_version_matches_its_changelog():
    root = SCRIPT.parent.parent
    init = (root / "django_connectycube" / "__init__.py").read_text()
    assert release.check(init, (root / "CHANGELOG.md").read_text(), draft=True) == (
        release.package_version(init)
    )
