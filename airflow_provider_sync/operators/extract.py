"""IncrementalExtractOperator: stage the rows that changed since the watermark (or in the data interval)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.pipeline.specs import ExtractSpec

BACKFILL_RUN_TYPE = "backfill"


def reads_interval(context: Context, table: TableSpec) -> bool:
    """Whether this run reads its data interval (a backfill, or ``mode: interval``), not the watermark."""
    dag_run = context.get("dag_run")
    run_type = str(getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", "")))
    return run_type == BACKFILL_RUN_TYPE or table.incremental.mode == "interval"


class IncrementalExtractOperator(SyncTableOperator):
    """Reads the source in one snapshot: rows after the stored watermark up to the high-water mark, in
    ``(cursor, key)`` order, staged as Arrow files. Backfill runs and ``mode: interval`` read
    ``[data_interval_start, data_interval_end)`` instead and never touch the watermark."""

    ui_color = "#d6ecfa"
    audit_step = "extract"

    @classmethod
    def audit_counts(cls, record: dict[str, Any]) -> dict[str, int]:
        return {"rows_extracted": int(record.get("rows_out") or 0)}

    def extract_spec(self) -> ExtractSpec:
        from airflow_provider_sync.pipeline.specs import extract_spec_for

        return extract_spec_for(self.table, self.connection_info(self.table.source.conn_id))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Reported when the OpenLineage provider is installed: the source table this task read."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(inputs=[] if self.table.source.files else self.source_lineage())

    def reads_interval(self, context: Context) -> bool:
        return reads_interval(context, self.table)

    def prepare(self, context: Context) -> None:
        files = self.table.source.files
        if files is not None:
            from airflow.sdk.exceptions import AirflowSkipException

            from airflow_provider_sync.pipeline.file_source import list_files

            # Listed before the audited step: a path with no file yet is a skipped run, not a failed one
            # (and without a file there is no schema to create the target from).
            self._listed_files = list_files(files)
            if not self._listed_files:
                raise AirflowSkipException(f"no file matches {files.path} yet; nothing to load this run")

    def run(self, context: Context) -> StepOutcome:
        from airflow_provider_sync.errors import TerminalError
        from airflow_provider_sync.pipeline.extract import extract_to_staging
        from airflow_provider_sync.watermarks import load_in_task, variable_key

        if self.table.source.files is not None:
            return self.run_files(context)
        spec = self.extract_spec()
        lower: Any = None
        interval = None
        if self.partition_range is not None:  # planned once for every partition: no watermark to read
            from airflow_provider_sync.core.watermark import ExtractRange

            lower = ExtractRange.from_json(self.partition_range)
            self.log.info("Reading %s", lower.partition.describe() if lower.partition else "the whole range")
        elif self.reads_interval(context):
            start, end = context.get("data_interval_start"), context.get("data_interval_end")
            if start is None or end is None:
                raise TerminalError(
                    "this run has no data interval (a manual run without a logical date); trigger it with a "
                    "logical date, or use incremental mode 'watermark'"
                )
            interval = (start, end)
            self.log.info(
                "Reading the data interval [%s, %s); the watermark is left alone",
                start.isoformat(),
                end.isoformat(),
            )
        elif spec.strategy != "full":
            # A damaged Variable raises here, naming it: never read as "no watermark".
            lower = load_in_task(self.pipeline_dag_id, self.table.name, spec.strategy, spec.source_timezone)
            self.log.info(
                "Watermark %s: %s",
                variable_key(self.pipeline_dag_id, self.table.name),
                "none yet (first run)" if lower is None else lower.describe(),
            )
        manifest = extract_to_staging(
            spec,
            lower,
            self.step_directory(context, "extract"),
            dag_id=self.pipeline_dag_id,
            run_id=context["run_id"],
            table=self.table.name,
            interval=interval,
            logger=self.log,  # type: ignore[arg-type]  # Airflow's logger has the stdlib interface
            on_schema=self.stream.open if self.stream is not None else None,
            on_batch=self.stream.put if self.stream is not None else None,
        )
        watermark_before = lower.to_json() if lower is not None and self.partition_range is None else None
        audit: dict[str, Any] = {"rows_extracted": manifest.rows, "watermark_before": watermark_before}
        warning = self.check_watermark_ahead(manifest.history[-1].details if manifest.history else {})
        if warning:
            audit["warnings"] = [warning]
        return StepOutcome(manifest.to_json(), audit)

    def run_files(self, context: Context) -> StepOutcome:
        """A file source: stage the new or changed files (``incremental_by: file``, against the committed
        ledger) or the rows past the watermark in every file (``incremental_by: cursor``); CSV lines
        that do not parse go to the quarantine table with their file and line."""
        from airflow_provider_sync.core.watermark import compute_range
        from airflow_provider_sync.pipeline import file_source
        from airflow_provider_sync.pipeline.file_ledger import changed_files, load_ledger_in_task
        from airflow_provider_sync.watermarks import load_in_task

        files, incremental = self.table.source.files, self.table.incremental
        assert files is not None
        read = file_source.FileRead(
            files=files,
            columns=tuple(self.table.source.columns),
            strategy=incremental.strategy,
            cursor_column=incremental.column,
            key_columns=tuple(incremental.key),
            batch_size=incremental.batch_size,
            source_timezone=incremental.source_timezone,
        )
        listed = getattr(self, "_listed_files", None) or file_source.list_files(files)
        lower = None
        if files.incremental_by == "file":
            ledger = load_ledger_in_task(self.pipeline_dag_id, self.table.name)
            wanted = set(changed_files({f.name: f.entry for f in listed}, ledger))
            to_read = [f for f in listed if f.name in wanted]
            self.log.info("%d file(s) under %s, %d new or changed", len(listed), files.path, len(to_read))
        else:
            to_read = listed
            strategy, tz = incremental.strategy, incremental.source_timezone
            lower = load_in_task(self.pipeline_dag_id, self.table.name, strategy, tz)
        range_ = compute_range(
            incremental.strategy,
            lower,
            lag=incremental.lag,
            initial_value=incremental.initial_value,
            end_value=incremental.end_value,
            source_timezone=incremental.source_timezone,
        )
        manifest, bad = file_source.extract_files(
            read,
            to_read,
            listed,
            self.step_directory(context, "extract"),
            dag_id=self.pipeline_dag_id,
            run_id=context["run_id"],
            table=self.table.name,
            range_=range_,
            logger=self.log,  # type: ignore[arg-type]  # Airflow's logger has the stdlib interface
        )
        quarantined = self.quarantine_bad_lines(context, bad)
        audit: dict[str, Any] = {
            "rows_extracted": manifest.rows,
            "watermark_before": lower.to_json() if lower is not None else None,
        }
        if quarantined:
            audit["rows_rejected"] = quarantined
            audit["rejected_by_rule"] = {file_source.BAD_LINE_RULE: quarantined}
        return StepOutcome(manifest.to_json(), audit)

    def quarantine_bad_lines(self, context: Context, bad: list[Any]) -> int:
        """Write the lines that did not parse to the target's quarantine table (a retry replaces what an
        earlier try of this run wrote); returns how many."""
        if not bad:
            return 0
        from airflow_provider_sync.dialects.types import TableRef
        from airflow_provider_sync.pipeline.file_source import bad_lines_batch
        from airflow_provider_sync.pipeline.step_quarantine import StepQuarantine, StepRun

        target = self.table.target
        run = StepRun(self.pipeline_dag_id, context["run_id"], self.table.name, self.of_partition("extract"))
        info = self.connection_info(target.conn_id)
        quarantine = StepQuarantine.open(info, TableRef.parse(str(target.table)), run, conn_id=target.conn_id)
        try:
            written = quarantine.write(*bad_lines_batch(bad))
        finally:
            quarantine.close()
        self.log.warning(
            "%d line(s) of %s did not parse and went to %s, e.g. %s",
            written,
            self.table.source.files.path if self.table.source.files else "the files",
            quarantine.table,
            bad[0].reason,
        )
        return written

    def check_watermark_ahead(self, details: dict[str, Any]) -> str | None:
        """Warn (or fail, with ``on_watermark_ahead: fail``) when the stored watermark is past the source's
        high-water mark: such a watermark reads nothing, run after run, while looking healthy."""
        from airflow_provider_sync.core.watermark import describe_json
        from airflow_provider_sync.errors import WatermarkError
        from airflow_provider_sync.watermarks import fix_hint, variable_key

        ahead = details.get("watermark_ahead")
        if not ahead:
            return None
        top = ahead.get("high_water_mark")
        source = "has no rows with a cursor" if top is None else f"has nothing past {describe_json(top)}"
        message = (
            f"watermark ahead of the source: {variable_key(self.pipeline_dag_id, self.table.name)} is at "
            f"{describe_json(ahead.get('watermark'))} but {self.table.source.table or 'the query'} {source}"
        )
        hint = fix_hint(self.pipeline_dag_id, self.table.name, self.table.incremental.strategy)
        if self.table.incremental.on_watermark_ahead == "fail":
            raise WatermarkError(f"{message} (incremental.on_watermark_ahead is fail). {hint}")
        self.log.warning("%s; no row is read until the source passes it. %s", message, hint)
        return message
