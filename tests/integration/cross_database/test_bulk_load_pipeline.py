"""The pipelined bulk loads (COPY into PostgreSQL, LOAD DATA from a named pipe into MariaDB): exact
round trips of the text encoding, errors of the producer thread, nested loads on the same connection."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.errors import TerminalError

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
KINDS = ["postgres", "mysql"]
TRICKY = [
    "plain",
    "tab\there",
    "line\nbreak",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\t literal",
    "ends with backslash\\",
    "",
    None,
    "naïve ünïcode ✓",
]
COLUMNS = {
    "postgres": "id bigint PRIMARY KEY, note text, amount numeric(20,4), day date, at timestamptz, "
    "n double precision",
    "mysql": "id BIGINT PRIMARY KEY, note TEXT, amount DECIMAL(20,4), day DATE, at DATETIME(6), n DOUBLE",
}


class Boom(RuntimeError):
    pass


def _batch(start: int, count: int) -> pa.RecordBatch:
    ids = list(range(start, start + count))
    notes = [TRICKY[i % len(TRICKY)] for i in ids]
    amounts = [None if i % 7 == 0 else Decimal(f"{-1 if i % 2 else 1}{i}12345678901.2345") for i in ids]
    days = [None if i % 5 == 0 else dt.date(1970, 1, 1) + dt.timedelta(days=i * 37 - 20000) for i in ids]
    ats = [dt.datetime(1999, 12, 31, 23, 59, 59, 999999, UTC) + dt.timedelta(seconds=i * 7919) for i in ids]
    floats = [None if i % 3 == 0 else (i - 50) * 1.25e-3 for i in ids]
    return pa.record_batch(
        [
            pa.array(ids, pa.int64()),
            pa.array(notes, pa.string()),
            pa.array(amounts, pa.decimal128(20, 4)),
            pa.array(days, pa.date32()),
            pa.array(ats, pa.timestamp("us", "UTC")),
            pa.array(floats, pa.float64()),
        ],
        names=["id", "note", "amount", "day", "at", "n"],
    )


def _stored(db: Any, name: str) -> list[tuple[Any, ...]]:
    rows = db.run(f"SELECT id, note, amount, day, at, n FROM {db.qualified(name)} ORDER BY id")
    return [(r[0], r[1], r[2], r[3], r[4].replace(tzinfo=UTC) if r[4] else None, r[5]) for r in rows]


def _expected(*batches: pa.RecordBatch) -> list[tuple[Any, ...]]:
    rows = []
    for batch in batches:
        for row in batch.to_pylist():
            rows.append(tuple(row.values()))
    return rows


@pytest.mark.parametrize("kind", KINDS)
def test_many_batches_round_trip_exactly(make_db: Any, kind: str) -> None:
    """Escapes only where a column holds an escapable character (the batches below differ in that),
    NULL vs '' vs the text "\\N", negative and large decimals, dates before 1970, microseconds."""
    db = make_db(kind)
    db.run(f"CREATE TABLE {db.qualified('rt')} ({COLUMNS[kind]})")
    clean = _batch(0, 1).slice(0, 1)  # "plain" only: no column needs escaping in this batch
    batches = [clean, _batch(1, 200), _batch(201, 0), _batch(201, 333)]
    db.dialect.begin_write(db.conn)
    assert db.dialect.bulk_insert(db.conn, db.table("rt"), iter(batches)) == 534
    db.conn.commit()
    stored = _stored(db, "rt")
    assert stored == _expected(*batches)
    assert stored[5][1] == "\\N" and stored[8][1] == "" and stored[9][1] is None


def test_sliced_batch_escapes_only_its_own_rows(make_db: Any) -> None:
    """A slice shares its parent's buffers, where the escapable characters may lie outside it."""
    db = make_db("postgres")
    db.run(f"CREATE TABLE {db.qualified('rt')} ({COLUMNS['postgres']})")
    whole = _batch(0, 22)
    batches = [whole.slice(0, 1), whole.slice(1, 1), whole.slice(2, 20)]
    db.dialect.begin_write(db.conn)
    assert db.dialect.bulk_insert(db.conn, db.table("rt"), batches) == 22
    db.conn.commit()
    assert _stored(db, "rt") == _expected(whole)


def _failing(after: int, produced: threading.Event) -> Iterator[pa.RecordBatch]:
    for number in range(after):
        yield _batch(number * 100, 100)
    produced.set()
    raise Boom("the staged file is unreadable")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("after", [1, 3])
def test_producer_error_is_the_load_error_and_rolls_back(make_db: Any, kind: str, after: int) -> None:
    db = make_db(kind)
    db.run(f"CREATE TABLE {db.qualified('rt')} ({COLUMNS[kind]})")
    db.run(f"INSERT INTO {db.qualified('rt')} (id, note) VALUES (-1, 'kept')")
    produced = threading.Event()
    db.dialect.begin_write(db.conn)
    with pytest.raises(Boom, match="the staged file is unreadable"):
        db.dialect.bulk_insert(db.conn, db.table("rt"), _failing(after, produced))
    assert produced.is_set()
    db.conn.rollback()
    assert db.ids("rt") == [-1]
    # The connection is usable again: the next load works.
    db.dialect.begin_write(db.conn)
    assert db.dialect.bulk_insert(db.conn, db.table("rt"), [_batch(0, 10)]) == 10
    db.conn.commit()
    assert db.count("rt") == 11
    assert not [t for t in threading.enumerate() if t.name.startswith("sync-")]


@pytest.mark.parametrize("kind", KINDS)
def test_server_error_stops_the_producer(make_db: Any, kind: str) -> None:
    db = make_db(kind)
    db.run(f"CREATE TABLE {db.qualified('rt')} ({COLUMNS[kind]})")
    db.run(f"INSERT INTO {db.qualified('rt')} (id) VALUES (150)")

    def batches() -> Iterator[pa.RecordBatch]:
        for number in range(50):
            yield _batch(number * 100, 100)

    db.dialect.begin_write(db.conn)
    with pytest.raises(Exception) as raised:  # the duplicate key 150, as each server reports it
        db.dialect.bulk_insert(db.conn, db.table("rt"), batches())
    db.conn.rollback()
    if kind == "postgres":
        assert db.dialect.is_unique_violation(raised.value)
    else:  # LOAD DATA LOCAL implies IGNORE: the duplicate is a warning, made an error
        assert isinstance(raised.value, TerminalError) and "code 1062" in str(raised.value)
    assert db.ids("rt") == [150]
    assert not [t for t in threading.enumerate() if t.name.startswith("sync-")]


@pytest.mark.parametrize("kind", KINDS)
def test_a_load_nested_in_the_stream_runs_after_it_on_the_same_connection(make_db: Any, kind: str) -> None:
    """Soft deletes stage flagged keys with their own bulk insert while the outer load streams."""
    db = make_db(kind)
    db.run(f"CREATE TABLE {db.qualified('rt')} ({COLUMNS[kind]})")
    db.run(f"CREATE TABLE {db.qualified('keys')} ({COLUMNS[kind]})")
    nested: list[int] = []

    def batches() -> Iterator[pa.RecordBatch]:
        for number in range(4):
            nested.append(db.dialect.bulk_insert(db.conn, db.table("keys"), [_batch(number * 10, 2)]))
            yield _batch(number * 10, 10)

    db.dialect.begin_write(db.conn)
    assert db.dialect.bulk_insert(db.conn, db.table("rt"), batches()) == 40
    db.conn.commit()
    assert nested == [2, 2, 2, 2]
    assert db.count("rt") == 40
    assert db.ids("keys") == [0, 1, 10, 11, 20, 21, 30, 31]
