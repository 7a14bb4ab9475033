"""Oracle dialect: every statement it emits parses as Oracle SQL; key statements are exactly as expected."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import oracledb
import pyarrow as pa
import pytest

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.oracle import (
    OracleDialect,
    from_oracle_name,
    oracle_value,
    to_oracle_name,
)
from airflow_provider_sync.dialects.types import Column, KeysetBounds, TableRef
from airflow_provider_sync.errors import TerminalError
from tests.unit.dialects.sql_checks import RecordingConnection, parse_sql

ORDERS = TableRef("orders", "sales")
STAGE = TableRef("ORA$PTT_ORDERS_STAGE")
COLUMNS = ["id", "status", "updated_at"]


@pytest.fixture
def dialect() -> OracleDialect:
    return OracleDialect()


def test_registered_for_the_oracle_connection_type() -> None:
    assert isinstance(get_dialect("oracle"), OracleDialect)


def test_case_rules_fold_plain_lower_case_names_only() -> None:
    assert to_oracle_name("created_at") == "CREATED_AT"
    assert to_oracle_name("CreatedAt") == "CreatedAt"
    assert to_oracle_name("order lines") == "order lines"
    assert from_oracle_name("CREATED_AT") == "created_at"
    assert from_oracle_name("MixedCase") == "MixedCase"


def test_keyset_page_uses_fetch_first_and_named_binds(dialect: OracleDialect) -> None:
    start = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    bounds = KeysetBounds(after_cursor=start, after_keys=(7,), upto_cursor=start + dt.timedelta(days=1))
    query = dialect.keyset_query(ORDERS, COLUMNS, "updated_at", ["id"], bounds, limit=5000)
    assert query.sql == (
        'SELECT "ID", "STATUS", "UPDATED_AT" FROM "SALES"."ORDERS" WHERE "UPDATED_AT" IS NOT NULL '
        'AND "UPDATED_AT" >= :p1 AND ("UPDATED_AT" > :p2 OR ("UPDATED_AT" = :p3 AND ("ID" > :p4))) '
        'AND "UPDATED_AT" <= :p5 ORDER BY "UPDATED_AT", "ID" FETCH FIRST 5000 ROWS ONLY'
    )
    assert query.params == {
        "p1": start,
        "p2": start,
        "p3": start,
        "p4": 7,
        "p5": start + dt.timedelta(days=1),
    }
    parse_sql(query.sql, "oracle")


def test_merge_compares_null_safely_and_lobs_with_dbms_lob(dialect: OracleDialect) -> None:
    sql = dialect.merge_sql(STAGE, ORDERS, ["id", "status", "note"], ["id"], lob_columns=["note"])
    assert sql == (
        'MERGE INTO "SALES"."ORDERS" t USING "ORA$PTT_ORDERS_STAGE" s ON (t."ID" = s."ID") '
        'WHEN MATCHED THEN UPDATE SET t."STATUS" = s."STATUS", t."NOTE" = s."NOTE" '
        'WHERE DECODE(t."STATUS", s."STATUS", 0, 1) = 1 OR (t."NOTE" IS NULL AND s."NOTE" IS NOT NULL) '
        'OR (t."NOTE" IS NOT NULL AND s."NOTE" IS NULL) OR DBMS_LOB.COMPARE(t."NOTE", s."NOTE") <> 0 '
        'WHEN NOT MATCHED THEN INSERT ("ID", "STATUS", "NOTE") VALUES (s."ID", s."STATUS", s."NOTE")'
    )
    parse_sql(sql, "oracle")
    keys_only = dialect.upsert_sql(STAGE, ORDERS, ["id"], ["id"])
    assert "WHEN MATCHED" not in keys_only
    parse_sql(keys_only, "oracle")


def test_create_table_maps_arrow_types(dialect: OracleDialect) -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("Status Code", pa.string()),
            pa.field("amount", pa.decimal128(12, 2)),
            pa.field("updated_at", pa.timestamp("us", tz="UTC")),
            pa.field("local_time", pa.timestamp("us")),
            pa.field("photo", pa.binary()),
            pa.field("flag", pa.bool_()),
            pa.field("ratio", pa.float64()),
        ]
    )
    sql = dialect.create_table_sql(TableRef("order_lines", "sales"), schema, ["id"])
    assert sql == (
        'CREATE TABLE "SALES"."ORDER_LINES" (\n'
        '  "ID" NUMBER(19) NOT NULL,\n'
        '  "Status Code" NCLOB,\n'
        '  "AMOUNT" NUMBER(12, 2),\n'
        '  "UPDATED_AT" TIMESTAMP(6) WITH TIME ZONE,\n'
        '  "LOCAL_TIME" TIMESTAMP(6),\n'
        '  "PHOTO" BLOB,\n'
        '  "FLAG" NUMBER(1),\n'
        '  "RATIO" BINARY_DOUBLE,\n'
        '  PRIMARY KEY ("ID")\n)'
    )
    parse_sql(sql, "oracle")
    keyed = dialect.create_table_sql(TableRef("t"), pa.schema([("code", pa.string())]), ["code"])
    assert '"CODE" NVARCHAR2(1000) NOT NULL' in keyed


def test_every_other_statement_parses_as_oracle(dialect: OracleDialect) -> None:
    ledger = TableRef("sync_ledger", "sales")
    statements = [
        dialect.keyset_query(
            "SELECT * FROM sales.orders WHERE region = 'eu'",
            COLUMNS,
            "updated_at",
            ["id"],
            KeysetBounds(after_cursor=1, after_inclusive=True, before_cursor=9),
        ).sql,
        dialect.high_water_mark_query(ORDERS, "updated_at", KeysetBounds(upto_cursor=5)).sql,
        dialect.null_cursor_query(ORDERS, COLUMNS, "updated_at", ["id"]).sql,
        dialect.count_query(ORDERS).sql,
        dialect.full_query(ORDERS, COLUMNS, ["id"]).sql,
        dialect.rename_table_sql(ORDERS, "orders__sync_old"),
        *dialect.swap_tables_sql(ORDERS, TableRef("orders__sync_load", "sales"))[1:-1],
        *dialect.swap_tables_sql(ORDERS, TableRef("orders__sync_load", "sales"), target_exists=False),
        dialect.staging_table_sql(STAGE, ORDERS, COLUMNS),
        dialect.insert_sql(STAGE, COLUMNS),
        dialect.new_keys_count_query(STAGE, ORDERS, ["id"]).sql,
        dialect.insert_select_sql(STAGE, ORDERS, COLUMNS),
        dialect.ledger_table_sql(ledger),
        dialect.ledger_insert_query(ledger, ["p", "t", "a", "b", "r", 3, dt.datetime(2024, 1, 1)]).sql,
        dialect.ledger_lookup_query(ledger, "p", "t", "a").sql,
        "ALTER SESSION SET TIME_ZONE = 'UTC'",
    ]
    for sql in statements:
        parse_sql(sql, "oracle")
    assert statements[5] == 'ALTER TABLE "SALES"."ORDERS" RENAME TO "ORDERS__SYNC_OLD"'
    assert '"ROW_COUNT" NUMBER(19) NOT NULL' in statements[-4]


def test_drop_ignores_only_a_missing_table(dialect: OracleDialect) -> None:
    sql = dialect.drop_table_sql(TableRef("it's", "sales"))
    assert sql == (
        "BEGIN EXECUTE IMMEDIATE 'DROP TABLE \"SALES\".\"it''s\" PURGE'; EXCEPTION WHEN OTHERS THEN "
        "IF SQLCODE != -942 THEN RAISE; END IF; END;"
    )
    # sqlglot does not read PL/SQL blocks: check the statement the block runs.
    parse_sql('DROP TABLE "SALES"."it\'s" PURGE', "oracle")
    swap = dialect.swap_tables_sql(ORDERS, TableRef("orders__sync_load", "sales"))
    assert swap[0] == dialect.drop_table_sql(TableRef("orders__sync_old", "sales"))
    assert swap[-1] == dialect.drop_table_sql(TableRef("orders__sync_old", "sales"))


def test_introspection_reads_the_data_dictionary(dialect: OracleDialect) -> None:
    conn = RecordingConnection(
        {
            "all_tab_columns": (
                [
                    ("ID", "NUMBER", 10, 0, 0, "N"),
                    ("PRICE", "NUMBER", 12, 2, 0, "Y"),
                    ("ANY_NUMBER", "NUMBER", None, None, 0, "Y"),
                    ("NAME", "NVARCHAR2", None, None, 50, "Y"),
                    ("Mixed Name", "CLOB", None, None, 0, "Y"),
                    ("AT", "TIMESTAMP(6) WITH TIME ZONE", None, 6, 0, "Y"),
                    ("BORN", "DATE", None, None, 0, "Y"),
                ],
                7,
            ),
            "all_cons_columns": ([("ID",)], 1),
            "all_objects": ([(1,)], 1),
        }
    )
    dialect.begin_snapshot(conn)
    columns = dialect.get_columns(conn, ORDERS)
    assert [(c.name, c.db_type, str(c.arrow_type), c.nullable) for c in columns] == [
        ("id", "NUMBER(10,0)", "int64", False),
        ("price", "NUMBER(12,2)", "decimal128(12, 2)", True),
        ("any_number", "NUMBER", "decimal128(38, 10)", True),
        ("name", "NVARCHAR2(50)", "string", True),
        ("Mixed Name", "CLOB", "string", True),
        ("at", "TIMESTAMP(6) WITH TIME ZONE", "timestamp[us, tz=UTC]", True),
        ("born", "DATE", "timestamp[us]", True),
    ]
    assert dialect.get_primary_key(conn, ORDERS) == ["id"]
    assert dialect.table_exists(conn, TableRef("orders"))
    executed = [sql for sql, _ in conn.statements]
    assert executed[0] == "SET TRANSACTION READ ONLY" and conn.rollbacks == 1
    for sql in executed:
        parse_sql(sql, "oracle")
    assert conn.statements[1][1] == {"p1": "SALES", "p2": "ORDERS"}
    assert conn.statements[-1][1] == {"p1": "ORDERS"}
    assert "SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA')" in executed[-1]


def test_timestamps_are_bound_as_timestamp_not_date(dialect: OracleDialect) -> None:
    conn = RecordingConnection({"SELECT": ([(Decimal("3"), "x")], 1)})
    moment = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    query = dialect.keyset_query(
        ORDERS, ["id", "status"], "updated_at", [], KeysetBounds(after_cursor=moment)
    )
    columns = [Column("id", "NUMBER(10,0)", pa.int64()), Column("status", "NVARCHAR2(5)", pa.string())]
    [batch] = list(dialect.read_batches(conn, query, columns, 500))
    assert batch.to_pylist() == [{"id": 3, "status": "x"}]
    assert conn.input_sizes == [{"p1": oracledb.DB_TYPE_TIMESTAMP}]
    assert conn.statements[0][1] == {"p1": dt.datetime(2024, 5, 1, 10, 0, 0, 123456)}


def test_bulk_insert_array_binds_each_batch(dialect: OracleDialect) -> None:
    conn = RecordingConnection()
    batch = pa.record_batch(
        {
            "id": pa.array([1, 2], pa.int64()),
            "flag": pa.array([True, None]),
            "at": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 5), None], pa.timestamp("us", tz="UTC")),
        }
    )
    assert dialect.bulk_insert(conn, STAGE, [batch, batch]) == 4
    sql, rows = conn.statements[0]
    assert sql == 'INSERT INTO "ORA$PTT_ORDERS_STAGE" ("ID", "FLAG", "AT") VALUES (:c1, :c2, :c3)'
    assert rows == [(1, 1, dt.datetime(2024, 1, 1, 0, 0, 0, 5)), (2, None, None)]
    assert conn.input_sizes[0] == (None, None, oracledb.DB_TYPE_TIMESTAMP)
    assert len(conn.statements) == 2


def test_staging_table_is_a_private_temporary_table(dialect: OracleDialect) -> None:
    conn = RecordingConnection()
    staging = dialect.create_staging_table(conn, TableRef("order lines", "sales"), COLUMNS)
    assert staging == TableRef("ORA$PTT_ORDER_LINES_STAGE")
    assert conn.statements[0][0] == (
        'CREATE PRIVATE TEMPORARY TABLE "ORA$PTT_ORDER_LINES_STAGE" ON COMMIT DROP DEFINITION AS '
        'SELECT "ID", "STATUS", "UPDATED_AT" FROM "SALES"."order lines" WHERE 1 = 0'
    )
    parse_sql(conn.statements[0][0], "oracle")
    assert len(dialect.staging_name(TableRef("x" * 128)).name) == 128


def test_identifier_and_value_rules(dialect: OracleDialect) -> None:
    with pytest.raises(TerminalError, match="double quote"):
        dialect.quote('say "hi"')
    with pytest.raises(TerminalError, match="128 bytes"):
        dialect.quote("é" * 65)
    assert oracle_value(True) == 1
    assert oracle_value(dt.time(1, 2, 3)) == "01:02:03.000000"


@pytest.mark.parametrize(
    ("db_type", "arrow"),
    [
        ("NUMBER(4,0)", pa.int16()),
        ("NUMBER(19,0)", pa.decimal128(19, 0)),
        ("BINARY_FLOAT", pa.float32()),
        ("FLOAT", pa.float64()),
        ("TIMESTAMP(3) WITH LOCAL TIME ZONE", pa.timestamp("us", tz="UTC")),
        ("RAW(16)", pa.binary()),
        ("BLOB", pa.binary()),
        ("INTERVAL DAY(2) TO SECOND(6)", pa.string()),
    ],
)
def test_arrow_type_mapping(dialect: OracleDialect, db_type: str, arrow: Any) -> None:
    assert dialect.arrow_type(db_type) == arrow
