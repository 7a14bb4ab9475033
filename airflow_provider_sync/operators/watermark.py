"""CommitWatermarkOperator: advance the table's watermark once the load has committed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class CommitWatermarkOperator(SyncTableOperator):
    """The last task of a table: stores the last ``(cursor, key)`` loaded, then removes the staged files.

    It runs only after the load succeeded, so a failed run leaves the watermark where it was and the next
    run re-reads the same rows (made harmless by upsert keys or the append ledger). Backfill and interval
    runs, and the ``full`` strategy, leave the watermark alone.
    """

    ui_color = "#fdf1d6"
    audit_step = "commit_watermark"

    def run(self, context: Context) -> StepOutcome:
        from airflow_provider_sync.core.watermark import describe_json
        from airflow_provider_sync.pipeline.extract import manifest_watermark
        from airflow_provider_sync.watermarks import load_in_task, variable_key, write_in_task

        manifest = self.input_manifest(context)
        key = variable_key(self.pipeline_dag_id, self.table.name)
        previous = None
        if manifest.strategy and manifest.strategy != "full":
            # Read again (not trusted from the extract): a damaged value stops here, before any write.
            previous = load_in_task(
                self.pipeline_dag_id, self.table.name, manifest.strategy, manifest.source_timezone
            )
        new = manifest_watermark(manifest, previous, run_id=context["run_id"])
        before = previous.to_json() if previous else None
        after = new.to_json() if new else None
        if new is None or new == previous:
            self.log.info("Watermark %s unchanged: %s", key, describe_json(after))
        else:
            write_in_task(self.pipeline_dag_id, self.table.name, after or {})
            self.log.info(
                "Watermark %s moved from %s to %s", key, describe_json(before), describe_json(after)
            )
        self.remove_staged_files(context)
        result = {"variable": key, "before": before, "after": after, "rows": manifest.rows}
        return StepOutcome(result, {"watermark_before": before, "watermark_after": after})

    def remove_staged_files(self, context: Context) -> None:
        if self.table.staging.keep_committed:
            return
        from airflow_provider_sync.staging.files import remove_tree, safe_component

        directory = self.step_directory(context, "extract").parent
        remove_tree(directory)
        self.log.info("Removed staged files under %s", safe_component(self.table.name))
