"""LoadOperator: send the staged rows to the target: a database table in one transaction (append, replace
or upsert), or a message broker topic with every delivery confirmed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.dialects.types import split_table_name
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.pipeline.specs import LoadSpec


def sink_for(conn_type: str) -> Callable[..., Any]:
    """The function that writes staged rows to a target whose connection is of type ``conn_type``."""
    from airflow_provider_sync.targets import target_for

    return target_for(conn_type).writer()


def target_asset_uri(conn_id: str, table: str) -> str:
    """The Airflow Asset a sync's target table is known by, so downstream DAGs can be scheduled on it."""
    return f"sync://{conn_id}/{table}"


class LoadOperator(SyncTableOperator):
    """Loads the upstream manifest's rows. A failure leaves the target as it was (database targets) or
    fails before the watermark moves (broker targets)."""

    ui_color = "#d9f2e3"
    audit_step = "load"

    def __init__(self, **kwargs: Any) -> None:
        from airflow.sdk import Asset

        super().__init__(**kwargs)
        target = self.table.target
        self.outlets = [*self.outlets, Asset(target_asset_uri(target.conn_id, target.table))]

    def load_spec(self) -> LoadSpec:
        from airflow_provider_sync.pipeline.specs import LoadSpec
        from airflow_provider_sync.targets import target_for
        from airflow_provider_sync.targets.registry import check_options_match

        target = self.table.target
        schema, name = split_table_name(target.table)
        connection = self.connection_info(target.conn_id)
        kind = target_for(connection.conn_type)
        check_options_match(target.table, target.conn_id, connection.conn_type, target)
        deletes = self.table.deletes
        soft_delete = None if deletes.keep_flagged else deletes.soft_delete_column
        if soft_delete is not None and not kind.capabilities.deletes:
            raise TerminalError(
                f"table {self.table.name}: deletes.soft_delete_column needs a target that deletes rows by "
                f"key, and {kind.name} targets cannot; set deletes.keep_flagged: true to load the flag"
            )
        return LoadSpec(
            connection=connection,
            table=name,
            schema=schema,
            mode=target.mode,
            keys=tuple(target.keys),
            create_if_missing=target.create_if_missing,
            pipeline=f"{self.pipeline_dag_id}.{self.table.name}",
            target_shared=self.target_shared(),
            soft_delete_column=soft_delete,
            **kind.load_options(self.table),
        )

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

        manifest = self.input_manifest(context)
        spec = self.load_spec()
        sink = sink_for(spec.connection.conn_type)
        on_load_error = self.table.target.on_load_error
        started = time.monotonic()
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
