"""LoadOperator: send the staged rows to the target: a database table in one transaction (append, replace
or upsert), or a message broker topic with every delivery confirmed."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator, split_table_name

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.pipeline.specs import LoadSpec, PublishOptions, TableOptions

#: Where staged rows go, by the target connection's type (``"module:function"``); any other type is a
#: database loaded by :data:`DEFAULT_SINK`. A sink takes ``(spec, manifest, *, logger, on_load_error)`` and
#: returns a result with ``rows_loaded`` and ``to_json()``.
SINKS: dict[str, str] = {
    "kafka": "airflow_provider_sync.pipeline.publish:publish_from_staging",
}
DEFAULT_SINK = "airflow_provider_sync.pipeline.load:load_from_staging"


def sink_for(conn_type: str) -> Callable[..., Any]:
    """The function that writes staged rows to a target whose connection is of type ``conn_type``."""
    module_name, _, function = SINKS.get(conn_type.strip().lower(), DEFAULT_SINK).partition(":")
    sink: Callable[..., Any] = getattr(importlib.import_module(module_name), function)
    return sink


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
        self.outlets = [*self.outlets, Asset(target_asset_uri(str(target.conn_id), str(target.table)))]

    def table_options(self) -> TableOptions | None:
        options = self.table.target.clickhouse
        if options is None:
            return None
        from airflow_provider_sync.dialects.clickhouse_layout import ClickHouseTableOptions

        return ClickHouseTableOptions(
            engine=options.engine,
            version_column=options.version_column,
            partition_by=options.partition_by,
            low_cardinality=tuple(options.low_cardinality or ()),
        )

    def publish_options(self) -> PublishOptions:
        from airflow_provider_sync.pipeline.specs import PublishOptions

        target, source = self.table.target, self.table.source
        source_schema, source_table = split_table_name(str(source.table or target.table))
        _, target_table = split_table_name(str(target.table))
        message = target.kafka
        return PublishOptions(
            topic=target.topic or target_table,
            source_table=source_table,
            source_schema=source_schema,
            key_format=(message.key_format if message else None) or "json",
            key_separator=(message.key_separator if message else None) or "|",
            headers=tuple(sorted(((message.headers if message else None) or {}).items())),
        )

    def load_spec(self) -> LoadSpec:
        from airflow_provider_sync.pipeline.specs import LoadSpec

        target = self.table.target
        schema, name = split_table_name(str(target.table))
        return LoadSpec(
            connection=self.connection_info(str(target.conn_id)),
            table=name,
            schema=schema,
            mode=target.mode or "upsert",
            keys=tuple(target.keys or ()),
            create_if_missing=bool(target.create_if_missing),
            pipeline=f"{self.pipeline_dag_id}.{self.table.name}",
            table_options=self.table_options(),
            publish=self.publish_options(),
            target_shared=self.target_shared(),
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
        output = self.lineage_dataset(str(target.conn_id), str(target.table))
        return OperatorLineage(inputs=self.source_lineage(), outputs=[output])

    def run(self, context: Context) -> StepOutcome:
        import time

        from airflow_provider_sync.staging.manifest import StepRecord

        manifest = self.input_manifest(context)
        spec = self.load_spec()
        sink = sink_for(spec.connection.conn_type)
        on_load_error = self.table.target.on_load_error or "fail"
        started = time.monotonic()
        result = sink(spec, manifest, logger=self.log, on_load_error=on_load_error)
        details = {"seconds": round(time.monotonic() - started, 3), **result.to_json()}
        skipped = manifest.rows - result.rows_loaded
        record = StepRecord("load", manifest.rows, result.rows_loaded, details=details)
        self.describe_asset_event(context, manifest, result.rows_loaded)
        loaded = manifest.next_step(
            "load", manifest.files, manifest.rows, manifest.schema, record,
            rows_loaded=result.rows_loaded, rows_skipped=skipped,
        )
        return StepOutcome(loaded.to_json(), {"rows_loaded": result.rows_loaded, "rows_skipped": skipped})

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
        events[Asset(target_asset_uri(str(target.conn_id), str(target.table)))].extra = {
            "rows_loaded": rows_loaded,
            "rows_staged": manifest.rows,
            "watermark": cursor_value(reached),
            "cursor_column": manifest.cursor_column,
        }
