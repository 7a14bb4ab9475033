"""SQL Server dialect: every statement it emits parses as T-SQL; key statements are exactly as expected."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.mssql import MSSQLDialect, driver_params, sql_server_datetime
from airflow_provider_sync.dialects.types import KeysetBounds, TableRef
from airflow_provider_sync.errors import TerminalError
from tests.unit.dialects.sql_checks import RecordingConnection, parse_sql

ORDERS = TableRef("orders", "dbo")
STAGE = TableRef("#orders__sync_stage")
COLUMNS = ["id", "status", "updated_at"]
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("Status Code", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("local_time", pa.timestamp("us")),
        pa.field("photo", pa.binary()),
        pa.field("flag", pa.bool_()),
        pa.field("day", pa.date32()),
    ]
)


@pytest.fixture
def dialect() -> MSSQLDialect:
    return MSSQLDialect()


def test_registered_for_the_mssql_connection_type() -> None:
    assert isinstance(get_dialect("mssql"), MSSQLDialect)


def test_keyset_page_uses_top_and_the_expanded_predicate(dialect: MSSQLDialect) -> None:
    start = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    bounds = KeysetBounds(after_cursor=start, after_keys=(7,), upto_cursor=start + dt.timedelta(days=1))
    query = dialect.keyset_query(ORDERS, COLUMNS, "updated_at", ["id"], bounds, limit=5000)
    assert query.sql == (
        "SELECT TOP (5000) [id], [status], [updated_at] FROM [dbo].[orders] WHERE [updated_at] IS NOT NULL "
        "AND [updated_at] >= %s AND ([updated_at] > %s OR ([updated_at] = %s AND ([id] > %s))) "
        "AND [updated_at] <= %s ORDER BY [updated_at], [id]"
    )
    assert query.params == [start, start, start, 7, start + dt.timedelta(days=1)]
    parse_sql(query.sql, "tsql")


def test_merge_updates_only_changed_rows_and_inserts_new_ones(dialect: MSSQLDialect) -> None:
    sql = dialect.upsert_sql(STAGE, ORDERS, COLUMNS, ["id"])
    assert sql == (
        "MERGE INTO [dbo].[orders] WITH (HOLDLOCK) AS t USING [#orders__sync_stage] AS s ON t.[id] = s.[id] "
        "WHEN MATCHED AND EXISTS (SELECT t.[status], t.[updated_at] "
        "EXCEPT SELECT s.[status], s.[updated_at]) "
        "THEN UPDATE SET t.[status] = s.[status], t.[updated_at] = s.[updated_at] "
        "WHEN NOT MATCHED BY TARGET THEN INSERT ([id], [status], [updated_at]) "
        "VALUES (s.[id], s.[status], s.[updated_at]);"
    )
    parse_sql(sql, "tsql")
    keys_only = dialect.upsert_sql(STAGE, ORDERS, ["id", "region"], ["id", "region"])
    assert "WHEN MATCHED" not in keys_only
    parse_sql(keys_only, "tsql")


def test_create_table_maps_arrow_types(dialect: MSSQLDialect) -> None:
    sql = dialect.create_table_sql(TableRef("Order Lines", "sales"), SCHEMA, ["id"])
    assert sql == (
        "CREATE TABLE [sales].[Order Lines] (\n"
        "  [id] BIGINT NOT NULL,\n"
        "  [Status Code] NVARCHAR(MAX) NULL,\n"
        "  [amount] DECIMAL(12, 2) NULL,\n"
        "  [updated_at] DATETIMEOFFSET(6) NULL,\n"
        "  [local_time] DATETIME2(6) NULL,\n"
        "  [photo] VARBINARY(MAX) NULL,\n"
        "  [flag] BIT NULL,\n"
        "  [day] DATE NULL,\n"
        "  PRIMARY KEY ([id])\n)"
    )
    parse_sql(sql, "tsql")
    keyed = dialect.create_table_sql(TableRef("t"), pa.schema([("code", pa.string())]), ["code"])
    assert "[code] NVARCHAR(450) NOT NULL" in keyed


def test_every_other_statement_parses_as_tsql(dialect: MSSQLDialect) -> None:
    bounds = KeysetBounds(after_cursor=1, after_inclusive=True, before_cursor=9)
    ledger = TableRef("sync_ledger", "dbo")
    statements = [
        dialect.keyset_query(
            "SELECT * FROM dbo.orders WHERE region = 'eu'", COLUMNS, "updated_at", ["id"], bounds
        ).sql,
        dialect.high_water_mark_query(ORDERS, "updated_at", KeysetBounds(upto_cursor=5)).sql,
        dialect.null_cursor_query(ORDERS, COLUMNS, "updated_at", ["id"]).sql,
        dialect.count_query(ORDERS).sql,
        dialect.full_query(ORDERS, COLUMNS, ["id"]).sql,
        dialect.drop_table_sql(ORDERS),
        dialect.rename_table_sql(ORDERS, "orders__sync_old"),
        *dialect.swap_tables_sql(ORDERS, TableRef("orders__sync_load", "dbo")),
        dialect.staging_table_sql(STAGE, ORDERS, COLUMNS),
        dialect.multirow_insert_sql(STAGE, COLUMNS, 3),
        dialect.new_keys_count_query(STAGE, ORDERS, ["id"]).sql,
        dialect.insert_select_sql(STAGE, ORDERS, COLUMNS),
        dialect.ledger_table_sql(ledger),
        dialect.ledger_insert_query(ledger, ["p", "t", "a", "b", "r", 3, dt.datetime(2024, 1, 1)]).sql,
        dialect.ledger_lookup_query(ledger, "p", "t", "a").sql,
    ]
    for sql in statements:
        parse_sql(sql, "tsql")
    assert "PRIMARY KEY NONCLUSTERED" in statements[-3]
    assert statements[6] == "EXEC sp_rename N'[dbo].[orders]', N'orders__sync_old'"


def test_introspection_and_snapshot_statements(dialect: MSSQLDialect) -> None:
    conn = RecordingConnection(
        {
            "snapshot_isolation_state": ([(1,)], 1),
            "information_schema.columns": (
                [
                    ("id", "bigint", None, 19, 0, None, "NO"),
                    ("price", "decimal", None, 12, 2, None, "YES"),
                    ("name", "nvarchar", -1, None, None, None, "YES"),
                    ("code", "varchar", 20, None, None, None, "YES"),
                    ("at", "datetimeoffset", None, None, None, 7, "YES"),
                    ("guid", "uniqueidentifier", None, None, None, None, "YES"),
                ],
                6,
            ),
            "PRIMARY KEY": ([("id",)], 1),
            "information_schema.tables": ([(1,)], 1),
        }
    )
    dialect.begin_snapshot(conn)
    columns = dialect.get_columns(conn, ORDERS)
    assert [(c.name, c.db_type, str(c.arrow_type), c.nullable) for c in columns] == [
        ("id", "bigint", "int64", False),
        ("price", "decimal(12,2)", "decimal128(12, 2)", True),
        ("name", "nvarchar(max)", "string", True),
        ("code", "varchar(20)", "string", True),
        ("at", "datetimeoffset(7)", "timestamp[us, tz=UTC]", True),
        ("guid", "uniqueidentifier", "string", True),
    ]
    assert dialect.get_primary_key(conn, ORDERS) == ["id"]
    assert dialect.table_exists(conn, TableRef("orders"))
    executed = [sql for sql, _ in conn.statements]
    assert "SET TRANSACTION ISOLATION LEVEL SNAPSHOT" in executed
    for sql in executed:
        parse_sql(sql, "tsql")
    assert conn.statements[-1][1] == ("orders",)
    assert "table_schema = SCHEMA_NAME()" in executed[-1]


def test_snapshot_falls_back_to_read_committed(dialect: MSSQLDialect) -> None:
    conn = RecordingConnection({"snapshot_isolation_state": ([(0,)], 1)})
    dialect.begin_snapshot(conn)
    assert conn.statements[-1][0] == "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"


def test_bulk_insert_sends_multi_row_statements_within_the_limits(dialect: MSSQLDialect) -> None:
    conn = RecordingConnection()
    batch = pa.record_batch(
        {
            "id": pa.array(range(2500), pa.int64()),
            "at": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, i) for i in range(2500)], pa.timestamp("us")),
        }
    )
    assert dialect.bulk_insert(conn, STAGE, [batch, batch.slice(0, 0)]) == 2500
    sizes = [len(params) // 2 for _, params in conn.statements]
    assert sizes == [1000, 1000, 500]
    first_sql, first_params = conn.statements[0]
    assert first_sql.startswith("INSERT INTO [#orders__sync_stage] ([id], [at]) VALUES (%s, %s), (%s, %s)")
    assert first_params[:4] == (0, "2024-01-01T00:00:00.000", 1, "2024-01-01T00:00:00.000001")
    parse_sql(dialect.multirow_insert_sql(STAGE, ["id", "at"], 2), "tsql")
    wide = pa.record_batch({f"c{i}": pa.array([1] * 10) for i in range(500)})
    conn = RecordingConnection()
    dialect.bulk_insert(conn, STAGE, [wide])
    assert all(len(params) <= 2000 for _, params in conn.statements)


def test_datetimes_keep_microseconds_and_move_to_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    assert sql_server_datetime(dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=paris)) == (
        "2024-05-01T10:00:00.123456"
    )
    assert sql_server_datetime(dt.datetime(2024, 5, 1, 12, 0, 0, 3000)) == "2024-05-01T12:00:00.003"
    assert driver_params([dt.time(1, 2, 3, 4), Decimal("1.5"), "x"]) == (
        "01:02:03.000004",
        Decimal("1.5"),
        "x",
    )


def test_identifier_rules(dialect: MSSQLDialect) -> None:
    assert dialect.quote("we]ird name") == "[we]]ird name]"
    assert dialect.quote("50%") == "[50%]"
    with pytest.raises(TerminalError, match="limit is 128"):
        dialect.quote("x" * 129)
    assert len(dialect.staging_name(TableRef("y" * 128)).name) == 116
    with pytest.raises(TerminalError, match="at most 38 digits"):
        dialect.sql_type(pa.field("big", pa.decimal256(50, 2)))


@pytest.mark.parametrize(
    ("db_type", "arrow"),
    [
        ("bit", pa.bool_()),
        ("tinyint", pa.uint8()),
        ("money", pa.decimal128(19, 4)),
        ("float", pa.float64()),
        ("float(24)", pa.float32()),
        ("numeric(38,10)", pa.decimal128(38, 10)),
        ("datetime2(7)", pa.timestamp("us")),
        ("time(7)", pa.time64("us")),
        ("rowversion", pa.binary()),
        ("xml", pa.string()),
    ],
)
def test_arrow_type_mapping(dialect: MSSQLDialect, db_type: str, arrow: Any) -> None:
    assert dialect.arrow_type(db_type) == arrow
