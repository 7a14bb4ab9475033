"""The quarantine of one try of a transform step (validate, schema_map): the rows it took out, with why.

Opened when the step rejects its first rows, on its own connection to the target database: the quarantine
table (``sync_quarantine`` next to the target table) is created when missing, and rows an earlier try of the
same step quarantined for this run are deleted first, so a retried step does not quarantine them twice.
Each write commits, so the rows stay even when the step fails afterwards.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.quarantine import DEFAULT_QUARANTINE_TABLE, QuarantineWriter
from airflow_provider_sync.targets import target_for

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.connection import ConnectionInfo


@dataclass(frozen=True)
class StepRun:
    """Which rows of the quarantine table belong to one step of one run."""

    dag_id: str
    run_id: str
    table: str
    step: str


class StepQuarantine:
    """Appends one step's rejected rows to the quarantine table; :meth:`close` ends its connection."""

    def __init__(self, writer: QuarantineWriter, run: StepRun, resources: ExitStack) -> None:
        self.writer = writer
        self.run = run
        self._resources = resources

    @classmethod
    def open(cls, info: ConnectionInfo, target: TableRef, run: StepRun, *, conn_id: str) -> StepQuarantine:
        """Connect to the target's database (``info``, of connection ``conn_id``), create its quarantine
        table when missing and delete what an earlier try of ``run`` quarantined."""
        kind = target_for(info.conn_type)
        if not kind.capabilities.quarantine:
            raise TerminalError(
                f"step {run.step!r} quarantines rows, but target connection {conn_id!r} is a {kind.name} "
                "target, which has no quarantine table; use on_invalid drop/fail or a database target"
            )
        resources = ExitStack()
        try:
            writer = resources.enter_context(
                QuarantineWriter.open(info, TableRef(DEFAULT_QUARANTINE_TABLE, target.schema))
            )
            writer.forget(run.dag_id, run.run_id, run.table, run.step)
        except BaseException:
            resources.close()
            raise
        return cls(writer, run, resources)

    @property
    def table(self) -> TableRef:
        return self.writer.table

    def write(self, rows: pa.RecordBatch, rules: list[str], reasons: list[str]) -> int:
        """Append ``rows`` (already protected) with the rule each broke and why; returns the rows written."""
        run = self.run
        return self.writer.write(run.dag_id, run.run_id, run.table, run.step, rows, rules, reasons)

    def close(self) -> None:
        self._resources.close()
