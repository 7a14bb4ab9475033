"""Type names used in YAML, and casts that report which values failed instead of failing the batch.

The type grammar is checked without pyarrow (YAML validation must stay light); :func:`arrow_type` builds
the pyarrow type. Names: ``string``/``text``, ``int8``/``int16``/``int32``/``int64`` (``integer``,
``bigint``), ``float32``, ``float64`` (``float``, ``double``), ``boolean``/``bool``, ``date``,
``timestamp`` (microseconds, no zone), ``timestamptz`` (microseconds, UTC), ``decimal(p,s)``/``numeric(p,s)``,
``binary``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

_SIMPLE_TYPES = {
    "string": "string", "text": "string", "varchar": "string",
    "int8": "int8", "int16": "int16", "smallint": "int16", "int32": "int32", "int": "int32",
    "int64": "int64", "integer": "int64", "bigint": "int64",
    "float32": "float32", "real": "float32", "float64": "float64", "float": "float64", "double": "float64",
    "boolean": "bool", "bool": "bool", "date": "date32", "binary": "binary", "bytes": "binary",
    "timestamp": "timestamp", "timestamptz": "timestamptz",
}  # fmt: skip
_DECIMAL = re.compile(r"^(?:decimal|numeric)\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")
TYPE_NAMES_HELP = (
    "string, int8, int16, int32, int64 (integer), float32, float64 (float), boolean, date, timestamp, "
    "timestamptz, decimal(p,s), binary"
)


def check_type_name(name: str) -> str:
    """Return the normalised type name or raise ValueError listing the allowed names."""
    text = name.strip().lower()
    if text in _SIMPLE_TYPES:
        return text
    match = _DECIMAL.match(text)
    if match and 1 <= int(match.group(1)) <= 38 and int(match.group(2)) <= int(match.group(1)):
        return f"decimal({int(match.group(1))},{int(match.group(2))})"
    raise ValueError(f"unknown type {name!r}; allowed: {TYPE_NAMES_HELP}")


def arrow_type(name: str) -> pa.DataType:
    """The pyarrow type for a YAML type name (see :data:`TYPE_NAMES_HELP`)."""
    import pyarrow as pa

    text = check_type_name(name)
    decimal = _DECIMAL.match(text)
    if decimal:
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    base = _SIMPLE_TYPES[text]
    if base == "timestamp":
        return pa.timestamp("us")
    if base == "timestamptz":
        return pa.timestamp("us", tz="UTC")
    return pa.type_for_alias(base)


def is_text(data_type: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))


def safe_cast(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """Cast ``values`` to ``target``; values that cannot be converted become NULL.

    Returns ``(result, failed)`` where ``failed`` is a boolean array (never NULL) marking the values that
    were present but could not be converted. Text is trimmed before a cast to a non-text type. The fast
    path casts the whole array; on failure the array is bisected so that only the ranges holding bad
    values are retried, which keeps a few bad values in a million cheap.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if is_text(values.type) and not is_text(target) and not pa.types.is_binary(target):
        values = pc.utf8_trim_whitespace(values)
    pieces: list[pa.Array] = []
    failed_pieces: list[pa.Array] = []

    def cast_range(part: pa.Array) -> None:
        try:
            pieces.append(pc.cast(part, target, safe=True))
            failed_pieces.append(pa.repeat(pa.scalar(False), len(part)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if isinstance(exc, pa.ArrowNotImplementedError) or len(part) == 1:
                pieces.append(pa.nulls(len(part), target))
                failed_pieces.append(pc.is_valid(part))
                return
            middle = len(part) // 2
            cast_range(part.slice(0, middle))
            cast_range(part.slice(middle))

    cast_range(values)
    result = pa.concat_arrays(pieces) if len(pieces) > 1 else pieces[0]
    failed = pa.concat_arrays(failed_pieces) if len(failed_pieces) > 1 else failed_pieces[0]
    return result, failed


def parse_datetime(values: pa.Array, format: str) -> tuple[pa.Array, pa.Array]:
    """Parse text with a strptime ``format`` into ``timestamp[us]`` (UTC-aware when the format has %z).

    Returns ``(parsed, failed)``. Arrow's parser rolls impossible dates over (31/02 becomes 02/03), so a
    value whose parse does not print back to the same text is re-checked with Python's stricter parser;
    only those values take the slow path.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    parsed = pc.strptime(values, format=format, unit="us", error_is_null=True)
    printed = pc.strftime(parsed, format=format) if "%z" not in format else None
    suspicious = (
        pc.fill_null(pc.not_equal(printed, values), False) if printed is not None else pc.is_valid(parsed)
    )
    if pc.any(suspicious).as_py():
        parsed = _recheck_with_python(values, parsed, suspicious, format)
    failed = pc.and_(pc.is_valid(values), pc.is_null(parsed))
    return parsed, failed


def _recheck_with_python(values: pa.Array, parsed: pa.Array, suspicious: pa.Array, format: str) -> pa.Array:
    import datetime as dt

    import pyarrow as pa

    flags = suspicious.to_pylist()
    texts = values.to_pylist()
    out = parsed.to_pylist()
    for index, flag in enumerate(flags):
        if flag:
            try:
                dt.datetime.strptime(texts[index], format)
            except (ValueError, TypeError):
                out[index] = None
    return pa.array(out, parsed.type)


def text_to_timestamp(values: pa.Array, tz: str | None = None) -> tuple[pa.Array, pa.Array]:
    """ISO 8601 text to ``timestamp[us]`` (``tz=None``: naive UTC) or ``timestamp[us, tz]``.

    Text with an offset (``Z``, ``+02:00``) is converted to UTC; text without one is read as UTC.
    Returns ``(result, failed)`` like :func:`safe_cast`.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    naive, naive_failed = safe_cast(values, pa.timestamp("us"))
    result = naive
    failed = naive_failed
    if pc.any(naive_failed).as_py():
        aware, aware_failed = safe_cast(values, pa.timestamp("us", tz="UTC"))
        result = pc.coalesce(naive, pc.cast(aware, pa.timestamp("us")))
        failed = pc.and_(naive_failed, aware_failed)
    if tz is not None:
        result = pc.cast(pc.assume_timezone(result, timezone="UTC"), pa.timestamp("us", tz=tz))
    return result, failed
