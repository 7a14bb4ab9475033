"""Real source tables for ``airflow-sync init`` / ``profile``: a fresh PostgreSQL schema or MariaDB table
prefix per test, dropped afterwards; and a runner for the command line that captures its output."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_sync.dialects.connection import ConnectionInfo

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run_cli("init", "--conn", ...)`` -> (exit code, stdout, stderr) of ``airflow-sync``."""
    from airflow_provider_sync.factory.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def pg_schema(pg_uri: str) -> Iterator[tuple[Any, str]]:
    import psycopg

    schema = f"init_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(pg_uri, autocommit=True)
    conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield conn, schema
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


@pytest.fixture
def maria(mysql_uri: str) -> Iterator[tuple[Any, str]]:
    """A MariaDB connection (autocommit) and a unique table-name prefix; its tables are dropped after."""
    import MySQLdb

    info = ConnectionInfo.from_uri(mysql_uri)
    conn = MySQLdb.connect(
        host=info.host or "127.0.0.1",
        port=info.port or 3306,
        user=info.login or "",
        password=info.password or "",
        database=info.database or "",
        autocommit=True,
    )
    prefix = f"init_{uuid.uuid4().hex[:8]}_"
    try:
        yield conn, prefix
    finally:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name LIKE %s",
            [prefix + "%"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP TABLE `{name}`")
        conn.close()
