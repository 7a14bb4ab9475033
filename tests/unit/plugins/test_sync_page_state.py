"""What the Sync page shows, assembled from a real audit table, quarantine table, source table and watermark
Variable: on SQLite files and on the local PostgreSQL server. Also the signed confirmation of a watermark
change and the audit row that change leaves."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.errors import TerminalError

DAG_ID = "page_orders"
STARTED = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
WATERMARK = {"cursor": {"timestamp": "2026-03-01T11:00:00+00:00"}, "key": [7], "rows": 8}

PIPELINE = """\
version: 1
dag_id: {dag_id}
schedule: null
source: {{conn_id: page_source, table: orders}}
target: {{conn_id: page_target, table: {target_table}, mode: upsert, keys: [id]}}
incremental: {{strategy: timestamp, column: updated_at, key: [id]}}
{audit}"""


def _source(path: Path, newest: str) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, updated_at TEXT)")
        db.execute("INSERT INTO orders VALUES (7, 'a@example.com', '2026-03-01T11:00:00+00:00')")
        db.execute("INSERT INTO orders VALUES (8, 'b@example.com', ?)", [newest])
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A target connection URI and table: an SQLite file, or a schema of its own on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.db'}", "orders"
        return
    import psycopg

    uri = request.getfixturevalue("pg_uri")
    schema = f"page_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield uri, f"{schema}.orders"
    finally:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pipeline(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: tuple[str, str]
) -> Iterator[Any]:
    from airflow.models import Variable

    from airflow_provider_sync.config.resolve import load_pipeline
    from airflow_provider_sync.watermarks import variable_key

    target_uri, target_table = target
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "orders.yaml"
    schema, _, _ = target_table.rpartition(".")
    audit = f"audit: {{schema: {schema}}}\n" if schema else ""  # this test's own audit table
    path.write_text(PIPELINE.format(dag_id=DAG_ID, target_table=target_table, audit=audit))
    monkeypatch.setenv("SYNC_DAG_CONFIGS", str(folder))
    monkeypatch.setenv(
        "AIRFLOW_CONN_PAGE_SOURCE", _source(tmp_path / "source.db", "2026-03-01T11:30:00+00:00")
    )
    monkeypatch.setenv("AIRFLOW_CONN_PAGE_TARGET", target_uri)
    Variable.set(variable_key(DAG_ID, "orders"), json.dumps(WATERMARK))
    yield load_pipeline(path)
    Variable.delete(variable_key(DAG_ID, "orders"))


def _audit(pipeline: Any, run_id: str) -> None:
    from airflow_provider_sync.audit.record import AuditRecord
    from airflow_provider_sync.audit.writer import AuditWriter, audit_table
    from airflow_provider_sync.factory.cli_status import _connection_info
    from airflow_provider_sync.plugins.state import audit_settings

    def row(step: str, task_id: str | None, **counts: Any) -> AuditRecord:
        return AuditRecord(
            dag_id=DAG_ID,
            run_id=run_id,
            step=step,
            task_id=task_id,
            table_name="orders",
            started_at=STARTED,
            ended_at=STARTED + dt.timedelta(seconds=5),
            **counts,
        )

    with AuditWriter.open(_connection_info("page_target"), audit_table(audit_settings(pipeline))) as writer:
        writer.write(
            row("extract", "orders.extract", rows_extracted=10),
            row("load", "orders.load", rows_loaded=8),
            row("run", None, rows_extracted=10, rows_rejected=2, rows_loaded=8),
        )


def _quarantine(pipeline: Any, run_id: str) -> None:
    import pyarrow as pa

    from airflow_provider_sync.factory.cli_status import _connection_info
    from airflow_provider_sync.pipeline.quarantine import QuarantineWriter
    from airflow_provider_sync.plugins.state import quarantine_ref

    rows = pa.RecordBatch.from_pydict({"id": [3, 4], "email": ["m***@example.com", "<b>x</b>"]})
    with QuarantineWriter.open(_connection_info("page_target"), quarantine_ref(pipeline.tables[0])) as writer:
        writer.write(DAG_ID, run_id, "orders", "validate", rows, ["email", "email"], ["not an e-mail"] * 2)


def test_page_state_shows_run_counts_quarantine_and_waiting_rows(pipeline: Any) -> None:
    from airflow_provider_sync.plugins.state import page_state, quarantined_rows

    _audit(pipeline, "manual__page_1")
    _quarantine(pipeline, "manual__page_1")

    state = page_state()
    assert state.error is None and state.invalid_files == 0
    [(found, [view])] = state.pipelines
    assert found.dag_id == DAG_ID
    status = view.status
    assert "2026-03-01T11:00:00+00:00" in str(status.watermark) and "7" in str(status.watermark)
    assert (status.last_run_id, status.result, status.rows_loaded) == ("manual__page_1", "success", 8)
    assert (view.rows_extracted, view.rows_rejected) == (10, 2)
    assert view.log_task_id == "orders.load"  # no failed step: the log of the load explains the run
    assert view.quarantined == {"email": 2}
    assert view.rows_waiting is True  # order 8 was updated after the watermark
    assert view.run_ended is not None and view.run_ended.replace(tzinfo=dt.timezone.utc) == STARTED + (
        dt.timedelta(seconds=5)
    )
    assert view.quarantine_note is None and view.source_note is None

    rows = quarantined_rows(*pipeline_and_table(pipeline))
    assert sorted(json.loads(r["row_json"])["id"] if isinstance(r["row_json"], str) else r["row_json"]["id"]
                  for r in rows) == [3, 4]  # fmt: skip
    assert {r["rule"] for r in rows} == {"email"}


def pipeline_and_table(pipeline: Any) -> tuple[Any, Any]:
    return pipeline, pipeline.tables[0]


def test_page_state_hides_pipelines_the_user_may_not_read(pipeline: Any) -> None:
    from airflow_provider_sync.plugins.state import page_state

    assert page_state(lambda dag_id: dag_id != DAG_ID).pipelines == []


def test_failed_step_is_the_log_to_read(pipeline: Any) -> None:
    from airflow_provider_sync.audit.record import AuditRecord
    from airflow_provider_sync.audit.writer import AuditWriter, audit_table
    from airflow_provider_sync.factory.cli_status import _connection_info
    from airflow_provider_sync.plugins.state import audit_settings, page_state

    def row(step: str, task_id: str | None, status: str) -> AuditRecord:
        return AuditRecord(DAG_ID, "manual__page_2", step, status=status, task_id=task_id,
                           table_name="orders", started_at=STARTED, ended_at=STARTED)  # fmt: skip

    with AuditWriter.open(_connection_info("page_target"), audit_table(audit_settings(pipeline))) as writer:
        writer.write(row("extract", "orders.extract", "success"), row("load", "orders.load", "failed"),
                     row("run", None, "failed"))  # fmt: skip
    [(_, [view])] = page_state().pipelines
    assert (view.status.result, view.log_task_id) == ("failed", "orders.load")
    assert view.quarantined == {}  # no quarantine table yet: nothing held, no error


def test_unreachable_target_is_a_note_not_an_error(pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_sync.plugins.state import page_state

    monkeypatch.setenv("AIRFLOW_CONN_PAGE_TARGET", "postgresql://nobody:secret-pw@127.0.0.1:1/none")
    [(_, [view])] = page_state().pipelines
    assert view.status.note and "secret-pw" not in view.status.note
    assert view.quarantine_note and "secret-pw" not in view.quarantine_note
    assert view.rows_waiting is True  # the source is still reachable


def test_confirmed_reset_changes_the_variable_and_writes_the_audit_row(pipeline: Any) -> None:
    from airflow_provider_sync.audit.writer import AuditWriter, audit_table
    from airflow_provider_sync.factory.cli_status import _connection_info
    from airflow_provider_sync.plugins import changes
    from airflow_provider_sync.plugins.state import audit_settings
    from airflow_provider_sync.watermarks import read_outside_task

    table = pipeline.tables[0]
    token = changes.sign(changes.propose(table, DAG_ID, "reset", "", ""), "alice")
    with pytest.raises(TerminalError, match="another user"):
        changes.verify(token, "mallory", DAG_ID, "orders")
    with pytest.raises(TerminalError, match="invalid"):
        changes.verify(token[:-2] + "xx", "alice", DAG_ID, "orders")
    change = changes.verify(token, "alice", DAG_ID, "orders")
    assert read_outside_task(DAG_ID, "orders") is not None  # nothing happens before the confirmation

    message = changes.apply(pipeline, table, change, "alice")
    assert "audit row watermark_reset written" in message
    assert read_outside_task(DAG_ID, "orders") is None
    with AuditWriter.open(_connection_info("page_target"), audit_table(audit_settings(pipeline))) as writer:
        rows = [r for r in writer.read().to_pylist() if r["step"] == "watermark_reset"]
    assert len(rows) == 1
    assert (rows[0]["run_type"], rows[0]["triggered_by"]) == ("ui", "sync page (alice)")
    before = rows[0]["watermark_before"]
    assert (json.loads(before) if isinstance(before, str) else before)["key"] == [7]


def test_set_is_checked_against_the_strategy(pipeline: Any) -> None:
    from airflow_provider_sync.plugins import changes

    table = pipeline.tables[0]
    change = changes.propose(table, DAG_ID, "set", "2026-02-01T00:00:00Z", "41")
    assert change.after is not None and change.after["key"] == [41]
    assert "2026-02-01" in changes.describe(change.after)
    with pytest.raises(TerminalError):
        changes.propose(table, DAG_ID, "set", "not a time", "")
    with pytest.raises(TerminalError, match="not one of"):
        changes.propose(table, DAG_ID, "drop", "", "")
