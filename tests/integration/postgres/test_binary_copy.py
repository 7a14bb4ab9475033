"""The PostgreSQL bulk load in the binary COPY format, against the real server.

Each load is made twice, once binary and once in the text format (``SYNC_POSTGRES_COPY_FORMAT=text``),
into twin tables; the server's text of every stored value must be the same, and match what was sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects import postgres_binary
from airflow_provider_sync.errors import SyncError

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
TYPES = {
    "i2": "smallint",
    "i4": "integer",
    "i8": "bigint",
    "f4": "real",
    "f8": "double precision",
    "flag": "boolean",
    "name": "text",
    "code": "varchar(12)",
    "pad": "char(4)",
    "blob": "bytea",
    "day": "date",
    "at": "timestamp(6)",
    "seen": "timestamptz",
    "money": "numeric(12,2)",
    "ratio": "numeric(38,18)",
    "huge": "numeric(38,0)",
    "tiny": "numeric(5,5)",
    "free": "numeric",
}


def _batch(offset: int = 0) -> pa.RecordBatch:
    """Bounds, zero, NULLs, empty and unicode strings, dates and instants on both sides of 2000."""
    d = Decimal
    return pa.record_batch(
        {
            "id": pa.array([offset + i for i in range(5)], pa.int64()),
            "i2": pa.array([-(2**15), 0, None, 2**15 - 1, 7], pa.int16()),
            "i4": pa.array([-(2**31), 0, None, 2**31 - 1, -7], pa.int32()),
            "i8": pa.array([-(2**63), 0, None, 2**63 - 1, 1], pa.int64()),
            "f4": pa.array([1.5, float("nan"), None, float("-inf"), 0.1], pa.float32()),
            "f8": pa.array([0.1, -0.0, None, 1e308, float("inf")], pa.float64()),
            "flag": pa.array([True, False, None, True, False]),
            "name": pa.array(["", "tab\tnew\nline \\ back", None, "日本語 ü", "x" * 1000]),
            "code": pa.array(["a", "", None, "twelve chars", "é"], pa.large_string()),
            "pad": pa.array(["a", "abcd", None, "", "ü"]),
            "blob": pa.array([b"", b"\x00\xff\\", None, b"abc", bytes(range(256))]),
            "day": pa.array(
                [dt.date(1, 1, 1), dt.date(1999, 12, 31), None, dt.date(2000, 1, 1), dt.date(9999, 12, 31)]
            ),
            "at": pa.array(
                [
                    dt.datetime(1, 1, 1),
                    dt.datetime(1969, 12, 31, 23, 59, 59, 999_999),
                    None,
                    dt.datetime(2000, 1, 1),
                    dt.datetime(9999, 12, 31, 23, 59, 59, 999_999),
                ],
                pa.timestamp("us"),
            ),
            "seen": pa.array(
                [
                    dt.datetime(1900, 1, 1, tzinfo=UTC),
                    dt.datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
                    None,
                    dt.datetime(2000, 1, 1, tzinfo=UTC),
                    dt.datetime(3000, 6, 1, 12, tzinfo=UTC),
                ],
                pa.timestamp("us", "UTC"),
            ),
            "money": pa.array(
                [d("-0.01"), d("0.00"), None, d("9999999999.99"), d("-1234.50")], pa.decimal128(12, 2)
            ),
            "ratio": pa.array(
                [
                    d("-1.000000000000000001"),
                    d("0"),
                    None,
                    d("99999999999999999999.999999999999999999"),
                    d("0.000000000000000001"),
                ],
                pa.decimal128(38, 18),
            ),
            "huge": pa.array(
                [d("-" + "9" * 38), d("1"), None, d("9" * 38), d("10000000000000000000")],
                pa.decimal128(38, 0),
            ),
            "tiny": pa.array([d("0.00001"), d("-0.12345"), None, d("0.99999"), d("0")], pa.decimal128(5, 5)),
            "free": pa.array([d("1.5"), d("-2"), None, d("123456789.123"), d("0.001")], pa.decimal128(20, 3)),
        }
    )


@pytest.fixture
def chosen(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per load: whether it went binary."""
    picks: list[bool] = []
    choose = postgres_binary.row_encoder

    def recording(*args: Any) -> Any:
        encoder = choose(*args)
        picks.append(encoder is not None)
        return encoder

    monkeypatch.setattr(postgres_binary, "row_encoder", recording)
    return picks


def _twins(db: Any, columns: dict[str, str]) -> None:
    body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    for table in ("binary_copy", "text_copy"):
        db.run(f"CREATE TABLE {db.qualified(table)} (id bigint PRIMARY KEY, {body})")


def _load_twice(db: Any, batches: list[pa.RecordBatch], monkeypatch: pytest.MonkeyPatch) -> None:
    db.dialect.bulk_insert(db.conn, db.table("binary_copy"), iter(batches))
    db.conn.commit()
    with monkeypatch.context() as patch:
        patch.setenv(postgres_binary.FORMAT_VARIABLE, "text")
        db.dialect.bulk_insert(db.conn, db.table("text_copy"), iter(batches))
        db.conn.commit()


def _as_text(db: Any, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    listed = ", ".join(f"{name}::text" for name in ["id", *columns])
    return list(db.run(f"SELECT {listed} FROM {db.qualified(table)} ORDER BY id"))


def test_every_supported_type_loads_binary_and_stores_what_text_stores(
    make_db: Any, chosen: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db("postgres")
    _twins(db, TYPES)
    batches = [_batch(0), _batch(5).slice(1, 3), _batch(10)]  # a slice: its buffers start past row 0
    _load_twice(db, batches, monkeypatch)
    assert chosen == [True]  # the text load never asked
    stored = _as_text(db, "binary_copy", list(TYPES))
    assert stored == _as_text(db, "text_copy", list(TYPES))
    assert len(stored) == 13
    by_id = {row[0]: row[1:] for row in stored}
    names = list(TYPES)
    first, fourth = dict(zip(names, by_id["0"], strict=True)), dict(zip(names, by_id["3"], strict=True))
    assert all(value is None for value in by_id["2"])
    assert first["i8"] == str(-(2**63)) and fourth["i8"] == str(2**63 - 1)
    assert first["money"] == "-0.01" and fourth["huge"] == "9" * 38
    assert first["ratio"] == "-1.000000000000000001" and first["tiny"] == "0.00001"
    assert first["day"] == "0001-01-01" and first["at"] == "0001-01-01 00:00:00"
    assert first["seen"] == "1900-01-01 00:00:00+00" and fourth["code"] == "twelve chars"
    assert first["pad"] == "a" and first["name"] == "" and by_id["1"][names.index("f4")] == "NaN"
    assert dict(zip(names, by_id["4"], strict=True))["blob"] == "\\x" + bytes(range(256)).hex()


def test_many_batches_stream_through_the_encoder_thread(
    make_db: Any, chosen: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db("postgres")
    _twins(db, {"name": "text", "amount": "numeric(12,2)", "at": "timestamptz"})

    def batches() -> Iterator[pa.RecordBatch]:
        for number in range(12):
            ids = range(number * 500, number * 500 + 500)
            yield pa.record_batch(
                {
                    "id": pa.array(ids, pa.int64()),
                    "name": pa.array([None if i % 7 == 0 else f"row {i}" for i in ids]),
                    "amount": pa.array(
                        [None if i % 5 == 0 else Decimal(i * 37) / 100 - 50 for i in ids],
                        pa.decimal128(12, 2),
                    ),
                    "at": pa.array(
                        [None if i % 3 == 0 else i * 1_000_003 for i in ids], pa.timestamp("us", "UTC")
                    ),
                }
            )

    _load_twice(db, list(batches()), monkeypatch)
    assert chosen == [True]
    columns = ["name", "amount", "at"]
    assert _as_text(db, "binary_copy", columns) == _as_text(db, "text_copy", columns)
    assert db.count("binary_copy") == 6000


def test_an_existing_table_of_other_compatible_types(
    make_db: Any, chosen: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wider integer column takes the binary form widened; a narrower one, a uuid from a string, a
    double from a float32 have no exact binary form: the whole load stays text, and loads the same."""
    db = make_db("postgres")
    batch = pa.record_batch(
        {
            "id": pa.array([1, 2], pa.int32()),
            "wide": pa.array([-5, None], pa.int16()),
            "narrow": pa.array([7, 2**31 - 1], pa.int64()),
            "uid": pa.array(["0b9e3c4e-6b1f-4a0e-9d5e-3b1f2c3d4e5f", None]),
            "ratio": pa.array([0.1, None], pa.float32()),
        }
    )
    _twins(db, {"wide": "bigint"})
    db.dialect.bulk_insert(db.conn, db.table("binary_copy"), [batch.select(["id", "wide"])])
    db.conn.commit()
    assert chosen == [True]
    assert _as_text(db, "binary_copy", ["wide"]) == [("1", "-5"), ("2", None)]

    for table in ("binary_copy", "text_copy"):
        db.run(f"DROP TABLE {db.qualified(table)}")
    _twins(db, {"wide": "bigint", "narrow": "integer", "uid": "uuid", "ratio": "double precision"})
    _load_twice(db, [batch], monkeypatch)
    assert chosen == [True, False]
    columns = ["wide", "narrow", "uid", "ratio"]
    assert _as_text(db, "binary_copy", columns) == _as_text(db, "text_copy", columns)


def test_a_zoneless_timestamp_into_timestamptz_outside_utc_stays_text(
    make_db: Any, chosen: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db("postgres")
    _twins(db, {"at": "timestamptz", "local": "timestamp"})
    db.conn.execute("SET TIME ZONE 'America/New_York'")
    naive = pa.array([dt.datetime(2024, 7, 1, 12)], pa.timestamp("us"))
    _load_twice(
        db, [pa.record_batch({"id": pa.array([1], pa.int64()), "at": naive, "local": naive})], monkeypatch
    )
    assert chosen == [False]  # the text form is read in the session's zone: binary would differ
    db.conn.execute("SET TIME ZONE 'UTC'")
    assert _as_text(db, "binary_copy", ["at", "local"]) == _as_text(db, "text_copy", ["at", "local"])


def test_numeric_values_are_rounded_and_checked_by_the_target_column(
    make_db: Any, chosen: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db("postgres")
    _twins(db, {"amount": "numeric(6,1)"})
    values = [Decimal("1.250"), Decimal("-1.250"), Decimal("99999.949"), Decimal("0.049")]
    batch = pa.record_batch(
        {"id": pa.array(range(4), pa.int64()), "amount": pa.array(values, pa.decimal128(12, 3))}
    )
    _load_twice(db, [batch], monkeypatch)
    assert chosen == [True]
    stored = _as_text(db, "binary_copy", ["amount"])
    assert stored == _as_text(db, "text_copy", ["amount"])
    assert [amount for _id, amount in stored] == ["1.3", "-1.3", "99999.9", "0.0"]
    too_big = pa.record_batch(
        {"id": pa.array([9], pa.int64()), "amount": pa.array([Decimal("100000.000")], pa.decimal128(12, 3))}
    )
    with pytest.raises(Exception) as raised:
        db.dialect.bulk_insert(db.conn, db.table("binary_copy"), [too_big])
    db.conn.rollback()
    assert "numeric field overflow (staged row 1, column amount)" in str(
        db.dialect.translate_error(raised.value)
    )


@pytest.mark.parametrize("copy_format", ["binary", "text"])
def test_a_rejected_value_names_its_staged_row_and_column(
    make_db: Any, monkeypatch: pytest.MonkeyPatch, copy_format: str
) -> None:
    db = make_db("postgres")
    monkeypatch.setenv(postgres_binary.FORMAT_VARIABLE, copy_format)
    db.run(f"CREATE TABLE {db.qualified('strict')} (id bigint NOT NULL, code varchar(3))")

    def batch(ids: list[int | None], codes: list[str]) -> pa.RecordBatch:
        return pa.record_batch({"id": pa.array(ids, pa.int64()), "code": pa.array(codes)})

    cases = [
        ([batch([1, 2], ["a", "b"]), batch([3, 4], ["c", "toolong"])], "(staged row 4, column code)"),
        ([batch([1, None], ["a", "b"])], "not-null constraint (staged row 2)"),
    ]
    for batches, where in cases:
        with pytest.raises(Exception) as raised:
            db.dialect.bulk_insert(db.conn, db.table("strict"), batches)
        db.conn.rollback()
        translated = db.dialect.translate_error(raised.value)
        assert isinstance(translated, SyncError)
        assert where in str(translated)
