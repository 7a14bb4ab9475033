"""Applying a staged change manifest to a table target, exactly once, in ONE target transaction.

The transaction takes the target's lock and ownership claim (as a load does), reads the position the
target last applied from ``sync_cdc_positions``, and skips every change at or before it: a run that
committed its apply but crashed before advancing the replication slot re-reads those changes and applies
nothing twice. Each staged batch is compacted to the last change per key (:mod:`..core.changes`); keys whose
last change is a delete are deleted (or, with ``deleted_column``, flagged true), the others upserted. The
new position is written in the same transaction, so rows and position commit together or not at all.

Unchanged TOASTed columns (``_sync_unchanged``): rows that left columns out are upserted with only the
columns they carry, so the target keeps its current value for the others.

A snapshot manifest (strategy ``cdc_snapshot``: the slot was created or re-created) replaces the target's
contents: rows whose key is not in the snapshot are deleted (or flagged) as well.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import pyarrow as pa

from airflow_provider_sync.core import changes as core_changes
from airflow_provider_sync.dialects import changes_sql, get_dialect
from airflow_provider_sync.dialects.base import Dialect
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError
from airflow_provider_sync.pipeline.connections import driver_errors, open_connection
from airflow_provider_sync.pipeline.load_parts import check_compatible
from airflow_provider_sync.pipeline.ownership import claim_target
from airflow_provider_sync.pipeline.specs import LoadSpec
from airflow_provider_sync.staging.files import read_manifest
from airflow_provider_sync.staging.manifest import Manifest

from .changes import ALL_METADATA_COLUMNS, UNCHANGED_COLUMN

log = logging.getLogger(__name__)
SNAPSHOT_STRATEGY = "cdc_snapshot"


@dataclass(frozen=True)
class ApplyResult:
    """What one apply did. ``skipped``: staged changes at or before the stored position."""

    rows_staged: int
    applied: int = 0
    skipped: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    previous_position: str | None = None
    position: str | None = None
    snapshot: bool = False
    created_table: bool = False
    seconds: float = 0.0

    @property
    def rows_loaded(self) -> int:
        return self.inserted + self.updated

    @property
    def flagged(self) -> int:
        """Staged changes that deleted rows (not loaded, not skipped)."""
        return self.deleted

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rows_loaded": self.rows_loaded, "flagged": self.flagged}


def positions_table(spec: LoadSpec) -> TableRef:
    """``sync_cdc_positions`` in the target database, next to the append ledger."""
    return TableRef(changes_sql.POSITIONS_TABLE, spec.ledger.schema)


def read_position(spec: LoadSpec, table_name: str) -> str | None:
    """The position the target last applied for ``table_name`` of ``spec.pipeline`` (None: none yet),
    to pass to the capture as ``after_lsn``."""
    dialect = get_dialect(spec.connection.conn_type)
    with driver_errors(dialect):
        conn = open_connection(dialect, spec)
        try:
            if not dialect.table_exists(conn, positions_table(spec)):
                return None
            return _stored_position(dialect, conn, spec, table_name)
        finally:
            conn.rollback()
            conn.close()


def forget_position(spec: LoadSpec, table_name: str) -> bool:
    """Delete the stored position of ``table_name`` (the next run takes a new snapshot); True when the
    target held one."""
    dialect = get_dialect(spec.connection.conn_type)
    where = {"pipeline": spec.pipeline, "table_name": table_name}
    with driver_errors(dialect):
        conn = open_connection(dialect, spec)
        try:
            if not dialect.table_exists(conn, positions_table(spec)):
                return False
            dialect.begin_write(conn)
            cursor = dialect.execute(conn, dialect.delete_query(positions_table(spec), where))
            deleted = int(cursor.rowcount or 0) > 0
            cursor.close()
            conn.commit()
            return deleted
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()


def _stored_position(dialect: Dialect, conn: Any, spec: LoadSpec, table_name: str) -> str | None:
    query = changes_sql.select_position_query(dialect, positions_table(spec), spec.pipeline, table_name)
    value = dialect.scalar(conn, query)
    return None if value is None else str(value)


def _store_position(dialect: Dialect, conn: Any, spec: LoadSpec, table_name: str, position: str) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    query = changes_sql.upsert_position_query(
        dialect, positions_table(spec), spec.pipeline, table_name, position, now
    )
    dialect.execute(conn, query).close()


def _ensure_positions_table(dialect: Dialect, conn: Any, table: TableRef) -> None:
    """Create the positions table in its own committed transaction (safe against a concurrent create)."""
    if dialect.table_exists(conn, table):
        return
    try:
        dialect.begin_write(conn)
        dialect.execute(conn, changes_sql.positions_table_sql(dialect, table)).close()
        conn.commit()
    except Exception:
        conn.rollback()
        if not dialect.table_exists(conn, table):
            raise


def _table_schema(manifest: Manifest, deleted_column: str | None) -> pa.Schema:
    schema = manifest.arrow_schema
    fields = [f for f in schema if f.name not in ALL_METADATA_COLUMNS]
    if deleted_column is not None and deleted_column not in {f.name for f in fields}:
        fields.append(pa.field(deleted_column, pa.bool_()))
    return pa.schema(fields)


def _ensure_target(
    dialect: Dialect, conn: Any, spec: LoadSpec, schema: pa.Schema, keys: Sequence[str]
) -> bool:
    """Create the target when missing (and allowed); otherwise check it takes the rows and has a unique
    key on ``keys``. True when created."""
    if not dialect.table_exists(conn, spec.target):
        if not spec.create_if_missing:
            raise TerminalError(
                f"target table {spec.target} does not exist and create_if_missing is false; create the "
                "table or set create_if_missing: true"
            )
        dialect.execute(conn, dialect.create_table_sql(spec.target, schema, keys)).close()
        return True
    check_compatible(dialect, conn, spec.target, schema, tuple(keys))
    unique = dialect.get_unique_keys(conn, spec.target)
    if not any(set(columns) == set(keys) for columns in unique):
        raise IncompatibleSchemaError(
            f"applying changes by keys ({', '.join(keys)}) needs a primary key or unique index on exactly "
            f"those columns in target table {spec.target}; add one, or change keys"
        )
    return False


@dataclass
class _Applier:
    """Applies compacted change tables to one target inside the open transaction."""

    dialect: Dialect
    conn: Any
    target: TableRef
    keys: tuple[str, ...]
    columns: list[str]  # the table's columns (without the soft-delete flag)
    deleted_column: str | None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def _run(self, statement: str) -> int:
        cursor = self.dialect.execute(self.conn, statement)
        count = int(cursor.rowcount or 0)
        cursor.close()
        return count

    def _load_work(self, suffix: str, table: pa.Table, columns: Sequence[str]) -> tuple[TableRef, int]:
        work = changes_sql.work_table(self.dialect, self.target, suffix)
        for statement in changes_sql.create_work_table_sql(self.dialect, work, self.target, columns):
            self._run(statement)
        batches = table.select(list(columns)).to_batches()
        return work, self.dialect.bulk_insert(self.conn, work, batches)

    def delete(self, rows: pa.Table, *, present: bool = True) -> None:
        """Delete (or flag) the target rows whose key is among ``rows`` (``present=False``: is not)."""
        if present and rows.num_rows == 0:
            return
        work, _ = self._load_work("__sync_cdc_keys", rows, self.keys)
        if self.deleted_column is None:
            sql = changes_sql.delete_by_keys_sql(self.dialect, self.target, work, self.keys, present=present)
        else:
            sql = changes_sql.soft_delete_by_keys_sql(
                self.dialect, self.target, work, self.keys, self.deleted_column, present=present
            )
        self.deleted += self._run(sql)

    def upsert(self, rows: pa.Table) -> None:
        """Upsert rows, each group with the columns it carries (unchanged TOASTed ones left out)."""
        for unchanged, group in core_changes.unchanged_groups(rows):
            columns = [c for c in self.columns if c not in unchanged]
            if self.deleted_column is not None:
                group = group.append_column(self.deleted_column, pa.array([False] * group.num_rows))
                columns.append(self.deleted_column)
            work, staged = self._load_work("__sync_cdc_rows", group, columns)
            counts = self.dialect.upsert(self.conn, work, self.target, columns, self.keys, staged)
            self.inserted += counts.inserted
            self.updated += counts.updated


def apply_changes(
    spec: LoadSpec,
    manifest: Manifest,
    *,
    deleted_column: str | None = None,
    logger: logging.Logger | None = None,
    before_commit: Callable[[], None] | None = None,
) -> ApplyResult:
    """Apply the manifest's changes to ``spec.target`` by ``spec.keys`` (default: the manifest's key
    columns) in one transaction, together with the new position (``manifest.high_water_mark``).

    ``deleted_column``: soft deletes - set this boolean column true instead of deleting (false on every
    upserted row; created with the table). ``before_commit`` runs just before the commit."""
    logger = logger or log
    dialect = get_dialect(spec.connection.conn_type)
    keys = tuple(spec.keys or manifest.key_columns)
    if not keys:
        raise TerminalError(f"applying changes to {spec.target} needs keys; set the load keys")
    started = time.monotonic()
    with driver_errors(dialect):
        conn = open_connection(dialect, spec)
        try:
            _ensure_positions_table(dialect, conn, positions_table(spec))
            claim_target(dialect, conn, spec, manifest, logger)  # the table's lock, and who may load it
            result = _apply(dialect, conn, spec, manifest, keys, deleted_column, logger)
            if before_commit:
                before_commit()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
    result = replace(result, seconds=round(time.monotonic() - started, 3))
    logger.info("apply %s: %s", spec.target, result.to_json())
    return result


def _apply(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    manifest: Manifest,
    keys: tuple[str, ...],
    deleted_column: str | None,
    logger: logging.Logger,
) -> ApplyResult:
    stored = _stored_position(dialect, conn, spec, manifest.table)
    schema = _table_schema(manifest, deleted_column)
    created = _ensure_target(dialect, conn, spec, schema, keys)
    if created and not dialect.capabilities.transactional_ddl:
        conn.commit()  # the CREATE committed implicitly; the data transaction starts afresh
        dialect.begin_write(conn)
    columns = [name for name in schema.names if name != deleted_column]
    applier = _Applier(dialect, conn, spec.target, keys, columns, deleted_column)
    snapshot = manifest.strategy == SNAPSHOT_STRATEGY
    applied = skipped = 0
    snapshot_keys: list[pa.Table] = []
    for batch in read_manifest(manifest):
        fresh = core_changes.after_position(batch, stored)
        skipped += batch.num_rows - fresh.num_rows
        applied += fresh.num_rows
        compacted = core_changes.compact(fresh, keys)
        deletes, upserts = core_changes.split_by_op(compacted)
        applier.delete(deletes)
        applier.upsert(upserts)
        if snapshot:
            snapshot_keys.append(compacted.select(list(keys)))
    position = manifest_position(manifest)
    fresh = position if position is not None and (stored is None or position > stored) else None
    if snapshot and fresh is not None:
        everything = pa.concat_tables(snapshot_keys) if snapshot_keys else _empty_keys(schema, keys)
        applier.delete(everything, present=False)  # rows the source no longer has
    if fresh is not None:
        _store_position(dialect, conn, spec, manifest.table, fresh)
    elif applied:
        logger.warning("apply %s: manifest position %s is not after %s", spec.target, position, stored)
    return ApplyResult(
        manifest.rows,
        applied,
        skipped,
        applier.inserted,
        applier.updated,
        applier.deleted,
        stored,
        fresh or stored,
        snapshot,
        created,
    )


def manifest_position(manifest: Manifest) -> str | None:
    """The ``_sync_position`` text a change manifest ends at: its ``high_water_mark`` as text (the
    PostgreSQL capture) or the ``position`` of a JSON position (the binlog capture's ``to_json()``)."""
    mark = manifest.high_water_mark
    if isinstance(mark, dict):
        mark = mark.get("position")
    return mark if isinstance(mark, str) and mark else None


def _empty_keys(schema: pa.Schema, keys: Sequence[str]) -> pa.Table:
    return pa.schema([schema.field(k) for k in keys]).empty_table()


__all__ = [
    "UNCHANGED_COLUMN",
    "ApplyResult",
    "apply_changes",
    "manifest_position",
    "positions_table",
    "read_position",
]
