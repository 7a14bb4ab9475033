"""FusedSyncOperator: a table's whole sync in one task (``execution: fused``).

A per-step table pays a task start per stage (a process, the imports, the metadata round trips): for a
run that moves a few thousand rows that is most of its time. A fused table runs the same stages
(:func:`~airflow_provider_sync.operators.stages.table_stages`) one after the other in one task, each stage
handing its return value to the next in memory instead of through XCom. Nothing else changes: every stage
still stages its files (kept for inspection and for the retry), writes its own audit row, and the
watermark is committed only after the load has committed. A retry of the task runs the stages again from
the extract, which reads from the watermark that was not moved; the load's upsert keys or append ledger
make the rows of a load that committed before a crash harmless.

When no step stands between them and the load needs no staged file of its own, the extract and the load
run side by side: the extract on a thread, handing each batch it stages to the load through a bounded
channel (:mod:`~airflow_provider_sync.pipeline.stream`); the load commits once the extract finished. One
mapped task of a partitioned read (``scope="partition"``) runs extract → steps → load of its key range.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

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
            self.log.info("Stages extract and load, streamed")
            handed["extract"], handed["load"] = self.extract_into_load(context, operators[0], operators[1])
            operators = operators[2:]
            result = handed["load"]
        for operator in operators:
            self.log.info("Stage %s", operator.task_id)
            result = operator.execute_stage(context)
            handed[operator.task_id] = result
        return result

    def streams(self) -> bool:
        """Whether the extract's batches go straight into the load: no step between them, and a load
        into a transactional database that needs no staged file of its own (``append`` labels its ledger
        row with the range's end; rows set apart or flagged go through the per-batch paths)."""
        from airflow_provider_sync.targets import target_for

        table = self.table
        if table.steps or table.incremental.strategy == "cdc" or table.source.files is not None:
            return False
        target = table.target
        if target.mode == "append" or target.on_load_error != "fail" or table.deletes.soft_delete_column:
            return False
        capabilities = target_for(self.connection_info(target.conn_id).conn_type).capabilities
        return bool(capabilities.tables and capabilities.transactions)

    def extract_into_load(
        self, context: Context, extract: SyncTableOperator, load: SyncTableOperator
    ) -> tuple[Any, Any]:
        """Run the extract on a thread that hands each staged batch to the load running here; the load
        commits only after the extract finished. Returns both stages' values.

        The extract's audit row is written once the load ended: the audit table may live in the target
        database, which the load's open transaction holds (SQLite lets one writer in at a time)."""
        import threading

        from airflow_provider_sync.operators.audit import start_record, write_audit
        from airflow_provider_sync.pipeline.stream import BatchChannel

        channel = BatchChannel()
        extract.stream = load.stream = channel
        extract.prepare(context)
        record = start_record(extract, context, extract.audit_step)
        outcome: list[StepOutcome] = []

        def produce() -> None:
            try:
                outcome.append(extract.run(context))
                channel.close(outcome[0].xcom)
            except BaseException as error:
                channel.fail(error)

        producer = threading.Thread(target=produce, name=f"extract {self.table.name}", daemon=True)
        producer.start()
        try:
            loaded = load.execute_stage(context)
        finally:
            channel.cancel()
            producer.join()
            if outcome:
                write_audit(extract, record.succeeded(**outcome[0].audit), raise_errors=not sys.exc_info()[0])
            else:
                write_audit(extract, record.failed(_producer_error(channel)), raise_errors=False)
        return channel.result(), loaded

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Reported when the OpenLineage provider is installed: source table in, target table out."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        target = self.table.target
        inputs = [] if self.table.source.files else self.source_lineage()
        return OperatorLineage(inputs=inputs, outputs=[self.lineage_dataset(target.conn_id, target.table)])


def _producer_error(channel: Any) -> BaseException:
    try:
        channel.result()
    except BaseException as error:
        return error
    return RuntimeError("the extract did not finish")
