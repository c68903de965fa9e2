"""The compatibility matrix: the unit tests on every supported Python and Django pair, and once on
the lowest versions that ``pyproject.toml`` declares.

    nox -l                  # list the sessions
    nox -t ci               # what CI runs: the oldest pair, the newest pair, the lowest versions
    nox -s "tests(python='3.12', django='5.2')"
    nox -s mutation -- sync/policy.py   # mutation testing (docs/mutation.md); no unit: all

Interpreters are found on ``PATH`` as ``python3.X``; pyenv's are found as well, without
``PYENV_VERSION`` (see :func:`pyenv_interpreters`). A session whose Python is not installed
fails under ``CI`` and is skipped elsewhere (nox's ``--error-on-missing-interpreters``
default). Extra arguments go to pytest: ``nox -t ci -- -x``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
# The unit suite without the repository checks, which scripts/test.sh runs once, spread over the
# machine's cores (pytest-xdist): the tests share nothing but the machine.
UNIT = [
    "-m",
    "not integration and not browser and not meta",
    "-p",
    "no:cacheprovider",
    "-n",
    "auto",
]

#: Django release line → the Pythons it supports (and this package supports).
SUPPORTED = {
    "4.2": ["3.10", "3.11", "3.12"],
    "5.2": ["3.10", "3.11", "3.12", "3.13"],
    "6.0": ["3.12", "3.13"],
}
PAIRS = [(python, django) for django, pythons in SUPPORTED.items() for python in pythons]
OLDEST, NEWEST = PAIRS[0], PAIRS[-1]


# ---- interpreter discovery --------------------------------------------------------------------
# pyenv puts one shim per name on PATH, and a shim for a Python that is not the selected version
# fails instead of running it, so nox would skip every pair but one's. The interpreters pyenv
# installed are found in its root instead and linked by their versioned names alone (python3.10,
# ...) into a directory put first on PATH: nothing else (python, pip) is shadowed.


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    try:
        done = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=True)  # noqa: S603
    except (OSError, subprocess.CalledProcessError):
        return None
    return Path(done.stdout.strip())


def pyenv_interpreters(root: Path | None) -> dict[str, Path]:
    """The newest interpreter pyenv installed for each supported ``3.X`` line."""
    wanted = {python for python, _ in PAIRS}
    found: dict[str, tuple[int, Path]] = {}
    for directory in (root / "versions").glob("*") if root else []:
        match = re.fullmatch(r"(3\.\d+)\.(\d+)", directory.name)
        if match is None or match[1] not in wanted:
            continue
        binary = directory / "bin" / f"python{match[1]}"
        if binary.exists() and int(match[2]) > found.get(match[1], (-1, binary))[0]:
            found[match[1]] = (int(match[2]), binary)
    return {line: binary for line, (_, binary) in sorted(found.items())}


def expose(interpreters: dict[str, Path], directory: Path) -> None:
    """Link each interpreter as ``python3.X`` into ``directory`` and put it first on PATH."""
    if not interpreters:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for line, binary in interpreters.items():
        link = directory / f"python{line}"
        link.unlink(missing_ok=True)
        link.symlink_to(binary)
    os.environ["PATH"] = f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"


expose(pyenv_interpreters(_pyenv_root()), ROOT / ".nox" / "pythons")


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
