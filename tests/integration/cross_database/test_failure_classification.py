"""Terminal vs transient on errors raised by real servers (not constructed by hand)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from airflow_provider_sync.resilience import Verdict, classify


def _raised(action: object) -> BaseException:
    try:
        action()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("expected the server to raise")


@pytest.mark.integration
def test_postgres_server_errors(pg_uri: str) -> None:
    import psycopg
    import psycopg2

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        missing = _raised(lambda: conn.execute("SELECT * FROM sync_no_such_table_4711"))
        assert classify(missing) is Verdict.TERMINAL
        conn.execute("SET statement_timeout = 50")
        timed_out = _raised(lambda: conn.execute("SELECT pg_sleep(2)"))
        assert type(timed_out).__name__ == "QueryCanceled"
        assert classify(timed_out) is Verdict.TRANSIENT

    victim = psycopg.connect(pg_uri, autocommit=True)
    pid = victim.info.backend_pid
    with psycopg.connect(pg_uri, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    killed = _raised(lambda: victim.execute("SELECT 1"))
    victim.close()
    assert classify(killed) is Verdict.TRANSIENT

    legacy = psycopg2.connect(pg_uri)
    try:
        legacy_missing = _raised(lambda: legacy.cursor().execute("SELECT * FROM sync_no_such_table_4711"))
        assert legacy_missing.pgcode == "42P01"  # type: ignore[attr-defined]
        assert classify(legacy_missing) is Verdict.TERMINAL
    finally:
        legacy.close()


@pytest.mark.integration
def test_mariadb_server_errors(mysql_uri: str) -> None:
    import MySQLdb

    url = urlsplit(mysql_uri)
    params = {
        "host": url.hostname,
        "port": url.port or 3306,
        "user": url.username,
        "database": url.path.lstrip("/"),
        "connect_timeout": 5,
    }
    denied = _raised(lambda: MySQLdb.connect(password="definitely-wrong", **params))
    assert classify(denied) is Verdict.TERMINAL

    table = "sync_lock_probe_4711"
    holder = MySQLdb.connect(password=url.password, **params)
    waiter = MySQLdb.connect(password=url.password, **params)
    try:
        cursor = holder.cursor()
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY) ENGINE=InnoDB")
        cursor.execute(f"INSERT IGNORE INTO {table} VALUES (1)")
        holder.commit()
        cursor.execute(f"SELECT id FROM {table} WHERE id = 1 FOR UPDATE")
        waiting = waiter.cursor()
        waiting.execute("SET SESSION innodb_lock_wait_timeout = 1")
        # The row lock is held by `holder`, so this waits one second and gives up with error 1205.
        lock_wait = _raised(lambda: waiting.execute(f"UPDATE {table} SET id = 1 WHERE id = 1"))
        assert lock_wait.args[0] == 1205
        assert classify(lock_wait) is Verdict.TRANSIENT
        missing = _raised(lambda: waiting.execute("SELECT * FROM sync_no_such_table_4711"))
        assert classify(missing) is Verdict.TERMINAL
    finally:
        holder.rollback()
        waiter.rollback()
        holder.cursor().execute(f"DROP TABLE IF EXISTS {table}")
        holder.close()
        waiter.close()
