"""How many generated examples a property test runs.

The whole budget runs once per CI run (the SQLite stage). Other stages set
``HYPOTHESIS_PROFILE=quick`` and run a tenth of it: they repeat the same properties on another
database or interpreter, where a smaller sample still catches what differs between them.
"""

from __future__ import annotations

import os

QUICK = os.environ.get("HYPOTHESIS_PROFILE", "") == "quick"


def examples(full: int) -> int:
    """``full`` examples, or a tenth of them (at least 5) under the quick profile."""
    return max(5, full // 10) if QUICK else full
