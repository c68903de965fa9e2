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


def readme(*entries: str) -> str:
    return "# x\n\n## Changelog\n\n" + "\n".join(f"### {e}\n- change\n" for e in entries)


def test_a_dated_top_entry_for_the_version_passes():
    assert release.check(INIT, readme("1.2.0 (2026-01-31)", "1.1.0 (2025-12-01)")) == "1.2.0"


def test_a_version_the_changelog_does_not_announce_is_refused():
    with pytest.raises(release.ReleaseError, match=r"__version__ is 1\.2\.0 .* top .* is 1\.1\.0"):
        release.check(INIT, readme("1.1.0 (2025-12-01)", "1.2.0 (2026-01-31)"))


def test_an_undated_entry_passes_only_as_a_draft():
    with pytest.raises(release.ReleaseError, match="not dated"):
        release.check(INIT, readme("1.2.0 (unreleased)"))
    assert release.check(INIT, readme("1.2.0 (unreleased)"), draft=True) == "1.2.0"


@pytest.mark.parametrize(
    ("init", "text", "message"),
    [
        ("VERSION = 1", readme("1.2.0 (2026-01-31)"), "no __version__"),
        (INIT, "# x\n\nno changelog\n", 'no "## Changelog"'),
    ],
)
def test_missing_pieces_are_named(init, text, message):
    with pytest.raises(release.ReleaseError, match=message):
        release.check(init, text)


def test_this_repositorys_version_matches_its_changelog():
    root = SCRIPT.parent.parent
    init = (root / "django_connectycube" / "__init__.py").read_text()
    assert release.check(init, (root / "README.md").read_text(), draft=True) == (
        release.package_version(init)
    )
