"""Reconcile: delete the target rows whose key the source no longer has (hard deletes a cursor misses).

Both key sets are read in key order (text keys by code point, see ``Dialect.byte_order_sql``) and merged
as two streams (:func:`~airflow_provider_sync.core.reconcile.keys_only_in_target`), so memory stays
bounded by the batch size. The target's lock is taken first (no load changes it meanwhile); the source is
read in one read-only snapshot, the target's keys on a second connection; the keys to delete go to a
temporary table and are deleted in one transaction, after the ``max_delete_ratio`` guard: a reconcile that
would delete more than that share of the target fails and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.core.vocabulary import DEFAULT_BATCH_SIZE
from airflow_provider_sync.dialects import changes_sql, get_dialect
from airflow_provider_sync.errors import TerminalError

from .connections import driver_errors, open_connection
from .ownership import claim_target

if TYPE_CHECKING:
    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.dialects.types import Column, TableRef

    from .specs import LoadSpec

log = logging.getLogger(__name__)
DEFAULT_MAX_DELETE_RATIO = 0.1
KEYS_SUFFIX = "__sync_reconcile"
Key = tuple[Any, ...]


@dataclass(frozen=True)
class ReconcileResult:
    target_rows: int
    missing: int
    deleted: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _key_columns(dialect: Dialect, conn: Any, table: TableRef, keys: tuple[str, ...]) -> list[Column]:
    columns = {c.name: c for c in dialect.get_columns(conn, table)}
    absent = [k for k in keys if k not in columns]
    if absent:
        raise TerminalError(
            f"reconcile: {table} has no column {', '.join(map(repr, absent))}; the target keys must also be "
            "source columns of the same name"
        )
    return [columns[k] for k in keys]


def _sorted_keys(
    dialect: Dialect, conn: Any, table: TableRef, keys: tuple[str, ...], batch: int
) -> Iterator[Key]:
    import pyarrow as pa

    chosen = _key_columns(dialect, conn, table, keys)
    text = [
        c.name for c in chosen if pa.types.is_string(c.arrow_type) or pa.types.is_large_string(c.arrow_type)
    ]
    for rows in dialect.read_batches(conn, dialect.sorted_keys_query(table, keys, text), chosen, batch):
        yield from zip(*(column.to_pylist() for column in rows.columns), strict=True)


def _chunks(keys: Iterator[Key], size: int) -> Iterator[list[Key]]:
    chunk: list[Key] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stage_missing(
    source: ConnectionInfo,
    source_table: TableRef,
    spec: LoadSpec,
    work: TableRef,
    target_conn: Any,
    batch: int,
) -> int:
    """Write the keys only the target holds into ``work`` (on ``target_conn``); returns how many."""
    import pyarrow as pa

    from airflow_provider_sync.core.reconcile import keys_only_in_target

    keys = tuple(spec.keys)
    source_dialect, target_dialect = get_dialect(source.conn_type), get_dialect(spec.connection.conn_type)
    schema = pa.schema(
        [(c.name, c.arrow_type) for c in _key_columns(target_dialect, target_conn, spec.target, keys)]
    )
    with (
        closing(source_dialect.connect(source)) as source_conn,
        closing(open_connection(target_dialect, spec)) as reader,
    ):
        source_dialect.begin_snapshot(source_conn)
        gone = keys_only_in_target(
            _sorted_keys(source_dialect, source_conn, source_table, keys, batch),
            _sorted_keys(target_dialect, reader, spec.target, keys, batch),
        )
        missing = 0
        for chunk in _chunks(gone, batch):
            missing += len(chunk)
            arrays = [pa.array([key[i] for key in chunk], schema.field(i).type) for i in range(len(keys))]
            target_dialect.bulk_insert(target_conn, work, [pa.record_batch(arrays, schema=schema)])
        source_conn.rollback()
        reader.rollback()
    return missing


def reconcile_keys(
    source: ConnectionInfo,
    source_table: TableRef,
    spec: LoadSpec,
    run: Any,
    *,
    max_delete_ratio: float = DEFAULT_MAX_DELETE_RATIO,
    batch_size: int = DEFAULT_BATCH_SIZE,
    logger: logging.Logger | None = None,
) -> ReconcileResult:
    """Delete ``spec.target`` rows whose ``spec.keys`` are not in ``source_table`` (see the module doc).
    ``run`` (with ``dag_id``, ``run_id`` and ``table``) identifies the run in the target's owners claim."""
    logger = logger or log
    keys = tuple(spec.keys)
    if not keys:
        raise TerminalError(f"reconcile of {spec.target} needs target keys")
    dialect = get_dialect(spec.connection.conn_type)
    with driver_errors(dialect), driver_errors(get_dialect(source.conn_type)):
        conn = open_connection(dialect, spec)
        try:
            dialect.begin_write(conn)
            claim_target(dialect, conn, spec, run, logger)
            total = int(dialect.scalar(conn, dialect.count_query(spec.target)) or 0)
            work = changes_sql.work_table(dialect, spec.target, KEYS_SUFFIX)
            for statement in changes_sql.create_work_table_sql(dialect, work, spec.target, keys):
                dialect.execute(conn, statement).close()
            missing = _stage_missing(source, source_table, spec, work, conn, batch_size)
            _check_ratio(spec, missing, total, max_delete_ratio)
            deleted = 0
            if missing:
                cursor = dialect.execute(
                    conn, changes_sql.delete_by_keys_sql(dialect, spec.target, work, keys)
                )
                deleted = int(cursor.rowcount or 0)
                cursor.close()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
    logger.info(
        "reconcile %s: %d rows, %d gone from the source, %d deleted", spec.target, total, missing, deleted
    )
    return ReconcileResult(total, missing, deleted)


def _check_ratio(spec: LoadSpec, missing: int, total: int, limit: float) -> None:
    if total and missing / total > limit:
        raise TerminalError(
            f"reconcile of {spec.target} would delete {missing:,} of its {total:,} rows "
            f"({missing / total:.1%}), more than deletes.max_delete_ratio {limit:.1%}: nothing was deleted. "
            "Check the source (an empty or wrong table?), or raise max_delete_ratio if this is intended"
        )
