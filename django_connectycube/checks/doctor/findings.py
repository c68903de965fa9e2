"""What a doctor check reports, and how a list of reports is shown to a person or a machine.

A finding is data, not text: the command renders it as one line per check, or as JSON for a
deploy pipeline, and decides the exit status from the worst status alone.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage


class Status(str, enum.Enum):
    """How bad a finding is; only ``FAIL`` makes the command exit non-zero (``WARN`` with
    ``--fail-on-warn``)."""

    OK = "ok"
    INFO = "info"  # a fact about the setup that needs no action
    SKIP = "skip"  # not applicable here (an optional setting unset, a prerequisite failed)
    WARN = "warn"
    FAIL = "fail"

    @property
    def label(self) -> str:
        return self.value.upper()


#: Each check's short name for people; its key is the stable id for machines.
TITLES = {
    "settings": "Settings",
    "credentials": "Credentials",
    "clock": "Clock",
    "users_api": "Users API",
    "password_secret": "Password secret",
    "admin_api_key": "Admin API key",
    "broker": "Celery broker",
    "workers": "Celery workers",
    "sweep_schedule": "Sweep in beat",
    "sync_health": "Sync health",
    "drift": "Drift",
}


@dataclass(frozen=True)
class Finding:
    """One check's verdict: what was found, and for every WARN/FAIL what to do about it."""

    check: str
    status: Status
    message: str
    action: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES.get(self.check) or self.check.replace("_", " ").capitalize()

    def __post_init__(self) -> None:
        if self.status in (Status.WARN, Status.FAIL) and not self.action:
            raise ValueError(f"A {self.status.label} finding must say what to do ({self.check}).")

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "title": self.title,
            "status": self.status.value,
            "message": self.message,
            "action": self.action,
            "details": self.details,
        }


def from_message(check: str, message: CheckMessage, status: Status, **details: Any) -> Finding:
    """A system check's message as a finding: the doctor reports what ``manage.py check`` says
    in its words, with its id."""
    return Finding(check, status, f"{message.msg} ({message.id})", message.hint or "", details)


def duration(seconds: float) -> str:
    """A length of time as a person reads it in a report line: ``45 s``, ``20 min``, ``2.5 h``."""
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def summary_line(findings: Sequence[Finding]) -> str:
    """``2 failed, 1 warning, 4 fine.``: the last line a person reads."""
    counts = Counter(finding.status for finding in findings)
    failed, warned = counts[Status.FAIL], counts[Status.WARN]
    parts = [f"{failed} failed"] if failed else []
    if warned:
        parts.append(f"{warned} warning{'s' if warned != 1 else ''}")
    return ", ".join([*parts, f"{len(findings) - failed - warned} fine"]) + "."


def render_text(findings: Sequence[Finding], *, heading: str = "") -> str:
    """One line per check, each WARN/FAIL followed by an indented "what to do" line."""
    width = max((len(f.title) for f in findings), default=0)
    lines = [heading] if heading else []
    for finding in findings:
        lines.append(f"{finding.status.label:<4}  {finding.title:<{width}}  {finding.message}")
        if finding.action and finding.status in (Status.WARN, Status.FAIL):
            lines.append(f"{'':<4}  {'':<{width}}  → {finding.action}")
    lines.append(summary_line(findings))
    return "\n".join(lines)


def render_json(findings: Sequence[Finding], **meta: Any) -> str:
    """The findings for machines; ``ok`` is False when any check failed."""
    document = {
        **meta,
        "ok": not any(f.status is Status.FAIL for f in findings),
        "checks": [finding.to_dict() for finding in findings],
    }
    return json.dumps(document, indent=2, default=str)
