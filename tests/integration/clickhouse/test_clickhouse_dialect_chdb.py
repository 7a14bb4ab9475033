"""The ClickHouse dialect against a real ClickHouse engine (chDB, in this process)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects.clickhouse import ClickHouseConnection, ClickHouseDialect
from airflow_provider_sync.dialects.clickhouse_layout import ClickHouseTableOptions
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import Column, KeysetBounds, TableRef

pytestmark = pytest.mark.integration

UTC = timezone.utc
BASE = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ORDERS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("note", pa.string()),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


@pytest.fixture
def dialect() -> ClickHouseDialect:
    return ClickHouseDialect()


@pytest.fixture
def conn(dialect: ClickHouseDialect, chdb_dsn: str) -> Iterator[ClickHouseConnection]:
    connection = dialect.connect(ConnectionInfo(conn_type="clickhouse", extra={"dsn": chdb_dsn}))
    yield connection


@pytest.fixture
def database(conn: ClickHouseConnection) -> Iterator[str]:
    name = f"sync_ch_{uuid.uuid4().hex[:10]}"
    conn.client.command(f"CREATE DATABASE {name} ENGINE = Atomic")
    yield name
    conn.client.command(f"DROP DATABASE IF EXISTS {name}")


def _orders(ids: list[int], *, status: str = "new", cursor_of: Any = None) -> pa.RecordBatch:
    cursor_of = cursor_of or (lambda i: BASE + timedelta(microseconds=i))
    return pa.record_batch(
        [
            pa.array(ids, pa.int64()),
            pa.array([None if i % 5 == 0 else status for i in ids]),
            pa.array([Decimal(i) / 100 for i in ids], pa.decimal128(12, 2)),
            pa.array(["" if i % 3 == 0 else f"naïve 🙂 {i}" for i in ids]),
            pa.array([cursor_of(i) for i in ids], pa.timestamp("us", tz="UTC")),
        ],
        schema=ORDERS_SCHEMA,
    )


def _create(dialect: ClickHouseDialect, conn: Any, table: TableRef, **options: Any) -> None:
    sql = dialect.create_table_sql(table, ORDERS_SCHEMA, ["id"], ClickHouseTableOptions(**options))
    dialect.execute(conn, sql).close()


def _read_all(dialect: ClickHouseDialect, conn: Any, sql: str) -> list[dict[str, Any]]:
    return conn.client.query_arrow(sql).to_pylist()


def test_create_table_maps_arrow_types_and_reads_them_back(
    dialect: ClickHouseDialect, conn: Any, database: str
) -> None:
    table = TableRef("Orders Table", database)
    _create(
        dialect,
        conn,
        table,
        version_column="updated_at",
        partition_by="toYYYYMM(updated_at)",
        low_cardinality=("status",),
    )

    assert dialect.table_exists(conn, table)
    assert not dialect.table_exists(conn, TableRef("missing", database))
    assert dialect.get_primary_key(conn, table) == ["id"]
    columns = {c.name: c for c in dialect.get_columns(conn, table)}
    assert columns["status"].db_type == "LowCardinality(Nullable(String))"
    assert columns["updated_at"].db_type == "DateTime64(6, 'UTC')"
    assert columns["amount"].db_type == "Nullable(Decimal(12, 2))"
    assert [columns[name].arrow_type for name in ORDERS_SCHEMA.names] == ORDERS_SCHEMA.types
    engine = conn.client.query(
        f"SELECT engine_full FROM system.tables WHERE database = '{database}' AND name = 'Orders Table'"
    ).result_rows[0][0]
    assert engine.startswith("ReplacingMergeTree(updated_at) PARTITION BY toYYYYMM(updated_at)")


def test_keyset_pages_are_exact_across_cursor_ties(
    dialect: ClickHouseDialect, conn: Any, database: str
) -> None:
    table = TableRef("orders", database)
    _create(dialect, conn, table, engine="MergeTree")
    # 3,000 rows on only three cursor values, one microsecond apart: pages must split ties correctly.
    ids = list(range(1, 3001))
    dialect.bulk_insert(conn, table, [_orders(ids, cursor_of=lambda i: BASE + timedelta(microseconds=i % 3))])
    columns = [Column(f.name, "", f.type, f.nullable) for f in ORDERS_SCHEMA]
    hwm = dialect.scalar(conn, dialect.high_water_mark_query(table, "updated_at", KeysetBounds()))
    assert hwm.replace(tzinfo=UTC) == BASE + timedelta(microseconds=2)

    seen: list[int] = []
    bounds = KeysetBounds(upto_cursor=hwm)
    while True:
        query = dialect.keyset_query(table, ORDERS_SCHEMA.names, "updated_at", ["id"], bounds, limit=700)
        page = [row for batch in dialect.read_batches(conn, query, columns, 256) for row in batch.to_pylist()]
        assert all(len(batch) <= 256 for batch in dialect.read_batches(conn, query, columns, 256))
        if not page:
            break
        seen.extend(row["id"] for row in page)
        last = page[-1]
        bounds = KeysetBounds(after_cursor=last["updated_at"], after_keys=(last["id"],), upto_cursor=hwm)
    assert sorted(seen) == ids and len(seen) == len(set(seen))


def test_rows_round_trip_with_types(dialect: ClickHouseDialect, conn: Any, database: str) -> None:
    table = TableRef("round_trip", database)
    _create(dialect, conn, table)
    batch = _orders([1, 2, 3, 15])
    dialect.bulk_insert(conn, table, [batch])
    columns = [Column(f.name, "", f.type, f.nullable) for f in ORDERS_SCHEMA]
    query = dialect.full_query(table, ORDERS_SCHEMA.names, ["id"])
    [read] = list(dialect.read_batches(conn, query, columns, 100))
    assert read.schema.types == ORDERS_SCHEMA.types
    assert read.to_pylist() == batch.to_pylist()


def test_upsert_keeps_one_row_per_key_with_the_newest_version(
    dialect: ClickHouseDialect, conn: Any, database: str
) -> None:
    target = TableRef("orders_upsert", database)
    _create(dialect, conn, target, version_column="updated_at")
    names = ORDERS_SCHEMA.names

    def load(batch: pa.RecordBatch) -> Any:
        staging = dialect.create_staging_table(conn, target, names)
        staged = dialect.bulk_insert(conn, staging, [batch])
        return dialect.upsert(conn, staging, target, names, ["id"], staged)

    first = load(_orders(list(range(1, 101))))
    later = lambda i: BASE + timedelta(hours=1, microseconds=i)  # noqa: E731
    second = load(_orders(list(range(51, 151)), status="paid", cursor_of=later))
    # A late re-read of an old version must not win over the newer one.
    load(_orders([60], status="stale"))

    assert (first.inserted, second.inserted) == (100, 50)
    rows = _read_all(dialect, conn, dialect.final_select_sql(target, names, ["id"]))
    assert [r["id"] for r in rows] == list(range(1, 151))
    assert {r["status"] for r in rows if r["id"] > 50 and r["id"] % 5} == {"paid"}
    assert {r["status"] for r in rows if r["id"] <= 50 and r["id"] % 5} == {"new"}


def test_replace_swaps_in_a_fully_loaded_table(dialect: ClickHouseDialect, conn: Any, database: str) -> None:
    target = TableRef("orders_replace", database)
    _create(dialect, conn, target)
    dialect.bulk_insert(conn, target, [_orders([1, 2, 3])])
    loading = dialect.helper_table(target, "__sync_load")
    dialect.execute(conn, dialect.create_like_sql(target, loading) or "").close()
    dialect.bulk_insert(conn, loading, [_orders([10, 11])])

    for statement in dialect.swap_tables_sql(target, loading, target_exists=True):
        dialect.execute(conn, statement).close()

    assert [
        r["id"] for r in _read_all(dialect, conn, f"SELECT id FROM {database}.orders_replace ORDER BY id")
    ] == [
        10,
        11,
    ]
    assert not dialect.table_exists(conn, loading)


def test_append_retry_of_the_same_range_adds_nothing_twice(
    dialect: ClickHouseDialect, conn: Any, database: str
) -> None:
    target = TableRef("orders_append", database)
    ledger = TableRef("sync_ledger", database)
    _create(dialect, conn, target, engine="MergeTree")
    dialect.execute(conn, dialect.ledger_table_sql(ledger)).close()
    batches = [_orders(list(range(1, 501))), _orders(list(range(501, 1001)))]
    values = ["orders_sync", "orders", "2024-05-01", "2024-05-02", "run-1", 1000, datetime.now(UTC)]
    lookup = dialect.ledger_lookup_query(ledger, "orders_sync", "orders", "2024-05-01")

    # First attempt, in the order the load runs it: ledger row, data... and the task dies after one batch.
    dialect.execute(conn, dialect.ledger_insert_query(ledger, values)).close()
    dialect.bulk_insert(conn, target, batches[:1])
    conn.rollback()
    assert dialect.scalar(conn, lookup) is None, "the ledger row must not outlive a failed load"

    # The retry sends every batch again; ClickHouse drops the batch it already stored.
    dialect.execute(conn, dialect.ledger_insert_query(ledger, [*values[:4], "run-2", *values[5:]])).close()
    assert dialect.bulk_insert(conn, target, batches) == 1000
    conn.commit()

    assert conn.client.command(f"SELECT count() FROM {database}.orders_append") == 1000
    assert dialect.scalar(conn, lookup) == "2024-05-02"
    # Outside a ledger scope, identical rows are new data (no content-based de-duplication).
    dialect.bulk_insert(conn, target, batches[:1])
    assert conn.client.command(f"SELECT count() FROM {database}.orders_append") == 1500


def test_query_sources_report_their_column_types(
    dialect: ClickHouseDialect, conn: Any, database: str
) -> None:
    table = TableRef("typed", database)
    _create(dialect, conn, table)
    columns = dialect.query_columns(
        conn, f"SELECT id, amount, updated_at FROM {database}.typed WHERE id > 10"
    )
    assert [(c.name, c.arrow_type) for c in columns] == [
        ("id", pa.int64()),
        ("amount", pa.decimal128(12, 2)),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
