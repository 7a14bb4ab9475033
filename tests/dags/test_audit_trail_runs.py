"""The audit trail of real DAG runs, in an audit table on SQLite, PostgreSQL and MariaDB: a run stopped by
the invalid-rows threshold, and a load that fails once with a transient error and succeeds on retry."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import Binder
from airflow_provider_sync.errors import TransientError

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def audit_db(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ConnectionInfo, str]]:
    uris = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'audit.db'}",
        "postgres": lambda: request.getfixturevalue("pg_uri"),
        "mysql": lambda: request.getfixturevalue("mysql_uri"),
    }
    uri = uris[request.param]()
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_DB", uri)
    info = ConnectionInfo.from_uri(uri)
    table = f"audit_{uuid.uuid4().hex[:8]}"
    yield info, table
    dialect = get_dialect(info.conn_type)
    conn = dialect.connect(info)
    dialect.begin_write(conn)
    dialect.execute(conn, f"DROP TABLE IF EXISTS {dialect.quote(table)}").close()
    conn.commit()
    conn.close()


def audit_rows(info: ConnectionInfo, table: str, run_id: str) -> list[tuple[Any, ...]]:
    dialect = get_dialect(info.conn_type)
    conn = dialect.connect(info)
    try:
        q, bind = dialect.quote, Binder(dialect.capabilities.param_style)
        columns = dialect.column_list(["step", "status", "try_number", "error_class", "rows_loaded"])
        sql = (
            f"SELECT {columns} FROM {q(table)} WHERE {q('run_id')} = {bind(run_id)} "
            f"ORDER BY {q('started_at')}, {q('step')}"
        )
        cursor = dialect.execute(conn, bind.query(sql))
        rows = [tuple(row) for row in cursor.fetchall()]
        cursor.close()
        return rows
    finally:
        conn.rollback()
        conn.close()


def configure(configs_dir: Path, audit_table: str, extra: str) -> None:
    pipeline = configs_dir / "demo_orders.yaml"
    text = pipeline.read_text() + f"audit: {{conn_id: audit_db, table: {audit_table}}}\n" + extra
    pipeline.write_text(text)


def test_invalid_rows_threshold_fails_the_run_and_is_audited(
    run_pipeline: Callable[..., Any],
    demo_databases: Any,
    configs_dir: Path,
    audit_db: tuple[ConnectionInfo, str],
) -> None:
    info, table = audit_db
    configure(
        configs_dir,
        table,
        "default_args: {retries: 2}\nsteps:\n  - validate:\n"
        "      max_invalid_ratio: 0.1\n      on_invalid: drop\n"
        "      rules: {status: {in: [new, paid]}}\n",
    )
    run = run_pipeline("demo_orders")
    assert run.state == "failed"
    rows = audit_rows(info, table, run.run_id)
    by_step = {step: (status, tries, error) for step, status, tries, error, _ in rows}
    assert by_step["extract"] == ("success", 1, None)
    assert by_step["validate"] == ("failed", 1, "airflow_provider_sync.errors.InvalidRowsThresholdError"), (
        "terminal: no retry"
    )
    # The failed run row names the task and try that ended the run.
    assert by_step["run"] == ("failed", 1, "airflow_provider_sync.errors.InvalidRowsThresholdError")
    assert "load" not in by_step


def test_each_try_of_a_retried_load_has_its_own_audit_row(
    run_pipeline: Callable[..., Any],
    demo_databases: Any,
    configs_dir: Path,
    audit_db: tuple[ConnectionInfo, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_sync.operators import load as load_module

    info, table = audit_db
    configure(
        configs_dir, table, "default_args: {retries: 2, retry_delay: 1s, retry_exponential_backoff: false}\n"
    )
    real_sink_for = load_module.sink_for
    calls = {"count": 0}

    def flaky_sink_for(conn_type: str) -> Callable[..., Any]:
        sink = real_sink_for(conn_type)

        def sink_failing_once(*args: Any, **kwargs: Any) -> Any:
            calls["count"] += 1
            if calls["count"] == 1:
                raise TransientError("connection reset by peer while loading")
            return sink(*args, **kwargs)

        return sink_failing_once

    monkeypatch.setattr(load_module, "sink_for", flaky_sink_for)
    run = run_pipeline("demo_orders")
    assert run.state == "success"
    loads = [row for row in audit_rows(info, table, run.run_id) if row[0] == "load"]
    assert loads == [
        ("load", "failed", 1, "airflow_provider_sync.errors.TransientError", None),
        ("load", "success", 2, None, 1000),
    ]
    (run_row,) = [row for row in audit_rows(info, table, run.run_id) if row[0] == "run"]
    assert run_row[1:3] == ("success", None) and run_row[4] == 1000
