"""Tell whether the services behind some URLs accept TCP connections (used by the test scripts).

Usage: ``python scripts/services.py reachable URL [URL ...]`` exits 0 when all are reachable.
"""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit

DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "redis": 6379, "amqp": 5672, "http": 80}


def reachable(url: str, timeout: float = 2.0) -> bool:
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "reachable":
        print(__doc__, file=sys.stderr)
        return 2
    down = [url for url in argv[1:] if not reachable(url)]
    for url in down:
        print(f"unreachable: {url}", file=sys.stderr)
    return 1 if down else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
