"""PartitionPlanOperator: the first task of a partitioned table, which says what each mapped ``sync`` reads.

A first run (every run with strategy ``full``) is cut into key ranges, all bounded by one high-water mark
(:func:`~airflow_provider_sync.pipeline.partitions.plan_partitions`). The plan is kept in an Airflow
Variable until the watermark is committed, so a run that failed and is run again reads the same ranges and
the append ledger of each partition still matches. Later runs, backfills and interval runs read in one task,
past the watermark, as an unpartitioned table does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def plan_variable_key(dag_id: str, table: str) -> str:
    """Where a partition plan waits for its run's watermark commit."""
    return f"sync_partitions:{dag_id}:{table}"


class PartitionPlanOperator(SyncTableOperator):
    """Returns the ranges to read: a list with one entry per mapped ``sync`` task (None: read past the
    watermark)."""

    ui_color = "#e4e0f5"
    audit_step = "plan"

    def run(self, context: Context) -> StepOutcome:
        from airflow_provider_sync.operators.extract import reads_interval
        from airflow_provider_sync.watermarks import load_in_task

        incremental = self.table.incremental
        ranges: list[dict[str, Any] | None]
        if reads_interval(context, self.table):
            reason, ranges = "this run reads its data interval", [None]
        elif incremental.strategy != "full" and load_in_task(
            self.pipeline_dag_id, self.table.name, incremental.strategy, incremental.source_timezone
        ):
            forget_plan(self.pipeline_dag_id, self.table.name)  # left by a crash after the commit
            reason, ranges = "a watermark is stored: the rows past it are read in one task", [None]
        else:
            reason, ranges = "first read", self.partition_ranges(str(context["run_id"]))
        self.log.info("%d task(s) read %s (%s)", len(ranges), self.table.name, reason)
        return StepOutcome(ranges)

    def partition_ranges(self, run_id: str) -> list[dict[str, Any] | None]:
        """The stored plan of an earlier try of this first read, or a new one (stored before it is used)."""
        from airflow.sdk import Variable

        from airflow_provider_sync.pipeline.partitions import plan_partitions
        from airflow_provider_sync.pipeline.specs import extract_spec_for

        partitions = self.table.source.partitions
        assert partitions is not None
        key = plan_variable_key(self.pipeline_dag_id, self.table.name)
        stored = stored_plan(key, Variable.get(key, default=None))
        settings = {"column": partitions.column, "count": partitions.count, "split": partitions.split}
        if stored is not None:
            planned_with = {"split": "equal_width", **stored}  # plans made before split existed
            if all(planned_with.get(name) == value for name, value in settings.items()):
                self.log.info("Resuming the partition plan %s of run %s", key, stored.get("run_id"))
                return list(stored["ranges"])
            if self.table.target.mode == "append":
                raise TerminalError(
                    f"partition plan {key} of run {stored.get('run_id')} was made with "
                    f"{_settings_text(planned_with)}; the file now says {_settings_text(settings)}. An "
                    "append load's ledger knows each partition by its name: new ranges under old names "
                    "would skip or repeat rows. Set source.partitions back to finish that first read, or "
                    f"delete the rows it appended and the plan (airflow variables delete {key})"
                )
        spec = extract_spec_for(self.table, self.connection_info(self.table.source.conn_id))
        column, count, split = str(partitions.column), partitions.count, partitions.split
        planned = plan_partitions(spec, column, count, split=split, logger=self.log)  # type: ignore[arg-type]
        ranges: list[dict[str, Any] | None] = [r.to_json() for r in planned]
        plan = {
            "column": partitions.column,
            "count": partitions.count,
            "split": split,
            "run_id": run_id,
            "ranges": ranges,
        }
        Variable.set(key, json.dumps(plan, sort_keys=True))
        return ranges


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{name} {settings.get(name)}" for name in ("column", "count", "split"))


def stored_plan(key: str, raw: Any) -> dict[str, Any] | None:
    """The plan kept in Variable ``key``; a damaged one stops the run, naming the Variable."""
    from airflow_provider_sync.errors import WatermarkError

    if raw is None:
        return None
    try:
        plan = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(plan, dict) or not isinstance(plan.get("ranges"), list):
            raise ValueError("no list of ranges")
        return plan
    except ValueError as error:
        raise WatermarkError(
            f"partition plan {key} is damaged ({error}); delete it (airflow variables delete {key}) to "
            "plan the first read again"
        ) from None


def forget_plan(dag_id: str, table: str) -> None:
    """Drop the table's partition plan: its run's watermark is committed, the next first read plans anew."""
    from airflow.sdk import Variable

    key = plan_variable_key(dag_id, table)
    if Variable.get(key, default=None) is not None:
        Variable.delete(key)
