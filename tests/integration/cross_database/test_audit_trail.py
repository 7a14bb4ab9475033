"""The audit trail on real databases: the table is created from the Arrow schema by each dialect, a success
row and a failure row are written through the dialect and read back field by field."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.utils.types import DagRunTriggeredByType, DagRunType

from airflow_provider_sync import __version__
from airflow_provider_sync.audit.record import AuditRecord, sha256_of_file
from airflow_provider_sync.audit.schema import JSON_COLUMNS, audit_schema
from airflow_provider_sync.audit.writer import AuditWriter
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import TableRef

STARTED = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)
PASSWORD = "Pa55w0rd-never-stored"
ROW_VALUE = "eve@example.com"


def _context(run_id: str) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="crm_sync", task_id="customers.load", run_id=run_id, try_number=2)
    dag_run = SimpleNamespace(
        run_id=run_id, run_type=DagRunType.MANUAL, triggered_by=DagRunTriggeredByType.UI
    )
    return {"ti": ti, "dag_run": dag_run}


def _records(run_id: str, config: Path) -> tuple[AuditRecord, AuditRecord]:
    base = AuditRecord.from_context(
        _context(run_id),
        step="load",
        started_at=STARTED,
        table_name="customers",
        source="mysql:crm.customers",
        target="postgres:analytics.customers",
        config_path=str(config),
        config_sha256=sha256_of_file(config),
    )
    success = base.succeeded(
        ended_at=STARTED + timedelta(seconds=12, microseconds=500000),
        rows_extracted=1000,
        rows_valid=990,
        rows_rejected=10,
        rejected_by_rule={"email": 7, "not_null:id": 3},
        rows_masked=990,
        rows_encrypted=990,
        rows_loaded=990,
        rows_skipped=0,
        watermark_before={"cursor": "2025-03-03T00:00:00+00:00", "key": [41]},
        watermark_after={"cursor": "2025-03-04T00:00:00+00:00", "key": [1041]},
        key_ids=["k-2025-01", "k-2024-07"],
    )
    failure_start = STARTED + timedelta(minutes=1)
    error = RuntimeError(
        f"load failed on postgresql://loader:{PASSWORD}@db:5432/analytics\n"
        f"DETAIL:  Key (email)=({ROW_VALUE}) already exists."
    )
    failure = AuditRecord.from_context(
        _context(run_id),
        step="load",
        started_at=failure_start,
        table_name="customers",
    ).failed(error, ended_at=failure_start + timedelta(seconds=3), rows_extracted=500)
    return success, failure


def _normalise(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in JSON_COLUMNS:
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value


def _expected(record: AuditRecord) -> dict[str, Any]:
    values = record.column_values()
    return {name: _normalise(name, values[name]) for name in audit_schema().names}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "crm_sync.yaml"
    path.write_text("version: 1\ndag_id: crm_sync\n")
    return path


def _round_trip(info: ConnectionInfo, table: TableRef, config: Path) -> None:
    run_id = f"manual__{uuid.uuid4().hex}"
    success, failure = _records(run_id, config)
    with AuditWriter.open(info, table) as writer:
        assert writer.ensure_table() is False  # created by open(), idempotent afterwards
        assert writer.write(success, failure) == 2
        other_run = AuditRecord(dag_id="crm_sync", run_id="other", step="run", started_at=STARTED)
        writer.write(other_run)
        read = writer.read(run_id)

    assert read.column_names == audit_schema().names
    rows = read.to_pylist()
    assert len(rows) == 2
    for got, record in zip(rows, (success, failure), strict=True):
        want = _expected(record)
        for column in audit_schema().names:
            assert _normalise(column, got[column]) == want[column], column

    got_success, got_failure = rows
    assert got_success["status"] == "success" and got_failure["status"] == "failed"
    assert (got_success["run_type"], got_success["triggered_by"]) == ("manual", "ui")
    assert got_success["task_id"] == "customers.load" and got_success["try_number"] == 2
    assert got_success["duration_s"] == pytest.approx(12.5)
    assert got_success["provider_version"] == __version__
    assert len(got_success["config_sha256"]) == 64
    assert got_failure["error_class"] == "RuntimeError"
    assert got_failure["error_message"].startswith("load failed on postgresql://loader:***@db:5432/analytics")
    assert "DETAIL: (row values removed)" in got_failure["error_message"]
    assert PASSWORD not in str(rows) and ROW_VALUE not in str(rows)
    assert got_failure["rows_loaded"] is None and got_failure["rows_extracted"] == 500


@pytest.mark.integration
def test_audit_trail_on_postgres(pg_uri: str, config_file: Path) -> None:
    info = ConnectionInfo.from_uri(pg_uri)
    schema = f"audit_{uuid.uuid4().hex[:8]}"
    dialect = get_dialect("postgres")
    conn = dialect.connect(info)
    try:
        dialect.execute(conn, f"CREATE SCHEMA {dialect.quote(schema)}").close()
        conn.commit()
        _round_trip(info, TableRef("sync_audit", schema), config_file)
        columns = {c.name: c.db_type for c in dialect.get_columns(conn, TableRef("sync_audit", schema))}
        assert columns["rejected_by_rule"] == "jsonb"
        assert columns["started_at"].startswith("timestamp")
    finally:
        conn.rollback()
        dialect.execute(conn, f"DROP SCHEMA IF EXISTS {dialect.quote(schema)} CASCADE").close()
        conn.commit()
        conn.close()


@pytest.fixture
def mysql_table(mysql_uri: str) -> Iterator[tuple[ConnectionInfo, TableRef]]:
    info = ConnectionInfo.from_uri(mysql_uri)
    table = TableRef(f"audit_{uuid.uuid4().hex[:8]}")
    yield info, table
    dialect = get_dialect("mysql")
    conn = dialect.connect(info)
    try:
        dialect.execute(conn, dialect.drop_table_sql(table)).close()
        conn.commit()
    finally:
        conn.close()


@pytest.mark.integration
def test_audit_trail_on_mariadb(mysql_table: tuple[ConnectionInfo, TableRef], config_file: Path) -> None:
    info, table = mysql_table
    _round_trip(info, table, config_file)


@pytest.mark.integration
def test_audit_trail_on_sqlite(tmp_path: Path, config_file: Path) -> None:
    info = ConnectionInfo.from_uri(f"sqlite:///{tmp_path / 'audit.db'}")
    _round_trip(info, TableRef("sync_audit"), config_file)


@pytest.mark.integration
def test_audit_trail_on_clickhouse(chdb_dsn: str, config_file: Path) -> None:
    info = ConnectionInfo(conn_type="clickhouse", extra={"dsn": chdb_dsn})
    _round_trip(info, TableRef(f"audit_{uuid.uuid4().hex[:8]}"), config_file)
