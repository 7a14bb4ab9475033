"""PostgreSQL change data capture: a logical replication slot (``pgoutput``) and a publication per
pipeline table, an initial snapshot consistent with the slot, and runs that stage the committed changes.

Why the snapshot is consistent: the slot is created on a replication connection with
``CREATE_REPLICATION_SLOT ... LOGICAL pgoutput (SNAPSHOT 'export')``. PostgreSQL then returns the slot's
*consistent point* C and exports the snapshot of exactly that moment: every transaction committed before C
is visible in it, and the slot decodes exactly the transactions committing after C. The snapshot is read in
a REPEATABLE READ transaction that imports it (``SET TRANSACTION SNAPSHOT``) before the replication
connection runs anything else, so no concurrent write is either missed or seen twice.

Positions: every change is staged with the *end* LSN of its transaction's commit record. The target
stores the last one it applied (:mod:`.apply`), and the slot is advanced to it afterwards. A transaction is
skipped by the slot exactly when its commit record starts before the slot's confirmed position, so a
stored position P is safe to continue from when P >= the slot's ``confirmed_flush_lsn``; otherwise (no
position, or a slot created or advanced past what the target holds) the capture re-snapshots.

Split by concern: slot and publication management live in :mod:`.postgres_slot`, ``pgoutput``
decoding into change batches in :mod:`.postgres_changes`; this module runs one capture (snapshot or
stream) and re-exports the public names so callers keep importing them from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from airflow_provider_sync.cdc import pgoutput
from airflow_provider_sync.cdc.changes import change_schema, lsn_from_text, lsn_text
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.postgres_changes import (
    ChangeRows,
    as_inserts,
    table_columns,
    table_schema,
    transactions,
)
from airflow_provider_sync.dialects.postgres_slot import (
    MAX_NAME,
    CdcNames,
    SlotInfo,
    advance_slot,
    cdc_names,
    check_replica_identity,
    connect,
    drop_cdc,
    ensure_publication,
    one,
    pg_lsn,
    replication_connect,
    retained_wal_bytes,
    slot_info,
)
from airflow_provider_sync.dialects.types import Column, TableRef
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.staging.files import StageWriter
from airflow_provider_sync.staging.manifest import Manifest, StepRecord, schema_to_text

log = logging.getLogger(__name__)
SNAPSHOT_STRATEGY = "cdc_snapshot"
STREAM_STRATEGY = "cdc"
_IDENTITIES = {"d": "DEFAULT", "f": "FULL", "i": "USING INDEX", "n": "NOTHING"}


# ----------------------------------------------------------------- one run
@dataclass(frozen=True)
class CaptureRequest:
    """What one capture run reads. ``after_lsn``: the position the target last applied (from
    :func:`~.apply.read_position`), None when it holds none. ``keys``: the row identity (default: the
    primary key). ``label``: the table's name in the manifest and the positions table (default: the
    table)."""

    connection: Any
    table: TableRef
    dag_id: str
    run_id: str
    after_lsn: str | int | None = None
    keys: tuple[str, ...] = ()
    batch_size: int = 10_000
    names: CdcNames | None = None
    step: str = "extract"
    label: str | None = None
    end_lsn: str | int | None = None  # the run's end; default pg_current_wal_lsn() at the start
    heartbeat: bool = True  # see _heartbeat: lets the slot of a quiet table advance


def capture_to_staging(request: CaptureRequest, staging_dir: Any) -> Manifest:
    """Stage this run's changes of ``request.table`` under ``staging_dir`` and return the manifest.

    First use (no slot, no stored position, or a slot ahead of the stored position): publication and slot
    are created and the table's rows staged as inserts at the slot's consistent point; the manifest's
    ``strategy`` is ``cdc_snapshot`` (the apply then also removes target rows missing from it). Otherwise
    the committed transactions after ``after_lsn`` whose commit ends at or before the LSN fixed at the run's
    start are staged (``strategy`` ``cdc``). ``high_water_mark`` is the LSN (text, 16 hex digits) to store
    and to advance the slot to once applied; ``range`` records the run's ``after``/``end`` LSNs."""
    names = request.names or cdc_names(request.dag_id, request.table)
    after = lsn_from_text(request.after_lsn) if isinstance(request.after_lsn, str) else request.after_lsn
    conn = connect(request.connection)
    try:
        identity = check_replica_identity(conn, request.table)
        conn.rollback()
        columns = table_columns(conn, request.table)
        keys = _keys(conn, request, identity)
        info = slot_info(conn, names.slot)
        if info is not None and (after is None or (info.confirmed_flush_lsn or 0) > after):
            log.warning("slot %s is ahead of what the target applied: re-snapshotting", names.slot)
            drop_cdc(conn, names.slot, names.publication)
            info = None
        if info is None:
            ensure_publication(conn, names.publication, request.table)
            return _snapshot(request, names, columns, keys, staging_dir)
        return _stream(conn, request, names, columns, keys, after or 0, staging_dir)
    finally:
        conn.rollback()
        conn.close()


def _keys(conn: Any, request: CaptureRequest, identity: str) -> list[str]:
    keys = list(request.keys) or get_dialect("postgres").get_primary_key(conn, request.table)
    conn.rollback()
    if not keys:
        raise TerminalError(
            f"table {request.table} has no primary key (REPLICA IDENTITY {_IDENTITIES[identity]}): configure "
            "the key columns that identify a row, or add a primary key"
        )
    return keys


def _manifest(
    request: CaptureRequest,
    writer: StageWriter,
    strategy: str,
    keys: list[str],
    position: int,
    range_: dict[str, Any],
    counters: dict[str, int],
) -> Manifest:
    label = request.label or str(request.table)
    return Manifest(
        dag_id=request.dag_id,
        run_id=request.run_id,
        table=label,
        step=request.step,
        files=writer.files,
        parts=[p.to_json() for p in writer.parts],
        rows=writer.rows,
        schema=schema_to_text(writer.schema),
        range=range_,
        high_water_mark=lsn_text(position),
        strategy=strategy,
        key_columns=keys,
        counters={"rows": writer.rows, **counters},
        history=[StepRecord(request.step, writer.rows, writer.rows, details=dict(counters))],
    )


def _snapshot(
    request: CaptureRequest, names: CdcNames, columns: list[Column], keys: list[str], staging_dir: Any
) -> Manifest:
    dialect = get_dialect("postgres")
    schema = change_schema(table_schema(columns))
    with replication_connect(request.connection) as replication:
        result = replication.pgconn.exec_(
            f"CREATE_REPLICATION_SLOT {dialect.quote(names.slot)} LOGICAL pgoutput "
            "(SNAPSHOT 'export')".encode()
        )
        if result.status != 2:  # TUPLES_OK
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise TerminalError(f"creating replication slot {names.slot} failed: {message}")
        consistent = lsn_from_text(result.get_value(0, 1).decode())  # type: ignore[union-attr]
        snapshot = result.get_value(0, 2).decode()  # type: ignore[union-attr]
        reader = connect(request.connection)
        try:
            reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            reader.read_only = True
            # The transaction's first statement, before the replication connection runs anything else
            # (which would end the export): the transaction sees exactly the slot's consistent point.
            reader.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            isolation = str(one(reader, "SELECT current_setting('transaction_isolation')"))
            if isolation != "repeatable read":
                raise TerminalError(
                    f"the snapshot read of {request.table} runs at {isolation}, not repeatable read"
                )
            replication.close()
            query = dialect.full_query(request.table, [c.name for c in columns], keys)
            with StageWriter(staging_dir, schema) as writer:
                seq = 0
                for batch in dialect.read_batches(reader, query, columns, request.batch_size):
                    writer.write(as_inserts(batch, schema, lsn_text(consistent), seq))
                    seq += batch.num_rows
        finally:
            reader.rollback()
            reader.close()
    log.info("cdc %s: slot %s created at %s; snapshot of %d rows", request.table, names.slot,
             pg_lsn(consistent), writer.rows)  # fmt: skip
    range_ = {"mode": SNAPSHOT_STRATEGY, "after": None, "end": lsn_text(consistent)}
    return _manifest(request, writer, SNAPSHOT_STRATEGY, keys, consistent, range_, {})


def _stream(
    conn: Any,
    request: CaptureRequest,
    names: CdcNames,
    columns: list[Column],
    keys: list[str],
    after: int,
    staging_dir: Any,
) -> Manifest:
    messages = request.heartbeat and _heartbeat(conn, request.table)
    fixed = request.end_lsn or str(one(conn, "SELECT pg_current_wal_lsn()::text"))
    end = lsn_from_text(fixed) if isinstance(fixed, str) else fixed
    conn.rollback()
    conn.execute("SET bytea_output = 'hex'")
    conn.execute("SET extra_float_digits = 3")
    conn.execute("SET DateStyle = 'ISO, YMD'")
    schema = change_schema(table_schema(columns))
    rows = ChangeRows(request.table, columns, keys, schema)
    position = after
    with StageWriter(staging_dir, schema) as writer:
        for commit_end, changes in transactions(conn, names, end, request.batch_size, messages):
            if commit_end <= after:  # applied by an earlier run that could not advance the slot
                for message in changes:  # but its Relation messages describe later changes too
                    if isinstance(message, pgoutput.Relation):
                        rows.add(message, lsn_text(commit_end))
                continue
            position = commit_end
            staged = rows.staged
            for message in changes:
                rows.add(message, lsn_text(commit_end))
                if rows.pending >= request.batch_size:
                    writer.write(rows.flush())
            rows.transactions += rows.staged > staged  # heartbeats and other tables' messages: none
        if rows.pending:
            writer.write(rows.flush())
    conn.rollback()
    range_ = {"mode": STREAM_STRATEGY, "after": lsn_text(after), "end": lsn_text(end)}
    counters = {"transactions": rows.transactions, **rows.counts}
    log.info("cdc %s: %d change(s) up to %s", request.table, writer.rows, pg_lsn(end))
    return _manifest(request, writer, STREAM_STRATEGY, keys, position, range_, counters)


def _heartbeat(conn: Any, table: TableRef) -> bool:
    """Commit a tiny transactional logical message before fixing the run's end. PostgreSQL 15+ decodes
    no empty transactions, so without it a quiet table on a busy server would never let its slot advance
    and the slot would retain WAL without bound; decoding the heartbeat moves the position past it. False
    (and no heartbeat) where the server cannot write one (before 14, a standby, no privilege)."""
    if conn.info.server_version < 140000:
        return False
    try:
        conn.execute("SELECT pg_logical_emit_message(true, 'airflow_provider_sync', 'heartbeat')")
        conn.commit()
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction) as exc:
        conn.rollback()
        log.warning("cdc %s: no heartbeat (%s); a quiet table keeps its slot's WAL", table, exc.sqlstate)
        return False
    return True


__all__ = [
    "MAX_NAME",
    "SNAPSHOT_STRATEGY",
    "STREAM_STRATEGY",
    "CaptureRequest",
    "CdcNames",
    "ChangeRows",
    "SlotInfo",
    "advance_slot",
    "capture_to_staging",
    "cdc_names",
    "check_replica_identity",
    "connect",
    "drop_cdc",
    "ensure_publication",
    "retained_wal_bytes",
    "slot_info",
    "table_columns",
]
