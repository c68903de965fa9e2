"""The compatibility matrix: the unit tests on every supported Python and Django pair, and once on
the lowest versions that ``pyproject.toml`` declares.

    nox -l                  # list the sessions
    nox -t ci               # what CI runs: the oldest pair, the newest pair, the lowest versions
    nox -s "tests-3.12(django='5.2')"
    nox -s mutation -- sync/policy.py   # mutation testing (docs/mutation.md); no unit: all

A session whose Python is not installed fails under ``CI`` and is skipped elsewhere (nox's
``--error-on-missing-interpreters`` default). Extra arguments go to pytest: ``nox -t ci -- -x``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
# The unit suite without the repository checks, which scripts/test.sh runs once.
UNIT = ["-m", "not integration and not browser and not meta", "-p", "no:cacheprovider"]

#: Django release line → the Pythons it supports (and this package supports).
SUPPORTED = {
    "4.2": ["3.10", "3.11", "3.12"],
    "5.2": ["3.10", "3.11", "3.12", "3.13"],
    "6.0": ["3.12", "3.13"],
}
PAIRS = [(python, django) for django, pythons in SUPPORTED.items() for python in pythons]
OLDEST, NEWEST = PAIRS[0], PAIRS[-1]


def _embedded_defaults() -> None:
    # The unit part runs on the embedded defaults (SQLite in memory, no broker) even when the
    # calling shell points the integration part at real services; the property tests run a tenth
    # of their budget, which the main run spends in full (tests/budget.py).
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ["HYPOTHESIS_PROFILE"] = "quick"


@nox.session
@nox.parametrize(
    ("python", "django"),
    [
        nox.param(python, django, tags=["ci"] if (python, django) in (OLDEST, NEWEST) else [])
        for python, django in PAIRS
    ],
)
def tests(session: nox.Session, django: str) -> None:
    """Unit tests on one supported pair."""
    _embedded_defaults()
    session.install("-e", ".[test]", f"django~={django}.0")
    session.run("python", "-m", "pytest", *UNIT, *session.posargs)


def lowest_requirements() -> list[str]:
    """Each runtime dependency pinned to the lowest version its specifier allows."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = []
    for requirement in project["dependencies"]:
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][^,;\s]*)", requirement)
        if match is None:
            raise ValueError(f"{requirement!r} declares no lower bound")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


@nox.session(python=OLDEST[0], tags=["ci"])
def lowest(session: nox.Session) -> None:
    """Unit tests with every runtime dependency at its lowest declared version."""
    _embedded_defaults()
    session.install("-e", ".[test]", *lowest_requirements())
    session.run("python", "-m", "pip", "freeze", silent=False)
    session.run("python", "-m", "pytest", *UNIT, *session.posargs)


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing of the critical modules, each against its own tests (docs/mutation.md).

    Not tagged ``ci``: it takes long, and runs one mutant at a time (``MUTATION_JOBS``)."""
    session.install("-e", ".[test]", *_requirements("dev", "mutmut"))
    session.run(
        "nice", "-n", "19", "python", "scripts/mutation.py", *session.posargs, external=True
    )


def _requirements(extra: str, name: str) -> list[str]:
    """The requirement on ``name`` that the ``extra`` of pyproject.toml declares."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["optional-dependencies"][extra]
    return [req for req in wanted if re.match(rf"^{re.escape(name)}\b", req)]
