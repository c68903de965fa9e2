"""Mutation testing of the critical modules, one unit at a time, each against its own tests.

    python scripts/mutation.py                    # every unit of [tool.mutmut.units]
    python scripts/mutation.py sync/policy.py     # one unit (its name in that table)

mutmut runs, for each mutant, the tests that execute the mutated function; here those tests are
limited to the unit's own test files (``[tool.mutmut.units]`` in pyproject.toml), because a
property that only a distant test happens to protect is not pinned: such a mutant counts as
surviving. The work tree ``mutants/`` is made afresh for each unit (a survivor of one unit is
never hidden by a result cached for another). Mutants named in ``[tool.mutmut.equivalent]`` are
counted apart. Exits non-zero when a unit keeps a surviving mutant that is not listed there.

``MUTATION_JOBS`` (default 1) sets how many mutants run at once: the machine is usually shared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "django_connectycube"


def _tool() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]


@dataclass
class Tally:
    unit: str
    survived: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    killed: int = 0
    other: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.killed + len(self.survived) + len(self.equivalent) + sum(self.other.values())

    @property
    def score(self) -> float:
        judged = self.total - len(self.equivalent)
        return 100.0 * self.killed / judged if judged else 100.0

    def row(self) -> str:
        other = ", ".join(f"{n} {status}" for status, n in sorted(self.other.items())) or "-"
        return (
            f"| {self.unit} | {self.total} | {self.killed} | {len(self.equivalent)} | "
            f"{len(self.survived)} | {other} | {self.score:.0f} % |"
        )


def _run_one(unit: str) -> None:
    """In a process of its own: mutmut's ``run`` with the unit's files and tests."""
    from mutmut import configuration
    from mutmut.__main__ import cli

    spec = _tool()["units"][unit]
    configuration._config = replace(
        configuration._load_config(),
        only_mutate=[f"{PACKAGE}/{path}" for path in spec["mutate"]],
        pytest_add_cli_args_test_selection=list(spec["tests"]),
    )
    jobs = os.environ.get("MUTATION_JOBS", "1")
    cli(["run", "--max-children", jobs], standalone_mode=True)


def _tally(unit: str) -> Tally:
    from mutmut.stats import status_by_exit_code

    tool = _tool()
    equivalent = tool.get("equivalent", {})
    tally = Tally(unit)
    for path in tool["units"][unit]["mutate"]:
        meta = json.loads((ROOT / "mutants" / PACKAGE / f"{path}.meta").read_text())
        for name, code in sorted(meta["exit_code_by_key"].items()):
            status = status_by_exit_code[code]
            if status == "killed":
                tally.killed += 1
            elif name in equivalent:
                tally.equivalent.append(name)
            elif status == "survived":
                tally.survived.append(name)
            else:  # no tests, timeout, suspicious, skipped: not a kill either
                tally.other[status] = tally.other.get(status, 0) + 1
                tally.survived.append(name)
    return tally


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        _run_one(argv[1])
        return 0
    units = _tool()["units"]
    chosen = argv or list(units)
    unknown = [name for name in chosen if name not in units]
    if unknown:
        print(f"Unknown unit(s) {unknown}; choose from {list(units)}", file=sys.stderr)
        return 2
    env = {**os.environ, "HYPOTHESIS_PROFILE": "quick"}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
        env.pop(name, None)  # the embedded defaults: SQLite in memory, no broker
    tallies = []
    for unit in chosen:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        print(f"== {unit}", flush=True)
        subprocess.run(  # noqa: S603 (our own interpreter and script)
            [sys.executable, __file__, "--one", unit], cwd=ROOT, env=env, check=False
        )
        tally = _tally(unit)
        tallies.append(tally)
        for name in tally.survived:
            print(f"   survived: {name}  (mutmut show {name})")
        print(f"   {tally.row()}", flush=True)
    print(f"\nCommand: python scripts/mutation.py {' '.join(argv)}".rstrip() + f"; {date.today()}")
    print("| module | mutants | killed | equivalent | survived | of which | killed % |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for tally in tallies:
        print(tally.row())
    return 1 if any(tally.survived for tally in tallies) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
