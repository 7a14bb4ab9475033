"""MS SQL Server and Oracle dialects against real servers: set SYNC_TEST_MSSQL_URI (e.g. from
docker-compose.yaml: ``mssql://sa:Sync_Local_Passw0rd@127.0.0.1:1433/sync_test``) and/or
SYNC_TEST_ORACLE_URI (``oracle://sync:sync@127.0.0.1:1521/FREEPDB1``). Skipped without them, also under
CI=true, since neither server can run on the CI machines; their SQL is parse-checked in
tests/unit/dialects."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.base import Dialect
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import KeysetBounds, TableRef

pytestmark = pytest.mark.integration

# name -> (URI variable, schema of the test tables, why there is no server here)
SERVERS = {
    "mssql": ("SYNC_TEST_MSSQL_URI", "dbo", "no SQL Server here"),
    "oracle": ("SYNC_TEST_ORACLE_URI", None, "no Oracle server here"),
}
UTC = dt.timezone.utc
BASE = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("Status Code", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("photo", pa.binary()),
    ]
)


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    variable, schema, reason = SERVERS[request.param]
    uri = os.environ.get(variable)
    if not uri:
        pytest.skip(f"{variable} is not set ({reason}; see docker-compose.yaml)")
    return uri, schema


@pytest.fixture
def dialect(server: tuple[str, str | None]) -> Dialect:
    return get_dialect(ConnectionInfo.from_uri(server[0]).conn_type)


@pytest.fixture
def conn(dialect: Dialect, server: tuple[str, str | None]) -> Iterator[Any]:
    connection = dialect.connect(ConnectionInfo.from_uri(server[0]))
    yield connection
    connection.rollback()
    connection.close()


@pytest.fixture
def table(dialect: Dialect, conn: Any, server: tuple[str, str | None]) -> Iterator[TableRef]:
    ref = TableRef(f"sync_t_{uuid.uuid4().hex[:10]}", server[1])
    dialect.execute(conn, dialect.create_table_sql(ref, SCHEMA, ["id"])).close()
    conn.commit()
    yield ref
    conn.rollback()
    dialect.execute(conn, dialect.drop_table_sql(ref)).close()
    conn.commit()


def _rows(ids: list[int], status: str = "new", shift: dt.timedelta = dt.timedelta()) -> pa.RecordBatch:
    return pa.record_batch(
        [
            pa.array(ids, pa.int64()),
            pa.array([None if i % 4 == 0 else f"{status} é🙂" for i in ids]),
            pa.array([Decimal(i) / 100 for i in ids], pa.decimal128(12, 2)),
            pa.array(
                [BASE + shift + dt.timedelta(microseconds=i % 3) for i in ids], pa.timestamp("us", "UTC")
            ),
            pa.array([bytes([i % 256, 0]) for i in ids], pa.binary()),
        ],
        schema=SCHEMA,
    )


def _upsert(dialect: Dialect, conn: Any, table: TableRef, batch: pa.RecordBatch) -> Any:
    staging = dialect.create_staging_table(conn, table, SCHEMA.names)
    staged = dialect.bulk_insert(conn, staging, [batch])
    counts = dialect.upsert(conn, staging, table, SCHEMA.names, ["id"], staged)
    conn.commit()
    return counts


def test_upsert_then_keyset_read_round_trips(dialect: Dialect, conn: Any, table: TableRef) -> None:
    first = _upsert(dialect, conn, table, _rows(list(range(1, 2501))))
    second = _upsert(dialect, conn, table, _rows(list(range(2001, 3001)), "paid", dt.timedelta(hours=1)))
    again = _upsert(dialect, conn, table, _rows(list(range(2001, 3001)), "paid", dt.timedelta(hours=1)))
    assert (first.inserted, second.inserted, second.updated) == (2500, 500, 500)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1000)

    columns = dialect.get_columns(conn, table)
    assert dialect.get_primary_key(conn, table) == ["id"]
    dialect.begin_snapshot(conn)
    hwm = dialect.scalar(conn, dialect.high_water_mark_query(table, "updated_at", KeysetBounds()))
    seen: list[dict[str, Any]] = []
    bounds = KeysetBounds(upto_cursor=hwm)
    while True:
        query = dialect.keyset_query(table, SCHEMA.names, "updated_at", ["id"], bounds, limit=700)
        page = [row for batch in dialect.read_batches(conn, query, columns, 300) for row in batch.to_pylist()]
        if not page:
            break
        seen.extend(page)
        bounds = KeysetBounds(
            after_cursor=page[-1]["updated_at"], after_keys=(page[-1]["id"],), upto_cursor=hwm
        )
    conn.rollback()
    assert sorted(r["id"] for r in seen) == list(range(1, 3001))
    by_id = {r["id"]: r for r in seen}
    expected = _rows([2002], "paid", dt.timedelta(hours=1)).to_pylist()[0]
    assert by_id[2002] == expected


def test_replace_and_ledger(dialect: Dialect, conn: Any, table: TableRef) -> None:
    dialect.bulk_insert(conn, table, [_rows([1, 2, 3])])
    conn.commit()
    loading = dialect.helper_table(table, "__sync_load")
    dialect.execute(conn, dialect.create_table_sql(loading, SCHEMA, ["id"])).close()
    dialect.bulk_insert(conn, loading, [_rows([10, 11])])
    for statement in dialect.swap_tables_sql(table, loading, target_exists=True):
        dialect.execute(conn, statement).close()
    conn.commit()
    assert dialect.scalar(conn, dialect.count_query(table)) == 2
    assert not dialect.table_exists(conn, loading)

    ledger = TableRef(f"{table.name}_ledger", table.schema)
    dialect.execute(conn, dialect.ledger_table_sql(ledger)).close()
    values = ["p", table.name, "2024-05-01", "2024-05-02", "run", 2, dt.datetime.now(UTC)]
    dialect.execute(conn, dialect.ledger_insert_query(ledger, values)).close()
    conn.commit()
    with pytest.raises(Exception) as repeated:
        dialect.execute(conn, dialect.ledger_insert_query(ledger, values)).close()
    assert dialect.is_unique_violation(repeated.value)
    conn.rollback()
    assert (
        dialect.scalar(conn, dialect.ledger_lookup_query(ledger, "p", table.name, "2024-05-01"))
        == "2024-05-02"
    )
    dialect.execute(conn, dialect.drop_table_sql(ledger)).close()
    conn.commit()
