"""Who may use the control API (``/_emulator/...``): this machine's tools and pages, with a mark.

The control API hands out every session token and can reset or reconfigure the emulator (and
point ``cidp_url`` somewhere the emulator then fetches), so a web page the developer happens to
visit must not reach it:

* the ``Host`` header must be a loopback name, an IP address, the host the server was bound to
  or a name given with ``control_hosts``: DNS rebinding (``evil.example`` re-pointed at
  127.0.0.1) arrives with ``Host: evil.example`` and is refused. An IP address is safe to accept
  because no DNS answer is involved: a browser sends that Host only to that address;
* a request carrying an ``Origin`` must come from a page on this machine (``localhost``,
  127.0.0.0/8 or ``[::1]``, any port and scheme). A page at a raw IP address elsewhere
  (``http://203.0.113.7/``) is someone else's, whatever Host it reaches us with;
* every call that changes something (any method but GET/HEAD) needs the header
  ``X-Emulator-Control`` (any value, e.g. ``1``) or the control token's header. A page cannot
  send a custom header without a CORS preflight, which is answered for loopback pages only, so
  a cross-site ``text/plain`` POST or form, which needs no preflight, is refused;
* only loopback pages get CORS headers on control routes, so no other site reads the answers;
* with ``control_token`` set, every control route but ``health`` needs the header
  ``X-Emulator-Control-Token`` (health tells nothing and readiness probes poll it).

Tools (the pytest plugin, curl, Node's ``fetch``) send no ``Origin``, use ``127.0.0.1`` and add
the header (``curl -H 'X-Emulator-Control: 1'``).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CONTROL_HEADER",
    "CONTROL_TOKEN_ENV",
    "CONTROL_TOKEN_HEADER",
    "ControlAccess",
    "bind_warning",
    "fetch_url_problem",
    "is_loopback",
    "is_loopback_origin",
]

#: The mark every state-changing control call carries; a page can only send it after a preflight.
CONTROL_HEADER = "X-Emulator-Control"
CONTROL_TOKEN_HEADER = "X-Emulator-Control-Token"  # noqa: S105 - a header name
CONTROL_TOKEN_ENV = "EMULATOR_CONTROL_TOKEN"  # noqa: S105 - a variable name
#: Routes a token does not guard (the Host and Origin checks still apply).
TOKEN_FREE_PATHS = frozenset({"/_emulator/health"})
_ENVIRON_TOKEN = "HTTP_" + CONTROL_TOKEN_HEADER.upper().replace("-", "_")
_ENVIRON_MARK = "HTTP_" + CONTROL_HEADER.upper().replace("-", "_")
_READS = frozenset({"GET", "HEAD"})
_PREFLIGHT = [
    ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS"),
    ("Access-Control-Allow-Headers", f"Content-Type, {CONTROL_HEADER}, {CONTROL_TOKEN_HEADER}"),
    ("Access-Control-Max-Age", "600"),
]
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
        if origin is not None and not is_loopback_origin(origin):
            return (
                f"Control API refused: requests from the web page at {origin!r} are not allowed "
                "(only pages on localhost, 127.0.0.0/8 or [::1])"
            )
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if method == "OPTIONS":
            return None  # a preflight carries no custom header; the real request will
        if self.token is not None and environ.get("PATH_INFO", "").rstrip("/") not in (
            TOKEN_FREE_PATHS
        ):
            given = environ.get(_ENVIRON_TOKEN)
            if not given:
                return f"Control API refused: {CONTROL_TOKEN_HEADER} required"
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return f"Control API refused: wrong {CONTROL_TOKEN_HEADER}"
        if method not in _READS and not (environ.get(_ENVIRON_MARK) or environ.get(_ENVIRON_TOKEN)):
            return (
                f"Control API refused: a {method} needs the header {CONTROL_HEADER}: 1 (a web "
                "page cannot send it without a preflight, which only local pages pass)"
            )
        return None

    @staticmethod
    def cors_headers(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Lets a page on this machine read a control answer; nothing for anyone else."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is None or not is_loopback_origin(origin):
            return []
        headers = [("Access-Control-Allow-Origin", origin.strip()), ("Vary", "Origin")]
        if str(environ.get("REQUEST_METHOD", "")).upper() == "OPTIONS":
            headers += _PREFLIGHT
        return headers


def is_loopback_origin(origin: str) -> bool:
    """Whether a page at ``origin`` runs on this machine (``null`` and other schemes do not)."""
    try:
        scheme = urlsplit(origin.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme in ("http", "https") and _is_local_name(_origin_host(origin))


def _is_local_name(name: str) -> bool:
    """``localhost`` or a loopback address: names that cannot be made to mean another machine
    (``*.localhost`` may go to a DNS server that answers what it likes)."""
    address = _ip(name)
    return name == "localhost" if address is None else address.is_loopback


def fetch_url_problem(url: str, allow_remote: bool = False) -> str | None:
    """Why the emulator must not fetch ``url`` (its ``cidp_url``); ``None`` when it may.

    Only loopback http(s) URLs unless ``allow_remote``: whoever sets the URL makes the emulator
    send requests there, so it must not become a way to reach other machines from this one.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    is_http = parts is not None and parts.scheme.lower() in ("http", "https") and bool(host)
    if allow_remote:
        return None if is_http else f"must be an http(s) URL, got {url!r}"
    if is_http and _is_local_name(_normalise(host or "")):
        return None
    return (
        f"must be an http(s) URL on loopback (127.0.0.1, [::1] or localhost), got {url!r}: the "
        "emulator fetches it. Start the emulator with --allow-remote-cidp "
        "(allow_remote_cidp=True) to allow other hosts"
    )


def _origin_host(origin: str) -> str:
    """The host of an ``Origin`` header; ``""`` for ``null`` and anything unparsable."""
    try:
        return _normalise(urlsplit(origin.strip()).hostname or "")
    except ValueError:
        return ""
