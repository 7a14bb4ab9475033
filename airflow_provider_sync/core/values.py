"""Cursor and key values as JSON (Airflow Variables, XCom, ledger labels): tagged where JSON has no such
type, and as log text."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from airflow_provider_sync.errors import WatermarkError


def encode_value(value: Any) -> Any:
    """A JSON-safe form of one cursor or key value (tagged when JSON has no such type)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"timestamp": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"time": value.isoformat()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
    raise WatermarkError(
        f"a cursor or key value of type {type(value).__name__} cannot be stored in a watermark; use a "
        "timestamp, integer, decimal, date or string column"
    )


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value`."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        decoders: dict[str, Callable[[str], Any]] = {
            "float": float,
            "decimal": Decimal,
            "timestamp": dt.datetime.fromisoformat,
            "date": dt.date.fromisoformat,
            "time": dt.time.fromisoformat,
            "bytes": lambda t: base64.b64decode(t.encode("ascii")),
        }
        if tag in decoders:
            return decoders[tag](text)
    if isinstance(value, list):
        return tuple(decode_value(v) for v in value)
    return value


def value_text(value: Any) -> str:
    """A cursor or key value as log text: ISO for times and dates, plain digits for numbers (never a
    Python repr such as ``datetime.datetime(...)``)."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


def describe_json(data: Any) -> str:
    """Log text for a watermark or boundary in its JSON form (``{"cursor": ..., "key": [...]}``)."""
    if data is None:
        return "none"
    if not isinstance(data, dict) or "cursor" not in data:  # a single encoded value
        return value_text(decode_value(data))
    text = value_text(decode_value(data.get("cursor")))
    keys = data.get("key") or ()
    return f"{text} key {', '.join(value_text(decode_value(v)) for v in keys)}" if keys else text
