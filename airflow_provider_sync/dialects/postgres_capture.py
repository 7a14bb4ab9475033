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
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
import pyarrow as pa

from airflow_provider_sync.cdc import pgoutput
from airflow_provider_sync.cdc.changes import change_schema, lsn_from_text, lsn_text
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import Column, TableRef
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.staging.files import StageWriter
from airflow_provider_sync.staging.manifest import Manifest, StepRecord, schema_to_text

log = logging.getLogger(__name__)
MAX_NAME = 63
SNAPSHOT_STRATEGY = "cdc_snapshot"
STREAM_STRATEGY = "cdc"
_UNSAFE = re.compile(r"[^a-z0-9_]+")
_IDENTITIES = {"d": "DEFAULT", "f": "FULL", "i": "USING INDEX", "n": "NOTHING"}


@dataclass(frozen=True)
class CdcNames:
    """The replication slot and publication of one pipeline table."""

    slot: str
    publication: str


def cdc_names(dag_id: str, table: TableRef | str) -> CdcNames:
    """Names derived from the DAG id and table: lowercase ``[a-z0-9_]``, at most 63 characters, unique by a
    short hash of the exact (unsanitised) pair, so ``a.b``/``a_b`` or long names never collide."""
    text = f"{dag_id}\0{table}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    base = _UNSAFE.sub("_", f"{dag_id}_{table}".lower()).strip("_") or "t"
    room = MAX_NAME - len("sync_") - len(digest) - 1
    stem = f"sync_{base[:room]}_{digest}"
    return CdcNames(slot=stem, publication=stem)


# ----------------------------------------------------------------- connections
def connect(info: Any) -> Any:
    """A normal connection (autocommit off, UTC) through the PostgreSQL dialect."""
    return get_dialect("postgres").connect(info)


def _replication_connect(info: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=info.host or "localhost",
        port=info.port or 5432,
        user=info.login,
        password=info.password,
        dbname=info.database,
        replication="database",
        autocommit=True,
        **{k: v for k, v in info.extra.items() if k in ("sslmode", "sslrootcert", "connect_timeout")},
    )


def _one(conn: Any, sql: str, params: list[Any] | None = None) -> Any:
    row = conn.execute(sql, params or []).fetchone()
    return None if row is None else row[0]


# ----------------------------------------------------------------- slot and publication
def check_replica_identity(conn: Any, table: TableRef) -> str:
    """The table's replica identity (``d``/``f``/``i``/``n``); a TerminalError when deletes and key updates
    could not be captured (no primary key with identity DEFAULT, or identity NOTHING)."""
    row = conn.execute(
        "SELECT c.relreplident, "
        "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = %s AND n.nspname = COALESCE(%s, current_schema())",
        [table.name, table.schema],
    ).fetchone()
    if row is None:
        raise TerminalError(f"table {table} does not exist in PostgreSQL (or you cannot see it)")
    identity, has_primary_key = str(row[0]), bool(row[1])
    if identity == "n" or (identity == "d" and not has_primary_key):
        raise TerminalError(
            f"table {table} cannot be captured: its deletes and updates carry no key (REPLICA IDENTITY "
            f"{'NOTHING' if identity == 'n' else 'DEFAULT without a primary key'}); add a primary key, or "
            f"run ALTER TABLE {table} REPLICA IDENTITY FULL"
        )
    return identity


def ensure_publication(conn: Any, publication: str, table: TableRef) -> bool:
    """Create ``publication FOR TABLE table`` when missing (committed); True when created."""
    if _one(conn, "SELECT COUNT(*) FROM pg_publication WHERE pubname = %s", [publication]):
        conn.rollback()
        return False
    dialect = get_dialect("postgres")
    conn.execute(f"CREATE PUBLICATION {dialect.quote(publication)} FOR TABLE {dialect.qualify(table)}")
    conn.commit()
    return True


@dataclass(frozen=True)
class SlotInfo:
    confirmed_flush_lsn: int | None
    restart_lsn: int | None


def slot_info(conn: Any, slot: str) -> SlotInfo | None:
    """The slot's positions, or None when it does not exist."""
    row = conn.execute(
        "SELECT confirmed_flush_lsn::text, restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
        [slot],
    ).fetchone()
    conn.rollback()
    if row is None:
        return None
    return SlotInfo(*(lsn_from_text(v) if v else None for v in row))


def advance_slot(conn: Any, slot: str, lsn: int | str) -> int | None:
    """Move the slot's confirmed position to ``lsn`` (after the apply committed), releasing older WAL.
    Never moves backwards; returns the slot's confirmed position after the call."""
    target = lsn_from_text(lsn) if isinstance(lsn, str) else lsn
    info = slot_info(conn, slot)
    if info is None:
        raise TerminalError(f"replication slot {slot} does not exist; the next run re-creates it")
    if info.confirmed_flush_lsn is not None and target <= info.confirmed_flush_lsn:
        return info.confirmed_flush_lsn
    conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", [slot, _pg_lsn(target)])
    conn.commit()
    return target


def retained_wal_bytes(conn: Any, slot: str) -> int | None:
    """Bytes of WAL the slot keeps on the server (``pg_current_wal_lsn() - restart_lsn``), for status."""
    value = _one(
        conn,
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots "
        "WHERE slot_name = %s",
        [slot],
    )
    conn.rollback()
    return None if value is None else int(value)


def drop_cdc(conn: Any, slot: str, publication: str) -> None:
    """Drop the slot (so it retains no more WAL) and the publication; missing ones are fine."""
    if _one(conn, "SELECT COUNT(*) FROM pg_replication_slots WHERE slot_name = %s", [slot]):
        conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
    conn.execute(f"DROP PUBLICATION IF EXISTS {get_dialect('postgres').quote(publication)}")
    conn.commit()


def _pg_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


# ----------------------------------------------------------------- decoded changes -> Arrow
def table_columns(conn: Any, table: TableRef) -> list[Column]:
    """The table's columns typed as the extract types them (declared types ride along), all nullable:
    a staged delete holds only its key."""
    dialect = get_dialect("postgres")
    columns = dialect.get_columns(conn, table)
    conn.rollback()
    return [replace(c, declared=dialect.declared_type(c.db_type), nullable=True) for c in columns]


def _csv_field(value: pgoutput.Value) -> str:
    if value is None or value is pgoutput.UNCHANGED:
        return ""  # unquoted empty: NULL
    assert isinstance(value, str)
    return '"' + value.replace('"', '""') + '"'


@dataclass
class ChangeRows:
    """Decoded changes of one table collected into change batches (text values cast as the extract casts
    the same text from ``COPY``: one parser, one typing)."""

    table: TableRef
    columns: list[Column]
    keys: list[str]
    schema: pa.Schema
    transactions: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"insert": 0, "update": 0, "delete": 0})
    _relations: dict[int, list[int | None]] = field(default_factory=dict)
    _lines: list[str] = field(default_factory=list)
    _meta: list[tuple[str, str, list[str] | None]] = field(default_factory=list)
    _seq: int = 0
    _longest: int = 0

    @property
    def pending(self) -> int:
        return len(self._lines)

    @property
    def staged(self) -> int:
        return self._seq + len(self._lines)

    def add(self, message: pgoutput.Message, position: str) -> None:
        if isinstance(message, pgoutput.Relation):
            self._relation(message)
        elif isinstance(message, pgoutput.Insert):
            self._row("insert", self._values(message.relation_id, message.new), position)
        elif isinstance(message, pgoutput.Update):
            self._update(message, position)
        elif isinstance(message, pgoutput.Delete):
            self._row("delete", self._key_only(self._values(message.relation_id, message.old)), position)
        elif isinstance(message, pgoutput.Truncate):
            raise TerminalError(
                f"table {self.table} was truncated (at commit {position}); a truncate cannot be applied as "
                "row changes: drop the capture (drop_cdc) so the next run re-snapshots the table"
            )

    def _relation(self, message: pgoutput.Relation) -> None:
        if (message.name, message.namespace) != (self.table.name, self.table.schema or message.namespace):
            return
        by_name = {c.name: i for i, c in enumerate(message.columns)}
        self._relations[message.relation_id] = [by_name.get(c.name) for c in self.columns]

    def _values(self, relation_id: int, values: pgoutput.Tuple) -> list[pgoutput.Value]:
        mapping = self._relations.get(relation_id)
        if mapping is None:
            raise TerminalError(f"change of relation {relation_id} arrived before its Relation message")
        return [None if i is None else values[i] for i in mapping]

    def _key_only(self, values: list[pgoutput.Value]) -> list[pgoutput.Value]:
        keys = set(self.keys)
        return [v if c.name in keys else None for c, v in zip(self.columns, values, strict=True)]

    def _key(self, values: list[pgoutput.Value]) -> list[pgoutput.Value]:
        return [v for c, v in zip(self.columns, values, strict=True) if c.name in self.keys]

    def _update(self, message: pgoutput.Update, position: str) -> None:
        new = self._values(message.relation_id, message.new)
        old = self._values(message.relation_id, message.old) if message.old is not None else None
        if old is not None and message.old_kind == "O":  # the whole old row: unchanged values are in it
            unchanged = pgoutput.UNCHANGED
            new = [o if n is unchanged and o is not unchanged else n for n, o in zip(new, old, strict=True)]
        if old is not None and self._key(old) != self._key(new):
            self._row("delete", self._key_only(old), position)  # a key change: the old row goes
            self._row("insert", new, position)
            return
        self._row("update", new, position)

    def _row(self, op: str, values: list[pgoutput.Value], position: str) -> None:
        unchanged = [c.name for c, v in zip(self.columns, values, strict=True) if v is pgoutput.UNCHANGED]
        line = ",".join(_csv_field(v) for v in values) + "\n"
        self._lines.append(line)
        self._longest = max(self._longest, len(line))
        self._meta.append((op, position, unchanged or None))
        self.counts[op] += 1

    def flush(self) -> pa.RecordBatch:
        """The rows collected so far as one change batch."""
        from airflow_provider_sync.dialects._arrow import csv_batch

        block = "".join(self._lines).encode()
        data = csv_batch(
            block,
            self.columns,
            true_values=["t"],
            false_values=["f"],
            binary_decoder=lambda text: bytes.fromhex(text[2:]),
            longest_row=4 * self._longest,
        )
        first = self._seq
        self._seq += len(self._meta)
        metadata = [
            pa.array([m[0] for m in self._meta], pa.string()),
            pa.array([m[1] for m in self._meta], pa.string()),
            pa.array(range(first + 1, self._seq + 1), pa.int64()),
            pa.array([m[2] for m in self._meta], pa.list_(pa.string())),
        ]
        self._lines, self._meta, self._longest = [], [], 0
        arrays = [data.column(i).cast(self.schema.field(i).type) for i in range(data.num_columns)]
        return pa.RecordBatch.from_arrays([*arrays, *metadata], schema=self.schema)


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
    schema = change_schema(_table_schema(columns))
    with _replication_connect(request.connection) as replication:
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
            isolation = str(_one(reader, "SELECT current_setting('transaction_isolation')"))
            if isolation != "repeatable read":
                raise TerminalError(
                    f"the snapshot read of {request.table} runs at {isolation}, not repeatable read"
                )
            replication.close()
            query = dialect.full_query(request.table, [c.name for c in columns], keys)
            with StageWriter(staging_dir, schema) as writer:
                seq = 0
                for batch in dialect.read_batches(reader, query, columns, request.batch_size):
                    writer.write(_as_inserts(batch, schema, lsn_text(consistent), seq))
                    seq += batch.num_rows
        finally:
            reader.rollback()
            reader.close()
    log.info("cdc %s: slot %s created at %s; snapshot of %d rows", request.table, names.slot,
             _pg_lsn(consistent), writer.rows)  # fmt: skip
    range_ = {"mode": SNAPSHOT_STRATEGY, "after": None, "end": lsn_text(consistent)}
    return _manifest(request, writer, SNAPSHOT_STRATEGY, keys, consistent, range_, {})


def _table_schema(columns: list[Column]) -> pa.Schema:
    from airflow_provider_sync.dialects._arrow import schema_of

    return schema_of(columns)


def _as_inserts(batch: pa.RecordBatch, schema: pa.Schema, position: str, first_seq: int) -> pa.RecordBatch:
    rows = batch.num_rows
    metadata = [
        pa.array(["insert"] * rows, pa.string()),
        pa.array([position] * rows, pa.string()),
        pa.array(range(first_seq + 1, first_seq + rows + 1), pa.int64()),
        pa.nulls(rows, pa.list_(pa.string())),
    ]
    arrays = [batch.column(i).cast(schema.field(i).type) for i in range(batch.num_columns)]
    return pa.RecordBatch.from_arrays([*arrays, *metadata], schema=schema)


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
    fixed = request.end_lsn or str(_one(conn, "SELECT pg_current_wal_lsn()::text"))
    end = lsn_from_text(fixed) if isinstance(fixed, str) else fixed
    conn.rollback()
    conn.execute("SET bytea_output = 'hex'")
    conn.execute("SET extra_float_digits = 3")
    conn.execute("SET DateStyle = 'ISO, YMD'")
    schema = change_schema(_table_schema(columns))
    rows = ChangeRows(request.table, columns, keys, schema)
    position = after
    with StageWriter(staging_dir, schema) as writer:
        for commit_end, changes in _transactions(conn, names, end, request.batch_size, messages):
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
    log.info("cdc %s: %d change(s) up to %s", request.table, writer.rows, _pg_lsn(end))
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


def _transactions(
    conn: Any, names: CdcNames, end: int, fetch: int, messages: bool = False
) -> Iterator[tuple[int, list[pgoutput.Message]]]:
    """Whole transactions (commit end LSN, their messages) whose commit ends at or before ``end``, in
    commit order, read without consuming the slot."""
    cursor = conn.cursor(name=f"sync_cdc_{names.slot[:40]}")
    cursor.itersize = fetch
    options = ", 'messages', 'true'" if messages else ""  # heartbeats are logical messages
    cursor.execute(
        "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL, "
        f"'proto_version', '1', 'publication_names', %s{options})",
        [names.slot, _pg_lsn(end), names.publication],
    )
    current: list[pgoutput.Message] = []
    try:
        for (data,) in cursor:
            message = pgoutput.decode(data)
            if isinstance(message, pgoutput.Begin):
                current = []
            elif isinstance(message, pgoutput.Commit):
                if message.end_lsn > end:
                    break  # committed after the run's end: the next run's
                yield message.end_lsn, current
                current = []
            else:
                current.append(message)
    finally:
        cursor.close()


__all__ = [
    "SNAPSHOT_STRATEGY",
    "STREAM_STRATEGY",
    "CaptureRequest",
    "CdcNames",
    "SlotInfo",
    "advance_slot",
    "capture_to_staging",
    "cdc_names",
    "check_replica_identity",
    "drop_cdc",
    "ensure_publication",
    "retained_wal_bytes",
    "slot_info",
]
