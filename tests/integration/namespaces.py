"""Real databases for the engine tests: PostgreSQL and MariaDB of the test servers, and SQLite files.

Every test gets its own namespace: a fresh PostgreSQL schema, a unique table prefix in the MariaDB test
database, a fresh SQLite file. ``Database`` writes portable DDL from a small type vocabulary and reads
tables back through the engine's reader, normalised so databases can be compared with each other.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import Binder, Query, TableRef

TYPES: dict[str, dict[str, str]] = {
    "int": {"postgres": "integer", "mysql": "INT", "sqlite": "INTEGER"},
    "bigint": {"postgres": "bigint", "mysql": "BIGINT", "sqlite": "INTEGER"},
    "text": {"postgres": "text", "mysql": "LONGTEXT", "sqlite": "TEXT"},
    "key_text": {"postgres": "text", "mysql": "VARCHAR(100)", "sqlite": "TEXT"},
    "ts": {"postgres": "timestamp(6)", "mysql": "DATETIME(6)", "sqlite": "TIMESTAMP"},
    "tstz": {"postgres": "timestamptz", "mysql": "TIMESTAMP(6) NULL", "sqlite": "TIMESTAMPTZ"},
    "dec": {"postgres": "numeric(38,10)", "mysql": "DECIMAL(38,10)", "sqlite": "DECIMAL TEXT(38,10)"},
    "bool": {"postgres": "boolean", "mysql": "BOOLEAN", "sqlite": "BOOLEAN"},
    "bytes": {"postgres": "bytea", "mysql": "LONGBLOB", "sqlite": "BLOB"},
    "json": {"postgres": "jsonb", "mysql": "JSON", "sqlite": "JSON TEXT"},
    "float": {"postgres": "double precision", "mysql": "DOUBLE", "sqlite": "REAL"},
    "date": {"postgres": "date", "mysql": "DATE", "sqlite": "DATE"},
}


def normalise(value: Any) -> Any:
    """Comparable across databases: UTC-naive timestamps, normalised decimals, bytes, bools as ints."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, Decimal):
        return value.normalize(Context(prec=100))
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):
        return int(value)
    return value


class Database:
    """One test's namespace in one database."""

    def __init__(self, kind: str, info: ConnectionInfo, schema: str | None, prefix: str) -> None:
        self.kind = kind
        self.info = info
        self.schema = schema
        self.prefix = prefix
        self.dialect = get_dialect(info.conn_type)
        self.conn = self.dialect.connect(info)

    def table(self, name: str) -> TableRef:
        return TableRef(self.prefix + name, self.schema)

    def name(self, name: str) -> str:
        return self.prefix + name

    def run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.dialect.begin_write(self.conn)
        cursor = self.dialect.execute(self.conn, Query(sql, list(params)))
        rows = cursor.fetchall() if cursor.description else None
        cursor.close()
        self.conn.commit()
        return rows

    def create(
        self, name: str, columns: Sequence[tuple[str, str]], primary_key: Sequence[str] = ()
    ) -> TableRef:
        table = self.table(name)
        d = self.dialect
        body = [f"{d.quote(col)} {TYPES[kind][self.kind]}" for col, kind in columns]
        if primary_key:
            body.append(f"PRIMARY KEY ({d.column_list(primary_key)})")
        self.run(f"CREATE TABLE {d.qualify(table)} ({', '.join(body)})")
        return table

    def insert(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        d = self.dialect
        bind = Binder(d.capabilities.param_style)
        marks = ", ".join(bind(None) for _ in columns)
        sql = f"INSERT INTO {d.qualify(self.table(name))} ({d.column_list(columns)}) VALUES ({marks})"
        values = [tuple(self._param(v) for v in row) for row in rows]
        d.begin_write(self.conn)
        cursor = self.conn.cursor()
        cursor.executemany(sql, values)
        cursor.close()
        self.conn.commit()

    def _param(self, value: Any) -> Any:
        if value is None:
            return None
        if self.kind == "sqlite":
            return self.dialect.param_converter(None)(value)
        if self.kind == "mysql" and isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value

    def rows(self, name: str, order_by: Sequence[str]) -> list[tuple[Any, ...]]:
        """Every row, read through the engine's reader, normalised for comparison."""
        d = self.dialect
        table = self.table(name)
        columns = d.get_columns(self.conn, table)
        query = Query(
            f"SELECT {d.column_list([c.name for c in columns])} FROM {d.qualify(table)} "
            f"ORDER BY {d.column_list(order_by)}"
        )
        result = []
        for batch in d.read_batches(self.conn, query, columns, 5000):
            for row in batch.to_pylist():
                result.append(tuple(normalise(v) for v in row.values()))
        self.conn.rollback()
        return result

    def qualified(self, name: str) -> str:
        return self.dialect.qualify(self.table(name))

    def count(self, name: str) -> int:
        rows = self.run(f"SELECT COUNT(*) FROM {self.qualified(name)}")
        return int(rows[0][0])

    def ids(self, name: str) -> list[int]:
        rows = self.run(f"SELECT {self.dialect.quote('id')} FROM {self.qualified(name)} ORDER BY 1")
        return [int(row[0]) for row in rows or []]

    def close(self) -> None:
        self.conn.rollback()
        self.conn.close()


def _postgres(uri: str) -> Iterator[Database]:
    schema = f"eng_{uuid.uuid4().hex[:10]}"
    db = Database("postgres", ConnectionInfo.from_uri(uri), schema, "")
    db.run(f'CREATE SCHEMA "{schema}"')
    try:
        yield db
    finally:
        db.conn.rollback()
        db.run(f'DROP SCHEMA "{schema}" CASCADE')
        db.close()


def _mysql(uri: str) -> Iterator[Database]:
    prefix = f"e{uuid.uuid4().hex[:8]}_"
    info = ConnectionInfo.from_uri(uri)
    db = Database("mysql", info, info.database, prefix)
    try:
        yield db
    finally:
        db.conn.rollback()
        names = db.run(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name LIKE %s",
            [prefix + "%"],
        )
        for (name,) in names or []:
            db.run(f"DROP TABLE IF EXISTS `{name}`")
        db.close()


def _sqlite(directory: Path) -> Iterator[Database]:
    path = directory / f"{uuid.uuid4().hex[:8]}.db"
    db = Database("sqlite", ConnectionInfo.from_uri(f"sqlite:///{path}"), None, "")
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def make_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Database]]:
    """``make_db("postgres" | "mysql" | "sqlite")`` -> a fresh namespace, cleaned up after the test."""
    opened: list[Iterator[Database]] = []

    def make(kind: str) -> Database:
        if kind == "postgres":
            generator = _postgres(request.getfixturevalue("pg_uri"))
        elif kind == "mysql":
            generator = _mysql(request.getfixturevalue("mysql_uri"))
        else:
            generator = _sqlite(tmp_path)
        opened.append(generator)
        return next(generator)

    yield make
    for generator in reversed(opened):
        for _ in generator:
            pass
