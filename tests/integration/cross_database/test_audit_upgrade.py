"""An audit table created by an earlier release (no ``warnings`` column) keeps working: the writer adds the
missing column through the dialect before its first write, the new row keeps its warnings, and the rows
written before the upgrade are still there (with no warnings)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pytest

from airflow_provider_sync.audit.record import AuditRecord
from airflow_provider_sync.audit.schema import audit_schema
from airflow_provider_sync.audit.writer import AuditWriter
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.base import Dialect
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import TableRef

pytestmark = pytest.mark.integration
T = TypeVar("T")

STARTED = datetime(2025, 6, 1, 8, 0, 0, tzinfo=timezone.utc)
#: The audit table as the release before ``warnings`` (and ``rows_deleted``) declared it.
EARLIER_SCHEMA = pa.schema(
    [field for field in audit_schema() if field.name not in ("warnings", "rows_deleted")]
)
WARNING = "watermark 2025-06-02T00:00:00+00:00 is ahead of the source's newest row"


def _on(info: ConnectionInfo, work: Callable[[Dialect, Any], T]) -> T:
    """``work(dialect, connection)`` on a connection of its own, committed, closed afterwards."""
    dialect = get_dialect(info.conn_type)
    conn = dialect.connect(info)
    try:
        result = work(dialect, conn)
        conn.commit()
        return result
    finally:
        conn.close()


def _create_earlier_table(info: ConnectionInfo, table: TableRef, run_id: str) -> None:
    """The earlier release's table, with one row it wrote."""
    row = {
        "dag_id": "crm_sync",
        "run_id": run_id,
        "step": "run",
        "status": "success",
        "started_at": (STARTED - timedelta(days=1)).replace(tzinfo=None),
    }

    def create(dialect: Dialect, conn: Any) -> None:
        assert dialect.create_table_if_missing(conn, table, EARLIER_SCHEMA)
        dialect.begin_write(conn)
        dialect.execute(conn, dialect.insert_query(table, row)).close()

    _on(info, create)


def _warnings(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _upgrade(info: ConnectionInfo, table: TableRef) -> None:
    run_id = f"manual__{uuid.uuid4().hex}"
    _create_earlier_table(info, table, run_id)
    record = AuditRecord(dag_id="crm_sync", run_id=run_id, step="extract", started_at=STARTED)
    with AuditWriter.open(info, table) as writer:
        assert writer.ensure_table() is False, "the earlier table is kept, not replaced"
        assert writer.write(record.succeeded(warnings=[WARNING], rows_extracted=3)) == 1
        assert writer.add_missing_columns() == [], "the column was added once, on the first write"
        rows = writer.read(run_id).to_pylist()

    assert [row["step"] for row in rows] == ["run", "extract"]
    earlier, new = rows
    assert earlier["warnings"] is None and earlier["dag_id"] == "crm_sync"
    assert _warnings(new["warnings"]) == [WARNING] and new["rows_extracted"] == 3


def _column_names(info: ConnectionInfo, table: TableRef) -> list[str]:
    return _on(info, lambda dialect, conn: [column.name for column in dialect.get_columns(conn, table)])


def _connection(database: str, request: pytest.FixtureRequest, tmp_path: Path) -> ConnectionInfo:
    if database == "postgres":
        return ConnectionInfo.from_uri(request.getfixturevalue("pg_uri"))
    if database == "mariadb":
        return ConnectionInfo.from_uri(request.getfixturevalue("mysql_uri"))
    if database == "clickhouse":
        return ConnectionInfo(conn_type="clickhouse", extra={"dsn": request.getfixturevalue("chdb_dsn")})
    return ConnectionInfo.from_uri(f"sqlite:///{tmp_path / 'audit.db'}")


@pytest.fixture(params=["postgres", "mariadb", "sqlite", "clickhouse"])
def earlier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ConnectionInfo, TableRef]]:
    """A connection to each database with an audit table, and a fresh table name, dropped afterwards."""
    info = _connection(request.param, request, tmp_path)
    table = TableRef(f"audit_old_{uuid.uuid4().hex[:8]}", "public" if request.param == "postgres" else None)
    yield info, table
    _on(info, lambda dialect, conn: dialect.execute(conn, dialect.drop_table_sql(table)).close())


def test_an_earlier_audit_table_gets_the_new_column(earlier: tuple[ConnectionInfo, TableRef]) -> None:
    info, table = earlier
    _upgrade(info, table)
    assert _column_names(info, table) == audit_schema().names


def test_two_writers_upgrading_at_once_both_write(tmp_path: Path) -> None:
    """The second writer finds the column already added by the first one (its own ALTER would fail)."""
    info = ConnectionInfo.from_uri(f"sqlite:///{tmp_path / 'audit.db'}")
    table = TableRef("sync_audit")
    _create_earlier_table(info, table, "earlier")
    record = AuditRecord(dag_id="crm_sync", run_id="r", step="extract", started_at=STARTED)
    with AuditWriter.open(info, table) as first, AuditWriter.open(info, table) as second:
        stale, reads = first._present_columns(), []
        real_read = second._present_columns

        def read_before_the_other_alter() -> set[str]:
            reads.append(len(reads))
            return stale if len(reads) == 1 else real_read()

        second._present_columns = read_before_the_other_alter  # type: ignore[method-assign]
        assert "warnings" not in stale
        assert first.write(record.succeeded(warnings=["a"])) == 1
        assert second.write(record.succeeded(warnings=["b"])) == 1
        assert len(reads) == 3, "each ALTER of the second writer failed (two columns) and it looked again"
        warnings = sorted(_warnings(row["warnings"]) for row in second.read("r").to_pylist())
    assert warnings == [["a"], ["b"]]
