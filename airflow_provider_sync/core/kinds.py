"""The coarse kind of an Arrow type: what a load checks a staged column against its target column with,
and what profiling reasons about (``integer``, ``timestamp``, ``text``...)."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

_KINDS: tuple[tuple[str, Callable[[pa.DataType], bool]], ...] = (
    ("boolean", pa.types.is_boolean),
    ("integer", pa.types.is_integer),
    ("float", pa.types.is_floating),
    ("decimal", pa.types.is_decimal),
    ("timestamp", pa.types.is_timestamp),
    ("date", pa.types.is_date),
    ("time", pa.types.is_time),
    ("null", pa.types.is_null),
    ("text", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
    ("binary", lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t)),
)


def type_kind(arrow_type: pa.DataType) -> str:
    """``boolean``, ``integer``, ``float``, ``decimal``, ``timestamp``, ``date``, ``time``, ``null``,
    ``text``, ``binary``, or ``other``."""
    return next((kind for kind, check in _KINDS if check(arrow_type)), "other")
