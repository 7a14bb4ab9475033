"""The audit trail from the operators' side: a row per step try, a row per run and table.

Step rows are written by :class:`~airflow_provider_sync.operators.base.SyncTableOperator` around every
``execute``; the run row by :class:`AuditLogOperator` when the table's tasks succeeded, and by
:func:`audit_failed_run` (a task failure callback) when one failed for good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
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
    from airflow_provider_sync.targets import target_for

    settings = AuditConfig.model_validate(operator.pipeline_info.get("audit") or {})
    if not settings.enabled:
        return
    conn_id = settings.conn_id or str(operator.table.target.conn_id)
    try:
        info = operator.connection_info(conn_id)
        kind = target_for(info.conn_type)
        if not kind.capabilities.tables:
            operator.log.warning(
                "No audit row: connection %r is a %s target, which holds no tables; set audit.conn_id to "
                "a database",
                conn_id,
                kind.name,
            )
            return
        with AuditWriter.open(info, audit_table(settings)) as writer:
            writer.write(record)
    except Exception:
        if raise_errors:
            raise
        operator.log.exception("Could not write the audit row of a failed step")


#: Counts that add up over the steps that report them (two mask steps mask twice); any other count is the
#: last reporting step's (the rows the last validate step let through).
SUMMED_COUNTS = frozenset({"rows_masked", "rows_encrypted"})


def run_values(
    history: list[dict[str, Any]], counts_of: Mapping[str, Callable[[dict[str, Any]], dict[str, int]]]
) -> dict[str, Any]:
    """A manifest's step history as the run row's counters. ``counts_of`` maps a stage's name to what its
    operator says its record adds (``audit_counts``); rejects by rule and key ids are every step's."""
    values: dict[str, Any] = {
        "rows_rejected": 0,
        "rejected_by_rule": {},
        "rows_masked": 0,
        "rows_encrypted": 0,
    }
    key_ids: set[str] = set()
    for record in history:
        counts = counts_of.get(str(record.get("step", "")))
        for name, count in (counts(record) if counts is not None else {}).items():
            values[name] = values.get(name, 0) + count if name in SUMMED_COUNTS else count
        for rule, count in (record.get("rejected_by_rule") or {}).items():
            values["rejected_by_rule"][rule] = values["rejected_by_rule"].get(rule, 0) + count
            values["rows_rejected"] += count
        key_ids.update((record.get("details") or {}).get("key_ids") or ())
    values["key_ids"] = sorted(key_ids) or None
    return values


def stage_counts(table: Any) -> dict[str, Callable[[dict[str, Any]], dict[str, int]]]:
    """Each stage of ``table`` by name, with its operator's ``audit_counts``."""
    import importlib

    from airflow_provider_sync.operators.stages import table_stages

    counts: dict[str, Callable[[dict[str, Any]], dict[str, int]]] = {}
    for stage in table_stages(table):
        module, _, name = stage.operator.rpartition(".")
        counts[stage.task_id] = getattr(importlib.import_module(module), name).audit_counts
    return counts


class AuditLogOperator(SyncTableOperator):
    """Writes the run row of a table once its sync succeeded: rows per stage, rejects by rule, watermark move,
    key ids and duration, and logs a short summary with the extract's and the load's own rows/s."""

    ui_color = "#eeeeee"
    audit_step = "audit"

    def __init__(self, *, manifest_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.manifest_task_id = manifest_task_id

    def run(self, context: Context) -> StepOutcome:
        from dataclasses import replace
        from datetime import datetime, timezone

        manifest = self.upstream_value(context, self.manifest_task_id) or {}
        if isinstance(manifest, (list, tuple)):  # the loads of a partitioned read, one per partition
            from airflow_provider_sync.pipeline.partitions import merge_partition_manifests

            manifest = merge_partition_manifests(list(manifest)).to_json()
        watermark = self.upstream_value(context, self.input_task_id) or {}
        values = run_values(manifest.get("history") or [], stage_counts(self.table))
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None) or datetime.now(timezone.utc)
        record = start_record(self, context, "run")
        record = replace(record, started_at=started, task_id=None, try_number=None)
        final = record.succeeded(
            watermark_before=watermark.get("before"), watermark_after=watermark.get("after"), **values
        )
        write_audit(self, final)
        timings = step_timings(manifest.get("history") or [])
        self.log.info("%s", summary_block(self.table.name, final, timings))
        return StepOutcome(
            xcom={
                "run": final.column_values()
                | {"started_at": str(final.started_at), "ended_at": str(final.ended_at)}
            }
        )


#: Summary lines stay within this width, so they read in a log viewer without scrolling.
WIDTH = 100


def cursor_value(encoded: Any) -> Any:
    """A stored cursor or key value as plain JSON: ISO text for times and dates, text for decimals."""
    from airflow_provider_sync.core.watermark import decode_value

    value = decode_value(encoded)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def watermark_text(data: Mapping[str, Any] | None) -> str:
    """``2024-01-02T00:00:00+00:00 key 17`` for a stored watermark; ``none`` before the first commit."""
    if not data:
        return "none"
    text = str(cursor_value(data.get("cursor")))
    keys = [str(cursor_value(value)) for value in data.get("key") or ()]
    return f"{text} key {', '.join(keys)}" if keys else text


def step_timings(history: list[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """Rows and seconds of the extract and the load, each over its own work (not the run's wall time)."""
    timings: dict[str, tuple[int, float]] = {}
    for record in history:
        step, details = record.get("step", ""), record.get("details") or {}
        if step in ("extract", "load") and details.get("seconds") is not None:
            rows = details.get("rows_loaded", record.get("rows_out")) if step == "load" else None
            timings[step] = (
                int(rows if rows is not None else record.get("rows_out") or 0),
                float(details["seconds"]),
            )
    return timings


def _clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _field(name: str, value: str) -> list[str]:
    """``  name      value`` lines, the value wrapped at commas to stay within :data:`WIDTH`."""
    import textwrap

    indent = f"  {name:<10}"
    lines = textwrap.wrap(
        value,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=" " * len(indent),
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [_clip(line) for line in lines] or [indent.rstrip()]


def _watermark_lines(before: Any, after: Any) -> list[str]:
    one = f"{watermark_text(before)} -> {watermark_text(after)}"
    if len(one) + 12 <= WIDTH:
        return _field("watermark", one)
    return [_clip(f"  watermark from {watermark_text(before)}"), _clip(f"{'to':>16} {watermark_text(after)}")]


def summary_block(
    table: str, record: AuditRecord, timings: Mapping[str, tuple[int, float]] | None = None
) -> str:
    """The run's summary for the task log: a few short lines, none wider than :data:`WIDTH`."""
    from airflow_provider_sync.pipeline.progress import format_duration, format_rate

    rows = [f"{record.rows_extracted or 0:,} extracted"]
    if record.rows_valid is not None:
        rows.append(f"{record.rows_valid:,} valid")
    rows += [
        f"{record.rows_rejected or 0:,} rejected",
        f"{record.rows_loaded or 0:,} loaded",
        f"{record.rows_skipped or 0:,} skipped",
    ]
    if record.rows_deleted:
        rows.append(f"{record.rows_deleted:,} deleted")
    lines = [
        _clip(f"sync summary {table}: {record.status}, run took {format_duration(record.duration_s or 0.0)}"),
        *_field("rows", ", ".join(rows)),
    ]
    rules = sorted((record.rejected_by_rule or {}).items())
    if rules:
        lines += _field("rejected", ", ".join(f"{rule}={count:,}" for rule, count in rules))
    if record.rows_masked or record.rows_encrypted:
        protected = f"{record.rows_masked or 0:,} masked, {record.rows_encrypted or 0:,} encrypted"
        lines += _field("protected", protected)
    lines += _watermark_lines(record.watermark_before, record.watermark_after)
    for step, (count, seconds) in (timings or {}).items():
        lines += _field(step, f"{count:,} rows in {format_duration(seconds)}, {format_rate(count, seconds)}")
    return "\n".join(lines)


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
