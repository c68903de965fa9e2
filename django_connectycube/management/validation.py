"""Argument types for the management commands: a bad number is a clear ``CommandError``.

argparse calls these while parsing; the ``ArgumentTypeError`` they raise becomes Django's
``CommandError("Error: argument --batch-size: ...")`` (or a usage message on the command line),
instead of an ``OverflowError`` from the database or a traceback from a socket much later.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.management.base import CommandError

__all__ = ["bounded_float", "bounded_int", "check_range"]

T = TypeVar("T", int, float)


def _range_error(name: str, low: float, high: float, text: object) -> str:
    return f"{name} must be between {low} and {high}, got {text!r}"


def _bounded(
    name: str, low: float, high: float, convert: Callable[[str], T], kind: str
) -> Callable[[str], T]:
    def parse(text: str) -> T:
        try:
            value = convert(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{name} must be {kind}, got {text!r}") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(_range_error(name, low, high, text))
        return value

    parse.__name__ = kind.split()[-1]
    return parse


def bounded_int(name: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers in ``[low, high]``."""
    return _bounded(name, low, high, int, "an integer")


def bounded_float(name: str, low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type`` accepting numbers in ``[low, high]``."""
    return _bounded(name, low, high, float, "a number")


def check_range(name: str, value: Any, low: float, high: float, *, integer: bool = True) -> Any:
    """``CommandError`` unless ``value`` is in range: for options passed from code (which skip
    argparse's types) and options whose type another module defines."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise CommandError(_range_error(name, low, high, value))
    return value
