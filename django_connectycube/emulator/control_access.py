"""Who may use the control API (``/_emulator/...``): the emulator's own host, and a token if set.

The control API hands out every session token and can reset or reconfigure the emulator, so a
web page the developer happens to visit must not reach it:

* control routes carry no CORS headers, so another site's script cannot read their answers;
* the ``Host`` header must be a loopback name, an IP address, the host the server was bound to
  or a name given with ``control_hosts``: DNS rebinding (``evil.example`` re-pointed at
  127.0.0.1) arrives with ``Host: evil.example`` and is refused. An IP address is safe to accept
  because no DNS answer is involved: a browser sends that Host only to that address;
* a request carrying an ``Origin`` (every cross-site POST from a browser has one) must come from
  such a host too, which stops a cross-site form or ``text/plain`` fetch that needs no preflight;
* with ``control_token`` set, every control route but ``health`` needs the header
  ``X-Emulator-Control-Token`` (health tells nothing and readiness probes poll it).

Tools (the pytest plugin, curl, Node's ``fetch``) send no ``Origin`` and use ``127.0.0.1``, so
none of this gets in their way.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CONTROL_TOKEN_ENV",
    "CONTROL_TOKEN_HEADER",
    "ControlAccess",
    "bind_warning",
    "is_loopback",
]

CONTROL_TOKEN_HEADER = "X-Emulator-Control-Token"  # noqa: S105 - a header name
CONTROL_TOKEN_ENV = "EMULATOR_CONTROL_TOKEN"  # noqa: S105 - a variable name
#: Routes a token does not guard (the Host and Origin checks still apply).
TOKEN_FREE_PATHS = frozenset({"/_emulator/health"})
_ENVIRON_TOKEN = "HTTP_" + CONTROL_TOKEN_HEADER.upper().replace("-", "_")
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not a bind


def _normalise(name: str) -> str:
    return name.strip().lower().rstrip(".").strip("[]")


def _split_host(header: str) -> str:
    """The name of a ``Host`` header without its port (``[::1]:80`` → ``::1``)."""
    header = header.strip()
    if header.startswith("["):
        return _normalise(header.partition("]")[0])
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return _normalise(header)


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the emulator on this machine."""
    name = _normalise(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _ip(name)
    return address is not None and address.is_loopback


def bind_warning(host: str, token: str | None) -> str | None:
    """The warning to print when the emulator listens beyond loopback; ``None`` when it does not."""
    if is_loopback(host):
        return None
    advice = "" if token else f" Set --control-token (or {CONTROL_TOKEN_ENV}) to guard /_emulator/."
    return (
        f"WARNING: the emulator is bound to {host}: it is reachable from other machines, and "
        "anyone who reaches it can read every session token and reset it through /_emulator/."
        f"{advice} Bind to 127.0.0.1 (the default) unless you need that."
    )


class ControlAccess:
    """The control API's gate: allowed host names and the optional shared token."""

    def __init__(self, token: str | None = None, hosts: Iterable[str] = ()) -> None:
        if token is not None and not (isinstance(token, str) and token):
            raise ValueError("control_token must be a non-empty string or None")
        self.token = token
        self._hosts = {_normalise(name) for name in hosts if name}

    def allow_host(self, host: str) -> None:
        """Accept ``host`` too (the server calls this with the host it was bound to)."""
        name = _normalise(host)
        if name not in _WILDCARDS:
            self._hosts.add(name)

    def host_allowed(self, name: str) -> bool:
        return bool(name) and (is_loopback(name) or _ip(name) is not None or name in self._hosts)

    def refusal(self, environ: Mapping[str, Any]) -> str | None:
        """Why this control request is refused (the 403 message), or ``None`` to serve it."""
        host = environ.get("HTTP_HOST") or ""
        if not self.host_allowed(_split_host(host)):
            return (
                f"Control API refused: Host {host!r} is not this emulator's "
                "(use localhost, a loopback or IP address, or --control-host)"
            )
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and not self.host_allowed(_origin_host(origin)):
            return f"Control API refused: requests from the web page at {origin!r} are not allowed"
        if self.token is None or environ.get("PATH_INFO", "").rstrip("/") in TOKEN_FREE_PATHS:
            return None
        given = environ.get(_ENVIRON_TOKEN)
        if not given:
            return f"Control API refused: {CONTROL_TOKEN_HEADER} required"
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return f"Control API refused: wrong {CONTROL_TOKEN_HEADER}"
        return None


def _origin_host(origin: str) -> str:
    """The host of an ``Origin`` header; ``""`` for ``null`` and anything unparsable."""
    try:
        return _normalise(urlsplit(origin.strip()).hostname or "")
    except ValueError:
        return ""
