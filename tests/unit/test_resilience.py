"""Terminal vs transient across drivers, and the retry policy's decisions.

Driver errors are produced by the real drivers where that is cheap (refused connections, a locked SQLite
file, real server errors in the integration variants) and constructed exactly as the drivers raise them
otherwise.
"""

from __future__ import annotations

import socket
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk import RetryAction, RetryRule
from pydantic import BaseModel, ValidationError

from airflow_provider_sync.errors import (
    ConfigError,
    KeyringError,
    MissingDriverError,
    SyncError,
    TerminalError,
    TransientError,
    WatermarkError,
)
from airflow_provider_sync.resilience import Verdict, build_retry_policy, classify, is_terminal, is_transient


def _raised(callable_: object) -> BaseException:
    try:
        callable_()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def _validation_error() -> ValidationError:
    class Model(BaseModel):
        count: int

    return _raised(lambda: Model.model_validate({"count": "many"}))  # type: ignore[return-value]


class _RetryableSyncError(SyncError):
    terminal = False


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (TerminalError("x"), Verdict.TERMINAL),
        (ConfigError([]), Verdict.TERMINAL),
        (KeyringError("key 'k1' is missing"), Verdict.TERMINAL),
        (WatermarkError("x"), Verdict.TERMINAL),
        (MissingDriverError("Oracle", "oracle", "oracledb"), Verdict.TERMINAL),
        (TransientError("x"), Verdict.TRANSIENT),
        (_RetryableSyncError("x"), Verdict.TRANSIENT),
        (ConnectionResetError(104, "reset"), Verdict.TRANSIENT),
        (TimeoutError("timed out"), Verdict.TRANSIENT),
        (socket.gaierror(-3, "Temporary failure in name resolution"), Verdict.TRANSIENT),
        (ValueError("bug"), Verdict.UNKNOWN),
        (KeyError("x"), Verdict.UNKNOWN),
    ],
)
def test_generic_errors(error: BaseException, verdict: Verdict) -> None:
    assert classify(error) is verdict


def test_pydantic_validation_and_wrong_key_are_terminal() -> None:
    from cryptography.exceptions import InvalidTag

    assert is_terminal(_validation_error())
    assert is_terminal(InvalidTag())


@pytest.mark.parametrize(
    ("sqlstate", "verdict"),
    [
        ("40P01", Verdict.TRANSIENT),  # deadlock_detected
        ("40001", Verdict.TRANSIENT),  # serialization_failure
        ("55P03", Verdict.TRANSIENT),  # lock_not_available
        ("57P01", Verdict.TRANSIENT),  # admin_shutdown
        ("57014", Verdict.TRANSIENT),  # query_canceled
        ("53300", Verdict.TRANSIENT),  # too_many_connections
        ("08006", Verdict.TRANSIENT),  # connection_failure
        ("28P01", Verdict.TERMINAL),  # invalid_password
        ("42P01", Verdict.TERMINAL),  # undefined_table
        ("42501", Verdict.TERMINAL),  # insufficient_privilege
        ("23505", Verdict.TERMINAL),  # unique_violation
        ("22P02", Verdict.TERMINAL),  # invalid_text_representation
        ("3D000", Verdict.TERMINAL),  # invalid_catalog_name
    ],
)
def test_postgres_sqlstates(sqlstate: str, verdict: Verdict) -> None:
    import psycopg.errors

    assert classify(psycopg.errors.lookup(sqlstate)("server said no")) is verdict


def test_postgres_connection_failures_without_sqlstate() -> None:
    import psycopg

    refused = _raised(lambda: psycopg.connect("postgresql://u:p@127.0.0.1:1/db", connect_timeout=2))
    assert isinstance(refused, psycopg.OperationalError) and refused.sqlstate is None
    assert is_transient(refused)
    assert is_terminal(psycopg.OperationalError(
        'connection failed: FATAL:  password authentication failed for user "sync"'
    ))
    assert is_terminal(psycopg.OperationalError('connection failed: FATAL:  database "nodb" does not exist'))


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (1213, Verdict.TRANSIENT),  # deadlock
        (1205, Verdict.TRANSIENT),  # lock wait timeout
        (2006, Verdict.TRANSIENT),  # server has gone away
        (2013, Verdict.TRANSIENT),  # lost connection during query
        (1045, Verdict.TERMINAL),  # access denied
        (1146, Verdict.TERMINAL),  # table does not exist
        (1062, Verdict.TERMINAL),  # duplicate entry
        (9999, Verdict.UNKNOWN),
    ],
)
def test_mysql_error_numbers(code: int, verdict: Verdict) -> None:
    import MySQLdb

    assert classify(MySQLdb.OperationalError(code, "server said no")) is verdict


def test_mysql_refused_connection_is_transient_and_programming_errors_terminal() -> None:
    import MySQLdb

    refused = _raised(
        lambda: MySQLdb.connect(host="127.0.0.1", port=1, user="u", password="p", connect_timeout=2)
    )
    assert is_transient(refused)
    assert is_terminal(MySQLdb.ProgrammingError(9998, "unlisted code, but a DB-API programming error"))


def test_sqlite_locked_database_is_transient_missing_table_terminal(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("create table t (x int)")
    holder.execute("begin exclusive")
    try:
        waiter = sqlite3.connect(path, timeout=0)
        locked = _raised(lambda: waiter.execute("select * from t").fetchall())
        assert "locked" in str(locked)
        assert is_transient(locked)
    finally:
        holder.execute("rollback")
        holder.close()
    assert is_terminal(_raised(lambda: waiter.execute("select * from missing_table")))
    waiter.close()


def test_sqlite_constraint_violation_is_terminal() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("create table t (id int primary key)")
    db.execute("insert into t values (1)")
    assert is_terminal(_raised(lambda: db.execute("insert into t values (1)")))


def test_mssql_and_oracle_refused_connections_are_transient() -> None:
    import oracledb
    import pymssql

    mssql = _raised(
        lambda: pymssql.connect(server="127.0.0.1", port="1", user="u", password="p", login_timeout=2)
    )
    assert is_transient(mssql)
    assert is_terminal(pymssql.OperationalError((18456, b"Login failed for user 'sync'.")))
    oracle = _raised(
        lambda: oracledb.connect(user="u", password="p", dsn="127.0.0.1:1/x", tcp_connect_timeout=2)
    )
    assert is_transient(oracle)


def test_kafka_errors_follow_librdkafka_flags() -> None:
    from confluent_kafka import KafkaError, KafkaException

    assert is_transient(KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down", retriable=True)))
    assert is_terminal(KafkaException(KafkaError(KafkaError._FATAL, "fenced", fatal=True)))
    assert is_terminal(KafkaException(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED)))
    assert classify(KafkaException(KafkaError(KafkaError._PARTITION_EOF))) is Verdict.UNKNOWN


def test_wrapped_errors_are_classified_by_their_cause() -> None:
    import MySQLdb
    import psycopg.errors
    import sqlalchemy.exc

    wrapped = sqlalchemy.exc.OperationalError("select 1", {}, MySQLdb.OperationalError(2006, "gone away"))
    assert is_transient(wrapped)
    try:
        try:
            raise psycopg.errors.lookup("42P01")('relation "orders" does not exist')
        except Exception as inner:
            raise RuntimeError("extract failed") from inner
    except RuntimeError as outer:
        assert is_terminal(outer)
    # Our own classification wins over the cause it wraps.
    try:
        raise TransientError("retry the batch") from ValueError("bug?")
    except TransientError as ours:
        assert is_transient(ours)


def test_classify_never_raises_on_odd_errors() -> None:
    class Weird(Exception):
        __module__ = "psycopg"

        @property
        def sqlstate(self) -> str:
            raise RuntimeError("broken attribute")

    assert classify(Weird()) is Verdict.UNKNOWN
    looped = ValueError("a")
    looped.__cause__ = ValueError("b")
    looped.__cause__.__cause__ = looped
    assert classify(looped) is Verdict.UNKNOWN


def test_retry_policy_decisions() -> None:
    policy = build_retry_policy()
    fail = policy.evaluate(TerminalError("bad config"), try_number=1, max_tries=3)
    assert fail.action is RetryAction.FAIL and "terminal" in (fail.reason or "")
    assert policy.evaluate(_validation_error(), 1, 3).action is RetryAction.FAIL
    retry = policy.evaluate(ConnectionResetError("reset"), 1, 3)
    assert retry.action is RetryAction.RETRY and retry.retry_delay is None
    assert policy.evaluate(ValueError("bug"), 1, 3).action is RetryAction.DEFAULT


def test_extra_rules_take_precedence() -> None:
    policy = build_retry_policy(
        [
            RetryRule(exception=ValueError, action=RetryAction.RETRY, retry_delay=timedelta(seconds=7)),
            RetryRule(exception=KeyringError, action=RetryAction.RETRY),
        ]
    )
    value_error = policy.evaluate(ValueError("flaky parser"), 1, 3)
    assert (value_error.action, value_error.retry_delay) == (RetryAction.RETRY, timedelta(seconds=7))
    assert policy.evaluate(KeyringError("secrets backend not ready"), 1, 3).action is RetryAction.RETRY
    assert policy.evaluate(TerminalError("still terminal"), 1, 3).action is RetryAction.FAIL


def test_retry_policy_is_accepted_through_default_args() -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    policy = build_retry_policy()
    with DAG("retry_policy_default_args", schedule=None, default_args={"retry_policy": policy}):
        task = EmptyOperator(task_id="noop")
    assert task.retry_policy is policy
    assert task.has_retry_policy
