"""``airflow-sync status [dag_id]``: per table, the watermark, how far behind it is, and the last run.

The watermark comes from the table's Airflow Variable (``airflow.models.Variable``: this runs outside any
task); the last run's result, rows and duration from the pipeline's audit table (``audit.conn_id``, by
default the target's connection). Pipelines are read from ``$SYNC_DAG_CONFIGS`` or ``dag_configs/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import ConfigError

if TYPE_CHECKING:
    from airflow_provider_sync.config.resolve import Pipeline, TableSpec
    from airflow_provider_sync.dialects.connection import ConnectionInfo

DEFAULT_CONFIGS = "dag_configs"


@dataclass
class TableStatus:
    """What ``status`` reports for one table. ``lag_s`` is set for timestamp cursors only."""

    dag_id: str
    table: str
    watermark: str | None = None
    committed_at: str | None = None
    lag_s: float | None = None
    last_run_id: str | None = None
    result: str | None = None
    rows_loaded: int | None = None
    duration_s: float | None = None
    note: str | None = None


def _watermark(dag_id: str, table: TableSpec, status: TableStatus, now: dt.datetime) -> None:
    from airflow.models import Variable

    from airflow_provider_sync.core.watermark import Watermark
    from airflow_provider_sync.errors import WatermarkError
    from airflow_provider_sync.watermarks import variable_key

    raw = Variable.get(variable_key(dag_id, table.name), default_var=None)
    if raw is None:
        return
    strategy = table.incremental.strategy
    timezone = str(table.incremental.source_timezone or "UTC")
    try:
        mark = Watermark.from_json(raw, None if strategy == "full" else strategy, timezone)
    except WatermarkError as error:
        status.note = str(error)
        return
    cursor = mark.cursor
    text = cursor.isoformat() if isinstance(cursor, (dt.datetime, dt.date)) else str(cursor)
    status.watermark = text + (f" key {list(mark.key)}" if mark.key else "")
    status.committed_at = mark.committed_at.isoformat() if mark.committed_at else None
    if isinstance(cursor, dt.datetime):
        status.lag_s = round((now - cursor).total_seconds(), 3)


def _connection_info(conn_id: str) -> ConnectionInfo:
    from airflow.models import Connection

    from airflow_provider_sync.dialects.connection import ConnectionInfo

    return ConnectionInfo.from_airflow(Connection.get_connection_from_secrets(conn_id))


def _last_run(info: ConnectionInfo, audit_table: Any, dag_id: str, table: str) -> dict[str, Any] | None:
    """The newest run row (``step = 'run'``) of one table in the audit table, or None."""
    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.dialects.types import Binder

    dialect = get_dialect(info.conn_type)
    conn = dialect.connect(info)
    try:
        if not dialect.table_exists(conn, audit_table):
            return None
        columns = dialect.get_columns(conn, audit_table)
        bind = Binder(dialect.capabilities.param_style)
        name = dialect.qualify(audit_table)
        q = dialect.quote

        def same_table() -> str:
            return (
                f"{q('dag_id')} = {bind(dag_id)} AND {q('table_name')} = {bind(table)} "
                f"AND {q('step')} = 'run'"
            )

        outer = same_table()
        query = bind.query(
            f"SELECT {dialect.column_list([c.name for c in columns])} FROM {name} WHERE {outer} AND "
            f"{q('started_at')} = (SELECT MAX({q('started_at')}) FROM {name} WHERE {same_table()})"
        )
        rows = [row for batch in dialect.read_batches(conn, query, columns, 10) for row in batch.to_pylist()]
        conn.commit()
    finally:
        conn.close()
    # Two run rows with the same start (a failed try recorded, then a success): the last written wins.
    return max(rows, key=lambda row: row.get("ended_at") or row["started_at"]) if rows else None


def pipeline_status(pipeline: Pipeline, *, now: dt.datetime | None = None) -> list[TableStatus]:
    """The status of every table of ``pipeline``."""
    from airflow_provider_sync.audit.writer import audit_table
    from airflow_provider_sync.config.audit import AuditConfig
    from airflow_provider_sync.notifications.message import scrub_error_message

    now = now or dt.datetime.now(dt.timezone.utc)
    settings = getattr(pipeline.model, "audit", None) or AuditConfig()
    found = []
    for table in pipeline.tables:
        status = TableStatus(pipeline.dag_id, table.name)
        _watermark(pipeline.dag_id, table, status, now)
        if not settings.enabled:
            status.note = status.note or "audit is turned off for this pipeline"
            found.append(status)
            continue
        conn_id = settings.conn_id or str(table.target.conn_id)
        try:
            info = _connection_info(conn_id)
            audit = audit_table(settings)
            run = None if info.conn_type == "kafka" else _last_run(info, audit, pipeline.dag_id, table.name)
        except Exception as error:  # any unreachable audit database: report it, keep going
            status.note = f"audit table unavailable ({conn_id}): {scrub_error_message(str(error), limit=200)}"
            found.append(status)
            continue
        if run is not None:
            status.last_run_id = run["run_id"]
            status.result = run["status"]
            status.rows_loaded = run.get("rows_loaded")
            status.duration_s = run.get("duration_s")
        found.append(status)
    return found


def _lag_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(dt.timedelta(seconds=round(seconds)))


def format_status(statuses: list[TableStatus]) -> str:
    """A plain-text table, one line per table, grouped by DAG."""
    header = ("table", "watermark", "lag", "last run", "result", "rows", "duration")
    lines: list[str] = []
    for dag_id in dict.fromkeys(s.dag_id for s in statuses):
        rows = [header]
        notes = []
        for s in (s for s in statuses if s.dag_id == dag_id):
            duration = f"{s.duration_s:.1f} s" if s.duration_s is not None else "-"
            rows.append(
                (
                    s.table,
                    s.watermark or "(none: next run starts from the beginning)",
                    _lag_text(s.lag_s),
                    s.last_run_id or "(no run recorded)",
                    s.result or "-",
                    f"{s.rows_loaded:,}" if s.rows_loaded is not None else "-",
                    duration,
                )
            )
            if s.note:
                notes.append(f"  {s.table}: {s.note}")
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines.append(f"DAG {dag_id}")
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines += notes
        lines.append("")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    from airflow_provider_sync.config.resolve import load_pipeline
    from airflow_provider_sync.factory.loader import configs_folder, pipeline_files

    folder = Path(args.configs) if args.configs else configs_folder(DEFAULT_CONFIGS)
    if not folder.exists():
        print(f"{folder}: no such folder; set SYNC_DAG_CONFIGS or pass --configs", file=sys.stderr)
        return 1
    statuses: list[TableStatus] = []
    known, invalid = [], 0
    for path in pipeline_files(folder):
        try:
            pipeline = load_pipeline(path)
        except ConfigError:
            invalid += 1
            continue
        known.append(pipeline.dag_id)
        if args.dag_id in (None, pipeline.dag_id):
            statuses += pipeline_status(pipeline)
    if args.dag_id and args.dag_id not in known:
        found = ", ".join(sorted(known)) or "none"
        skipped = f"; {invalid} invalid file(s), see airflow-sync validate" if invalid else ""
        message = f"no pipeline with dag_id {args.dag_id!r} in {folder} (found: {found}{skipped})"
        print(message, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=2, default=str))
    else:
        print(format_status(statuses) or f"no pipelines in {folder}")
    return 0


def add_status_command(commands: Any) -> None:
    status = commands.add_parser("status", help="per table: watermark, lag and the last run from the audit")
    status.add_argument("dag_id", nargs="?", help="only this pipeline (default: every pipeline)")
    status.add_argument("--configs", help="pipeline files folder (default: $SYNC_DAG_CONFIGS or dag_configs)")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=cmd_status)
