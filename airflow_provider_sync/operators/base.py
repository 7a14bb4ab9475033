"""What every per-table operator shares: its table's settings, connections, staging and manifests.

Operators are thin: they read the previous task's manifest from XCom, call the engine (``pipeline/``) or a
pure transform (``core/``), and return the next manifest, which Airflow stores as their XCom value. Nothing
heavy is imported at module level so that DAG files parse fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_sync.config.resolved import TableSpec, load_table_spec

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.stream import BatchChannel
    from airflow_provider_sync.staging.manifest import Manifest

STAGING_ENV = "SYNC_STAGING_BASE"


def default_staging_base() -> str:
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.environ.get(STAGING_ENV) or f"file://{os.path.abspath(home)}/sync-staging"


@dataclass
class StepOutcome:
    """What a step hands on: its XCom value (JSON: a manifest, or the list a mapped task expands over),
    and the counts that go into its audit row."""

    xcom: Any
    audit: dict[str, Any] = field(default_factory=dict)


class SyncTableOperator(BaseOperator):
    """Base of the operators that work on one table of a pipeline.

    ``execute`` wraps :meth:`run` so that every try of every step leaves an audit row, success or failure.
    """

    template_fields: Sequence[str] = ("table_spec",)
    ui_color = "#e8f1fb"
    audit_step = "step"

    def __init__(
        self,
        *,
        table_spec: dict[str, Any],
        pipeline_info: dict[str, Any],
        input_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table_spec = table_spec
        self.pipeline_info = pipeline_info
        self.input_task_id = input_task_id
        #: The earlier stages' return values by task id, when this stage runs inside a fused task.
        self.handed_values: dict[str, Any] | None = None
        #: The range of the partition this stage works on (an ``ExtractRange`` as JSON, with its key
        #: slice), when it runs inside one task of a partitioned read.
        self.partition_range: dict[str, Any] | None = None
        #: The channel a fused table streams its batches through: the one the extract puts its batches
        #: into, the one a step or the load takes its batches from (None: they read the staged files).
        self.stream: BatchChannel | None = None
        #: The channel a streamed step puts its batches into, for the next step or the load (None: it
        #: stages them as files).
        self.stream_out: BatchChannel | None = None

    @cached_property
    def table(self) -> TableSpec:
        return load_table_spec(self.table_spec)

    @property
    def pipeline_dag_id(self) -> str:
        return str(self.pipeline_info["dag_id"])

    def connection_info(self, conn_id: str) -> ConnectionInfo:
        from airflow.sdk import BaseHook

        from airflow_provider_sync.dialects.connection import ConnectionInfo

        return ConnectionInfo.from_airflow(BaseHook.get_connection(conn_id))

    def lineage_dataset(self, conn_id: str, table: str) -> Any:
        """An OpenLineage dataset for a table, named after the database it lives in (no credentials)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset

        from airflow_provider_sync.targets import target_for

        info = self.connection_info(conn_id)
        namespace, name = target_for(info.conn_type).lineage(info, table)
        return Dataset(namespace=namespace, name=name)

    def source_lineage(self) -> list[Any]:
        source = self.table.source
        return [self.lineage_dataset(source.conn_id, source.table or "query")]

    def staging_root(self) -> Any:
        from airflow_provider_sync.staging.files import staging_root

        staging = self.table.staging
        return staging_root(staging.base or default_staging_base(), staging.conn_id)

    def of_partition(self, name: str) -> str:
        """``name`` as this stage's partition knows it (``validate#p2of8``): partitions of one run stage
        files and quarantine rows apart, so a retried partition replaces only its own."""
        key_slice = (self.partition_range or {}).get("partition")
        return name if not key_slice else f"{name}#p{key_slice['index']}of{key_slice['count']}"

    def step_directory(self, context: Context, step: str) -> Any:
        from airflow_provider_sync.staging.files import step_dir

        run_id, step = context["run_id"], self.of_partition(step)
        return step_dir(self.staging_root(), self.pipeline_dag_id, run_id, self.table.name, step)

    def input_manifest(self, context: Context) -> Manifest:
        from airflow_provider_sync.errors import TerminalError
        from airflow_provider_sync.staging.manifest import Manifest

        data = self.upstream_value(context, self.input_task_id)
        if not data:
            raise TerminalError(
                f"no manifest from upstream task {self.input_task_id!r}; clear and re-run that task first"
            )
        if isinstance(data, (list, tuple)):  # the loads of a partitioned read, one per partition
            from airflow_provider_sync.pipeline.partitions import merge_partition_manifests

            return merge_partition_manifests(list(data))
        return Manifest.from_json(data)

    def upstream_value(self, context: Context, task_id: str | None) -> Any:
        """What the stage ``task_id`` of this table returned: handed over in memory when the stages run
        in one task (``execution: fused``), else its XCom."""
        if self.handed_values is not None:
            return self.handed_values.get(str(task_id))
        group = self.task_id.rpartition(".")[0]
        if group and task_id and "." not in task_id:  # a stage of this table's task group
            task_id = f"{group}.{task_id}"
        return context["ti"].xcom_pull(task_ids=task_id)

    @classmethod
    def audit_counts(cls, record: dict[str, Any]) -> dict[str, int]:
        """What this stage's record in the manifest history adds to the run's audit row (rows extracted,
        valid, masked, loaded...); rejects by rule and key ids are read from every record alike."""
        return {}

    def prepare(self, context: Context) -> None:
        """Work done before the audited step, whose outcome (such as a skip) is not a step try."""

    def run(self, context: Context) -> StepOutcome:
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        return self.execute_stage(context)

    def execute_stage(self, context: Context) -> Any:
        """Run this stage with its audit row; the fused operator calls it for each stage it runs."""
        from airflow_provider_sync.operators.audit import start_record, write_audit

        self.prepare(context)

        record = start_record(self, context, self.audit_step)
        try:
            outcome = self.run(context)
        except BaseException as error:
            write_audit(self, record.failed(error), raise_errors=False)
            raise
        write_audit(self, record.succeeded(**outcome.audit))
        return outcome.xcom
