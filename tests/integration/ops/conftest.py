"""A private namespace per test in each real target database: a fresh PostgreSQL schema, a unique table
prefix in the MariaDB test database, a fresh SQLite file."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import Query, TableRef


class Target:
    """One test's namespace in one database, with a connection for setup and checks."""

    def __init__(self, kind: str, info: ConnectionInfo, schema: str | None, prefix: str) -> None:
        self.kind, self.info, self.schema, self.prefix = kind, info, schema, prefix
        self.dialect = get_dialect(info.conn_type)
        self.conn = self.dialect.connect(info)

    def table(self, name: str) -> TableRef:
        return TableRef(self.prefix + name, self.schema)

    def qualified(self, name: str) -> str:
        return self.dialect.qualify(self.table(name))

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]] | None:
        self.dialect.begin_write(self.conn)
        cursor = self.dialect.execute(self.conn, Query(sql, list(params)))
        rows = cursor.fetchall() if cursor.description else None
        cursor.close()
        self.conn.commit()
        return rows

    def count(self, name: str) -> int:
        rows = self.run(f"SELECT COUNT(*) FROM {self.qualified(name)}")
        assert rows is not None
        return int(rows[0][0])

    def ids(self, name: str) -> list[int]:
        rows = self.run(f"SELECT {self.dialect.quote('id')} FROM {self.qualified(name)} ORDER BY 1")
        return [int(row[0]) for row in rows or []]

    def close(self) -> None:
        self.conn.rollback()
        self.conn.close()


def _postgres(uri: str) -> Iterator[Target]:
    schema = f"ops_{uuid.uuid4().hex[:10]}"
    target = Target("postgres", ConnectionInfo.from_uri(uri), schema, "")
    target.run(f'CREATE SCHEMA "{schema}"')
    try:
        yield target
    finally:
        target.conn.rollback()
        target.run(f'DROP SCHEMA "{schema}" CASCADE')
        target.close()


def _mysql(uri: str) -> Iterator[Target]:
    prefix = f"o{uuid.uuid4().hex[:8]}_"
    info = ConnectionInfo.from_uri(uri)
    target = Target("mysql", info, info.database, prefix)
    try:
        yield target
    finally:
        target.conn.rollback()
        names = target.run(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name LIKE %s",
            [prefix + "%"],
        )
        for (name,) in names or []:
            target.run(f"DROP TABLE IF EXISTS `{name}`")
        target.close()


def _sqlite(directory: Path) -> Iterator[Target]:
    path = directory / f"{uuid.uuid4().hex[:8]}.db"
    target = Target("sqlite", ConnectionInfo.from_uri(f"sqlite:///{path}"), None, "")
    try:
        yield target
    finally:
        target.close()


@pytest.fixture
def make_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Target]]:
    """``make_target("postgres" | "mysql" | "sqlite")`` -> a fresh namespace, cleaned up after the test."""
    opened: list[Iterator[Target]] = []

    def make(kind: str) -> Target:
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
