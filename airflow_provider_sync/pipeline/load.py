"""Loading staged rows into the target: one transaction per run and table, all or nothing.

With ``on_load_error="quarantine"`` rows the target rejects for their values are isolated (see
:mod:`.quarantine`) and written to the quarantine table; the other rows still commit in the one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import LoadCounts, TableRef
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.staging.manifest import Manifest

from .connections import driver_errors, open_connection
from .load_append import append_rows, ensure_ledger_table
from .load_parts import (
    LoadResult,
    check_compatible,
    check_upsert_keys,
    create_sql,
    ddl_checkpoint,
    ensure_table,
    insert_rows,
    staged_batches,
)
from .ownership import SharedSetup, claim_target, side_by_side
from .quarantine import LoadRejects, QuarantineWriter
from .soft_delete import FlaggedDeletes, deletion_marker, marked_rows
from .specs import LoadSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.base import Dialect

log = logging.getLogger(__name__)
ON_LOAD_ERROR = ("fail", "quarantine")


def load_from_staging(
    spec: LoadSpec,
    manifest: Manifest,
    *,
    logger: logging.Logger | None = None,
    before_commit: Callable[[], None] | None = None,
    on_load_error: str = "fail",
    quarantine: QuarantineWriter | TableRef | None = None,
    batches: Iterator[pa.RecordBatch] | None = None,
) -> LoadResult:
    """Load the manifest's staged rows into ``spec.target`` with ``spec.mode``, in one transaction.

    ``append`` records the range in the ledger in the same transaction and skips a range already loaded;
    ``upsert`` merges by ``spec.keys`` through a staging table, rewriting only changed rows; ``replace``
    loads a new table and swaps it in. Any failure rolls back: the target is left as it was.
    ``before_commit`` runs just before the commit (the place where the commit would be lost).
    ``batches`` hands the rows over directly instead of reading the manifest's files (a fused table streams
    its extract into its load; ``upsert`` and ``replace`` only, as ``append`` labels its ledger row with the
    range's end before it writes).

    ``on_load_error="quarantine"`` isolates rows the target rejects for their values (constraint
    violations, values too long or out of range) and writes them to ``quarantine``: a table in the target
    database (default ``sync_quarantine`` in the target's schema; written in the load transaction) or an
    open :class:`QuarantineWriter` (its own connection). Lost connections and other errors still fail.
    """
    if on_load_error not in ON_LOAD_ERROR:
        raise TerminalError(f"on_load_error {on_load_error!r} is not allowed; use one of: fail, quarantine")
    if batches is not None and spec.mode == "append":
        raise ValueError("an append load reads its staged files: its ledger row needs the range's end")
    logger = logger or log
    dialect = get_dialect(spec.connection.conn_type)
    schema = manifest.arrow_schema
    marker = deletion_marker(dialect, spec)
    if marker is not None:
        schema = _with_marker(schema, marker)
    started = time.monotonic()
    streamed = _Counted(batches) if batches is not None else None
    with driver_errors(dialect):
        conn = open_connection(dialect, spec)
        try:
            dialect.begin_write(conn)
            setup = _shared_setup(dialect, conn, spec, schema, on_load_error)
            claim_target(dialect, conn, spec, manifest, logger, setup)  # the lock, and who may load the table
            rejects = (
                LoadRejects.open(dialect, conn, spec.target, manifest, quarantine)
                if on_load_error == "quarantine"
                else None
            )
            label = f"load {spec.target}"
            rows = iter(streamed) if streamed is not None else staged_batches(manifest, logger, label)
            write = _replace if spec.mode == "replace" else _append_or_upsert
            result = write(dialect, conn, spec, manifest, schema, logger, before_commit, rejects, rows)
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
    result = replace(result, seconds=round(time.monotonic() - started, 3))
    if setup is not None and setup.created:  # created before the load, to share the lock with partitions
        result = replace(result, created_table=True)
    if streamed is not None:  # a stream's manifest is only written after the load began: count its rows here
        result = replace(result, rows_staged=streamed.rows)
    logger.info("load %s: %s", spec.target, result.summary())
    return result


def _shared_setup(
    dialect: Dialect, conn: Any, spec: LoadSpec, schema: pa.Schema, on_load_error: str
) -> SharedSetup | None:
    """For a partition that may load beside its siblings: the tables it needs before it shares the lock
    (created under the exclusive lock, in a transaction of their own, so no two partitions race to create
    them). Replacing and quarantining loads take turns."""
    if spec.mode == "replace" or on_load_error != "fail" or not side_by_side(dialect, spec):
        return None

    def ready() -> bool:
        needed = [spec.target, spec.ledger] if spec.mode == "append" else [spec.target]
        return all(dialect.table_exists(conn, table) for table in needed)

    def prepare() -> bool:
        created = ensure_table(dialect, conn, spec, schema)
        if spec.mode == "append":
            ensure_ledger_table(dialect, conn, spec)
        return created

    return SharedSetup(ready, prepare)


class _Counted:
    """The batches handed to a load, counted as they pass."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self.batches, self.rows = batches, 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self.batches:
            self.rows += batch.num_rows
            yield batch


def _with_marker(schema: pa.Schema, marker: str) -> pa.Schema:
    import pyarrow as pa

    if marker in schema.names:
        raise TerminalError(
            f"the deletion marker column {marker!r} is already a staged column; name another one with "
            "target.clickhouse.is_deleted_column"
        )
    return schema.append(pa.field(marker, pa.uint8(), nullable=False))


def _append_or_upsert(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    manifest: Manifest,
    schema: pa.Schema,
    logger: logging.Logger,
    before_commit: Callable[[], None] | None,
    rejects: LoadRejects | None,
    rows: Iterator[pa.RecordBatch],
) -> LoadResult:
    created = ensure_table(dialect, conn, spec, schema)
    if spec.mode == "upsert" and not created:
        check_upsert_keys(dialect, conn, spec)
    ddl_checkpoint(dialect, conn)
    if spec.mode == "upsert":
        return _upsert(dialect, conn, spec, manifest, schema, rows, before_commit, rejects, created=created)
    return append_rows(dialect, conn, spec, manifest, logger, before_commit, rejects, created=created)


def _upsert(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    manifest: Manifest,
    schema: pa.Schema,
    rows: Iterator[pa.RecordBatch],
    before_commit: Callable[[], None] | None,
    rejects: LoadRejects | None,
    *,
    created: bool,
) -> LoadResult:
    """Merge by ``spec.keys`` through a staging table; flagged rows (soft deletes) leave the target."""
    flagged = None
    marker = deletion_marker(dialect, spec)
    if marker is not None:
        rows = marked_rows(rows, str(spec.soft_delete_column), marker)
    elif spec.soft_delete_column is not None:
        flagged = FlaggedDeletes(dialect, conn, spec.target, spec.keys, spec.soft_delete_column)
        rows = flagged.rows_to_load(rows)
    within = spec.key_slice if spec.key_slice is not None and spec.key_slice.column in spec.keys else None
    staging = dialect.create_staging_table(conn, spec.target, schema.names, within)
    if rejects is None:
        staged = dialect.bulk_insert(conn, staging, rows)
        counts = dialect.upsert(conn, staging, spec.target, schema.names, spec.keys, staged)
    else:
        counts = _upsert_isolating(dialect, conn, spec, staging, schema, rejects, rows)
    deleted = flagged.apply() if flagged is not None else 0
    if before_commit:
        before_commit()
    conn.commit()
    return LoadResult(
        "upsert",
        manifest.rows,
        counts.inserted,
        counts.updated,
        counts.unchanged,
        created_table=created,
        quarantined=rejects.count if rejects else 0,
        deleted=deleted,
        flagged=flagged.flagged if flagged is not None else 0,
    )


def _upsert_isolating(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    staging: TableRef,
    schema: pa.Schema,
    rejects: LoadRejects,
    batches: Iterator[pa.RecordBatch],
) -> LoadCounts:
    """Upsert batch by batch, so a rejected batch can be rolled back to its savepoint and bisected."""
    direct = staging == spec.target  # copied straight into a target that held none of these keys

    def apply(batch: pa.RecordBatch) -> LoadCounts:
        if not direct:  # empty the staging table of the batch before (never the target itself)
            dialect.execute(conn, dialect.delete_query(staging)).close()
        staged = dialect.bulk_insert(conn, staging, [batch])
        return dialect.upsert(conn, staging, spec.target, schema.names, spec.keys, staged)

    results = rejects.write(dialect, conn, batches, apply)
    return LoadCounts(
        sum(c.inserted for c in results), sum(c.updated for c in results), sum(c.unchanged for c in results)
    )


def _replace(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    manifest: Manifest,
    schema: pa.Schema,
    logger: logging.Logger,
    before_commit: Callable[[], None] | None,
    rejects: LoadRejects | None,
    rows: Iterator[pa.RecordBatch],
) -> LoadResult:
    target = spec.target
    loaded = dialect.helper_table(target, "__sync_new")
    exists = dialect.table_exists(conn, target)
    if not exists and not spec.create_if_missing:
        raise TerminalError(
            f"target table {target} does not exist and create_if_missing is false; create the table or set "
            "create_if_missing: true"
        )
    dialect.execute(conn, dialect.drop_table_sql(loaded)).close()
    like = dialect.create_like_sql(target, loaded) if exists else None
    if exists:
        check_compatible(dialect, conn, target, schema, spec.keys)
    dialect.execute(conn, like or create_sql(dialect, loaded, spec, schema)).close()
    try:
        ddl_checkpoint(dialect, conn)
        inserted = insert_rows(dialect, conn, loaded, rows, rejects)
        if before_commit:
            before_commit()  # before the swap: where DDL is not transactional, the swap is the commit
        ddl_checkpoint(dialect, conn)
        for statement in dialect.swap_tables_sql(target, loaded, exists):
            dialect.execute(conn, statement).close()
        conn.commit()
    except BaseException:
        conn.rollback()
        if not dialect.capabilities.transactional_ddl:
            dialect.execute(conn, dialect.drop_table_sql(loaded)).close()
            conn.commit()
        raise
    quarantined = rejects.count if rejects else 0
    return LoadResult("replace", manifest.rows, inserted, created_table=not exists, quarantined=quarantined)
