"""MySQL/MariaDB change data capture from the row binlog (mysql-replication), staged as change batches.

A run fixes its end position first (``SHOW MASTER STATUS``: the binlog end, always a transaction
boundary because a transaction is written to the binlog whole at commit), then streams the binlog from
the previous run's end up to it. Rows are buffered per transaction and staged only when its commit event
(``Xid``, or a ``COMMIT`` query for non-transactional tables) ends at or before the end position: a
transaction committed later is wholly after the end and belongs to the next run.

The first run starts from a snapshot: :func:`snapshot_position_and_rows` reads the table inside
``START TRANSACTION WITH CONSISTENT SNAPSHOT``, and MariaDB reports in ``Binlog_snapshot_file`` /
``Binlog_snapshot_position`` the binlog position of exactly that snapshot (at REPEATABLE READ): since group
commit, the binlog takes part in the engines' commit ordering, so the InnoDB read view and the binlog
position are taken at the same point of it - every transaction committed before the position is in the
snapshot and every later one is in the binlog after it (MariaDB KB "Enhancements for START TRANSACTION
WITH CONSISTENT SNAPSHOT"; Percona Server has the same, MySQL does not). Snapshot + capture from that
position therefore loses and doubles nothing (without ``FLUSH TABLES WITH READ LOCK``).

Positions are file/offset (both servers); the GTID at the same point is recorded when the server has it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.mysql import MySQLDialect
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.staging.manifest import Manifest, StepRecord, schema_to_text

from .mysql_binlog import (
    RESNAPSHOT,
    BinlogCapture,
    BinlogPosition,
    binlog_setting_problems,
    check_binlog_settings,
    check_position_available,
    current_position,
    fetchone,
    pipeline_server_id,
    snapshot_position,
    stream_settings,
)
from .mysql_capture_types import CaptureTable, changes_to_batch, read_column_details, with_change_columns

if TYPE_CHECKING:
    from airflow_provider_sync.staging.files import StageWriter

log = logging.getLogger(__name__)


def describe_table(
    dialect: MySQLDialect, conn: Any, table: str, schema: str | None, key_columns: Sequence[str]
) -> CaptureTable:
    """The table's columns and key; a TerminalError when it has no primary key and none is configured."""
    database = schema or fetchone(conn, "SELECT DATABASE()")[0]
    if not database:
        raise TerminalError(f"table {table}: give its schema (database); the connection names none")
    ref = TableRef(table, str(database))
    columns = [replace(c, declared=dialect.declared_type(c.db_type)) for c in dialect.get_columns(conn, ref)]
    keys = list(key_columns) or dialect.get_primary_key(conn, ref)
    if not keys:
        raise TerminalError(
            f"table {ref} has no primary key, so its binlog changes cannot be matched to target rows; add a "
            "primary key or set key_columns for it in the pipeline"
        )
    missing = [k for k in keys if k not in {c.name for c in columns}]
    if missing:
        raise TerminalError(f"key column(s) {', '.join(missing)} are not columns of {ref}")
    return CaptureTable(ref, columns, keys, read_column_details(dialect, conn, ref.schema or "", ref.name))


def _manifest(
    capture: CaptureTable,
    writer: Any,
    *,
    dag_id: str,
    run_id: str,
    step: str,
    start: BinlogPosition | None,
    stop: BinlogPosition,
    counters: dict[str, int],
    label: str | None = None,
) -> Manifest:
    """The run's manifest: ``high_water_mark`` is the position the next run starts from. A snapshot
    (no ``start``) is ``cdc_snapshot``: applying it also removes target rows the table no longer has."""
    return Manifest(
        dag_id=dag_id,
        run_id=run_id,
        table=label or str(capture.ref),
        step=step,
        files=writer.files,
        parts=[part.to_json() for part in writer.parts],
        rows=writer.rows,
        schema=schema_to_text(capture.schema),
        range={"mode": "binlog", "start": start.to_json() if start else None, "end": stop.to_json()},
        high_water_mark=stop.to_json(),
        strategy="cdc" if start is not None else "cdc_snapshot",
        key_columns=capture.key_columns,
        counters=counters,
        history=[StepRecord(step, writer.rows, writer.rows, details={"end": stop.text})],
    )


# ----------------------------------------------------------------- snapshot
@dataclass
class SnapshotRead:
    """A consistent read of the table: its binlog position and its rows as ``insert`` change batches."""

    position: BinlogPosition
    table: CaptureTable
    batches: Iterator[pa.RecordBatch]


@contextmanager
def snapshot_position_and_rows(
    connection_info: ConnectionInfo,
    table: str,
    schema: str | None = None,
    key_columns: Sequence[str] = (),
    *,
    batch_size: int = 10_000,
) -> Iterator[SnapshotRead]:
    """Open a consistent snapshot and yield its binlog position with the table's rows (read lazily
    inside the snapshot, in key order); capture from ``position`` continues it exactly."""
    dialect = MySQLDialect()
    conn = dialect.connect(connection_info)
    try:
        check_binlog_settings(conn)
        dialect.begin_snapshot(conn)  # REPEATABLE READ + START TRANSACTION WITH CONSISTENT SNAPSHOT
        position = snapshot_position(conn)
        capture = describe_table(dialect, conn, table, schema, key_columns)
        query = dialect.full_query(capture.ref, [c.name for c in capture.columns], capture.key_columns)

        def batches() -> Iterator[pa.RecordBatch]:
            seq = 0
            for batch in dialect.read_batches(conn, query, capture.columns, batch_size):
                yield with_change_columns(batch, capture.schema, "insert", position.text, seq)
                seq += batch.num_rows

        yield SnapshotRead(position, capture, batches())
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()


def snapshot_to_staging(
    connection_info: ConnectionInfo,
    table: str,
    schema: str | None,
    key_columns: Sequence[str],
    staging_dir: Any,
    dag_id: str,
    run_id: str,
    *,
    step: str = "snapshot",
    batch_size: int = 10_000,
    label: str | None = None,
) -> Manifest:
    """Stage the snapshot as ``insert`` changes; the manifest's ``high_water_mark`` is the position capture
    starts from."""
    from airflow_provider_sync.staging.files import StageWriter

    with (
        snapshot_position_and_rows(
            connection_info, table, schema, key_columns, batch_size=batch_size
        ) as snap,
        StageWriter(staging_dir, snap.table.schema) as writer,
    ):
        for batch in snap.batches:
            writer.write(batch)
    counters = {"inserts": writer.rows}
    return _manifest(
        snap.table,
        writer,
        dag_id=dag_id,
        run_id=run_id,
        step=step,
        start=None,
        stop=snap.position,
        counters=counters,
        label=label,
    )


# ----------------------------------------------------------------- capture
def capture_to_staging(
    connection_info: ConnectionInfo,
    table: str,
    schema: str | None,
    key_columns: Sequence[str],
    start_position: BinlogPosition | Mapping[str, Any],
    staging_dir: Any,
    dag_id: str,
    run_id: str,
    *,
    step: str = "capture",
    server_id: int | None = None,
    batch_size: int = 10_000,
    after_end_fixed: Callable[[BinlogPosition], None] | None = None,
    label: str | None = None,
) -> Manifest:
    """Stage the table's changes committed after ``start_position`` and at or before the server's
    position when the run starts. The manifest's ``high_water_mark`` (:meth:`BinlogPosition.to_json`)
    is the next run's start; ``range`` holds ``{"mode": "binlog", "start", "end"}``.

    ``after_end_fixed`` is called once the end is fixed (tests use it to commit "late" transactions)."""
    from airflow_provider_sync.staging.files import StageWriter

    dialect = MySQLDialect()
    start = BinlogPosition.coerce(start_position)
    capture, end = _fix_end(dialect, connection_info, table, schema, key_columns, start)
    if after_end_fixed is not None:
        after_end_fixed(end)
    reader = BinlogCapture(capture, start, end)
    reader.stop = end  # unless the stream below finds an open transaction at the end
    with StageWriter(staging_dir, capture.schema) as writer:
        if end.sort_key > start.sort_key:
            ident = server_id or pipeline_server_id(dag_id, str(capture.ref))
            _stream(dialect, reader, writer, stream_settings(connection_info), ident, batch_size)
    log.info(
        "captured %d change(s) of %s from %s to %s", writer.rows, capture.ref, start.text, reader.stop.text
    )
    return _manifest(
        capture,
        writer,
        dag_id=dag_id,
        run_id=run_id,
        step=step,
        start=start,
        stop=reader.stop,
        counters=reader.counters,
        label=label,
    )


def _fix_end(
    dialect: MySQLDialect,
    connection_info: ConnectionInfo,
    table: str,
    schema: str | None,
    key_columns: Sequence[str],
    start: BinlogPosition,
) -> tuple[CaptureTable, BinlogPosition]:
    """Check the server and the start position, describe the table and fix the run's end position."""
    conn = dialect.connect(connection_info)
    try:
        check_binlog_settings(conn)
        capture = describe_table(dialect, conn, table, schema, key_columns)
        check_position_available(conn, start)
        end = current_position(conn)
    finally:
        conn.close()
    if end.sort_key < start.sort_key:
        raise TerminalError(
            f"the capture's start position {start.text} is ahead of the server's binlog ({end.text}): the "
            f"server's binlog was reset or this is another server; {RESNAPSHOT}"
        )
    return capture, end


def _stream(
    dialect: MySQLDialect,
    reader: BinlogCapture,
    writer: StageWriter,
    settings: dict[str, Any],
    ident: int,
    batch_size: int,
) -> None:
    """Write the binlog's changes between the reader's start and end as change batches."""
    capture = reader.table
    for changes in reader.run(settings, ident, batch_size):
        writer.write(
            changes_to_batch(
                changes,
                capture.columns,
                capture.schema,
                dialect.value_converter,
                reader.staged - len(changes),
            )
        )


__all__ = [
    "BinlogPosition",
    "CaptureTable",
    "SnapshotRead",
    "binlog_setting_problems",
    "capture_to_staging",
    "check_binlog_settings",
    "check_position_available",
    "current_position",
    "describe_table",
    "pipeline_server_id",
    "snapshot_position",
    "snapshot_position_and_rows",
    "snapshot_to_staging",
    "stream_settings",
]
