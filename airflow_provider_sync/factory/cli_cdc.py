"""``airflow-sync cdc show|drop``: what a change-log pipeline keeps on its source and target, and how to
start it over (the next run takes a new snapshot)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.resolve import Pipeline
    from airflow_provider_sync.config.resolved import TableSpec


def _cdc_tables(pipeline: Pipeline, name: str | None) -> list[TableSpec]:
    from airflow_provider_sync.factory.cli_status import find_table

    tables = [find_table(pipeline, name)] if name else pipeline.tables
    chosen = [table for table in tables if table.incremental.strategy == "cdc"]
    if not chosen:
        raise TerminalError(
            f"pipeline {pipeline.dag_id!r} has no table with strategy cdc{f' named {name!r}' if name else ''}"
        )
    return chosen


def cmd_show(args: argparse.Namespace) -> int:
    from airflow_provider_sync.factory.cli_status import (
        find_pipeline,
        format_status,
        pipeline_status,
        pipelines_folder,
    )

    pipeline = find_pipeline(args.dag_id, pipelines_folder(args.configs))
    names = {table.name for table in _cdc_tables(pipeline, args.table)}
    print(format_status([s for s in pipeline_status(pipeline) if s.table in names]))
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    from airflow_provider_sync.cdc.runner import change_capture_for
    from airflow_provider_sync.dialects.types import TableRef
    from airflow_provider_sync.factory.cli_status import _connection_info, find_pipeline, pipelines_folder
    from airflow_provider_sync.pipeline.specs import load_spec_for

    pipeline = find_pipeline(args.dag_id, pipelines_folder(args.configs))
    for table in _cdc_tables(pipeline, args.table):
        source = _connection_info(table.source.conn_id)
        capture = change_capture_for(source.conn_type)
        print(
            f"{table.name}: {capture.drop(source, pipeline.dag_id, TableRef.parse(str(table.source.table)))}"
        )
        spec = load_spec_for(table, pipeline.dag_id, _connection_info(table.target.conn_id))
        forgotten = _forget(spec, pipeline.dag_id, table.name)
        print(
            f"{table.name}: "
            + ("deleted the applied position in the target" if forgotten else "the target held no position")
            + "; the next run takes a new snapshot"
        )
    return 0


def _forget(spec: Any, dag_id: str, table: str) -> bool:
    """Delete the applied position: the target's row, or the Variable of a target without tables."""
    from airflow_provider_sync.cdc.apply import forget_position
    from airflow_provider_sync.cdc.runner import position_variable_key
    from airflow_provider_sync.targets import target_for

    if target_for(spec.connection.conn_type).capabilities.tables:
        return forget_position(spec, table)
    from airflow.models import Variable

    return bool(Variable.delete(position_variable_key(dag_id, table)))


def add_cdc_commands(commands: Any) -> None:
    from airflow_provider_sync.factory.cli_status import CONFIGS_HELP

    cdc = commands.add_parser("cdc", help="change-log pipelines: show their state, or drop it to re-snapshot")
    actions = cdc.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("show", cmd_show, "position in the target, replication slot and retained WAL per table"),
        (
            "drop",
            cmd_drop,
            "drop the slot and publication and the target's position: the next run re-snapshots",
        ),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("dag_id", help="the pipeline")
        action.add_argument("table", nargs="?", help="only this table (default: every cdc table)")
        action.add_argument("--configs", help=CONFIGS_HELP)
        action.set_defaults(handler=handler)
