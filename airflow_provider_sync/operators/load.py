"""LoadOperator: write the staged rows into the target in one transaction (append, replace or upsert)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator, split_table_name

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.pipeline.specs import LoadSpec


def target_asset_uri(conn_id: str, table: str) -> str:
    """The Airflow Asset a sync's target table is known by, so downstream DAGs can be scheduled on it."""
    return f"sync://{conn_id}/{table}"


class LoadOperator(SyncTableOperator):
    """Loads the upstream manifest's rows. A failure rolls the target back to what it was."""

    ui_color = "#d9f2e3"
    audit_step = "load"

    def __init__(self, **kwargs: Any) -> None:
        from airflow.sdk import Asset

        super().__init__(**kwargs)
        target = self.table.target
        self.outlets = [*self.outlets, Asset(target_asset_uri(str(target.conn_id), str(target.table)))]

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
        )

    def run(self, context: Context) -> StepOutcome:
        from airflow_provider_sync.pipeline.load import load_from_staging
        from airflow_provider_sync.staging.manifest import StepRecord

        manifest = self.input_manifest(context)
        result = load_from_staging(self.load_spec(), manifest, logger=self.log)
        record = StepRecord("load", manifest.rows, result.rows_loaded, details=result.to_json())
        loaded = manifest.next_step(
            "load", manifest.files, manifest.rows, manifest.schema, record,
            rows_loaded=result.rows_loaded, rows_skipped=manifest.rows - result.rows_loaded,
        )
        return StepOutcome(
            loaded.to_json(), {"rows_loaded": result.rows_loaded, "rows_skipped": manifest.rows - result.rows_loaded}
        )
