"""FusedSyncOperator: a table's whole sync in one task (``execution: fused``).

A per-step table pays a task start per stage (a process, the imports, the metadata round trips): for a
run that moves a few thousand rows that is most of its time. A fused table runs the same stages
(:func:`~airflow_provider_sync.operators.stages.table_stages`) one after the other in one task, each stage
handing its return value to the next in memory instead of through XCom. Nothing else changes: every stage
still stages its files (kept for inspection and for the retry), writes its own audit row, and the
watermark is committed only after the load has committed. A retry of the task runs the stages again from
the extract, which reads from the watermark that was not moved; the load's upsert keys or append ledger
make the rows of a load that committed before a crash harmless.

The extract, the steps and the load of most tables stream instead: each on a thread of its own, the
batches handed on through bounded channels, no step staging files of its own (see
:mod:`~airflow_provider_sync.operators.fused_stream`, which also says why a table whose steps write the
target database does not stream into a database that lets one writer in at a time); the load commits once
every stage before it finished. One mapped task of a partitioned read (``scope="partition"``) runs
extract → steps → load of its key range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_sync.operators.base import SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.operators.stages import Stage


class FusedSyncOperator(SyncTableOperator):
    """Runs extract → steps → load → commit_watermark → audit of one table in one task."""

    ui_color = "#d9ecf2"
    audit_step = "sync"

    def __init__(
        self, *, scope: Literal["table", "partition"] = "table", partition_range: Any = None, **kwargs: Any
    ) -> None:
        from airflow_provider_sync.operators.load import target_asset

        super().__init__(**kwargs)
        #: ``partition``: one mapped task of a partitioned read, running extract → steps → load over
        #: ``partition_range`` (None: the whole range past the watermark).
        self.scope = scope
        self.partition_range = partition_range
        # The load stage describes the event of this asset; the task that runs it must declare it.
        asset = target_asset(self.table)
        if asset not in self.outlets:
            self.outlets = [*self.outlets, asset]

    def stage_operator(self, stage: Stage) -> SyncTableOperator:
        """The stage's operator, built for this run only (it belongs to no DAG)."""
        import importlib

        module, _, name = stage.operator.rpartition(".")
        operator_class = getattr(importlib.import_module(module), name)
        operator: SyncTableOperator = operator_class(
            task_id=stage.task_id,
            table_spec=self.table_spec,
            pipeline_info=self.pipeline_info,
            **stage.arguments,
        )
        return operator

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_sync.operators.fused_stream import stream_stages
        from airflow_provider_sync.operators.stages import partition_stages, table_stages

        handed: dict[str, Any] = {}
        result: dict[str, Any] = {}
        stages = partition_stages(self.table) if self.scope == "partition" else table_stages(self.table)
        operators = []
        for stage in stages:
            operator = self.stage_operator(stage)
            operator.handed_values = handed
            operator.partition_range = self.partition_range
            operators.append(operator)
        if self.streams():
            loads = next(i for i, operator in enumerate(operators) if operator.task_id == "load") + 1
            streamed, operators = operators[:loads], operators[loads:]
            self.log.info("Stages %s, streamed", " -> ".join(operator.task_id for operator in streamed))
            handed.update(stream_stages(context, streamed, self.table.name))
            result = handed["load"]
        for operator in operators:
            self.log.info("Stage %s", operator.task_id)
            result = operator.execute_stage(context)
            handed[operator.task_id] = result
        return result

    def streams(self) -> bool:
        """Whether the extract, the steps and the load run side by side, the batches streamed between them.

        Not for every table, each for a reason that holds whatever the steps:

        * ``strategy: cdc``: its change set is applied as a whole (deletes by key, then upserts, then the
          position), read from the staged change files;
        * a file source: it quarantines unparsable lines into the target database while it runs, and its
          file ledger describes the files as staged;
        * ``mode: append``: the load labels its ledger row with the range's end before it writes a row, and
          skips a range already loaded, which it knows only from the finished extract;
        * ``on_load_error: quarantine`` and a soft delete column: these loads set rows apart batch by batch
          (rejected rows bisected under savepoints, flagged keys gathered in a work table) and name the
          quarantined rows from the manifest they start with, which a streamed load holds only at its
          commit; they keep the staged path until they are proven streamed;
        * a target without transactions (or tables): rows written before a stage failed could not be
          taken back, so the load may start only once every stage before it succeeded;
        * a step that cannot take its batches from a channel, or one that touches the target database
          while its load holds the database's only write lock (see ``operators/fused_stream.py``);
        * a partition whose load cannot share the target's lock with its siblings' (see
          ``pipeline/ownership.py``): a streamed load holds the lock from its first batch, so the siblings'
          extracts would wait for it too, instead of only their loads.
        """
        from airflow_provider_sync.operators.fused_stream import steps_stream
        from airflow_provider_sync.targets import target_for

        table = self.table
        if table.incremental.strategy == "cdc" or table.source.files is not None:
            return False
        target = table.target
        if target.mode == "append" or target.on_load_error != "fail" or table.deletes.soft_delete_column:
            return False
        conn_type = self.connection_info(target.conn_id).conn_type
        capabilities = target_for(conn_type).capabilities
        if not (capabilities.tables and capabilities.transactions) or not steps_stream(table, conn_type):
            return False
        one_of_several = self.scope == "partition" and (self.partition_range or {}).get("partition")
        return not one_of_several or self.partition_loads_side_by_side(conn_type)

    def partition_loads_side_by_side(self, conn_type: str) -> bool:
        """Whether this partition's load shares the target's lock with its siblings' (as
        :func:`~airflow_provider_sync.pipeline.ownership.side_by_side` decides it for the load)."""
        from airflow_provider_sync.dialects import get_dialect

        partitions = self.table.source.partitions
        renames = any("schema_map" in step for step in self.table.steps)  # the load then has no key slice
        return (
            partitions is not None
            and not renames
            and partitions.column in self.table.target.keys
            and get_dialect(conn_type).capabilities.target_lock_shared
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Reported when the OpenLineage provider is installed: source table in, target table out."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        target = self.table.target
        inputs = [] if self.table.source.files else self.source_lineage()
        return OperatorLineage(inputs=inputs, outputs=[self.lineage_dataset(target.conn_id, target.table)])
