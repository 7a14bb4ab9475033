"""The plain statements of ``dialects/dml.py`` in every dialect: exact text where it matters, a strict sqlglot
parse in each database's grammar (SQL Server and Oracle cannot run here), and a run on a real SQLite."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.audit.schema import audit_schema
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import Query, TableRef
from tests.unit.dialects.sql_checks import parse_sql

GRAMMAR = {
    "postgres": "postgres", "mysql": "mysql", "sqlite": "sqlite", "clickhouse": "clickhouse",
    "mssql": "tsql", "oracle": "oracle",
}
KINDS = list(GRAMMAR)
AUDIT = TableRef("sync_audit", "ops")
WHERE = {"dag_id": "d", "run_id": "r"}
_PYFORMAT = re.compile(r"%\((p\d+)\)s")


def parses(kind: str, sql: str) -> None:
    """Strict parse. sqlglot models ``?`` and ClickHouse's ``{name:Type}``, so ``%s`` / ``%(p1)s`` markers
    are read as those."""
    if kind == "clickhouse":
        sql = _PYFORMAT.sub(r"{\1:String}", sql)
    elif kind in ("postgres", "mysql"):
        sql = sql.replace("%s", "?")
    parse_sql(sql, GRAMMAR[kind])


def values(query: Query) -> list[Any]:
    return list(query.params.values()) if isinstance(query.params, dict) else list(query.params)


@pytest.mark.parametrize("kind", KINDS)
def test_every_statement_parses_in_its_grammar(kind: str) -> None:
    dialect = get_dialect(kind)
    warnings = audit_schema().field("warnings")
    statements = [
        dialect.select_query(AUDIT, ["dag_id", "step"], WHERE, not_null=["warnings"], order_by=["started_at"],
                             descending=True).sql,
        dialect.select_query(AUDIT, ["dag_id"]).sql,
        dialect.latest_rows_query(AUDIT, ["dag_id", "step"], WHERE, "started_at").sql,
        dialect.count_by_query(AUDIT, "rule", WHERE).sql,
        dialect.insert_query(AUDIT, {"dag_id": "d", "step": "run"}).sql,
        dialect.delete_query(AUDIT, WHERE).sql,
        dialect.delete_query(AUDIT).sql,
        dialect.update_query(AUDIT, {"status": "x"}, {"dag_id": "d", "status": "y"}).sql,
    ]
    if kind != "sqlite":  # sqlglot cannot read SQLite's two-word JSON TEXT; SQLite itself runs it below
        statements.append(dialect.add_column_sql(AUDIT, warnings))
    if kind not in ("mssql", "clickhouse"):  # no SQL-standard savepoints there
        statements += [dialect.savepoint_sql("sp"), dialect.rollback_to_savepoint_sql("sp")]
    for sql in statements:
        parses(kind, sql)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("postgres", 'ALTER TABLE "ops"."sync_audit" ADD COLUMN "warnings" jsonb'),
        ("mysql", "ALTER TABLE `ops`.`sync_audit` ADD COLUMN `warnings` json"),
        ("clickhouse", 'ALTER TABLE "ops"."sync_audit" ADD COLUMN "warnings" Nullable(String)'),
        ("mssql", "ALTER TABLE [ops].[sync_audit] ADD [warnings] NVARCHAR(MAX) NULL"),
        ("oracle", 'ALTER TABLE "OPS"."SYNC_AUDIT" ADD "WARNINGS" CLOB'),
    ],
)
def test_add_column_spells_the_column_as_create_table_does(kind: str, expected: str) -> None:
    dialect = get_dialect(kind)
    field = audit_schema().field("warnings")
    assert dialect.add_column_sql(AUDIT, field).upper() == expected.upper()
    created = dialect.create_table_sql(AUDIT, pa.schema([field]))
    assert dialect.column_sql(field) in created.replace("\n", " ")


def test_add_column_refuses_a_not_null_column() -> None:
    with pytest.raises(ValueError, match="NOT NULL"):
        get_dialect("postgres").add_column_sql(AUDIT, pa.field("dag_id", pa.string(), nullable=False))


@pytest.mark.parametrize("kind", ["postgres", "sqlite", "oracle"])
def test_values_are_bound_in_textual_order(kind: str) -> None:
    query = get_dialect(kind).update_query(TableRef("t"), {"v": "new"}, {"k1": 1, "k2": 2, "v": "old"})
    assert values(query) == ["new", 1, 2, "old"]
    if kind == "sqlite":
        assert query.sql == 'UPDATE "t" SET "v" = ? WHERE "k1" = ? AND "k2" = ? AND "v" = ?'
    if kind == "oracle":
        assert query.sql.index(":p1") < query.sql.index(":p2") < query.sql.index(":p4")


def test_postgres_statements_exactly() -> None:
    dialect = get_dialect("postgres")
    table = TableRef("sync_quarantine", "crm")
    assert dialect.delete_query(table, WHERE).sql == (
        'DELETE FROM "crm"."sync_quarantine" WHERE "dag_id" = %s AND "run_id" = %s'
    )
    assert dialect.select_query(table, ["a", "b"], {"run_id": "r"}, order_by=["quarantined_at"]).sql == (
        'SELECT "a", "b" FROM "crm"."sync_quarantine" WHERE "run_id" = %s ORDER BY "quarantined_at"'
    )
    latest = dialect.latest_rows_query(table, ["a"], {"dag_id": "d"}, "started_at")
    assert latest.sql == (
        'SELECT "a" FROM "crm"."sync_quarantine" WHERE "dag_id" = %s AND "started_at" = '
        '(SELECT MAX("started_at") FROM "crm"."sync_quarantine" WHERE "dag_id" = %s)'
    )
    assert values(latest) == ["d", "d"]
    assert dialect.insert_query(table, {"a": 1, "b": None}) == Query(
        'INSERT INTO "crm"."sync_quarantine" ("a", "b") VALUES (%s, %s)', [1, None]
    )


def test_update_without_a_condition_is_refused() -> None:
    with pytest.raises(ValueError, match="condition"):
        get_dialect("sqlite").update_query(TableRef("t"), {"v": 1}, {})


def test_statements_run_on_sqlite() -> None:
    dialect, conn = get_dialect("sqlite"), sqlite3.connect(":memory:")
    table = TableRef("t")
    dialect.execute(conn, dialect.create_table_sql(table, pa.schema([("k", pa.int64()), ("v", pa.string())])))

    def rows(query: Query) -> list[tuple[Any, ...]]:
        return dialect.execute(conn, query).fetchall()

    for k, v in [(1, "a"), (2, "a"), (3, None)]:
        dialect.execute(conn, dialect.insert_query(table, {"k": k, "v": v}))
    assert dialect.execute(conn, dialect.update_query(table, {"v": "b"}, {"k": 2, "v": "a"})).rowcount == 1
    assert dialect.execute(conn, dialect.update_query(table, {"v": "c"}, {"k": 2, "v": "a"})).rowcount == 0
    assert rows(dialect.select_query(table, ["k"], not_null=["v"], order_by=["k"], descending=True)) == [
        (2,), (1,)
    ]
    assert set(rows(dialect.count_by_query(table, "v"))) == {("a", 1), ("b", 1), (None, 1)}
    assert rows(dialect.latest_rows_query(table, ["k", "v"], {"v": "a"}, "k")) == [(1, "a")]
    dialect.execute(conn, dialect.add_column_sql(table, audit_schema().field("warnings")))
    dialect.execute(conn, dialect.savepoint_sql("sync_isolate"))
    dialect.execute(conn, dialect.delete_query(table, {"k": 1}))
    dialect.execute(conn, dialect.rollback_to_savepoint_sql("sync_isolate"))
    dialect.execute(conn, dialect.release_savepoint_sql("sync_isolate"))
    assert rows(dialect.select_query(table, ["k", "warnings"], order_by=["k"])) == [
        (1, None), (2, None), (3, None)
    ]
    dialect.execute(conn, dialect.delete_query(table))
    assert rows(dialect.select_query(table, ["k"])) == []
