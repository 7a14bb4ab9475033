"""Audit records without a database: values, validation, and the INSERT each dialect gets."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_sync.audit.record import AuditRecord, sha256_of_file
from airflow_provider_sync.audit.schema import COUNT_COLUMNS, JSON_COLUMNS, audit_schema
from airflow_provider_sync.audit.writer import AuditWriter, audit_table
from airflow_provider_sync.config.audit import AuditConfig
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import TerminalError

START = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


def test_schema_has_every_column_of_the_record_in_order() -> None:
    from dataclasses import fields

    assert sorted(audit_schema().names) == sorted(f.name for f in fields(AuditRecord))
    assert audit_schema().names[:3] == ["dag_id", "run_id", "run_type"]
    assert set(JSON_COLUMNS) | set(COUNT_COLUMNS) <= set(audit_schema().names)
    required = [f.name for f in audit_schema() if not f.nullable]
    assert required == ["dag_id", "run_id", "step", "status"]


def test_success_and_failure_copies() -> None:
    record = AuditRecord(dag_id="d", run_id="r", step="extract", started_at=START)
    done = record.succeeded(ended_at=START + timedelta(seconds=2.25), rows_extracted=10)
    assert (done.status, done.duration_s, done.rows_extracted) == ("success", 2.25, 10)
    assert record.status == "success" and record.ended_at is None  # the original is unchanged

    error = ConnectionResetError("reset by peer at 10.0.0.5")
    failed = record.failed(error, ended_at=START + timedelta(seconds=1))
    assert (failed.status, failed.error_class, failed.error_message) == (
        "failed", "ConnectionResetError", "reset by peer at 10.0.0.5"
    )


def test_naive_timestamps_are_taken_as_utc() -> None:
    record = AuditRecord(dag_id="d", run_id="r", step="run", started_at=datetime(2025, 1, 1, 8, 0))
    assert record.started_at == datetime(2025, 1, 1, 8, 0, tzinfo=timezone.utc)


def test_from_context_reads_airflow_objects() -> None:
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    ti = SimpleNamespace(dag_id="d", task_id="t.load", run_id="scheduled__1", try_number=3)
    dag_run = SimpleNamespace(run_type=DagRunType.SCHEDULED, triggered_by=DagRunTriggeredByType.TIMETABLE)
    record = AuditRecord.from_context({"ti": ti, "dag_run": dag_run}, step="load", table_name="t")
    identity = (record.dag_id, record.run_id, record.task_id, record.try_number)
    assert identity == ("d", "scheduled__1", "t.load", 3)
    assert (record.run_type, record.triggered_by) == ("scheduled", "timetable")
    assert record.started_at is not None and record.started_at.tzinfo is not None
    with pytest.raises(TerminalError, match="no DAG id or run id"):
        AuditRecord.from_context({}, step="load")


@pytest.mark.parametrize(("values", "match"), [({"status": "ok"}, "not one of success, failed, skipped"),
                                                ({"step": ""}, "needs a step name")])
def test_invalid_records_are_rejected(values: dict[str, str], match: str) -> None:
    fields: dict[str, Any] = {"dag_id": "d", "run_id": "r", "step": "load", **values}
    with pytest.raises(TerminalError, match=match):
        AuditRecord(**fields)


def test_json_columns_are_compact_sorted_json(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text("version: 1\n")
    record = AuditRecord(dag_id="d", run_id="r", step="validate", rejected_by_rule={"z": 1, "a": 2},
                         watermark_after={"cursor": START, "key": [1]}, key_ids=["k1"],
                         config_sha256=sha256_of_file(config))
    values = record.column_values()
    assert values["rejected_by_rule"] == '{"a":2,"z":1}'
    assert json.loads(values["watermark_after"]) == {"cursor": "2025-01-01 12:00:00+00:00", "key": [1]}
    assert values["key_ids"] == '["k1"]' and values["watermark_before"] is None
    assert values["config_sha256"] == hashlib.sha256(b"version: 1\n").hexdigest()


@pytest.mark.parametrize(
    ("conn_type", "placeholder", "table_sql"),
    [("postgres", "%s", '"ops"."sync_audit"'), ("mysql", "%s", "`ops`.`sync_audit`"),
     ("sqlite", "?", '"ops"."sync_audit"')],
)
def test_insert_uses_the_dialect_quoting_and_param_style(
    conn_type: str, placeholder: str, table_sql: str
) -> None:
    table = audit_table(AuditConfig.model_validate({"schema": "ops"}))
    writer = AuditWriter(get_dialect(conn_type), conn=None, table=table)
    query = writer.insert_query(AuditRecord(dag_id="d", run_id="r", step="run", rows_loaded=5))
    assert query.sql.startswith(f"INSERT INTO {table_sql} (")
    assert query.sql.count(placeholder) == len(audit_schema())
    params = list(query.params) if isinstance(query.params, list) else list(query.params.values())
    assert params[:2] == ["d", "r"] and params[audit_schema().names.index("rows_loaded")] == 5


def test_audit_table_reference_from_config() -> None:
    assert audit_table(AuditConfig()) == TableRef("sync_audit", None)
