"""Small value types shared by the YAML models."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_HELP = "a duration such as 30s, 5m, 1h30m, 2d, or a number of seconds"
# Far beyond any real lag, delay or timeout, and far inside what datetime arithmetic can represent.
MAX_DURATION = timedelta(days=36_525)


def _bounded(seconds: float | int, value: Any) -> timedelta:
    # Compare before converting: float() of a 4000-digit integer raises OverflowError, not ValueError.
    if not (0 <= seconds <= MAX_DURATION.total_seconds()) or not math.isfinite(seconds):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"a duration must be finite and at most 100 years (36525d), got {shown}")
    return timedelta(seconds=float(seconds))


def parse_duration(value: Any) -> timedelta:
    """Parse ``30s``/``5m``/``1h30m``/``2d``/``1w`` or a plain number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return _bounded(value, value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and _DURATION_PART.sub("", text) == "":
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
            return _bounded(seconds, value)
    raise ValueError(f"expected {DURATION_HELP}, got {value!r}")


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$"},
                {"type": "number", "minimum": 0},
            ],
            "description": DURATION_HELP,
        }
    ),
]


def parse_lag(value: Any) -> timedelta | int | float:
    """A duration (``5m``) becomes a timedelta; a number stays a number until the strategy says what it
    counts: seconds for timestamp cursors, cursor units for sequence/version cursors."""
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}, or a number of cursor units; got {value!r}")
    if isinstance(value, (int, float)):
        if not (0 <= value < 10**18) or not math.isfinite(value):
            raise ValueError(f"lag must be a finite number between 0 and 10**18, got {value!r}")
        return value
    return parse_duration(value)


def _format_lag(value: timedelta | int | float) -> str | int | float:
    return format_duration(value) if isinstance(value, timedelta) else value


Lag = Annotated[
    timedelta | int | float,
    BeforeValidator(parse_lag),
    PlainSerializer(_format_lag, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "a duration for timestamp cursors (a bare number counts seconds); "
            "a whole number of cursor units for sequence/version cursors",
        }
    ),
]
