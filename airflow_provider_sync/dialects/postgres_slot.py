"""PostgreSQL change data capture, slot and publication management: the names derived per pipeline table,
the connections, and the catalog statements that create, inspect, advance and drop a logical replication
slot and its publication.

Split from :mod:`.postgres_capture` (which runs a capture) so that a run's staging logic and the server
objects it relies on can each be read on their own; the names stay importable from there.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import psycopg

from airflow_provider_sync.cdc.changes import lsn_from_text
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import TerminalError

MAX_NAME = 63
_UNSAFE = re.compile(r"[^a-z0-9_]+")


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


def replication_connect(info: Any) -> psycopg.Connection[Any]:
    """A replication connection (``replication=database``, autocommit) for slot commands."""
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


def one(conn: Any, sql: str, params: list[Any] | None = None) -> Any:
    """The first column of the query's first row, or None."""
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
    if one(conn, "SELECT COUNT(*) FROM pg_publication WHERE pubname = %s", [publication]):
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
    conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", [slot, pg_lsn(target)])
    conn.commit()
    return target


def retained_wal_bytes(conn: Any, slot: str) -> int | None:
    """Bytes of WAL the slot keeps on the server (``pg_current_wal_lsn() - restart_lsn``), for status."""
    value = one(
        conn,
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots "
        "WHERE slot_name = %s",
        [slot],
    )
    conn.rollback()
    return None if value is None else int(value)


def drop_cdc(conn: Any, slot: str, publication: str) -> None:
    """Drop the slot (so it retains no more WAL) and the publication; missing ones are fine."""
    if one(conn, "SELECT COUNT(*) FROM pg_replication_slots WHERE slot_name = %s", [slot]):
        conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
    conn.execute(f"DROP PUBLICATION IF EXISTS {get_dialect('postgres').quote(publication)}")
    conn.commit()


def pg_lsn(lsn: int) -> str:
    """An LSN in PostgreSQL's ``X/X`` text form."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


__all__ = [
    "MAX_NAME",
    "CdcNames",
    "SlotInfo",
    "advance_slot",
    "cdc_names",
    "check_replica_identity",
    "connect",
    "drop_cdc",
    "ensure_publication",
    "one",
    "pg_lsn",
    "replication_connect",
    "retained_wal_bytes",
    "slot_info",
]
