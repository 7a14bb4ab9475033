"""LoadOperator: send the staged rows to the target: a database table in one transaction (append, replace
or upsert), or a message broker topic with every delivery confirmed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.pipeline.specs import LoadSpec


def sink_for(conn_type: str) -> Callable[..., Any]:
    """The function that writes staged rows to a target whose connection is of type ``conn_type``."""
    from airflow_provider_sync.targets import target_for

    return target_for(conn_type).writer()


def target_asset_uri(conn_id: str, table: str) -> str:
    """The Airflow Asset a sync's target table is known by, so downstream DAGs can be scheduled on it."""
    return f"sync://{conn_id}/{table}"


def target_asset(table: TableSpec) -> Any:
    """The Asset of a table's target, which the task running its load declares as an outlet."""
    from airflow.sdk import Asset

    return Asset(target_asset_uri(table.target.conn_id, table.target.table))


class LoadOperator(SyncTableOperator):
    """Loads the upstream manifest's rows. A failure leaves the target as it was (database targets) or
    fails before the watermark moves (broker targets)."""

    ui_color = "#d9f2e3"
    audit_step = "load"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outlets = [*self.outlets, target_asset(self.table)]

    @classmethod
    def audit_counts(cls, record: dict[str, Any]) -> dict[str, int]:
        details = record.get("details") or {}
        loaded = int(details.get("rows_loaded", record.get("rows_out")) or 0)
        flagged = int(details.get("flagged") or 0)
        skipped = int(record.get("rows_in") or 0) - loaded - flagged
        return {
            "rows_loaded": loaded,
            "rows_skipped": skipped,
            "rows_deleted": int(details.get("deleted") or 0),
        }

    def load_spec(self) -> LoadSpec:
        from airflow_provider_sync.pipeline.specs import load_spec_for

        connection = self.connection_info(self.table.target.conn_id)
        spec = load_spec_for(self.table, self.pipeline_dag_id, connection, shared=self.target_shared())
        key_slice = (self.partition_range or {}).get("partition")
        renames = any("schema_map" in step for step in self.table.steps)  # the slice names source columns
        if key_slice and not renames:
            from dataclasses import replace

            from airflow_provider_sync.core.partitions import KeySlice

            spec = replace(spec, key_slice=KeySlice.from_json(key_slice))
        return spec

    def applies_changes(self, spec: LoadSpec) -> bool:
        """A change-log table into a target with tables goes through the change apply; a broker target
        publishes the change events themselves."""
        from airflow_provider_sync.targets import target_for

        has_tables = target_for(spec.connection.conn_type).capabilities.tables
        return self.table.incremental.strategy == "cdc" and has_tables

    def change_sink(self) -> Callable[..., Any]:
        """Applies a change manifest (deletes by key, upserts, the applied position) in one transaction;
        ``deletes.keep_flagged`` flags deleted rows in ``deletes.soft_delete_column`` instead."""
        from airflow_provider_sync.cdc.apply import apply_changes
        from airflow_provider_sync.errors import TerminalError

        deletes = self.table.deletes
        flag = deletes.soft_delete_column if deletes.keep_flagged else None

        def apply(spec: LoadSpec, manifest: Any, *, logger: Any, on_load_error: str) -> Any:
            if on_load_error != "fail":
                raise TerminalError(
                    f"table {self.table.name}: strategy cdc applies a change set as a whole; rows the target "
                    "rejects cannot be quarantined one by one - remove target.on_load_error"
                )
            return apply_changes(spec, manifest, deleted_column=flag, logger=logger)

        return apply

    def target_shared(self) -> bool:
        """``target.shared: true``: this table's target may also be loaded by other pipelines."""
        resolved = getattr(self.table, "target_shared", None)
        if resolved is None:
            resolved = getattr(self.table.target, "shared", False)
        return bool(resolved)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Reported when the OpenLineage provider is installed: source table in, target table out."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        target = self.table.target
        output = self.lineage_dataset(target.conn_id, target.table)
        return OperatorLineage(inputs=self.source_lineage(), outputs=[output])

    def run(self, context: Context) -> StepOutcome:
        import time

        from airflow_provider_sync.staging.manifest import StepRecord

        spec = self.load_spec()
        started = time.monotonic()
        if self.stream is not None:
            manifest, result = self.load_streamed(context, spec)
        else:
            manifest = self.input_manifest(context)
            sink = self.change_sink() if self.applies_changes(spec) else sink_for(spec.connection.conn_type)
            on_load_error = self.table.target.on_load_error
            result = sink(spec, manifest, logger=self.log, on_load_error=on_load_error)
        details = {"seconds": round(time.monotonic() - started, 3), **result.to_json()}
        deleted, flagged = getattr(result, "deleted", 0), getattr(result, "flagged", 0)
        skipped = manifest.rows - result.rows_loaded - flagged
        record = StepRecord("load", manifest.rows, result.rows_loaded, details=details)
        self.describe_asset_event(context, manifest, result.rows_loaded)
        loaded = manifest.next_step(
            "load",
            manifest.files,
            manifest.rows,
            manifest.schema,
            record,
            rows_loaded=result.rows_loaded,
            rows_skipped=skipped,
        )
        counts = {"rows_loaded": result.rows_loaded, "rows_skipped": skipped, "rows_deleted": deleted}
        return StepOutcome(loaded.to_json(), counts)

    def load_streamed(self, context: Context, spec: LoadSpec) -> tuple[Any, Any]:
        """Load the batches the stage before streams (a fused table: the extract, or the last step): the
        transaction commits only once that stage, and so every stage before it, finished, with its manifest
        in hand; an error of any of them rolls the load back. That manifest may list no file (a streamed
        step stages none): the load reads only its rows, range and history."""
        from airflow_provider_sync.pipeline.load import load_from_staging
        from airflow_provider_sync.staging.manifest import Manifest, schema_to_text

        stream = self.stream
        assert stream is not None
        upstream: list[Manifest] = []

        def before_commit() -> None:
            upstream.append(Manifest.from_json(stream.result()))

        try:
            schema = stream.schema()
            run_id, table = str(context["run_id"]), self.table.name
            opened = Manifest(self.pipeline_dag_id, run_id, table, "extract", [], 0, schema_to_text(schema))
            result = load_from_staging(
                spec,
                opened,
                logger=self.log,  # type: ignore[arg-type]  # Airflow's logger has the stdlib interface
                before_commit=before_commit,
                batches=iter(stream),
            )
        finally:
            stream.cancel()  # the stages before stop if the load ended first
        return upstream[0], result  # the load counted the rows it was handed

    def describe_asset_event(self, context: Context, manifest: Any, rows_loaded: int) -> None:
        """Put the rows loaded and the watermark the target now reaches into the target Asset's event, so
        a DAG scheduled on the Asset (and the UI) can tell what arrived."""
        from airflow.sdk import Asset

        from airflow_provider_sync.operators.audit import cursor_value

        events = context.get("outlet_events")
        if events is None:  # run outside a task (no Airflow context): nothing to describe
            return
        reached = (manifest.last or {}).get("cursor", (manifest.range or {}).get("start"))
        target = self.table.target
        events[Asset(target_asset_uri(target.conn_id, target.table))].extra = {
            "rows_loaded": rows_loaded,
            "rows_staged": manifest.rows,
            "watermark": cursor_value(reached),
            "cursor_column": manifest.cursor_column,
        }
