"""``django_connectycube.client`` is a library: it imports, and passes its unit tests, with Django
(and the rest of the app) absent.

Three checks, each in a fresh interpreter so nothing this test process imported can help:

* the client's own unit tests (``tests/client``) run against a copy of ``client/`` lifted out
  beside an empty parent package, with Django, DRF and Celery made unimportable;
* importing the installed client (every module of it) leaves Django out of ``sys.modules``;
* no module of the client names Django or the app in an import statement, not even one deferred
  into a function (which the first two would only catch when it runs).
"""

from __future__ import annotations

import ast
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import django_connectycube.client as client_package

CLIENT_DIR = Path(client_package.__file__).parent
CLIENT_TESTS = Path(__file__).parents[1] / "client"

#: Top-level packages the client must never need.
HIDDEN = ("django", "rest_framework", "celery", "kombu")

#: Run first in the child: every import of a hidden package fails as if it were not installed.
HIDE = f"""
import importlib.abc, sys

class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {HIDDEN!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden)", name=name)
        return None

sys.meta_path.insert(0, Hidden())
for loaded in [m for m in sys.modules if m.partition(".")[0] in {HIDDEN!r}]:
    del sys.modules[loaded]
"""

RUN_TESTS = """
import pytest
code = pytest.main(sys.argv[1:])
import django_connectycube.client as lifted

# About the repository and its tooling: run once per CI run (scripts/test.sh).
pytestmark = pytest.mark.meta
print("CLIENT FROM", lifted.__file__)
app = [m for m in sys.modules if m.startswith("django_connectycube.")]
print("APP MODULES", sorted(m for m in app if not m.startswith("django_connectycube.client")))
print("HIDDEN LOADED", sorted(m for m in sys.modules if m.partition(".")[0] in HIDDEN_NAMES))
sys.exit(code)
"""


def run_child(
    code: str, *args: str, cwd: Path, pythonpath: str = ""
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # pytest-django and our own plugin stay out
    env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-c", code, *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False)


def test_the_client_unit_tests_pass_with_django_hidden_and_the_client_lifted_out(tmp_path):
    lifted = tmp_path / "django_connectycube"
    shutil.copytree(CLIENT_DIR, lifted / "client", ignore=shutil.ignore_patterns("__pycache__"))
    (lifted / "__init__.py").write_text("")  # nothing of the app's own package
    code = HIDE + f"HIDDEN_NAMES = {HIDDEN!r}\n" + RUN_TESTS
    out = run_child(
        code,
        "-q",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestConfigWarning",  # the project's DJANGO_SETTINGS_MODULE ini key
        f"--confcutdir={CLIENT_TESTS}",
        str(CLIENT_TESTS),
        cwd=tmp_path,
        pythonpath=str(tmp_path),
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert f"CLIENT FROM {lifted / 'client' / '__init__.py'}" in report
    assert "APP MODULES []" in report
    assert "HIDDEN LOADED []" in report
    passed = re.search(r"(\d+) passed", report)
    assert passed and int(passed.group(1)) >= 80, report
    assert not re.search(r"\d+ (skipped|xfailed|deselected)", report), report


def test_importing_the_client_leaves_django_out():
    modules = sorted(m.name for m in pkgutil.iter_modules([str(CLIENT_DIR)]))
    code = (
        "import importlib, sys\n"
        "import django_connectycube.client as c\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module('django_connectycube.client.' + name)\n"
        "c.ConnectyCubeClient('https://cc.test', 1, 'key', 'secret').close()\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in "
        f"{HIDDEN!r} or (m.startswith('django_connectycube.') and '.client' not in m)))\n"
    )
    out = run_child(code, *modules, cwd=CLIENT_DIR.parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    assert {"api", "app_session", "dates", "errors", "stores", "transport"} <= set(modules)


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an import statement names (``from . import x`` is level 1, name ``x``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def test_no_client_module_imports_django_or_the_app():
    offending = []
    for path in sorted(CLIENT_DIR.glob("*.py")):
        for level, name in imported_names(ast.parse(path.read_text(), str(path))):
            top = name.partition(".")[0]
            if level > 1 or (level == 0 and top in (*HIDDEN, "django_connectycube")):
                offending.append(f"{path.name}: {'.' * level}{name}")
    assert offending == []
