"""The sync engine end to end with ClickHouse (chDB) as target and as source, SQLite on the other side."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.pipeline.extract import extract_to_staging, manifest_watermark
from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.specs import ExtractSpec, LoadSpec

pytestmark = pytest.mark.integration

UTC = timezone.utc
T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def _rows(ids: range, label: str, shift: timedelta = timedelta()) -> pa.RecordBatch:
    return pa.record_batch(
        [
            pa.array(list(ids), pa.int64()),
            pa.array([None if i % 7 == 0 else f"{label} {i} ✓" for i in ids]),
            pa.array([Decimal(i) / 4 for i in ids], pa.decimal128(12, 2)),
            # Five rows share each cursor value, so ties cross batch boundaries.
            pa.array([T0 + shift + timedelta(microseconds=i // 5) for i in ids], pa.timestamp("us", "UTC")),
        ],
        schema=SCHEMA,
    )


class Side:
    """One database of the test with a helper to write and read whole tables through its dialect."""

    def __init__(self, info: ConnectionInfo, schema: str | None) -> None:
        self.info, self.schema = info, schema
        self.dialect = get_dialect(info.conn_type)
        self.conn = self.dialect.connect(info)

    def write(
        self, name: str, batch: pa.RecordBatch, *, create: bool = False, replace_keys: bool = False
    ) -> None:
        table = TableRef(name, self.schema)
        self.dialect.begin_write(self.conn)
        if create:
            self.dialect.execute(self.conn, self.dialect.create_table_sql(table, SCHEMA, ["id"])).close()
        if replace_keys:
            ids = ", ".join(str(i) for i in batch.column(0).to_pylist())
            self.dialect.execute(self.conn, f"DELETE FROM {self.dialect.qualify(table)} WHERE id IN ({ids})")
        self.dialect.bulk_insert(self.conn, table, [batch])
        self.conn.commit()

    def read(self, name: str, final: bool = False) -> list[dict[str, Any]]:
        table = TableRef(name, self.schema)
        columns = self.dialect.get_columns(self.conn, table)
        query = self.dialect.full_query(table, [c.name for c in columns], ["id"])
        if final:
            query = type(query)(query.sql.replace(" ORDER BY", " FINAL ORDER BY"), query.params)
        rows = [
            row for b in self.dialect.read_batches(self.conn, query, columns, 1000) for row in b.to_pylist()
        ]
        self.conn.rollback()
        return rows


@pytest.fixture
def clickhouse(chdb_dsn: str) -> Iterator[Side]:
    side = Side(
        ConnectionInfo(conn_type="clickhouse", extra={"dsn": chdb_dsn}), f"sync_e2e_{uuid.uuid4().hex[:8]}"
    )
    side.conn.client.command(f"CREATE DATABASE {side.schema}")
    yield side
    side.conn.client.command(f"DROP DATABASE IF EXISTS {side.schema}")


@pytest.fixture
def sqlite(tmp_path: Path) -> Side:
    return Side(ConnectionInfo(conn_type="sqlite", database=str(tmp_path / "source.db")), None)


def _extract(side: Side, table: str, tmp_path: Path, run: str, watermark: Any = None) -> Any:
    spec = ExtractSpec(side.info, table=table, schema=side.schema, cursor_column="updated_at", batch_size=400)
    return extract_to_staging(spec, watermark, tmp_path / run, dag_id="ch", run_id=run, table=table)


def _load(side: Side, table: str, manifest: Any, mode: str) -> Any:
    spec = LoadSpec(side.info, table=table, schema=side.schema, mode=mode, keys=("id",), pipeline="ch-e2e")
    return load_from_staging(spec, manifest)


def test_sqlite_to_clickhouse_upsert_append_and_replace(
    sqlite: Side, clickhouse: Side, tmp_path: Path
) -> None:
    sqlite.write("orders", _rows(range(1, 3001), "new"), create=True)
    first = _extract(sqlite, "orders", tmp_path, "run1")
    assert _load(clickhouse, "orders", first, "upsert").inserted == 3000

    sqlite.write("orders", _rows(range(2501, 3501), "changed", timedelta(hours=1)), replace_keys=True)
    second = _extract(sqlite, "orders", tmp_path, "run2", manifest_watermark(first, None))
    result = _load(clickhouse, "orders", second, "upsert")
    assert (second.rows, result.inserted) == (1000, 500)
    assert clickhouse.read("orders", final=True) == sqlite.read("orders")

    assert _load(clickhouse, "orders_log", first, "append").inserted == 3000
    assert _load(clickhouse, "orders_log", first, "append").ledger_skipped
    assert len(clickhouse.read("orders_log")) == 3000

    assert _load(clickhouse, "orders_copy", first, "replace").inserted == 3000
    assert _load(clickhouse, "orders_copy", second, "replace").inserted == 1000
    assert [r["id"] for r in clickhouse.read("orders_copy")] == list(range(2501, 3501))


def test_clickhouse_source_to_sqlite(sqlite: Side, clickhouse: Side, tmp_path: Path) -> None:
    clickhouse.write("events", _rows(range(1, 2001), "ch"), create=True)
    first = _extract(clickhouse, "events", tmp_path, "run1")
    assert first.rows == 2000
    _load(sqlite, "events", first, "upsert")
    clickhouse.write("events", _rows(range(1990, 2101), "later", timedelta(minutes=5)))
    second = _extract(clickhouse, "events", tmp_path, "run2", manifest_watermark(first, None))
    assert second.rows == 111
    _load(sqlite, "events", second, "upsert")
    assert sqlite.read("events") == clickhouse.read("events", final=True)


def test_rows_the_source_flags_leave_a_clickhouse_target(
    sqlite: Side, clickhouse: Side, tmp_path: Path
) -> None:
    """ClickHouse deletes by ReplacingMergeTree(version, is_deleted): flagged rows load with the marker 1
    and a FINAL read (or the next merge) drops their key."""
    from airflow_provider_sync.dialects.clickhouse_layout import ClickHouseTableOptions

    flagged_schema = SCHEMA.append(pa.field("is_gone", pa.bool_()))

    def rows(ids: range, gone: set[int], shift: timedelta) -> pa.RecordBatch:
        base = _rows(ids, "row", shift)
        flags = pa.array([i in gone for i in ids], pa.bool_())
        return pa.record_batch([*base.columns, flags], schema=flagged_schema)

    table = TableRef("items", None)
    sqlite.dialect.begin_write(sqlite.conn)
    sqlite.dialect.execute(
        sqlite.conn, sqlite.dialect.create_table_sql(table, flagged_schema, ["id"])
    ).close()
    sqlite.dialect.bulk_insert(sqlite.conn, table, [rows(range(1, 11), set(), timedelta())])
    sqlite.conn.commit()
    options = ClickHouseTableOptions(version_column="updated_at", is_deleted_column="is_deleted")
    spec = LoadSpec(
        clickhouse.info,
        table="items",
        schema=clickhouse.schema,
        keys=("id",),
        pipeline="ch-e2e",
        table_options=options,
        soft_delete_column="is_gone",
    )
    first = _extract(sqlite, "items", tmp_path, "run1")
    assert load_from_staging(spec, first).inserted == 10
    sqlite.write("items", rows(range(3, 5), {3, 4}, timedelta(hours=1)), replace_keys=True)
    second = _extract(sqlite, "items", tmp_path, "run2", manifest_watermark(first, None))
    load_from_staging(spec, second)
    kept = clickhouse.read("items", final=True)
    assert [row["id"] for row in kept] == [1, 2, 5, 6, 7, 8, 9, 10]
    assert {row["is_deleted"] for row in kept} == {0}
    create = clickhouse.conn.client.command(f"SHOW CREATE TABLE {clickhouse.schema}.items")
    assert "ReplacingMergeTree(updated_at, is_deleted)" in str(create).replace("`", "")
