"""Build an Airflow DAG from a validated pipeline.

Per table, a task group runs ``extract → <steps in YAML order> → load → commit_watermark → audit``
(:mod:`airflow_provider_sync.operators.stages` lists them), as a task each or fused into one task. Step
types are looked up in the step registry, so this module never names a particular transform.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.config.pipeline import AssetSchedule
from airflow_provider_sync.config.resolve import Pipeline
from airflow_provider_sync.config.resolved import TableSpec
from airflow_provider_sync.operators.stages import (
    FUSED_OPERATOR,
    PLAN_OPERATOR,
    after_partition_stages,
    table_stages,
)

if TYPE_CHECKING:
    from airflow.sdk import DAG

SUBSET_OPERATOR = "airflow_provider_sync.operators.subset.SubsetOperator"
SENSOR_OPERATOR = "airflow_provider_sync.sensors.new_rows.NewRowsSensor"
AUDIT_FAILED_RUN_CALLBACK = "airflow_provider_sync.operators.audit.audit_failed_run"


def _import(dotted: str) -> Any:
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _utc(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# Presets that are not a cron tick: Airflow handles them itself.
_NON_CRON_PRESETS = ("@once", "@continuous")


def _schedule(value: Any) -> Any:
    """Airflow schedule for the YAML ``schedule`` value.

    A cron string or preset becomes ``CronDataIntervalTimetable``: each run covers the real interval
    ``[previous tick, tick)``, so backfill runs read exactly their period. A plain cron string would give
    ``CronTriggerTimetable`` (Airflow's default), whose runs have empty data intervals.
    """
    if isinstance(value, AssetSchedule):
        from airflow.sdk import Asset

        return [Asset(uri) for uri in value.assets]
    if isinstance(value, str) and value not in _NON_CRON_PRESETS:
        from airflow.sdk import CronDataIntervalTimetable

        return CronDataIntervalTimetable(value, timezone="UTC")
    return value


def default_args(pipeline: Pipeline) -> dict[str, Any]:
    model: Any = pipeline.model
    args: dict[str, Any] = {"owner": model.owner}
    args.update(model.default_args.model_dump(exclude_none=True))
    from airflow_provider_sync.resilience import build_retry_policy

    args["retry_policy"] = build_retry_policy()
    from airflow_provider_sync.callbacks import task_kwargs_from_alerts

    args.update(task_kwargs_from_alerts(model.alerts, dag_id=model.dag_id))
    audit_callback = _import(AUDIT_FAILED_RUN_CALLBACK)
    alert_callbacks = args.get("on_failure_callback") or []
    if not isinstance(alert_callbacks, list):
        alert_callbacks = [alert_callbacks]
    args["on_failure_callback"] = [audit_callback, *alert_callbacks]
    return args


def pipeline_info(pipeline: Pipeline) -> dict[str, Any]:
    """What every task of the DAG needs to know about the file it came from (small, JSON-safe)."""
    model: Any = pipeline.model
    audit = model.audit.model_dump(mode="json") if model.audit is not None else None
    return {
        "dag_id": model.dag_id,
        "config_path": pipeline.path,
        "config_sha256": pipeline.sha256,
        "audit": audit,
    }


def build_dag(pipeline: Pipeline) -> DAG:
    from airflow.sdk import DAG

    from airflow_provider_sync.callbacks import dag_kwargs_from_alerts

    model: Any = pipeline.model
    dag = DAG(
        dag_id=model.dag_id,
        description=model.description,
        schedule=_schedule(model.schedule),
        start_date=_utc(model.start_date),
        end_date=_utc(model.end_date),
        catchup=model.catchup,
        tags=sorted({"sync", *model.tags}),
        max_active_runs=model.max_active_runs,
        max_consecutive_failed_dag_runs=model.max_consecutive_failed_dag_runs or 0,
        params=model.params,
        default_args=default_args(pipeline),
        doc_md=f"Synchronised by airflow-provider-sync from `{pipeline.path}` "
        f"(sha256 {pipeline.sha256[:12]}).",
        **dag_kwargs_from_alerts(model.alerts, dag_id=model.dag_id),
    )
    info = pipeline_info(pipeline)
    with dag:
        if getattr(model, "subset", None) is not None:  # one task copies the referentially complete subset
            _import(SUBSET_OPERATOR)(task_id="subset", pipeline=pipeline.path)
            return dag
        for table in pipeline.tables:
            build_table_group(table, info)
    return dag


def build_table_group(table: TableSpec, info: dict[str, Any]) -> Any:
    """The table's task group: a task per stage (``execution: per_step``) or one ``sync`` task running them
    all (``fused``), after ``wait_for_rows`` when the table waits for new rows."""
    from airflow.sdk import TaskGroup

    spec = table.model_dump(mode="json")
    with TaskGroup(group_id=table.name, tooltip=f"{_source_label(table)} → {table.target.table}") as group:
        common = {"table_spec": spec, "pipeline_info": info}
        if table.source.partitions is not None:
            tasks = _partitioned_tasks(table, common)
        elif table.execution == "fused":
            tasks = [_import(FUSED_OPERATOR)(task_id="sync", pool=table.pool, **common)]
        else:
            tasks = []
            for stage in table_stages(table):
                pool = {"pool": table.pool} if stage.task_id == "extract" else {}
                tasks.append(
                    _import(stage.operator)(task_id=stage.task_id, **common, **stage.arguments, **pool)
                )
        for upstream, downstream in pairwise(tasks):
            upstream >> downstream
        if table.wait_for_rows is not None:
            wait = table.wait_for_rows
            sensor = _import(SENSOR_OPERATOR)(
                task_id="wait_for_rows",
                pool=table.pool,
                poke_interval=wait.poke_interval.total_seconds(),
                timeout=wait.timeout.total_seconds(),
                deferrable=wait.deferrable,
                soft_fail=wait.soft_fail,
                **common,
            )
            sensor >> tasks[0]
    return group


def _partitioned_tasks(table: TableSpec, common: dict[str, Any]) -> list[Any]:
    """plan → one mapped ``sync`` per key range (extract → steps → load) → commit_watermark → audit."""
    from airflow_provider_sync.operators.load import target_asset

    plan = _import(PLAN_OPERATOR)(task_id="plan", pool=table.pool, **common)
    # A mapped task's outlets are read from its partial arguments when the DAG is serialized.
    partitions = _import(FUSED_OPERATOR).partial(
        task_id="sync", pool=table.pool, outlets=[target_asset(table)], scope="partition", **common
    )
    sync = partitions.expand(partition_range=plan.output)
    after = [
        _import(s.operator)(task_id=s.task_id, **common, **s.arguments) for s in after_partition_stages()
    ]
    return [plan, sync, *after]


def _source_label(table: TableSpec) -> str:
    source = table.source
    return source.table or (source.files.path if source.files else "query")
