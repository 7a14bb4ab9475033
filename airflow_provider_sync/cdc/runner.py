"""One change-capture run per source database kind, behind one interface the operators use.

The target's positions table (written in the apply's transaction, see :mod:`.apply`) is where a run
starts from: it is the only record that commits together with the rows, so a crash anywhere re-reads
changes that the apply then skips. PostgreSQL's slot is advanced to the applied position once the apply
committed (WAL before it can then be recycled); MySQL/MariaDB keep nothing on the server.

A dialect names its capture class in ``Capabilities.change_capture``.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.dialects.types import TableRef
    from airflow_provider_sync.staging.manifest import Manifest

log = logging.getLogger(__name__)

#: Retained WAL above this is reported as a warning by ``status`` and the capture task.
RETAINED_WAL_WARNING_BYTES = 1 << 30


def position_variable_key(dag_id: str, table: str) -> str:
    """Where a target without tables (Kafka) keeps the applied position: an Airflow Variable, written after
    every message was confirmed (at least once: a crash before the write publishes those changes again)."""
    return f"sync_cdc:{dag_id}:{table}"


@dataclass(frozen=True)
class CaptureRun:
    """One table's capture. ``label`` names the table in the manifest and the positions table;
    ``applied`` is the position the target last applied (None: nothing yet, the run snapshots)."""

    source: ConnectionInfo
    table: TableRef
    label: str
    dag_id: str
    run_id: str
    keys: tuple[str, ...]
    batch_size: int
    applied: str | None


@dataclass(frozen=True)
class CaptureState:
    """What ``status`` shows of a capture: where the server keeps it, and what it costs."""

    description: str
    warning: str | None = None
    #: Bytes of change log the server keeps for this capture (PostgreSQL: WAL behind the slot).
    retained_bytes: int | None = None


class ChangeCapture(Protocol):
    def capture(self, run: CaptureRun, staging_dir: Any) -> Manifest: ...

    def after_apply(self, run: CaptureRun, manifest: Manifest) -> None: ...

    def state(self, source: ConnectionInfo, dag_id: str, table: TableRef) -> CaptureState: ...

    def drop(self, source: ConnectionInfo, dag_id: str, table: TableRef) -> str: ...


def change_capture_for(conn_type: str) -> ChangeCapture:
    """The capture of a source connection's database, or a TerminalError naming the ones that have one."""
    from airflow_provider_sync.dialects import DIALECTS, get_dialect

    path = get_dialect(conn_type).capabilities.change_capture
    if path is None:
        able = sorted(name for name in DIALECTS if get_dialect(name).capabilities.change_capture)
        raise TerminalError(
            f"strategy cdc reads a database's change log, which this release supports for "
            f"{', '.join(able)} sources, not {conn_type!r}; use a cursor strategy for this table"
        )
    module, _, name = path.partition(":")
    capture: ChangeCapture = getattr(importlib.import_module(module), name)()
    return capture


class PostgresCapture:
    """Logical decoding with ``pgoutput``: a publication and a slot per pipeline table."""

    def capture(self, run: CaptureRun, staging_dir: Any) -> Manifest:
        from airflow_provider_sync.dialects import postgres_capture as postgres

        request = postgres.CaptureRequest(
            connection=run.source,
            table=run.table,
            dag_id=run.dag_id,
            run_id=run.run_id,
            after_lsn=run.applied,
            keys=run.keys,
            batch_size=run.batch_size,
            label=run.label,
        )
        return postgres.capture_to_staging(request, staging_dir)

    def after_apply(self, run: CaptureRun, manifest: Manifest) -> None:
        from airflow_provider_sync.dialects import postgres_capture as postgres

        if manifest.high_water_mark is None:
            return
        names = postgres.cdc_names(run.dag_id, run.table)
        conn = postgres.connect(run.source)
        try:
            postgres.advance_slot(conn, names.slot, str(manifest.high_water_mark))
            conn.commit()
        finally:
            conn.close()

    def state(self, source: ConnectionInfo, dag_id: str, table: TableRef) -> CaptureState:
        from airflow_provider_sync.dialects import postgres_capture as postgres

        names = postgres.cdc_names(dag_id, table)
        conn = postgres.connect(source)
        try:
            retained = postgres.retained_wal_bytes(conn, names.slot)
        finally:
            conn.rollback()
            conn.close()
        if retained is None:
            return CaptureState(f"slot {names.slot}: not created yet (the first run creates it)")
        description = (
            f"slot {names.slot}, publication {names.publication}: {retained:,} bytes of WAL retained"
        )
        warning = None
        if retained > RETAINED_WAL_WARNING_BYTES:
            warning = (
                f"replication slot {names.slot} retains {retained:,} bytes of WAL on the source: run the "
                f"pipeline (each run lets the slot advance) or drop it with `airflow-sync cdc drop {dag_id}`"
            )
        return CaptureState(description, warning, retained)

    def drop(self, source: ConnectionInfo, dag_id: str, table: TableRef) -> str:
        from airflow_provider_sync.dialects import postgres_capture as postgres

        names = postgres.cdc_names(dag_id, table)
        conn = postgres.connect(source)
        try:
            postgres.drop_cdc(conn, names.slot, names.publication)
            conn.commit()
        finally:
            conn.close()
        return f"dropped slot {names.slot} and publication {names.publication} (if they existed)"


class BinlogCapture:
    """The MySQL/MariaDB row binlog, read from the position the target applied last."""

    def capture(self, run: CaptureRun, staging_dir: Any) -> Manifest:
        from airflow_provider_sync.dialects import mysql_capture as mysql

        if run.applied is None:
            return mysql.snapshot_to_staging(
                run.source,
                run.table.name,
                run.table.schema,
                run.keys,
                staging_dir,
                run.dag_id,
                run.run_id,
                step="extract",
                batch_size=run.batch_size,
                label=run.label,
            )
        return mysql.capture_to_staging(
            run.source,
            run.table.name,
            run.table.schema,
            run.keys,
            binlog_position(run.applied),
            staging_dir,
            run.dag_id,
            run.run_id,
            step="extract",
            batch_size=run.batch_size,
            label=run.label,
        )

    def after_apply(self, run: CaptureRun, manifest: Manifest) -> None:
        """Nothing to release: the server keeps binlogs by its own expiry settings."""

    def state(self, source: ConnectionInfo, dag_id: str, table: TableRef) -> CaptureState:
        return CaptureState("row binlog: the position lives in the target's sync_cdc_positions table")

    def drop(self, source: ConnectionInfo, dag_id: str, table: TableRef) -> str:
        return "no server-side state to drop for the binlog"


def binlog_position(text: str) -> Any:
    """The :class:`~.mysql_binlog.BinlogPosition` of a stored ``file:offset`` position."""
    from airflow_provider_sync.dialects.mysql_binlog import BinlogPosition

    file, _, offset = text.rpartition(":")
    if not file or not offset.isdigit():
        raise TerminalError(
            f"stored binlog position {text!r} is not '<file>:<offset>'; run `airflow-sync cdc drop` for the "
            "pipeline so the next run takes a new snapshot"
        )
    return BinlogPosition(file, int(offset), None)
