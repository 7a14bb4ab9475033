"""``SubsetOperator``: fill a pipeline's targets with a referentially complete, masked subset of its
sources (test data from production).

    SubsetOperator(
        task_id="test_data_subset",
        pipeline="/opt/airflow/dag_configs/test_data_subset.yaml",   # a file with a `subset` section
    )

Keeps the rows the file's ``subset`` section selects and every row they reference (see
``pipeline/subset.py``), passes them through each table's mask and encrypt steps, and replaces the target
tables' contents with them. Returns (XCom) the row count per table, never values. Connections, the mask
secret and keyrings come from Airflow connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.subset import Resolvers


def _connection_info(conn_id: str) -> ConnectionInfo:
    from airflow.sdk import BaseHook

    from airflow_provider_sync.dialects.connection import ConnectionInfo

    return ConnectionInfo.from_airflow(BaseHook.get_connection(conn_id))


def airflow_resolvers() -> Resolvers:
    """Connections, mask secrets and keyrings from Airflow connections, as a running task reads them."""
    from airflow_provider_sync.operators.steps import keyring_from_connection, mask_secret
    from airflow_provider_sync.pipeline.subset import Resolvers

    return Resolvers(info_of=_connection_info, secret_of=mask_secret, keyring_of=keyring_from_connection)


class SubsetOperator(BaseOperator):
    """Replace the targets of ``pipeline`` by the subset its ``subset`` section describes (module docs)."""

    template_fields: Sequence[str] = ("pipeline",)
    ui_color = "#e0f0e8"

    def __init__(self, *, pipeline: str, dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.count_only = dry_run  # BaseOperator.dry_run is a method

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_sync.config.resolve import load_pipeline
        from airflow_provider_sync.pipeline.subset import plan_subset, run_subset

        plan = plan_subset(load_pipeline(self.pipeline))
        result = run_subset(plan, airflow_resolvers(), dry_run=self.count_only)
        self.log.info(
            "subset of %s%s: %d of %d root rows, rows per table %s (%d rounds)",
            result.dag_id,
            " (dry run)" if result.dry_run else "",
            result.root_kept,
            result.root_matching,
            result.rows,
            result.rounds,
        )
        return result.to_json()
