"""``python -m django_connectycube.emulator``: serve the emulator until stopped."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
