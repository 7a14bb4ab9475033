"""PostgreSQL binary ``COPY``: a RecordBatch encoded column-wise with numpy, no Python object per value.

In the text format the server parses every number, date and timestamp of a load; in the binary format it
takes them as they are. A binary field is a big-endian int32 length (-1: NULL) and the value in its
type's binary form, which must be exactly the target column's type (four bytes for an ``integer``, eight
for a ``bigint``): so every column is encoded to the type its target column has, and a table with any
column this module has no exact encoding for keeps the text format (:func:`row_encoder` returns None).

Per column the field headers and values are numpy byte arrays (fixed-width ones as ``(rows, width)``).
Runs of fixed-width fields without NULLs are laid side by side with ``numpy.hstack``; those runs, the
values of nullable columns and variable-width values are then joined row by row by pyarrow's
``binary_join_element_wise`` (C++), whose data buffer is the COPY data of the batch.

numpy comes with the ``postgres`` extra; where it is missing :func:`row_encoder` returns None (text
format). ``SYNC_POSTGRES_COPY_FORMAT=text`` keeps every load on the text format.
"""

from __future__ import annotations

import importlib
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def _numpy() -> Any:
    try:
        return importlib.import_module("numpy")
    except ImportError:  # the test tools install numpy: a test runs without it in a subprocess
        return None


np: Any = _numpy()

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # flags 0, no header extension
TRAILER = struct.pack(">h", -1)

# Target column types (pg_type oids) with an exact binary encoding here.
BOOL, BYTEA, INT8, INT2, INT4, TEXT, FLOAT4, FLOAT8 = 16, 17, 20, 21, 23, 25, 700, 701
BPCHAR, VARCHAR, DATE, TIMESTAMP, TIMESTAMPTZ, NUMERIC = 1042, 1043, 1082, 1114, 1184, 1700
_TEXTUAL = (TEXT, VARCHAR, BPCHAR)
_INT_WIDTHS = {INT2: 2, INT4: 4, INT8: 8}

_DAYS_1970_TO_2000 = 10957
_MICROS_1970_TO_2000 = _DAYS_1970_TO_2000 * 86_400_000_000
# PostgreSQL's timestamp range in microseconds since 2000 (4714-11-24 BC up to 294277 AD, exclusive).
_MIN_TIMESTAMP, _END_TIMESTAMP = -211_813_488_000_000_000, 9_223_371_331_200_000_000
# Out of every range and not +-infinity (INT_MIN / INT_MAX): the server rejects it ("out of range").
_INVALID_DATE, _INVALID_TIMESTAMP = -(2**31) + 1, -(2**63) + 1
_UNIT_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1}


@dataclass
class Field:
    """One column of a batch in binary form: ``header`` (rows, 4) holds each field's length (-1: NULL);
    the values are either ``fixed`` (rows, width) bytes or ``variable`` (a binary array), and ``valid``
    (None: no NULL) says which rows have one."""

    header: Any
    valid: Any
    fixed: Any = None
    variable: pa.Array | None = None


ColumnEncoder = Callable[[pa.Array], Field]


def row_encoder(
    schema: pa.Schema, target_types: Sequence[int], utc_session: bool
) -> Callable[[pa.RecordBatch], memoryview] | None:
    """The binary encoder of batches of ``schema`` into columns of the types ``target_types`` (oids, in
    the same order), or None when a column has no exact encoding (or numpy is missing). ``utc_session``:
    the session's TimeZone is UTC, so a zone-less timestamp means the same in a ``timestamptz``."""
    if np is None or len(schema) != len(target_types) or len(schema) == 0:
        return None
    encoders = [
        column_encoder(field.type, oid, utc_session) for field, oid in zip(schema, target_types, strict=True)
    ]
    if any(encoder is None for encoder in encoders):
        return None
    chosen: list[ColumnEncoder] = [encoder for encoder in encoders if encoder is not None]
    types = schema.types

    def encode(batch: pa.RecordBatch) -> memoryview:
        if batch.schema.types != types:  # batches of one load share a schema: a bug upstream
            raise TypeError(f"batch types {batch.schema.types} differ from the load's first batch {types}")
        return encode_rows(batch, chosen)

    return encode


def encode_rows(batch: pa.RecordBatch, encoders: Sequence[ColumnEncoder]) -> memoryview:
    """The rows of ``batch`` as binary COPY tuples (without the signature and the trailer): a view of
    the Arrow buffer that holds them, which the driver sends without copying it to bytes first."""
    rows = batch.num_rows
    if rows == 0:
        return memoryview(b"")
    runs: list[Any] = [np.broadcast_to(np.frombuffer(struct.pack(">h", len(encoders)), np.uint8), (rows, 2))]
    segments: list[pa.Array] = []

    def flush() -> None:
        block = np.ascontiguousarray(np.hstack(runs) if len(runs) > 1 else runs[0])
        segments.append(_fixed_binary(block, None))
        runs.clear()

    for encoder, array in zip(encoders, batch.columns, strict=True):
        field = encoder(array)
        runs.append(field.header)
        if field.fixed is not None and field.valid is None:
            runs.append(field.fixed)  # same width in every row: laid beside its neighbours
            continue
        flush()
        segments.append(
            field.variable if field.variable is not None else _fixed_binary(field.fixed, field.valid)
        )
    if runs:
        flush()
    if len(segments) == 1:
        return _data(segments[0])
    empty = pa.BinaryArray.from_buffers(pa.binary(), 1, [None, pa.py_buffer(bytes(8)), pa.py_buffer(b"")])[0]
    # NULL values are joined as nothing: their header already says -1.
    joined = pc.binary_join_element_wise(*segments, empty, null_handling="replace", null_replacement="")
    return _data(joined)


def _data(array: pa.Array) -> memoryview:
    """The concatenated values of a binary array, as a view of its data buffer."""
    offsets = np.frombuffer(array.buffers()[1], np.int32, len(array) + 1, array.offset * 4)
    start, end, data = int(offsets[0]), int(offsets[-1]), array.buffers()[2]
    return memoryview(b"") if data is None else memoryview(data.slice(start, end - start))


def _fixed_binary(block: Any, valid: Any) -> pa.Array:
    """A binary array over the rows of a 2-D byte block (no copy); rows not ``valid`` are NULL."""
    rows, width = block.shape
    offsets = pa.py_buffer(np.arange(rows + 1, dtype=np.int32) * np.int32(width))
    validity = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    nulls = -1 if valid is None else rows - int(np.count_nonzero(valid))
    return pa.BinaryArray.from_buffers(pa.binary(), rows, [validity, offsets, pa.py_buffer(block)], nulls)


# --------------------------------------------------------------------------- choosing an encoding
def column_encoder(kind: pa.DataType, oid: int, utc_session: bool) -> ColumnEncoder | None:
    """How values of Arrow type ``kind`` become the binary form of the target type ``oid``, if exactly."""
    if pa.types.is_null(kind):
        return _all_null
    if pa.types.is_dictionary(kind):
        inner = column_encoder(kind.value_type, oid, utc_session)
        return None if inner is None else (lambda array: inner(array.cast(kind.value_type)))
    if pa.types.is_integer(kind):
        return _integer_encoder(kind, oid)
    if pa.types.is_boolean(kind):
        return _boolean if oid == BOOL else None
    if pa.types.is_floating(kind):
        # Exactly the same width: a float32 widened to double would differ from the value text gives.
        width = {FLOAT4: 32, FLOAT8: 64}.get(oid)
        return _fixed_numbers(f">f{kind.bit_width // 8}") if width == kind.bit_width != 16 else None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _variable if oid in _TEXTUAL else None
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _variable if oid == BYTEA else None
    if pa.types.is_fixed_size_binary(kind):
        return _fixed_size_binary if oid == BYTEA else None
    if pa.types.is_date32(kind):
        return _date if oid == DATE else None
    if pa.types.is_timestamp(kind):
        return _timestamp_encoder(kind, oid, utc_session)
    if pa.types.is_decimal128(kind) and 0 <= kind.scale <= kind.precision and oid == NUMERIC:
        return lambda array: _fixed(_decimal_numeric(array, kind.scale), _valid(array))
    return None


def _integer_encoder(kind: pa.DataType, oid: int) -> ColumnEncoder | None:
    signed = pa.types.is_signed_integer(kind)
    source = f"<{'i' if signed else 'u'}{kind.bit_width // 8}"
    if oid == NUMERIC:
        return lambda array: _fixed(_integer_numeric(array, source, signed), _valid(array))
    width = _INT_WIDTHS.get(oid)
    needed = kind.bit_width // 8 if signed else kind.bit_width // 4  # an unsigned value needs a sign bit
    if width is None or needed > width:  # narrowing is left to the server (text), which checks the range
        return None
    return _fixed_numbers(f">i{width}", source)


def _timestamp_encoder(kind: pa.DataType, oid: int, utc_session: bool) -> ColumnEncoder | None:
    # Arrow values are UTC instants (zoned) or wall times (zone-less); the text path writes both as UTC
    # wall time, which a timestamptz reads in the session's zone: the same instant only when that is UTC.
    if kind.unit not in _UNIT_MICROS or oid not in (TIMESTAMP, TIMESTAMPTZ):
        return None
    if oid == TIMESTAMPTZ and kind.tz is None and not utc_session:
        return None
    factor = _UNIT_MICROS[kind.unit]
    return lambda array: _timestamp(array, factor)


# --------------------------------------------------------------------------- column encodings
def _valid(array: pa.Array) -> Any:
    """Which rows hold a value (bool per row), or None when none is NULL."""
    if array.null_count == 0:
        return None
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], np.uint8), bitorder="little")
    return bits[array.offset : array.offset + len(array)].view(np.bool_)


def _values(array: pa.Array, dtype: str, per_value: int = 1) -> Any:
    """The value buffer of a fixed-width array as numpy (no copy; NULL slots hold anything)."""
    kind = np.dtype(dtype)
    count = len(array) * per_value
    return np.frombuffer(array.buffers()[1], kind, count, array.offset * per_value * kind.itemsize)


def _header(valid: Any, lengths: Any, rows: int) -> Any:
    """The (rows, 4) big-endian length words: ``lengths`` (an int or one per row), -1 where NULL."""
    if valid is None and isinstance(lengths, int):
        return np.broadcast_to(np.frombuffer(struct.pack(">i", lengths), np.uint8), (rows, 4))
    words = np.full(rows, lengths, dtype=">i4") if isinstance(lengths, int) else lengths.astype(">i4")
    if valid is not None:
        words[~valid] = -1
    return words.view(np.uint8).reshape(rows, 4)


def _fixed(values: Any, valid: Any) -> Field:
    """A field from big-endian values (one per row, or a (rows, k) array of them)."""
    rows = values.shape[0]
    block = values.reshape(rows, -1).view(np.uint8)
    return Field(_header(valid, block.shape[1], rows), valid, fixed=block)


def _fixed_numbers(target: str, source: str | None = None) -> ColumnEncoder:
    def encode(array: pa.Array) -> Field:
        values = _values(array, source or "<" + target[1:])
        return _fixed(values.astype(target), _valid(array))

    return encode


def _all_null(array: pa.Array) -> Field:
    rows = len(array)
    valid = np.zeros(rows, np.bool_)
    return Field(_header(valid, 0, rows), valid, fixed=np.zeros((rows, 0), np.uint8))


def _boolean(array: pa.Array) -> Field:
    bits = np.unpackbits(np.frombuffer(array.buffers()[1], np.uint8), bitorder="little")
    return _fixed(bits[array.offset : array.offset + len(array)], _valid(array))


def _date(array: pa.Array) -> Field:
    days = _values(array, "<i4").astype(np.int64) - _DAYS_1970_TO_2000
    # A day before -2**31 would wrap into the range: make it one the server rejects instead.
    days[days < -(2**31)] = _INVALID_DATE
    return _fixed(days.astype(">i4"), _valid(array))


def _timestamp(array: pa.Array, factor: int) -> Any:
    values = _values(array, "<i8")
    lowest = -(-(_MIN_TIMESTAMP + _MICROS_1970_TO_2000) // factor)  # ceiling: in range after scaling
    highest = min(_END_TIMESTAMP + _MICROS_1970_TO_2000 - 1, 2**63 - 1) // factor
    micros = np.clip(values, lowest, highest) * factor - _MICROS_1970_TO_2000
    micros[(values < lowest) | (values > highest)] = _INVALID_TIMESTAMP
    return _fixed(micros.astype(">i8"), _valid(array))


def _fixed_size_binary(array: pa.Array) -> Field:
    rows, width = len(array), array.type.byte_width
    data = np.frombuffer(array.buffers()[1], np.uint8, rows * width, array.offset * width)
    return _fixed(data.reshape(rows, width), _valid(array))


def _variable(array: pa.Array) -> Field:
    """Strings and bytes as they are: UTF-8 text and bytea are their own binary forms."""
    values = array.cast(pa.binary())
    offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1, values.offset * 4)
    valid = _valid(array)
    return Field(_header(valid, np.diff(offsets), len(values)), valid, variable=values)


# --------------------------------------------------------------------------- numeric
# A numeric is int16 words: digit count, weight (the power of 10000 of the first digit), sign (0x4000:
# negative), display scale, then base-10000 digits, most significant first. The server strips leading
# and trailing zero digits itself, so every value of a batch gets the same digit count and weight: the
# column is fixed-width, and the display scale (the Arrow scale, as the text form has it) keeps the
# trailing zeros the value shows.
_NEGATIVE = 0x4000
_MASK32 = 0xFFFF_FFFF


def _decimal_numeric(array: pa.Array, scale: int) -> Any:
    words = _values(array, "<u8", 2).reshape(-1, 2)
    low, high = words[:, 0].copy(), words[:, 1].copy()
    negative = (high >> np.uint64(63)).astype(np.bool_)
    valid = _valid(array)
    if valid is not None:  # NULL slots may hold anything: zero, so they cannot widen the batch's digits
        low[~valid], high[~valid], negative[~valid] = 0, 0, False
    negated_low = ~low + np.uint64(1)  # two's complement of the 128-bit value, word by word
    negated_high = ~high + (negated_low == 0).astype(np.uint64)
    low, high = np.where(negative, negated_low, low), np.where(negative, negated_high, high)
    groups = _groups64(low) if not high.any() else _groups128(low, high)
    return _numeric_words(groups, negative, scale)


def _integer_numeric(array: pa.Array, source: str, signed: bool) -> Any:
    values = _values(array, source)
    if signed:
        values = values.astype(np.int64)
        negative = values < 0
        magnitude = np.where(negative, ~values.view(np.uint64) + np.uint64(1), values.view(np.uint64))
    else:
        magnitude = values.astype(np.uint64)
        negative = np.zeros(len(values), np.bool_)
    valid = _valid(array)
    if valid is not None:
        magnitude[~valid], negative[~valid] = 0, False
    return _numeric_words(_groups64(magnitude), negative, 0)


def _groups64(magnitude: Any) -> list[Any]:
    """Base-10000 digits of 64-bit magnitudes (below 10**20: five), least significant first."""
    groups = []
    for _ in range(5):
        magnitude, digit = np.divmod(magnitude, np.uint64(10_000))
        groups.append(digit)
    return groups


def _groups128(low: Any, high: Any) -> list[Any]:
    """Base-10000 digits of 128-bit magnitudes (below 2**127 < 10**40: ten): long division of four
    32-bit limbs by 10**8, whose remainders stay far inside 64 bits, five times."""
    limbs = [high >> np.uint64(32), high & np.uint64(_MASK32), low >> np.uint64(32), low & np.uint64(_MASK32)]
    groups = []
    for _ in range(5):
        remainder = np.zeros_like(low)
        for position, limb in enumerate(limbs):
            limbs[position], remainder = np.divmod((remainder << np.uint64(32)) | limb, np.uint64(10**8))
        groups += [remainder % np.uint64(10_000), remainder // np.uint64(10_000)]
    return groups


def _numeric_words(groups: list[Any], negative: Any, scale: int) -> Any:
    """(rows, 4 + digits) big-endian int16 numeric words of the magnitudes ``groups`` (base-10000
    digits of the unscaled values, least significant first) at ``scale`` decimal places."""
    pad = -scale % 4  # digits are aligned on the decimal point: shift the value left by pad places
    if pad:
        up, down = np.uint64(10**pad), np.uint64(10 ** (4 - pad))
        low_parts = [(group * up) % np.uint64(10_000) for group in groups]
        carries = [group // down for group in groups]
        groups = [low_parts[0]] + [low_parts[k] + carries[k - 1] for k in range(1, len(groups))]
        groups.append(carries[-1])
    fraction = (scale + pad) // 4
    used = max((k + 1 for k, group in enumerate(groups) if group.any()), default=1)
    words = np.empty((len(negative), 4 + used), ">i2")
    words[:, 0] = used
    words[:, 1] = used - 1 - fraction
    words[:, 2] = np.where(negative, _NEGATIVE, 0)
    words[:, 3] = scale
    for position in range(used):
        words[:, 4 + position] = groups[used - 1 - position]
    return words


# --------------------------------------------------------------------------- the load's choice
FORMAT_VARIABLE = "SYNC_POSTGRES_COPY_FORMAT"  # "text": never binary (comparing, or working around)
_UTC_ZONES = ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu", "GMT")


def binary_encoder(
    conn: Any, probe_sql: str, schema: pa.Schema
) -> Callable[[pa.RecordBatch], memoryview] | None:
    """The binary encoder for a load of ``schema`` into the columns ``probe_sql`` (a ``SELECT`` of
    them that returns no row) returns, by their types as the server reports them; None: text format."""
    if np is None or os.environ.get(FORMAT_VARIABLE, "").lower() == "text":
        return None
    cursor = conn.execute(probe_sql, [])
    result = cursor.pgresult
    oids = [result.ftype(i) for i in range(result.nfields)]
    cursor.close()
    utc = (conn.info.parameter_status("TimeZone") or "") in _UTC_ZONES
    return row_encoder(schema, oids, utc)


def copy_payloads(
    batches: Iterator[pa.RecordBatch], binary: Callable[[pa.RecordBatch], memoryview] | None
) -> Iterator[tuple[int, bytes | memoryview]]:
    """(rows, data) to send for each batch: with ``binary``, its tuples between the format's signature
    and trailer; without it, the text format's lines."""
    from ._arrow import text_rows

    if binary is None:
        for batch in batches:
            yield batch.num_rows, text_rows(batch, "postgres")
        return
    yield 0, SIGNATURE
    for batch in batches:
        yield batch.num_rows, binary(batch)
    yield 0, TRAILER
