"""The binary COPY encoder of PostgreSQL loads, read back by an independent decoder of the format.

The decoder below follows the PostgreSQL documentation of ``COPY ... (FORMAT binary)`` and of each type's
binary form (``*_send`` in the server); it decodes value by value with ``struct``, so it shares nothing
with the vectorised encoder. The server round trip is in tests/integration/postgres/.
"""

from __future__ import annotations

import datetime as dt
import random
import struct
import subprocess
import sys
import textwrap
from decimal import Context, Decimal, localcontext
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects import postgres_binary as pb

EPOCH = dt.datetime(2000, 1, 1)
OIDS = {
    "bool": 16,
    "bytea": 17,
    "int8": 20,
    "int2": 21,
    "int4": 23,
    "text": 25,
    "float4": 700,
    "float8": 701,
    "bpchar": 1042,
    "varchar": 1043,
    "date": 1082,
    "time": 1083,
    "timestamp": 1114,
    "timestamptz": 1184,
    "numeric": 1700,
    "uuid": 2950,
    "jsonb": 3802,
}


def _numeric(data: bytes) -> Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from(">hhHh", data)
    digits = struct.unpack_from(f">{ndigits}h", data, 8)
    assert all(0 <= d < 10_000 for d in digits)
    assert sign in (0, 0x4000)
    with localcontext(Context(prec=100)):
        value = sum(Decimal(d) * Decimal(10_000) ** (weight - i) for i, d in enumerate(digits))
        value = value.quantize(Decimal(1).scaleb(-dscale))
        return -value if sign == 0x4000 else value


def _decode(kind: str, data: bytes) -> Any:
    fixed = {"int2": ">h", "int4": ">i", "int8": ">q", "float4": ">f", "float8": ">d", "bool": ">?"}
    if kind in fixed:
        assert len(data) == struct.calcsize(fixed[kind])
        return struct.unpack(fixed[kind], data)[0]
    if kind in ("text", "varchar", "bpchar"):
        return data.decode("utf-8")
    if kind == "bytea":
        return data
    if kind == "date":
        return (EPOCH + dt.timedelta(days=struct.unpack(">i", data)[0])).date()
    if kind in ("timestamp", "timestamptz"):
        return EPOCH + dt.timedelta(microseconds=struct.unpack(">q", data)[0])
    if kind == "numeric":
        return _numeric(data)
    raise AssertionError(kind)


def decode(payload: bytes, kinds: list[str]) -> list[tuple[Any, ...]]:
    """Rows of a whole binary COPY stream (signature, tuples, trailer)."""
    assert payload.startswith(b"PGCOPY\n\xff\r\n\x00")
    flags, extension = struct.unpack_from(">ii", payload, 11)
    assert (flags, extension) == (0, 0)
    position, rows = 19, []
    while True:
        (count,) = struct.unpack_from(">h", payload, position)
        position += 2
        if count == -1:
            assert position == len(payload)
            return rows
        assert count == len(kinds)
        row = []
        for kind in kinds:
            (length,) = struct.unpack_from(">i", payload, position)
            position += 4
            if length == -1:
                row.append(None)
                continue
            row.append(_decode(kind, payload[position : position + length]))
            position += length
        rows.append(tuple(row))


def encode(batch: pa.RecordBatch, kinds: list[str], utc: bool = True) -> bytes:
    encoder = pb.row_encoder(batch.schema, [OIDS[kind] for kind in kinds], utc)
    assert encoder is not None
    return pb.SIGNATURE + encoder(batch) + pb.TRAILER


def roundtrip(columns: dict[str, tuple[str, pa.Array]]) -> list[tuple[Any, ...]]:
    batch = pa.record_batch([array for _kind, array in columns.values()], names=list(columns))
    kinds = [kind for kind, _array in columns.values()]
    return decode(encode(batch, kinds), kinds)


def column(kind: str, array: pa.Array) -> list[Any]:
    return [row[0] for row in roundtrip({"c": (kind, array)})]


def test_integers_at_their_bounds_and_widened_to_the_target() -> None:
    assert column("int2", pa.array([-(2**15), 0, None, 2**15 - 1], pa.int16())) == [
        -(2**15),
        0,
        None,
        2**15 - 1,
    ]
    assert column("int4", pa.array([-(2**31), None, 2**31 - 1], pa.int32())) == [-(2**31), None, 2**31 - 1]
    assert column("int8", pa.array([-(2**63), None, 2**63 - 1], pa.int64())) == [-(2**63), None, 2**63 - 1]
    assert column("int8", pa.array([-7, None, 2**15 - 1], pa.int16())) == [-7, None, 2**15 - 1]
    assert column("int4", pa.array([0, 2**16 - 1], pa.uint16())) == [0, 2**16 - 1]
    assert column("int8", pa.array([0, 2**32 - 1], pa.uint32())) == [0, 2**32 - 1]
    assert column("int2", pa.array([-128, 127], pa.int8())) == [-128, 127]


def test_floats_booleans_strings_and_bytes() -> None:
    rows = roundtrip(
        {
            "f4": ("float4", pa.array([1.5, None, float("inf"), -0.0], pa.float32())),
            "f8": ("float8", pa.array([0.1, 1e308, None, float("-inf")], pa.float64())),
            "b": ("bool", pa.array([True, False, None, True])),
            "t": ("text", pa.array(["", "tab\there\nand \\ ü", None, "日本語"])),
            "v": ("varchar", pa.array(["a", None, "", "b"], pa.large_string())),
            "bytes": ("bytea", pa.array([b"", b"\x00\xff\\", None, b"abc"], pa.binary())),
            "fixed": ("bytea", pa.array([b"ab", None, b"\x00\x00", b"zz"], pa.binary(2))),
        }
    )
    assert rows == [
        (1.5, 0.1, True, "", "a", b"", b"ab"),
        (None, 1e308, False, "tab\there\nand \\ ü", None, b"\x00\xff\\", None),
        (float("inf"), None, None, None, "", None, b"\x00\x00"),
        (-0.0, float("-inf"), True, "日本語", "b", b"abc", b"zz"),
    ]


def test_dates_and_timestamps_before_2000_and_far_ahead() -> None:
    days = [dt.date(1, 1, 1), dt.date(1999, 12, 31), None, dt.date(2000, 1, 1), dt.date(9999, 12, 31)]
    assert column("date", pa.array(days, pa.date32())) == days
    moments = [
        dt.datetime(1, 1, 1),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999_999),
        None,
        dt.datetime(9999, 12, 31),
    ]
    assert column("timestamp", pa.array(moments, pa.timestamp("us"))) == moments
    zoned = pa.array(moments, pa.timestamp("us", "UTC"))
    assert column("timestamptz", zoned) == moments  # the decoder reads UTC wall time
    assert column("timestamp", pa.array([-1, None, 1], pa.timestamp("ms"))) == [
        dt.datetime(1969, 12, 31, 23, 59, 59, 999_000),
        None,
        dt.datetime(1970, 1, 1, 0, 0, 0, 1000),
    ]
    assert column("timestamp", pa.array([86_400], pa.timestamp("s"))) == [dt.datetime(1970, 1, 2)]


def test_timestamps_out_of_the_servers_range_become_values_it_rejects() -> None:
    """An Arrow timestamp beyond PostgreSQL's range must not wrap into it (nor become +-infinity)."""
    for extreme in (
        pa.array([-(2**63), 2**62], pa.timestamp("us")),
        pa.array([-(2**62), 2**62], pa.timestamp("s")),
    ):
        encoder = pb.row_encoder(pa.schema([("c", extreme.type)]), [OIDS["timestamp"]], True)
        assert encoder is not None
        payload = encoder(pa.record_batch([extreme], names=["c"]))
        values = [struct.unpack_from(">q", payload, offset)[0] for offset in (6, 6 + 14)]
        if extreme.type.unit == "s":
            assert values == [-(2**63) + 1, -(2**63) + 1]
        else:  # 2**62 microseconds after 1970 is in the range (which ends in 294277)
            assert values == [-(2**63) + 1, 2**62 - 946_684_800_000_000]


@pytest.mark.parametrize(
    ("precision", "scale"),
    [(1, 0), (5, 5), (9, 2), (12, 2), (15, 3), (18, 4), (19, 0), (20, 7), (38, 0), (38, 10), (38, 38)],
)
def test_decimals_of_every_size_and_scale(precision: int, scale: int) -> None:
    rng = random.Random(precision * 100 + scale)
    top = 10**precision - 1
    unscaled = [0, 1, -1, top, -top, 10**scale, None]
    unscaled += [rng.randint(-top, top) for _ in range(200)]
    unscaled += [
        rng.randint(-(10 ** rng.randint(0, precision)), 10 ** rng.randint(0, precision)) for _ in range(200)
    ]
    unscaled = [None if u is None else max(-top, min(top, u)) for u in unscaled]
    values = [None if u is None else Decimal(u).scaleb(-scale, Context(prec=60)) for u in unscaled]
    decoded = column("numeric", pa.array(values, pa.decimal128(precision, scale)))
    assert decoded == values
    # The display scale is the Arrow scale, as in the text form ("1.50", not "1.5").
    assert all(v is None or v.as_tuple().exponent == -scale for v in decoded)


def test_integers_into_numeric_columns() -> None:
    values = [0, 2**64 - 1, None, 10_000]
    assert column("numeric", pa.array(values, pa.uint64())) == values
    signed = [-(2**63), 2**63 - 1, None, -1]
    assert column("numeric", pa.array(signed, pa.int64())) == signed


def test_slices_nulls_only_and_dictionaries() -> None:
    batch = pa.record_batch(
        {
            "id": pa.array(range(10), pa.int64()),
            "name": pa.array([None if i % 3 == 0 else f"n{i}" for i in range(10)]),
            "amount": pa.array(
                [None if i % 4 == 0 else Decimal(i) / 4 for i in range(10)], pa.decimal128(9, 2)
            ),
            "kind": pa.array([f"k{i % 2}" for i in range(10)]).dictionary_encode(),
            "nothing": pa.nulls(10),
            "flag": pa.array([i % 2 == 0 if i != 5 else None for i in range(10)]),
        }
    )
    kinds = ["int8", "text", "numeric", "text", "int4", "bool"]
    part = batch.slice(3, 5)  # offsets into the buffers: validity bits, values, string offsets
    assert decode(encode(part, kinds), kinds) == [
        (
            i,
            None if i % 3 == 0 else f"n{i}",
            None if i % 4 == 0 else (Decimal(i) / 4).quantize(Decimal("0.01")),
            f"k{i % 2}",
            None,
            None if i == 5 else i % 2 == 0,
        )
        for i in range(3, 8)
    ]


def test_a_batch_of_fixed_width_columns_without_nulls_is_one_block() -> None:
    batch = pa.record_batch({"a": pa.array([1, 2], pa.int32()), "b": pa.array([1.0, 2.0])})
    assert decode(encode(batch, ["int4", "float8"]), ["int4", "float8"]) == [(1, 1.0), (2, 2.0)]
    encoder = pb.row_encoder(batch.schema, [OIDS["int4"], OIDS["float8"]], True)
    assert encoder is not None
    assert encoder(batch.slice(0, 0)) == b""


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        (pa.int64(), "int4"),  # narrowing: the server checks the range of text
        (pa.int32(), "int2"),
        (pa.uint16(), "int2"),
        (pa.uint64(), "int8"),
        (pa.float32(), "float8"),  # 0.1f widened is not the double 0.1 the text form gives
        (pa.float64(), "float4"),
        (pa.string(), "uuid"),
        (pa.string(), "jsonb"),
        (pa.string(), "int4"),
        (pa.int32(), "text"),
        (pa.time64("us"), "time"),
        (pa.timestamp("ns"), "timestamp"),
        (pa.timestamp("us"), "date"),
        (pa.date64(), "date"),
        (pa.decimal256(40, 2), "numeric"),
        (pa.decimal128(10, 2), "float8"),
        (pa.binary(), "text"),
        (pa.list_(pa.int32()), "text"),
        (pa.bool_(), "int2"),
    ],
)
def test_pairs_without_an_exact_binary_form_keep_the_text_format(kind: pa.DataType, target: str) -> None:
    assert pb.column_encoder(kind, OIDS[target], True) is None
    schema = pa.schema([("id", pa.int64()), ("c", kind)])
    assert pb.row_encoder(schema, [OIDS["int8"], OIDS[target]], True) is None


def test_a_zoneless_timestamp_goes_binary_into_timestamptz_only_in_a_utc_session() -> None:
    assert pb.column_encoder(pa.timestamp("us"), OIDS["timestamptz"], True) is not None
    assert pb.column_encoder(pa.timestamp("us"), OIDS["timestamptz"], False) is None
    assert pb.column_encoder(pa.timestamp("us", "UTC"), OIDS["timestamptz"], False) is not None
    assert pb.column_encoder(pa.timestamp("us", "UTC"), OIDS["timestamp"], False) is not None


def test_a_batch_of_other_types_than_the_first_is_refused() -> None:
    schema = pa.schema([("a", pa.int32())])
    encoder = pb.row_encoder(schema, [OIDS["int4"]], True)
    assert encoder is not None
    with pytest.raises(TypeError, match="differ"):
        encoder(pa.record_batch({"a": pa.array([1], pa.int16())}))


def test_without_numpy_the_load_keeps_the_text_format() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["numpy"] = None  # any "import numpy" now raises ImportError
        import pyarrow as pa
        from airflow_provider_sync.dialects import postgres_binary as pb

        schema = pa.schema([("a", pa.int32())])
        assert pb.row_encoder(schema, [23], True) is None
        assert pb.binary_encoder(None, "unused", schema) is None  # no probe query either
        print("text")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "text"
