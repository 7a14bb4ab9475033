"""Generated SQL of the PostgreSQL, MySQL and SQLite dialects: quoting, keyset predicates, merges, DDL.

Statements are checked as text and parsed with sqlglot in each database's grammar; SQLite statements are
also run against an in-memory database so the keyset predicate is checked on real rows.
"""

from __future__ import annotations

import itertools
import sqlite3

import pyarrow as pa
import pytest
import sqlglot

from airflow_provider_sync.dialects import DIALECTS, get_dialect, require_driver
from airflow_provider_sync.dialects._arrow import json_field
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import Binder, KeysetBounds, TableRef
from airflow_provider_sync.errors import MissingDriverError, TerminalError

GRAMMAR = {"postgres": "postgres", "mysql": "mysql", "sqlite": "sqlite"}
KINDS = list(GRAMMAR)


def parses(kind: str, sql: str) -> None:
    # sqlglot reads placeholders in the qmark/format styles only when they look like parameters.
    sqlglot.parse_one(sql.replace("%s", "?"), read=GRAMMAR[kind])


@pytest.mark.parametrize(
    ("kind", "identifier", "quoted"),
    [
        ("postgres", "select", '"select"'),
        ("postgres", "MixedCase", '"MixedCase"'),
        ("postgres", "two words", '"two words"'),
        ("postgres", 'say "hi"', '"say ""hi"""'),
        ("postgres", "100%", '"100%%"'),
        ("mysql", "order", "`order`"),
        ("mysql", "back`tick", "`back``tick`"),
        ("mysql", "50%", "`50%%`"),
        ("sqlite", 'a"b', '"a""b"'),
        ("sqlite", "100%", '"100%"'),
    ],
)
def test_identifiers_are_always_quoted_and_escaped(kind: str, identifier: str, quoted: str) -> None:
    assert get_dialect(kind).quote(identifier) == quoted


def test_empty_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="empty identifier"):
        get_dialect("postgres").quote("")


def test_qualified_names() -> None:
    assert get_dialect("postgres").qualify(TableRef("My Table", "Sales")) == '"Sales"."My Table"'
    assert get_dialect("mysql").qualify(TableRef("t", "db")) == "`db`.`t`"
    assert get_dialect("sqlite").qualify(TableRef("t")) == '"t"'


def test_row_value_keyset_predicate_for_postgres() -> None:
    query = get_dialect("postgres").keyset_query(
        TableRef("orders", "shop"),
        ["id", "updated at"],
        "updated at",
        ["id", "line"],
        KeysetBounds(after_cursor="C", after_keys=(7, 2), upto_cursor="H"),
        limit=500,
    )
    assert query.sql == (
        'SELECT "id", "updated at" FROM "shop"."orders" WHERE "updated at" IS NOT NULL AND '
        '("updated at", "id", "line") > (%s, %s, %s) AND "updated at" <= %s '
        'ORDER BY "updated at", "id", "line" LIMIT 500'
    )
    assert query.params == ["C", 7, 2, "H"]
    assert "OFFSET" not in query.sql
    parses("postgres", query.sql)


def test_expanded_keyset_predicate_binds_in_textual_order_for_mysql() -> None:
    query = get_dialect("mysql").keyset_query(
        TableRef("orders"), ["id"], "ts", ["a", "b"], KeysetBounds(after_cursor="C", after_keys=("A", "B"))
    )
    assert query.sql == (
        "SELECT `id` FROM `orders` WHERE `ts` IS NOT NULL AND `ts` >= %s AND (`ts` > %s OR (`ts` = %s AND "
        "(`a` > %s OR (`a` = %s AND (`b` > %s))))) ORDER BY `ts`, `a`, `b`"
    )
    assert query.params == ["C", "C", "C", "A", "A", "B"]
    parses("mysql", query.sql)


@pytest.mark.parametrize("row_values", [True, False])
def test_keyset_predicate_selects_exactly_the_rows_after_the_boundary(row_values: bool) -> None:
    dialect = get_dialect("sqlite")
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (c INTEGER, k1 INTEGER, k2 INTEGER)")
    rows = list(itertools.product(range(3), range(3), range(3)))
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    conn.execute("INSERT INTO t VALUES (NULL, 0, 0)")
    if not row_values:
        dialect = type(dialect)()
        dialect.capabilities = type(dialect.capabilities)(  # type: ignore[misc]
            **{**dialect.capabilities.__dict__, "row_value_comparison": False}
        )
    for boundary in rows:
        query = dialect.keyset_query(
            TableRef("t"),
            ["c", "k1", "k2"],
            "c",
            ["k1", "k2"],
            KeysetBounds(after_cursor=boundary[0], after_keys=boundary[1:], upto_cursor=1),
        )
        got = conn.execute(query.sql, query.params).fetchall()
        assert got == [r for r in rows if boundary < r and r[0] <= 1]


def test_cursor_only_bounds_and_interval() -> None:
    dialect = get_dialect("sqlite")
    bind = Binder("qmark")
    predicate = dialect.keyset_predicate(
        "ts",
        [],
        KeysetBounds(after_cursor="S", after_inclusive=True, upto_cursor="H", before_cursor="E"),
        bind,
    )
    assert predicate == '"ts" IS NOT NULL AND "ts" >= ? AND "ts" <= ? AND "ts" < ?'
    assert bind.values == ["S", "H", "E"]


def test_keyset_refuses_a_watermark_with_the_wrong_key_width() -> None:
    with pytest.raises(ValueError, match="1 key value"):
        get_dialect("postgres").keyset_query(
            TableRef("t"), ["a"], "ts", ["a", "b"], KeysetBounds(after_cursor=1, after_keys=(1,))
        )


@pytest.mark.parametrize("kind", KINDS)
def test_high_water_mark_and_query_sources(kind: str) -> None:
    dialect = get_dialect(kind)
    query = dialect.high_water_mark_query(
        "SELECT * FROM x", "ts", KeysetBounds(after_cursor=1, upto_cursor=5)
    )
    q = dialect.quote("ts")
    assert (
        query.sql
        == f"SELECT MAX({q}) FROM (SELECT * FROM x) sync_src WHERE {q} IS NOT NULL AND {q} <= "
        + ("?" if kind == "sqlite" else "%s")
    )
    assert query.params == [5]
    parses(kind, query.sql)


def test_named_and_numeric_param_styles() -> None:
    named = Binder("named")
    assert (named(1), named(2)) == (":p1", ":p2")
    assert named.query("x").params == {"p1": 1, "p2": 2}
    numeric = Binder("numeric")
    assert numeric("a") == ":1" and numeric.query("x").params == ["a"]
    pyformat = Binder("pyformat")
    assert pyformat(3) == "%(p1)s" and pyformat.query("x").params == {"p1": 3}


def test_postgres_upsert_updates_only_changed_rows() -> None:
    sql = get_dialect("postgres").upsert_sql(TableRef("s"), TableRef("t", "x"), ["id", "a", "b"], ["id"])
    assert sql == (
        'INSERT INTO "x"."t" AS t ("id", "a", "b") SELECT "id", "a", "b" FROM "s" WHERE true '
        'ON CONFLICT ("id") DO UPDATE SET "a" = excluded."a", "b" = excluded."b" '
        'WHERE (t."a", t."b") IS DISTINCT FROM (excluded."a", excluded."b")'
    )
    parses("postgres", sql)
    only_keys = get_dialect("postgres").upsert_sql(TableRef("s"), TableRef("t"), ["id"], ["id"])
    assert only_keys.endswith('ON CONFLICT ("id") DO NOTHING')


def test_mysql_upsert_uses_on_duplicate_key() -> None:
    sql = get_dialect("mysql").upsert_sql(TableRef("s"), TableRef("t"), ["id", "v"], ["id"])
    assert (
        sql
        == "INSERT INTO `t` (`id`, `v`) SELECT `id`, `v` FROM `s` ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"
    )
    parses("mysql", sql)


def test_sqlite_upsert_runs_and_skips_unchanged_rows() -> None:
    dialect = get_dialect("sqlite")
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute('CREATE TABLE "t" (id INTEGER PRIMARY KEY, v TEXT)')
    conn.execute('CREATE TABLE "s" (id INTEGER, v TEXT)')
    conn.executemany('INSERT INTO "t" VALUES (?, ?)', [(1, "same"), (2, "old")])
    conn.executemany('INSERT INTO "s" VALUES (?, ?)', [(1, "same"), (2, "new"), (3, "added")])
    counts = dialect.upsert(conn, TableRef("s"), TableRef("t"), ["id", "v"], ["id"], staged_rows=3)
    assert (counts.inserted, counts.updated, counts.unchanged) == (1, 1, 1)
    assert conn.execute("SELECT * FROM t ORDER BY id").fetchall() == [(1, "same"), (2, "new"), (3, "added")]


@pytest.mark.parametrize("kind", KINDS)
def test_create_table_from_arrow_schema(kind: str) -> None:
    dialect = get_dialect(kind)
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("code", pa.string()),
            pa.field("amount", pa.decimal128(20, 4)),
            pa.field("at", pa.timestamp("us", tz="UTC")),
            pa.field("local", pa.timestamp("us")),
            pa.field("ok", pa.bool_()),
            pa.field("raw", pa.binary()),
            json_field("doc"),
            pa.field("day", pa.date32()),
            pa.field("ratio", pa.float64()),
        ]
    )
    sql = dialect.create_table_sql(TableRef("Target T", "s"), schema, ["id", "code"])
    if kind == "sqlite":  # sqlglot does not read SQLite's multi-word type names; SQLite itself does
        conn = sqlite3.connect(":memory:")
        conn.execute("ATTACH ':memory:' AS s")
        conn.execute(sql)
    else:
        parses(kind, sql)
    assert sql.rstrip().endswith(f"PRIMARY KEY ({dialect.quote('id')}, {dialect.quote('code')})\n)")
    expected = {
        "postgres": [
            '"code" text NOT NULL',
            '"amount" numeric(20,4)',
            '"at" timestamp(6) with time zone',
            '"doc" jsonb',
            '"raw" bytea',
        ],
        "mysql": [
            "`code` VARCHAR(255) NOT NULL",
            "`amount` DECIMAL(20,4)",
            "`at` DATETIME(6)",
            "`doc` JSON",
            "`raw` LONGBLOB",
        ],
        "sqlite": [
            '"code" TEXT NOT NULL',
            '"amount" DECIMAL TEXT(20,4)',
            '"at" TIMESTAMPTZ',
            '"doc" JSON TEXT',
        ],
    }[kind]
    for fragment in expected:
        assert fragment in sql


@pytest.mark.parametrize("kind", KINDS)
def test_type_mapping_round_trips_through_ddl(kind: str) -> None:
    """The Arrow type read back from a created column is the type the column was created from."""
    dialect = get_dialect(kind)
    for arrow_type in [
        pa.int64(),
        pa.decimal128(38, 10),
        pa.timestamp("us", tz="UTC"),
        pa.timestamp("us"),
        pa.bool_(),
        pa.binary(),
        pa.string(),
        pa.date32(),
        pa.float64(),
    ]:
        declared = dialect.sql_type(pa.field("c", arrow_type)).lower()
        expected = arrow_type
        if kind == "mysql" and arrow_type == pa.timestamp("us", tz="UTC"):
            expected = pa.timestamp("us")  # stored as UTC in DATETIME(6): TIMESTAMP ends in 2038
        assert dialect.arrow_type(declared) == expected, (declared, arrow_type)


def test_mysql_specific_types() -> None:
    mysql = get_dialect("mysql")
    assert mysql.arrow_type("tinyint(1)") == pa.bool_()
    assert mysql.arrow_type("tinyint(4)") == pa.int8()
    assert mysql.arrow_type("bigint(20) unsigned") == pa.uint64()
    assert mysql.arrow_type("timestamp(6)") == pa.timestamp("us", tz="UTC")
    assert mysql.arrow_type("varbinary(16)") == pa.binary()
    assert get_dialect("postgres").arrow_type("numeric") == pa.decimal128(38, 18)
    assert get_dialect("postgres").arrow_type("integer[]") == pa.string()


@pytest.mark.parametrize("kind", KINDS)
def test_ledger_and_swap_statements_parse(kind: str) -> None:
    dialect = get_dialect(kind)
    ledger = TableRef("sync_ledger", "s")
    parses(kind, dialect.ledger_table_sql(ledger))
    assert "PRIMARY KEY" in dialect.ledger_table_sql(ledger)
    insert = dialect.ledger_insert_query(ledger, ["p", "t", "a", "b", "r", 1, None])
    parses(kind, insert.sql)
    assert len(insert.params) == 7
    for statement in dialect.swap_tables_sql(TableRef("t", "s"), TableRef("t__sync_new", "s")):
        parses(kind, statement)
    assert dialect.swap_tables_sql(TableRef("t"), TableRef("n"), target_exists=False) == [
        dialect.rename_table_sql(TableRef("n"), "t")
    ]


def test_mysql_swaps_both_names_in_one_statement() -> None:
    statements = get_dialect("mysql").swap_tables_sql(TableRef("t", "d"), TableRef("t__sync_new", "d"))
    assert "RENAME TABLE `d`.`t` TO `d`.`t__sync_old`, `d`.`t__sync_new` TO `d`.`t`" in statements


def test_helper_tables_respect_identifier_length() -> None:
    long_name = "x" * 70
    helper = get_dialect("postgres").helper_table(TableRef(long_name, "s"), "__sync_stage")
    assert len(helper.name) == 63 and helper.name.endswith("__sync_stage") and helper.schema == "s"


def test_registry_names_allowed_connection_types() -> None:
    assert get_dialect("postgresql") is get_dialect("postgres")
    assert type(get_dialect("mariadb")).__name__ == "MySQLDialect"
    with pytest.raises(TerminalError, match=r"'db2' is not supported; use one of: .*mysql.*postgres.*sqlite"):
        get_dialect("db2")
    assert set(DIALECTS) >= {"postgres", "postgresql", "mysql", "mariadb", "sqlite"}


def test_missing_driver_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "MySQLdb", None)
    with pytest.raises(MissingDriverError, match=r"pip install 'airflow-provider-sync\[mysql\]'"):
        require_driver("mysql")
    with pytest.raises(MissingDriverError):
        get_dialect("mysql").connect(ConnectionInfo("mysql", host="127.0.0.1"))


def test_parameters_are_bound_in_utc() -> None:
    import datetime as dt

    paris = dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert get_dialect("mysql").bind_params([paris, 1]) == [dt.datetime(2024, 7, 1, 10, 0), 1]
    assert get_dialect("sqlite").bind_params({"p1": paris}) == {"p1": "2024-07-01 10:00:00.000000+00:00"}
    assert get_dialect("postgres").bind_params([paris]) == [paris]  # psycopg sends the offset itself


def test_driver_errors_become_log_safe_sync_errors() -> None:
    from airflow_provider_sync.errors import TerminalError, TransientError

    sqlite = get_dialect("sqlite")
    bad = sqlite3.IntegrityError('CHECK constraint failed: "secret value"')
    translated = sqlite.translate_error(bad)
    assert isinstance(translated, TerminalError) and "secret value" not in str(translated)
    assert isinstance(sqlite.translate_error(sqlite3.OperationalError("database is locked")), TransientError)
    assert sqlite.translate_error(ValueError("not a driver error")) is None
