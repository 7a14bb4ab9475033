"""ClickHouse dialect: statements parse as ClickHouse SQL; table layout and keyset query are as expected."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.clickhouse import ClickHouseDialect
from airflow_provider_sync.dialects.clickhouse_layout import ClickHouseTableOptions
from airflow_provider_sync.dialects.types import KeysetBounds, TableRef
from airflow_provider_sync.errors import TerminalError
from tests.unit.dialects.sql_checks import parse_sql

ORDERS = TableRef("orders", "analytics")
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("country", pa.dictionary(pa.int32(), pa.string())),
    ]
)


@pytest.fixture
def dialect() -> ClickHouseDialect:
    return ClickHouseDialect()


def test_registered_for_the_clickhouse_connection_type() -> None:
    assert isinstance(get_dialect("clickhouse"), ClickHouseDialect)


def test_create_table_layout(dialect: ClickHouseDialect) -> None:
    options = ClickHouseTableOptions(
        version_column="updated_at", partition_by="toYYYYMM(updated_at)", low_cardinality=("status",)
    )
    sql = dialect.create_table_sql(ORDERS, SCHEMA, ["id"], options)
    assert sql == (
        'CREATE TABLE "analytics"."orders" (\n'
        '  "id" Int64,\n'
        '  "status" LowCardinality(Nullable(String)),\n'
        '  "amount" Nullable(Decimal(12, 2)),\n'
        "  \"updated_at\" DateTime64(6, 'UTC'),\n"
        '  "tags" Nullable(Array(String)),\n'
        '  "country" LowCardinality(Nullable(String))\n'
        ')\nENGINE = ReplacingMergeTree("updated_at")\nPARTITION BY toYYYYMM(updated_at)\nORDER BY ("id")\n'
        "SETTINGS non_replicated_deduplication_window = 1000"
    )
    no_keys = dialect.create_table_sql(TableRef("events"), SCHEMA, [])
    assert "ENGINE = MergeTree\nORDER BY tuple()" in no_keys


def test_create_table_rejects_unknown_columns_and_engines(dialect: ClickHouseDialect) -> None:
    with pytest.raises(TerminalError, match="version_column"):
        dialect.create_table_sql(ORDERS, SCHEMA, ["id"], ClickHouseTableOptions(version_column="missing"))
    with pytest.raises(TerminalError, match="use ReplacingMergeTree or MergeTree"):
        dialect.create_table_sql(ORDERS, SCHEMA, ["id"], ClickHouseTableOptions(engine="Log"))


def test_keyset_query_and_other_statements_parse(dialect: ClickHouseDialect) -> None:
    start = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    bounds = KeysetBounds(after_cursor=start, after_keys=(7,), upto_cursor=start)
    query = dialect.keyset_query(ORDERS, ["id", "status"], "updated_at", ["id"], bounds, limit=1000)
    assert query.sql == (
        'SELECT "id", "status" FROM "analytics"."orders" WHERE "updated_at" IS NOT NULL '
        'AND "updated_at" >= %(p1)s AND ("updated_at" > %(p2)s OR ("updated_at" = %(p3)s '
        'AND ("id" > %(p4)s))) '
        'AND "updated_at" <= %(p5)s ORDER BY "updated_at", "id" LIMIT 1000'
    )
    stage = TableRef("orders__sync_stage")
    statements = [
        query.sql.replace("%(", "{").replace(")s", ":String}"),
        dialect.create_table_sql(ORDERS, SCHEMA, ["id"]).split("\nSETTINGS")[0],
        dialect.create_like_sql(ORDERS, TableRef("orders__sync_load", "analytics")) or "",
        *dialect.swap_tables_sql(ORDERS, TableRef("orders__sync_load", "analytics")),
        dialect.rename_table_sql(TableRef("orders__sync_load", "analytics"), "orders"),
        dialect.new_keys_count_query(stage, ORDERS, ["id"]).sql,
        dialect.upsert_sql(stage, ORDERS, ["id", "status"], ["id"]),
        dialect.final_select_sql(ORDERS, ["id", "status"], ["id"]),
        dialect.ledger_table_sql(TableRef("sync_ledger", "analytics")),
    ]
    for sql in statements:
        parse_sql(sql, "clickhouse")


def test_identifiers_escape_backslashes_and_quotes(dialect: ClickHouseDialect) -> None:
    assert dialect.quote('a"b\\c') == '"a""b\\\\c"'
