"""Targets the product creates keep the source's declared types, and queries on them answer as the source.

Each source table has padded ``char(10)``, bounded ``varchar(44)``, ``numeric(12,2)``, millisecond
timestamps, booleans, JSON, bytes and dates; after a sync the target's column types are checked and the
same equality, sum and range queries are run on both sides.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.pipeline.extract import extract_to_staging
from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.specs import ExtractSpec, LoadSpec
from airflow_provider_sync.staging.manifest import Manifest

pytestmark = pytest.mark.integration

MODES = ["TRUCK", "MAIL", "AIR", "REG AIR"]
DDL = {
    "postgres": (
        "id integer PRIMARY KEY, mode char(10), comment varchar(44), amount numeric(12,2), "
        "shipped timestamp(3), seen timestamptz(3), flag boolean, doc jsonb, payload bytea, day date, "
        "uid uuid"
    ),
    "mysql": (
        "id int PRIMARY KEY, mode char(10), comment varchar(44), amount decimal(12,2), "
        "shipped datetime(3), seen timestamp(3) NULL, flag boolean, doc json, payload varbinary(16), "
        "day date, uid char(36)"
    ),
    "sqlite": (
        "id INTEGER PRIMARY KEY, mode CHAR(10), comment VARCHAR(44), amount DECIMAL TEXT(12,2), "
        "shipped TIMESTAMP, seen TIMESTAMPTZ, flag BOOLEAN, doc JSON TEXT, payload BLOB, day DATE, "
        "uid UUID TEXT"
    ),
}
COLUMNS = ["id", "mode", "comment", "amount", "shipped", "seen", "flag", "doc", "payload", "day", "uid"]
T0 = dt.datetime(2024, 5, 1, 13, 0, 0)


def _rows() -> list[tuple[Any, ...]]:
    return [
        (
            i,
            MODES[i % 4],
            f"comment number {i}",
            Decimal(i * 37 % 1000) / 100 + Decimal("1000.01"),
            T0 + dt.timedelta(milliseconds=250 * i),
            (T0 + dt.timedelta(minutes=i)).replace(tzinfo=dt.timezone.utc),
            i % 3 == 0,
            f'{{"n": {i}}}',
            bytes([i % 256, 0, 255]),
            dt.date(2024, 1, 1) + dt.timedelta(days=i),
            str(uuid.UUID(int=i)),
        )
        for i in range(1, 41)
    ]


def _source(db: Any) -> None:
    db.run(f"CREATE TABLE {db.qualified('lineitem')} ({DDL[db.kind]})")
    db.insert("lineitem", COLUMNS, _rows())


def _sync(source: Any, target: Any, tmp_path: Path, table: str = "lineitem_copy") -> Manifest:
    spec = ExtractSpec(
        source.info,
        table=source.name("lineitem"),
        schema=source.schema,
        cursor_column="id",
        strategy="sequence",
    )
    manifest = extract_to_staging(
        spec, None, tmp_path / "stage", dag_id="types", run_id="r1", table="lineitem"
    )
    load = LoadSpec(target.info, table=target.name(table), schema=target.schema, mode="upsert", keys=("id",))
    assert load_from_staging(load, manifest).inserted == 40
    return manifest


def _declared(db: Any, name: str) -> dict[str, str]:
    columns = db.dialect.get_columns(db.conn, db.table(name))
    db.conn.rollback()
    return {c.name: c.db_type.lower() for c in columns}


def _answers(db: Any, table: str) -> list[Any]:
    """The same questions asked of source and target: padded equality, exact sums, sub-second ranges."""
    q, t = db.dialect.quote, db.qualified(table)
    since = "2024-05-01 13:00:03.250"
    return [
        db.run(f"SELECT COUNT(*) FROM {t} WHERE {q('mode')} = 'TRUCK'")[0][0],
        db.run(f"SELECT COUNT(*) FROM {t} WHERE {q('mode')} = 'REG AIR'")[0][0],
        # SQLite sums decimal text as floating point: compare at the column's scale.
        Decimal(str(db.run(f"SELECT SUM({q('amount')}) FROM {t}")[0][0])).quantize(Decimal("0.01")),
        db.run(f"SELECT COUNT(*) FROM {t} WHERE {q('shipped')} > '{since}'")[0][0],
        db.run(f"SELECT COUNT(*) FROM {t} WHERE {q('shipped')} >= '{since}'")[0][0],
        db.run(f"SELECT COUNT(*) FROM {t} WHERE {q('flag')}")[0][0],
        db.run(f"SELECT MAX({q('comment')}) FROM {t}")[0][0],
    ]


def test_postgres_to_postgres_keeps_declared_types(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("postgres"), make_db("postgres")
    _source(source)
    _sync(source, target, tmp_path)
    assert _declared(target, "lineitem_copy") == _declared(source, "lineitem")
    assert _declared(target, "lineitem_copy")["mode"] == "character(10)"
    assert _answers(target, "lineitem_copy") == _answers(source, "lineitem")
    assert _answers(source, "lineitem")[:2] == [10, 10]
    # The padding is insignificant, as in the source: char(10) compares blank-padded.
    row = target.run(
        f"SELECT octet_length({target.dialect.quote('mode')}::text) FROM "
        f"{target.qualified('lineitem_copy')} WHERE id = 4"
    )
    assert row == [(5,)]


def test_postgres_to_mariadb_keeps_declared_types(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("postgres"), make_db("mysql")
    _source(source)
    _sync(source, target, tmp_path)
    declared = _declared(target, "lineitem_copy")
    assert declared["mode"] == "char(10)" and declared["comment"] == "varchar(44)"
    assert declared["amount"] == "decimal(12,2)" and declared["shipped"] == "datetime(3)"
    assert declared["seen"] == "datetime(3)" and declared["flag"] == "tinyint(1)"
    assert declared["uid"] == "char(36)" and declared["day"] == "date" and declared["payload"] == "longblob"
    # MariaDB's JSON is LONGTEXT with a json_valid() check; the dialect reads it back as JSON.
    assert target.dialect.get_columns(target.conn, target.table("lineitem_copy"))[7].db_type == "json"
    target.conn.rollback()
    assert _answers(target, "lineitem_copy") == _answers(source, "lineitem")


def test_mariadb_to_postgres_keeps_declared_types(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("mysql"), make_db("postgres")
    _source(source)
    _sync(source, target, tmp_path)
    declared = _declared(target, "lineitem_copy")
    assert declared == {
        "id": "integer",
        "mode": "character(10)",
        "comment": "character varying(44)",
        "amount": "numeric(12,2)",
        "shipped": "timestamp(3) without time zone",
        "seen": "timestamp(3) with time zone",
        "flag": "boolean",
        "doc": "jsonb",
        "payload": "bytea",
        "day": "date",
        "uid": "character(36)",
    }
    assert _answers(target, "lineitem_copy") == _answers(source, "lineitem")


def test_sqlite_to_postgres_keeps_declared_types(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("sqlite"), make_db("postgres")
    _source(source)
    _sync(source, target, tmp_path)
    declared = _declared(target, "lineitem_copy")
    assert declared["mode"] == "character(10)" and declared["comment"] == "character varying(44)"
    assert declared["amount"] == "numeric(12,2)" and declared["uid"] == "uuid"
    assert declared["doc"] == "jsonb" and declared["flag"] == "boolean"
    assert _answers(target, "lineitem_copy")[:3] == _answers(source, "lineitem")[:3]


def test_postgres_to_sqlite_drops_char_padding(make_db: Any, tmp_path: Path) -> None:
    """SQLite compares text exactly: the blank padding of char(10) must not reach it."""
    source, target = make_db("postgres"), make_db("sqlite")
    _source(source)
    _sync(source, target, tmp_path)
    assert _declared(target, "lineitem_copy")["mode"] == "char(10)"
    assert _answers(target, "lineitem_copy")[:3] == _answers(source, "lineitem")[:3]


def test_postgres_to_clickhouse_keeps_declared_types(make_db: Any, chdb_dsn: str, tmp_path: Path) -> None:
    source = make_db("postgres")
    _source(source)
    database = f"types_{uuid.uuid4().hex[:8]}"
    info = ConnectionInfo(conn_type="clickhouse", extra={"dsn": chdb_dsn})
    from airflow_provider_sync.dialects import get_dialect

    dialect = get_dialect("clickhouse")
    conn = dialect.connect(info)
    conn.client.command(f"CREATE DATABASE {database}")
    try:
        spec = ExtractSpec(
            source.info, table="lineitem", schema=source.schema, cursor_column="id", strategy="sequence"
        )
        manifest = extract_to_staging(spec, None, tmp_path / "stage", dag_id="types", run_id="r1")
        load = LoadSpec(info, table="lineitem", schema=database, mode="upsert", keys=("id",))
        assert load_from_staging(load, manifest).inserted == 40
        types = dict(
            conn.client.query(
                f"SELECT name, type FROM system.columns WHERE database = '{database}' AND table = 'lineitem'"
            ).result_rows
        )
        assert types["shipped"] == "Nullable(DateTime64(3, 'UTC'))"
        assert types["amount"] == "Nullable(Decimal(12, 2))" and types["uid"] == "Nullable(UUID)"
        truck = conn.client.query(f"SELECT count() FROM {database}.lineitem WHERE mode = 'TRUCK'")
        total = conn.client.query(f"SELECT sum(amount) FROM {database}.lineitem")
        later = conn.client.query(
            f"SELECT count() FROM {database}.lineitem "
            "WHERE shipped > toDateTime64('2024-05-01 13:00:03.250', 3)"
        )
        expected = _answers(source, "lineitem")
        assert [truck.result_rows[0][0], Decimal(str(total.result_rows[0][0])), later.result_rows[0][0]] == [
            expected[0],
            expected[2],
            expected[3],
        ]
    finally:
        conn.client.command(f"DROP DATABASE IF EXISTS {database}")
        conn.close()
