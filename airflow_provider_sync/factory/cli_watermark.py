"""``airflow-sync watermark show|set|reset``: inspect or move a table's watermark Variable.

Runs outside any task, so it goes through ``airflow.models.Variable``: values are decrypted with the Fernet
key and secrets backends are asked first, as Airflow itself does. The pipeline file (found like ``status``
finds it) says the table's strategy, so ``set`` stores a value the next run can read, and its ``audit:``
section where ``set`` and ``reset`` leave an audit row (steps ``watermark_set`` / ``watermark_reset``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError, WatermarkError
from airflow_provider_sync.factory.cli_status import (
    CONFIGS_HELP,
    find_pipeline,
    find_table,
    pipelines_folder,
)

if TYPE_CHECKING:
    from airflow_provider_sync.config.resolve import Pipeline
    from airflow_provider_sync.config.resolved import TableSpec


def _strategy(table: TableSpec) -> str:
    return table.incremental.strategy


def _zone(table: TableSpec) -> str:
    return table.incremental.source_timezone


def _show_one(dag_id: str, table: TableSpec, as_json: bool) -> bool:
    """Print one table's watermark; False when it is damaged."""
    from airflow_provider_sync.core.watermark import value_text
    from airflow_provider_sync.watermarks import parse_stored, read_outside_task, variable_key

    key, raw = variable_key(dag_id, table.name), read_outside_task(dag_id, table.name)
    if raw is None:
        print(f"{key}: not set; the next run starts from initial_value (or the beginning)")
        return True
    try:
        mark = parse_stored(dag_id, table.name, raw, _strategy(table), _zone(table))
    except WatermarkError as error:
        print(f"{key}: {error}")
        return False
    if as_json:
        print(f"{key}\n{json.dumps(json.loads(raw), indent=2, sort_keys=True)}")
        return True
    fields = {
        "strategy": f"{_strategy(table)} on {table.incremental.column}",
        "cursor": value_text(mark.cursor),
        "key": ", ".join(value_text(v) for v in mark.key) or "-",
        "committed_at": mark.committed_at.isoformat() if mark.committed_at else "-",
        "run_id": mark.run_id or "-",
        "rows": f"{mark.rows:,}",
    }
    print(key, *(f"  {name:<13}{text}" for name, text in fields.items()), sep="\n")
    return True


def cmd_show(args: argparse.Namespace) -> int:
    pipeline = find_pipeline(args.dag_id, pipelines_folder(args.configs))
    tables = [find_table(pipeline, args.table)] if args.table else pipeline.tables
    healthy = [_show_one(pipeline.dag_id, table, args.json) for table in tables]
    return 0 if all(healthy) else 1


def _typed(text: str) -> Any:
    """A key value from the command line: an integer when it reads as one, else text."""
    stripped = text.strip()
    return int(stripped) if stripped.lstrip("-").isdigit() else text


def new_watermark(table: TableSpec, cursor: str, key: list[str] | None) -> dict[str, Any]:
    """The stored form of a hand-set watermark, checked against the table's strategy and key columns."""
    from airflow_provider_sync.core.watermark import Watermark, normalize_cursor

    strategy = _strategy(table)
    if strategy == "full":
        raise TerminalError(f"table {table.name!r} uses strategy full: it keeps no watermark to set")
    value = normalize_cursor(cursor, strategy, _zone(table))
    columns = list(table.incremental.key)
    if key and columns and len(key) != len(columns):
        raise TerminalError(
            f"--key needs {len(columns)} value(s), one per key column ({', '.join(columns)}); got {len(key)}"
        )
    now = dt.datetime.now(dt.timezone.utc)
    return Watermark(value, tuple(_typed(k) for k in key or ()), "airflow-sync watermark set", now).to_json()


def _stored(dag_id: str, table: str) -> Any:
    """The current value for the audit row: its JSON, or the text when it is not JSON (damaged)."""
    from airflow_provider_sync.watermarks import read_outside_task

    raw = read_outside_task(dag_id, table)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    try:
        answer = input(f"{question} [y/N] ")
    except (EOFError, OSError):  # no terminal to ask (a script, a pipe): never assume yes
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("nothing changed (pass --yes to skip this question)")
    return False


def write_cli_audit(
    pipeline: Pipeline, table: TableSpec, step: str, before: Any, after: Any, via: str = "cli", by: str = ""
) -> str:
    """An audit row for a hand-made watermark change; returns what was done, for the user."""
    from airflow_provider_sync.audit.record import AuditRecord
    from airflow_provider_sync.audit.writer import AuditWriter, audit_table
    from airflow_provider_sync.config.audit import AuditConfig
    from airflow_provider_sync.factory.cli_status import _connection_info
    from airflow_provider_sync.targets import target_for

    settings = getattr(pipeline.model, "audit", None) or AuditConfig()
    if not settings.enabled:
        return "audit is turned off for this pipeline: no audit row written"
    conn_id = settings.conn_id or table.target.conn_id
    info = _connection_info(conn_id)
    kind = target_for(info.conn_type)
    if not kind.capabilities.tables:
        return (
            f"no audit row: connection {conn_id!r} is a {kind.name} target, which holds no tables; set "
            "audit.conn_id to a database"
        )
    now = dt.datetime.now(dt.timezone.utc)
    record = AuditRecord(
        dag_id=pipeline.dag_id,
        run_id=f"{via}__{now.isoformat()}",
        step=step,
        run_type=via,
        triggered_by=by or f"airflow-sync ({getpass.getuser()})",
        table_name=table.name,
        source=f"{table.source.conn_id}:{table.source.table or 'query'}",
        target=f"{table.target.conn_id}:{table.target.table}",
        started_at=now,
        ended_at=now,
        duration_s=0.0,
        watermark_before=before,
        watermark_after=after,
        config_path=pipeline.path,
        config_sha256=pipeline.sha256,
    )
    with AuditWriter.open(info, audit_table(settings)) as writer:
        writer.write(record)
    return f"audit row {step} written through connection {conn_id!r}"


def _change(args: argparse.Namespace, step: str, after: dict[str, Any] | None) -> int:
    """Show the change, ask, apply it to the Variable, then record it in the audit table."""
    from airflow_provider_sync.core.watermark import describe_json
    from airflow_provider_sync.watermarks import delete_outside_task, variable_key, write_outside_task

    pipeline, table = args.pipeline, args.table_spec
    key = variable_key(pipeline.dag_id, table.name)
    before = _stored(pipeline.dag_id, table.name)
    was = "not set" if before is None else _describe_stored(before)
    will = (
        "deleted: the next run re-syncs from initial_value"
        if after is None
        else (f"{describe_json(after)}: the next run reads rows after it")
    )
    print(f"{key}\n  now   {was}\n  after {will}")
    if not _confirm(f"{'Set' if after else 'Reset'} {key}?", args.yes):
        return 1
    if after is None:
        delete_outside_task(pipeline.dag_id, table.name)
    else:
        write_outside_task(pipeline.dag_id, table.name, after)
    try:
        print(write_cli_audit(pipeline, table, step, before, after))
    except Exception as error:  # the Variable did change: say so, and that the trail misses it
        from airflow_provider_sync.notifications.message import scrub_error_message

        print(
            f"{key} was changed, but its audit row could not be written: "
            f"{scrub_error_message(str(error), limit=300)}"
        )
        return 1
    return 0


def _describe_stored(value: Any) -> str:
    from airflow_provider_sync.core.watermark import describe_json

    if isinstance(value, dict) and "cursor" in value:
        try:
            return describe_json(value)
        except (ValueError, TypeError, ArithmeticError):
            pass
    return f"damaged: {json.dumps(value) if not isinstance(value, str) else value}"[:200]


def _locate(args: argparse.Namespace) -> None:
    args.pipeline = find_pipeline(args.dag_id, pipelines_folder(args.configs))
    args.table_spec = find_table(args.pipeline, args.table)


def cmd_set(args: argparse.Namespace) -> int:
    _locate(args)
    return _change(args, "watermark_set", new_watermark(args.table_spec, args.cursor, args.key))


def cmd_reset(args: argparse.Namespace) -> int:
    _locate(args)
    return _change(args, "watermark_reset", None)


def add_watermark_commands(commands: Any) -> None:
    watermark = commands.add_parser("watermark", help="show, set or reset a table's watermark")
    actions = watermark.add_subparsers(dest="action", required=True)

    show = actions.add_parser("show", help="print the stored watermarks of a DAG (or one table)")
    show.add_argument("dag_id")
    show.add_argument("table", nargs="?")
    show.add_argument("--json", action="store_true", help="print the stored JSON")
    show.set_defaults(handler=cmd_show)

    set_ = actions.add_parser("set", help="make the next run start after a cursor value")
    set_.add_argument("dag_id")
    set_.add_argument("table")
    set_.add_argument("--cursor", required=True, help="cursor value: ISO timestamp or number, per strategy")
    set_.add_argument("--key", nargs="*", help="key values of the last row already synced (tie-break)")
    set_.set_defaults(handler=cmd_set)

    reset = actions.add_parser("reset", help="forget the watermark: the next run re-syncs from the start")
    reset.add_argument("dag_id")
    reset.add_argument("table")
    reset.set_defaults(handler=cmd_reset)

    for parser in (show, set_, reset):
        parser.add_argument("--configs", help=CONFIGS_HELP)
    for parser in (set_, reset):
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
