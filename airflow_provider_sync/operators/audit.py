"""The audit trail from the operators' side: a row per step try, a row per run and table.

Step rows are written by :class:`~airflow_provider_sync.operators.base.SyncTableOperator` around every
``execute``; the run row by :class:`AuditLogOperator` when the table's tasks succeeded, and by
:func:`audit_failed_run` (a task failure callback) when one failed for good.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.audit.record import AuditRecord

log = logging.getLogger(__name__)


def start_record(operator: SyncTableOperator, context: Mapping[str, Any], step: str) -> AuditRecord:
    from airflow_provider_sync.audit.record import AuditRecord

    table = operator.table
    return AuditRecord.from_context(
        context,
        step=step,
        table_name=table.name,
        source=f"{table.source.conn_id}:{table.source.table or 'query'}",
        target=f"{table.target.conn_id}:{table.target.table}",
        config_path=operator.pipeline_info.get("config_path"),
        config_sha256=operator.pipeline_info.get("config_sha256"),
    )


def write_audit(operator: SyncTableOperator, record: AuditRecord, *, raise_errors: bool = True) -> None:
    """Append ``record`` to the pipeline's audit table (the target's connection unless configured).

    An audit row that cannot be written fails a successful step (the trail is part of the contract and the
    step is safe to retry); on the failure path it is only logged, so the original error stays visible.
    """
    from airflow_provider_sync.audit.writer import AuditWriter, audit_table
    from airflow_provider_sync.config.audit import AuditConfig

    settings = AuditConfig.model_validate(operator.pipeline_info.get("audit") or {})
    if not settings.enabled:
        return
    conn_id = settings.conn_id or str(operator.table.target.conn_id)
    try:
        info = operator.connection_info(conn_id)
        if info.conn_type == "kafka":
            operator.log.warning(
                "No audit row: connection %r is Kafka; set audit.conn_id to a database", conn_id
            )
            return
        with AuditWriter.open(info, audit_table(settings)) as writer:
            writer.write(record)
    except Exception:
        if raise_errors:
            raise
        operator.log.exception("Could not write the audit row of a failed step")


def run_values(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum a manifest's step history into the run row's counters."""
    values: dict[str, Any] = {
        "rows_rejected": 0,
        "rejected_by_rule": {},
        "rows_masked": 0,
        "rows_encrypted": 0,
    }
    key_ids: set[str] = set()
    for record in history:
        step, details = record.get("step", ""), record.get("details") or {}
        if step == "extract":
            values["rows_extracted"] = record.get("rows_out")
        if step.startswith("validate"):
            values["rows_valid"] = record.get("rows_out")
        for rule, count in (record.get("rejected_by_rule") or {}).items():
            values["rejected_by_rule"][rule] = values["rejected_by_rule"].get(rule, 0) + count
            values["rows_rejected"] += count
        if details.get("columns_masked"):
            values["rows_masked"] += int(record.get("rows_out") or 0)
        if details.get("columns_encrypted"):
            values["rows_encrypted"] += int(details.get("values_encrypted") or record.get("rows_out") or 0)
        key_ids.update(details.get("key_ids") or ())
        if step == "load":
            values["rows_loaded"] = details.get("rows_loaded", record.get("rows_out"))
            values["rows_skipped"] = int(record.get("rows_in") or 0) - int(values["rows_loaded"] or 0)
    values["key_ids"] = sorted(key_ids) or None
    return values


class AuditLogOperator(SyncTableOperator):
    """Writes the run row of a table once its sync succeeded: rows per stage, rejects by rule, watermark move,
    key ids, duration and rows/s, and logs the same as a summary block."""

    ui_color = "#eeeeee"
    audit_step = "audit"

    def __init__(self, *, manifest_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.manifest_task_id = manifest_task_id

    def run(self, context: Context) -> StepOutcome:
        from dataclasses import replace
        from datetime import datetime, timezone

        manifest = context["ti"].xcom_pull(task_ids=self.manifest_task_id) or {}
        watermark = context["ti"].xcom_pull(task_ids=self.input_task_id) or {}
        values = run_values(manifest.get("history") or [])
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None) or datetime.now(timezone.utc)
        record = start_record(self, context, "run")
        record = replace(record, started_at=started, task_id=None, try_number=None)
        final = record.succeeded(
            watermark_before=watermark.get("before"), watermark_after=watermark.get("after"), **values
        )
        write_audit(self, final)
        self.log.info("%s", summary_block(self.table.name, final))
        return StepOutcome(
            xcom={
                "run": final.column_values()
                | {"started_at": str(final.started_at), "ended_at": str(final.ended_at)}
            }
        )


def summary_block(table: str, record: AuditRecord) -> str:
    duration = record.duration_s or 0.0
    loaded = record.rows_loaded or 0
    rate = f"{(record.rows_extracted or 0) / duration:,.0f} rows/s" if duration else "-"
    rules = ", ".join(f"{rule}={count}" for rule, count in sorted((record.rejected_by_rule or {}).items()))
    return "\n".join(
        [
            f"==== sync summary: {table} ====",
            f"rows extracted   {record.rows_extracted or 0:>12,}",
            f"rows valid       {record.rows_valid if record.rows_valid is not None else '-':>12}",
            f"rows rejected    {record.rows_rejected or 0:>12,}   {rules}",
            f"rows masked      {record.rows_masked or 0:>12,}",
            f"rows encrypted   {record.rows_encrypted or 0:>12,}",
            f"rows loaded      {loaded:>12,}   skipped {record.rows_skipped or 0:,}",
            f"watermark        {record.watermark_before} -> {record.watermark_after}",
            f"duration         {duration:>12.1f} s   ({rate})",
        ]
    )


def audit_failed_run(context: Mapping[str, Any]) -> None:
    """Task failure callback: the run row of a table whose task failed for good (after its retries)."""
    task = context.get("task")
    if not isinstance(task, SyncTableOperator):
        return
    exception = context.get("exception") or "task failed"
    try:
        record = start_record(task, context, "run")
        write_audit(
            task,
            record.failed(exception if isinstance(exception, BaseException) else str(exception)),
            raise_errors=False,
        )
    except Exception:
        log.exception("Could not write the audit row of a failed run")
