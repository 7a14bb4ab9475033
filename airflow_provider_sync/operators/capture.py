"""ChangeCaptureOperator: stage the changes of a table's change log since what the target applied."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.cdc.runner import CaptureRun


class ChangeCaptureOperator(SyncTableOperator):
    """The extract task of a ``strategy: cdc`` table: the first run stages a consistent snapshot, later
    runs the inserts, updates and deletes committed since the position the target holds, up to the
    source's position when the run started."""

    ui_color = "#d6ecfa"
    audit_step = "extract"

    @classmethod
    def audit_counts(cls, record: dict[str, Any]) -> dict[str, int]:
        return {"rows_extracted": int(record.get("rows_out") or 0)}

    def capture_run(self, context: Context) -> CaptureRun:
        from airflow_provider_sync.cdc.runner import CaptureRun
        from airflow_provider_sync.dialects.types import TableRef
        from airflow_provider_sync.pipeline.specs import load_spec_for

        table = self.table
        target = load_spec_for(table, self.pipeline_dag_id, self.connection_info(table.target.conn_id))
        return CaptureRun(
            source=self.connection_info(table.source.conn_id),
            table=TableRef.parse(str(table.source.table)),
            label=table.name,
            dag_id=self.pipeline_dag_id,
            run_id=context["run_id"],
            keys=tuple(table.incremental.key),
            batch_size=table.incremental.batch_size,
            applied=self.applied_position(target),
        )

    def applied_position(self, target: Any) -> str | None:
        """The position the target holds (its positions table), or for a target without tables the
        Variable the commit task writes once every message was confirmed."""
        from airflow.sdk import Variable

        from airflow_provider_sync.cdc.apply import read_position
        from airflow_provider_sync.cdc.runner import position_variable_key
        from airflow_provider_sync.targets import target_for

        if target_for(target.connection.conn_type).capabilities.tables:
            return read_position(target, self.table.name)
        stored = Variable.get(position_variable_key(self.pipeline_dag_id, self.table.name), default=None)
        return None if stored is None else str(stored)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(inputs=self.source_lineage())

    def run(self, context: Context) -> StepOutcome:
        from airflow_provider_sync.cdc.runner import change_capture_for

        run = self.capture_run(context)
        capture = change_capture_for(run.source.conn_type)
        self.log.info(
            "Change log of %s: %s",
            run.table,
            "first run, taking a snapshot" if run.applied is None else f"from position {run.applied}",
        )
        manifest = capture.capture(run, self.step_directory(context, "extract"))
        counters = manifest.counters or {}
        self.log.info(
            "Staged %d change(s) of %s up to %s (%s)",
            manifest.rows,
            run.table,
            manifest.high_water_mark,
            counters,
        )
        audit: dict[str, Any] = {"rows_extracted": manifest.rows, "watermark_before": run.applied}
        audit.update(self.capture_costs(capture, run, manifest.high_water_mark))
        return StepOutcome(manifest.to_json(), audit)

    def capture_costs(self, capture: Any, run: CaptureRun, position: Any) -> dict[str, Any]:
        """The position reached and the change log the source retains for it, for the capture's audit row;
        a warning too when the retained log grows past the threshold (a slot that is not advanced keeps
        WAL on the source's disk until it fills)."""
        state = capture.state(run.source, run.dag_id, run.table)
        self.log.info("%s", state.description)
        reached: dict[str, Any] = {"position": position}
        if state.retained_bytes is not None:
            reached["retained_bytes"] = state.retained_bytes
        costs: dict[str, Any] = {"watermark_after": reached}
        if state.warning:
            self.log.warning("%s", state.warning)
            costs["warnings"] = [state.warning]
        return costs
