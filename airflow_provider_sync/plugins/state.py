"""What the Sync page shows, read the way ``airflow-sync status`` reads it.

Pipelines come from the folder the DAG file loads (:func:`~airflow_provider_sync.factory.cli_status.
pipelines_folder`); watermarks, results and loaded rows from :func:`~airflow_provider_sync.factory.
cli_status.pipeline_status` (Variables through ``airflow.models.Variable``, so Fernet-decrypted). The page
adds the last run's other counts and task ids from the same audit table, and the quarantine counts and rows
of the table's ``sync_quarantine`` table as stored: after masking and encryption, never decrypted here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.audit import AuditConfig
    from airflow_provider_sync.config.resolve import Pipeline
    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.types import TableRef
    from airflow_provider_sync.factory.cli_status import TableStatus

#: Quarantined rows shown on one page, newest first.
QUARANTINE_PAGE_ROWS = 50


@dataclass
class TableView:
    """One line of the page: the ``status`` fields plus the run's other counts and the quarantine."""

    status: TableStatus
    strategy: str
    column: str | None
    run_started: dt.datetime | None = None
    run_ended: dt.datetime | None = None
    rows_extracted: int | None = None
    rows_rejected: int | None = None
    log_task_id: str | None = None
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine_note: str | None = None
    #: Whether the source holds rows past the watermark (one index probe); None when unknown.
    rows_waiting: bool | None = None
    source_note: str | None = None


@dataclass
class PageState:
    folder: Path
    pipelines: list[tuple[Pipeline, list[TableView]]] = field(default_factory=list)
    invalid_files: int = 0
    error: str | None = None


def _scrub(error: BaseException) -> str:
    from airflow_provider_sync.notifications.message import scrub_error_message

    return scrub_error_message(str(error), limit=200)


def _open(conn_id: str) -> tuple[Dialect, Any]:
    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.factory.cli_status import _connection_info
    from airflow_provider_sync.targets import target_for

    info = _connection_info(conn_id)
    kind = target_for(info.conn_type)
    if not kind.capabilities.tables:
        raise TerminalError(f"connection {conn_id!r} is a {kind.name} target: it has no tables to read")
    dialect = get_dialect(info.conn_type)
    return dialect, dialect.connect(info)


def _select(
    dialect: Dialect, conn: Any, table: TableRef, where: dict[str, Any], order: str, limit: int
) -> list[dict[str, Any]]:
    """Rows of ``table`` matching ``where`` (column = value), ordered by ``order`` descending, at most
    ``limit``: only the first batch is fetched, so no per-database LIMIT syntax is needed."""
    columns = dialect.get_columns(conn, table)
    query = dialect.select_query(table, [c.name for c in columns], where, order_by=[order], descending=True)
    batches = dialect.read_batches(conn, query, columns, limit)
    try:
        rows: list[dict[str, Any]] = next(iter(batches)).to_pylist()
    except StopIteration:
        rows = []
    finally:
        batches.close()  # type: ignore[attr-defined]
    conn.commit()
    return rows


def audit_settings(pipeline: Pipeline) -> AuditConfig:
    from airflow_provider_sync.config.audit import AuditConfig

    settings: AuditConfig | None = getattr(pipeline.model, "audit", None)
    return settings or AuditConfig()


def quarantine_ref(table: TableSpec) -> TableRef:
    """The table's quarantine table: ``sync_quarantine`` in the target table's schema."""
    from airflow_provider_sync.dialects.types import TableRef
    from airflow_provider_sync.pipeline.quarantine import DEFAULT_QUARANTINE_TABLE

    schema, _, _ = table.target.table.rpartition(".")
    return TableRef(DEFAULT_QUARANTINE_TABLE, schema or None)


def _run_details(view: TableView, pipeline: Pipeline, table: TableSpec) -> None:
    """The last run's counts and times, and the task whose log explains it (the failed step or the load)."""
    from airflow_provider_sync.audit.writer import audit_table

    settings = audit_settings(pipeline)
    run_id = view.status.last_run_id
    if run_id is None or not settings.enabled:
        return
    dialect, conn = _open(settings.conn_id or table.target.conn_id)
    try:
        where = {"dag_id": pipeline.dag_id, "table_name": table.name, "run_id": run_id}
        rows = _select(dialect, conn, audit_table(settings), where, "started_at", 1000)
    finally:
        conn.close()
    for row in rows:
        if row["step"] == "run" and row["status"] == view.status.result:
            view.run_started, view.run_ended = row.get("started_at"), row.get("ended_at")
            view.rows_extracted, view.rows_rejected = row.get("rows_extracted"), row.get("rows_rejected")
    steps = [row for row in rows if row.get("task_id")]
    failed = [row for row in steps if row["status"] == "failed"]
    loads = [row for row in steps if row["step"] == "load"]
    chosen = failed or loads or steps
    view.log_task_id = chosen[0]["task_id"] if chosen else None


def _count_quarantine(view: TableView, pipeline: Pipeline, table: TableSpec) -> None:
    dialect, conn = _open(table.target.conn_id)
    try:
        ref = quarantine_ref(table)
        if not dialect.table_exists(conn, ref):
            return
        query = dialect.count_by_query(ref, "rule", {"dag_id": pipeline.dag_id, "table_name": table.name})
        cursor = dialect.execute(conn, query)
        try:
            view.quarantined = {str(rule): int(count) for rule, count in cursor.fetchall()}
        finally:
            cursor.close()
        conn.commit()
    finally:
        conn.close()


def _probe_source(view: TableView, pipeline: Pipeline, table: TableSpec) -> None:
    """Whether rows wait past the watermark: the new-rows sensor's probe, a keyset query for one row,
    so it costs an index lookup on the cursor column, never a scan or a count."""
    from airflow_provider_sync.core.watermark import Watermark
    from airflow_provider_sync.factory.cli_status import _connection_info
    from airflow_provider_sync.pipeline.probe import has_rows_past
    from airflow_provider_sync.pipeline.specs import extract_spec_for
    from airflow_provider_sync.plugins.changes import current

    if table.incremental.strategy == "full" or table.incremental.column is None or table.source.files:
        return  # nothing to probe cheaply: a full read, or files (listing them is the read)
    stored = current(pipeline.dag_id, table.name)
    spec = extract_spec_for(table, _connection_info(table.source.conn_id))
    lower = Watermark.from_json(stored, spec.strategy, spec.source_timezone) if stored is not None else None
    view.rows_waiting = has_rows_past(spec, lower)


def table_views(pipeline: Pipeline) -> list[TableView]:
    """Every table of ``pipeline``; an unreachable database becomes a note on its line, never an error."""
    from airflow_provider_sync.factory.cli_status import DAMAGED, pipeline_status

    views = []
    for table, status in zip(pipeline.tables, pipeline_status(pipeline), strict=True):
        view = TableView(status, table.incremental.strategy, table.incremental.column)
        views.append(view)
        try:
            _run_details(view, pipeline, table)
        except Exception as error:  # shown on the line; the status note already says when audit is down
            view.status.note = view.status.note or f"audit table unreadable: {_scrub(error)}"
        try:
            _count_quarantine(view, pipeline, table)
        except Exception as error:
            view.quarantine_note = f"quarantine unreadable: {_scrub(error)}"
        if status.watermark != DAMAGED:  # the warning already says what is wrong with it
            try:
                _probe_source(view, pipeline, table)
            except Exception as error:
                view.source_note = f"source not reachable: {_scrub(error)}"
    return views


def pipelines_folder() -> Path:
    """The folder the DAGs come from, found as ``airflow-sync status`` finds it: ``$SYNC_DAG_CONFIGS``,
    else the ``SyncPipelinesBundle``'s ``configs_path``, else the DAG file's ``dag_configs``."""
    from airflow_provider_sync.factory import cli_status

    return cli_status.pipelines_folder()


def page_state(readable: Callable[[str], bool] = lambda dag_id: True) -> PageState:
    """Every pipeline whose DAG ``readable`` allows, with its tables."""
    from airflow_provider_sync.factory.cli_status import load_pipelines

    state = PageState(pipelines_folder())
    try:
        pipelines, state.invalid_files = load_pipelines(state.folder)
    except TerminalError as error:
        state.error = str(error)
        return state
    state.pipelines = [(p, table_views(p)) for p in pipelines if readable(p.dag_id)]
    return state


def find(dag_id: str, table_name: str) -> tuple[Pipeline, TableSpec]:
    """The pipeline and table a URL names; TerminalError (shown as 404) when there is none."""
    from airflow_provider_sync.factory.cli_status import find_pipeline, find_table

    pipeline = find_pipeline(dag_id, pipelines_folder())
    return pipeline, find_table(pipeline, table_name)


def quarantined_rows(
    pipeline: Pipeline, table: TableSpec, limit: int = QUARANTINE_PAGE_ROWS
) -> list[dict[str, Any]]:
    """The newest quarantined rows of a table, as stored (``row_json`` already masked/encrypted)."""
    dialect, conn = _open(table.target.conn_id)
    try:
        ref = quarantine_ref(table)
        if not dialect.table_exists(conn, ref):
            return []
        where = {"dag_id": pipeline.dag_id, "table_name": table.name}
        return _select(dialect, conn, ref, where, "quarantined_at", limit)
    finally:
        conn.close()


def row_text(value: Any) -> str:
    """``row_json`` as compact text, whether the driver returns text or decoded JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
