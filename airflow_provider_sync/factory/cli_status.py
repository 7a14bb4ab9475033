"""``airflow-sync status [dag_id]``: per table, the watermark, how far behind it is, and the last run.

The watermark comes from the table's Airflow Variable through ``airflow.models.Variable`` (this runs outside
any task: it decrypts with the Fernet key and asks the secrets backends first); the last run's result, rows
and duration from the pipeline's audit table (``audit.conn_id``, by default the target's connection).
Pipeline files are found the way Airflow finds them: ``--configs``, else ``$SYNC_DAG_CONFIGS``, else the
``configs_path`` of the ``SyncPipelinesBundle`` configured in ``[dag_processor] dag_bundle_config_list``,
else the ``dag_configs`` folder next to the folder holding the DAG file ``sync_pipelines.py`` in Airflow's
DAGS_FOLDER.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import ConfigError, TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.resolve import Pipeline
    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.dialects.connection import ConnectionInfo

DEFAULT_CONFIGS = "dag_configs"
CONFIGS_HELP = (
    "pipeline files folder (default: $SYNC_DAG_CONFIGS, else the sync bundle's configs_path, "
    "else the DAG file's dag_configs)"
)
DAG_FILE = "sync_pipelines.py"


def dags_folder_configs() -> Path:
    """``dag_configs`` next to the folder of the DAG file, as ``dags/sync_pipelines.py`` computes it."""
    from airflow.configuration import conf

    dags = Path(conf.get("core", "dags_folder")).expanduser()
    found = [dags / DAG_FILE] if (dags / DAG_FILE).is_file() else sorted(dags.glob(f"*/{DAG_FILE}"))
    dag_file = found[0] if found else dags / DAG_FILE
    return dag_file.resolve().parent.parent / DEFAULT_CONFIGS


def pipelines_folder(explicit: str | None = None) -> Path:
    """Where the deployed pipeline files are, found through the settings Airflow itself loads them by:
    ``explicit``, else ``$SYNC_DAG_CONFIGS``, else the ``configs_path`` of the ``SyncPipelinesBundle`` in
    ``[dag_processor] dag_bundle_config_list``, else the ``dag_configs`` of the DAG file in DAGS_FOLDER."""
    from airflow_provider_sync.factory.loader import bundle_configs_paths, configs_folder

    if explicit:
        return Path(explicit)
    folder = configs_folder("")
    if str(folder) not in ("", "."):
        return folder
    bundles = bundle_configs_paths()
    return bundles[0] if bundles else dags_folder_configs()


def load_pipelines(folder: Path) -> tuple[list[Pipeline], int]:
    """The valid pipelines of ``folder`` and how many files were invalid (``validate`` explains them)."""
    from airflow_provider_sync.config.resolve import load_pipeline
    from airflow_provider_sync.factory.loader import pipeline_files

    if not folder.exists():
        raise TerminalError(f"{folder}: no such folder; set SYNC_DAG_CONFIGS or pass --configs")
    pipelines, invalid = [], 0
    for path in pipeline_files(folder):
        try:
            pipelines.append(load_pipeline(path))
        except ConfigError:
            invalid += 1
    return pipelines, invalid


def find_pipeline(dag_id: str, folder: Path) -> Pipeline:
    """The pipeline with ``dag_id`` in ``folder``; the error lists the ones there are."""
    pipelines, invalid = load_pipelines(folder)
    for pipeline in pipelines:
        if pipeline.dag_id == dag_id:
            return pipeline
    found = ", ".join(sorted(p.dag_id for p in pipelines)) or "none"
    skipped = f"; {invalid} invalid file(s), see airflow-sync validate" if invalid else ""
    raise TerminalError(f"no pipeline with dag_id {dag_id!r} in {folder} (found: {found}{skipped})")


def find_table(pipeline: Pipeline, name: str) -> TableSpec:
    for table in pipeline.tables:
        if table.name == name:
            return table
    tables = ", ".join(t.name for t in pipeline.tables)
    raise TerminalError(
        f"pipeline {pipeline.dag_id!r} ({pipeline.path}) has no table {name!r}; tables: {tables}"
    )


@dataclass
class TableStatus:
    """What ``status`` reports for one table. ``lag_s`` is set for timestamp cursors only; ``warning``
    holds what the last run noticed (a watermark ahead of the source) or a damaged watermark."""

    dag_id: str
    table: str
    watermark: str | None = None
    committed_at: str | None = None
    lag_s: float | None = None
    last_run_id: str | None = None
    result: str | None = None
    rows_loaded: int | None = None
    duration_s: float | None = None
    warning: str | None = None
    error: str | None = None
    note: str | None = None


DAMAGED = "(damaged: see the warning)"


def _watermark(dag_id: str, table: TableSpec, status: TableStatus, now: dt.datetime) -> None:
    from airflow_provider_sync.errors import WatermarkError
    from airflow_provider_sync.watermarks import parse_stored, read_outside_task

    raw = read_outside_task(dag_id, table.name)
    if raw is None:
        return
    files = table.source.files
    if files is not None and files.incremental_by == "file":
        _file_ledger(dag_id, table, raw, status)
        return
    strategy = table.incremental.strategy
    try:
        mark = parse_stored(dag_id, table.name, raw, strategy, table.incremental.source_timezone)
    except WatermarkError as error:
        status.watermark, status.warning = DAMAGED, str(error)
        return
    status.watermark = mark.describe()
    status.committed_at = mark.committed_at.isoformat() if mark.committed_at else None
    if isinstance(mark.cursor, dt.datetime):
        status.lag_s = round((now - mark.cursor).total_seconds(), 3)


def _file_ledger(dag_id: str, table: TableSpec, raw: str, status: TableStatus) -> None:
    """A file source read file by file keeps the files it loaded, not a cursor."""
    import json

    from airflow_provider_sync.errors import WatermarkError
    from airflow_provider_sync.pipeline.file_ledger import ledger_from_json

    try:
        ledger = ledger_from_json(json.loads(raw), f"Variable sync:{dag_id}:{table.name}")
    except (WatermarkError, ValueError) as error:
        status.watermark, status.warning = DAMAGED, str(error)
        return
    status.watermark = f"{len(ledger)} file(s) loaded"


def _change_log(dag_id: str, table: TableSpec, status: TableStatus) -> None:
    """A ``cdc`` table's position (held by the target, written with the rows) and what the source keeps
    for it (a replication slot's retained WAL)."""
    from airflow_provider_sync.cdc.runner import change_capture_for
    from airflow_provider_sync.dialects.types import TableRef
    from airflow_provider_sync.notifications.message import scrub_error_message
    from airflow_provider_sync.pipeline.specs import load_spec_for

    try:
        spec = load_spec_for(table, dag_id, _connection_info(table.target.conn_id))
        position = _applied_position(spec, dag_id, table.name)
        status.watermark = f"position {position}" if position else None
        source = _connection_info(table.source.conn_id)
        state = change_capture_for(source.conn_type).state(
            source, dag_id, TableRef.parse(str(table.source.table))
        )
    except Exception as error:  # an unreachable database is a note on this table, never a crash
        status.note = f"change log unavailable: {scrub_error_message(str(error), limit=200)}"
        return
    status.note = state.description
    status.warning = state.warning


def _applied_position(spec: Any, dag_id: str, table: str) -> str | None:
    from airflow_provider_sync.cdc.apply import read_position
    from airflow_provider_sync.cdc.runner import position_variable_key
    from airflow_provider_sync.targets import target_for

    if target_for(spec.connection.conn_type).capabilities.tables:
        return read_position(spec, table)
    from airflow.models import Variable

    stored = Variable.get(position_variable_key(dag_id, table), default_var=None)
    return None if stored is None else str(stored)


def _connection_info(conn_id: str) -> ConnectionInfo:
    from airflow.models import Connection

    from airflow_provider_sync.dialects.connection import ConnectionInfo

    return ConnectionInfo.from_airflow(Connection.get_connection_from_secrets(conn_id))


def _last_run(info: ConnectionInfo, audit_table: Any, dag_id: str, table: str) -> dict[str, Any] | None:
    """The newest run row (``step = 'run'``) of one table in the audit table, or None. Its ``warnings``
    gather what any step of that run noticed (the extract's row says when the watermark is ahead)."""
    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.dialects.types import Query

    dialect = get_dialect(info.conn_type)
    conn = dialect.connect(info)
    try:
        if not dialect.table_exists(conn, audit_table):
            return None
        columns = dialect.get_columns(conn, audit_table)
        names = [column.name for column in columns]

        def read(query: Query) -> list[dict[str, Any]]:
            return [
                row for batch in dialect.read_batches(conn, query, columns, 10) for row in batch.to_pylist()
            ]

        this_table = {"dag_id": dag_id, "table_name": table}
        rows = read(
            dialect.latest_rows_query(audit_table, names, {**this_table, "step": "run"}, "started_at")
        )
        # Two run rows with the same start (a failed try recorded, then a success): the last written wins.
        run = max(rows, key=lambda row: row.get("ended_at") or row["started_at"]) if rows else None
        if run is not None and "warnings" in names:
            where = {**this_table, "run_id": run["run_id"]}
            steps = read(dialect.select_query(audit_table, names, where, not_null=["warnings"]))
            run["warnings"] = [text for row in steps for text in _json_list(row["warnings"])]
        conn.commit()
    finally:
        conn.close()
    return run


def _json_list(value: Any) -> list[str]:
    """A JSON column's list, whether the driver hands back text or decoded JSON."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return [str(item) for item in value] if isinstance(value, list) else []


def pipeline_status(pipeline: Pipeline, *, now: dt.datetime | None = None) -> list[TableStatus]:
    """The status of every table of ``pipeline``."""
    from airflow_provider_sync.audit.writer import audit_table
    from airflow_provider_sync.config.audit import AuditConfig
    from airflow_provider_sync.notifications.message import scrub_error_message
    from airflow_provider_sync.targets import target_for

    now = now or dt.datetime.now(dt.timezone.utc)
    settings = getattr(pipeline.model, "audit", None) or AuditConfig()
    found = []
    for table in pipeline.tables:
        status = TableStatus(pipeline.dag_id, table.name)
        found.append(status)
        if table.incremental.strategy == "cdc":
            _change_log(pipeline.dag_id, table, status)
        else:
            _watermark(pipeline.dag_id, table, status, now)
        if not settings.enabled:
            status.note = "audit is turned off for this pipeline"
            continue
        conn_id = settings.conn_id or table.target.conn_id
        try:
            info = _connection_info(conn_id)
            audit = audit_table(settings)
            has_tables = target_for(info.conn_type).capabilities.tables
            run = _last_run(info, audit, pipeline.dag_id, table.name) if has_tables else None
        except Exception as error:  # any unreachable audit database: report it, keep going
            status.note = f"audit table unavailable ({conn_id}): {scrub_error_message(str(error), limit=200)}"
            continue
        if run is not None:
            _apply_run(status, run)
    return found


def _apply_run(status: TableStatus, run: dict[str, Any]) -> None:
    status.last_run_id = run["run_id"]
    status.result = run["status"]
    status.rows_loaded = run.get("rows_loaded")
    status.duration_s = run.get("duration_s")
    if run.get("error_message"):
        status.error = f"{run.get('error_class') or 'error'}: {run['error_message']}"
    if run.get("warnings") and status.warning is None:  # a damaged watermark says more
        status.warning = "; ".join(dict.fromkeys(run["warnings"]))


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
            notes += [
                f"  {s.table}: {label}{text}"
                for label, text in (("warning: ", s.warning), ("last run failed: ", s.error), ("", s.note))
                if text
            ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines.append(f"DAG {dag_id}")
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines += notes
        lines.append("")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    folder = pipelines_folder(args.configs)
    pipelines, invalid = load_pipelines(folder)
    chosen = [p for p in pipelines if args.dag_id in (None, p.dag_id)]
    if args.dag_id and not chosen:
        find_pipeline(args.dag_id, folder)  # raises, listing the pipelines there are
    statuses = [status for pipeline in chosen for status in pipeline_status(pipeline)]
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=2, default=str))
    else:
        print(format_status(statuses) or f"no pipelines in {folder}")
        if invalid:
            print(f"{invalid} invalid pipeline file(s) in {folder} skipped: see airflow-sync validate")
    return 0


def add_status_command(commands: Any) -> None:
    status = commands.add_parser("status", help="per table: watermark, lag and the last run from the audit")
    status.add_argument("dag_id", nargs="?", help="only this pipeline (default: every pipeline)")
    status.add_argument(
        "--configs",
        help=CONFIGS_HELP,
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=cmd_status)
