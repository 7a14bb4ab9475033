"""CommitWatermarkOperator: advance the table's watermark once the load has committed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.staging.manifest import Manifest


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
        if self.table.incremental.strategy == "cdc":
            return self.release_change_log(context, manifest)
        files = self.table.source.files
        if files is not None and files.incremental_by == "file":
            return self.commit_file_ledger(context, manifest)
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
        if self.table.source.partitions is not None:
            from airflow_provider_sync.operators.partitions import forget_plan

            forget_plan(self.pipeline_dag_id, self.table.name)  # the next first read plans anew
        self.remove_staged_files(context)
        result = {"variable": key, "before": before, "after": after, "rows": manifest.rows}
        return StepOutcome(result, {"watermark_before": before, "watermark_after": after})

    def commit_file_ledger(self, context: Context, manifest: Manifest) -> StepOutcome:
        """A file source read by file: the files as listed at the extract become the ledger, committed now
        that the load has, so the next run reads only files that are new or changed since."""
        from airflow_provider_sync.pipeline.file_ledger import ledger_from_json, store_ledger_in_task
        from airflow_provider_sync.watermarks import variable_key

        key = variable_key(self.pipeline_dag_id, self.table.name)
        extract = next((r for r in manifest.history if r.step == "extract"), None)
        listed = (extract.details if extract else {}).get("file_ledger", {})
        ledger = ledger_from_json({"files": listed}, f"manifest of {key}")
        store_ledger_in_task(self.pipeline_dag_id, self.table.name, ledger)
        read = len((extract.details if extract else {}).get("files", {}))
        self.log.info("File ledger %s: %d file(s), %d read this run", key, len(ledger), read)
        self.remove_staged_files(context)
        result = {"variable": key, "files": len(ledger), "files_read": read, "rows": manifest.rows}
        return StepOutcome(result, {"watermark_after": {"files": len(ledger)}})

    def release_change_log(self, context: Context, manifest: Manifest) -> StepOutcome:
        """A ``cdc`` table's position is stored in the target by the apply, in its transaction; what is left
        is to let the source release the log before it (PostgreSQL: advance the slot)."""
        from airflow_provider_sync.cdc.runner import change_capture_for
        from airflow_provider_sync.dialects.types import TableRef

        source = self.connection_info(self.table.source.conn_id)
        capture = change_capture_for(source.conn_type)
        run = self._capture_run(context, source, TableRef.parse(str(self.table.source.table)))
        capture.after_apply(run, manifest)
        position = manifest.high_water_mark
        self.store_position_without_tables(manifest)
        self.log.info(
            "Change log of %s applied up to %s; the source may release what lies before", run.table, position
        )
        self.remove_staged_files(context)
        result = {"position": position, "rows": manifest.rows}
        return StepOutcome(result, {"watermark_after": position})

    def store_position_without_tables(self, manifest: Manifest) -> None:
        """A Kafka target holds no positions table: the Variable records how far it got."""
        from airflow.sdk import Variable

        from airflow_provider_sync.cdc.apply import manifest_position
        from airflow_provider_sync.cdc.runner import position_variable_key
        from airflow_provider_sync.targets import target_for

        target = self.connection_info(self.table.target.conn_id)
        position = manifest_position(manifest)
        if target_for(target.conn_type).capabilities.tables or position is None:
            return
        Variable.set(position_variable_key(self.pipeline_dag_id, self.table.name), position)

    def _capture_run(self, context: Context, source: Any, table: Any) -> Any:
        from airflow_provider_sync.cdc.runner import CaptureRun

        return CaptureRun(
            source=source,
            table=table,
            label=self.table.name,
            dag_id=self.pipeline_dag_id,
            run_id=context["run_id"],
            keys=tuple(self.table.incremental.key),
            batch_size=self.table.incremental.batch_size,
            applied=None,
        )

    def remove_staged_files(self, context: Context) -> None:
        if self.table.staging.keep_committed:
            return
        from airflow_provider_sync.staging.files import remove_tree, safe_component

        directory = self.step_directory(context, "extract").parent
        remove_tree(directory)
        self.log.info("Removed staged files under %s", safe_component(self.table.name))
