"""Key rotation: re-encrypt a target table's encrypted columns under the keyring's primary key, in place.

The table is walked in primary-key order one page at a time (keyset, never OFFSET). Each page is read,
its values under older keys are decrypted and sealed again under the primary key (keeping each value's
mode), and written back in the page's own transaction. Values already under the primary key are left
alone, so the job is idempotent and can be stopped and started again at any time. An UPDATE only applies
while the value is still the one read, so a row rewritten meanwhile by a sync is never overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.core.keyring import Keyring
    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.dialects.types import Column, Query, TableRef

log = logging.getLogger(__name__)


@dataclass
class RotationResult:
    """What a rotation did (counts and key ids only)."""

    table: str
    key_id: str
    rows_scanned: int = 0
    values_reencrypted: int = 0
    values_changed_meanwhile: int = 0
    pages: int = 0
    from_key_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def page_query(
    dialect: Dialect,
    table: TableRef,
    names: list[str],
    keys: list[str],
    last: tuple[Any, ...] | None,
    size: int,
) -> Query:
    """The next page of ``size`` rows in key order, after the key ``last`` (None: the first page)."""
    from airflow_provider_sync.dialects.types import KeysetBounds

    bounds = KeysetBounds()
    if last is not None:
        bounds = KeysetBounds(after_cursor=last[0], after_keys=tuple(last[1:]) if len(keys) > 1 else None)
    return dialect.keyset_query(table, names, keys[0], keys[1:], bounds, limit=size)


def _update_changed(
    dialect: Dialect,
    conn: Any,
    table: TableRef,
    keys: list[str],
    column: str,
    page: pa.Table,
    old: list[Any],
    new: list[Any],
) -> tuple[int, int]:
    """UPDATE the rows whose value moved; returns (rows written, rows changed by someone else meanwhile)."""
    key_values = [page.column(name).to_pylist() for name in keys]
    sql, parameters = "", []
    for row, (before, after) in enumerate(zip(old, new, strict=True)):
        if before == after:
            continue
        where = {name: values[row] for name, values in zip(keys, key_values, strict=True)}
        # Only while the value is still the one read: a row a sync rewrote meanwhile is left alone.
        query = dialect.update_query(table, {column: after}, {**where, column: before})
        sql = query.sql  # the same text for every row; only the parameters differ
        parameters.append(dialect.bind_params(query.params))
    if not parameters:
        return 0, 0
    cursor = conn.cursor()
    written = 0
    try:
        for params in parameters:  # per row, so each row's own rowcount tells a concurrent change apart
            cursor.execute(sql, params)
            written += max(int(cursor.rowcount or 0), 0)
    finally:
        cursor.close()
    return written, len(parameters) - written


def _checked_columns(
    dialect: Dialect,
    conn: Any,
    table: TableRef,
    contexts: Mapping[str, str],
    key_columns: Sequence[str] | None,
) -> tuple[list[str], list[Column]]:
    """The key columns and the columns each page reads (keys first), checked against the table."""
    from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError

    keys = list(key_columns or dialect.get_primary_key(conn, table))
    if not keys:
        raise TerminalError(f"table {table} has no primary key; pass its unique key column(s) with --key")
    declared = {column.name: column for column in dialect.get_columns(conn, table)}
    missing = [name for name in [*keys, *contexts] if name not in declared]
    if missing:
        raise IncompatibleSchemaError(f"table {table} has no column(s) {missing}; it has {sorted(declared)}")
    names = [*keys, *[name for name in contexts if name not in keys]]
    return keys, [declared[name] for name in names]


def _rotate_page(
    dialect: Dialect,
    conn: Any,
    table: TableRef,
    keys: list[str],
    page: pa.Table,
    contexts: Mapping[str, str],
    keyring: Keyring,
    result: RotationResult,
) -> set[str]:
    """Re-encrypt one page's values and write them back (the caller commits); returns the old key ids."""
    from airflow_provider_sync.core.encrypt import reencrypt_array

    moved_from: set[str] = set()
    for column, context in contexts.items():
        values = page.column(column).combine_chunks()
        moved, count, old_ids = reencrypt_array(values, keyring, context)
        if count:
            written, skipped = _update_changed(
                dialect, conn, table, keys, column, page, values.to_pylist(), moved.to_pylist()
            )
            result.values_reencrypted += written
            result.values_changed_meanwhile += skipped
            moved_from |= old_ids
    return moved_from


def rotate_table_keys(
    info: ConnectionInfo,
    table: TableRef,
    contexts: Mapping[str, str],
    keyring: Keyring,
    *,
    batch_size: int = 5_000,
    key_columns: Sequence[str] | None = None,
    logger: Any = None,
) -> RotationResult:
    """Move every value of ``contexts``' columns (column → encryption context, as the encrypt step bound
    it) to ``keyring.primary_id``. Each page of ``batch_size`` rows commits on its own."""
    import pyarrow as pa

    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.dialects._arrow import schema_of

    logger = logger or log
    _check_updates_in_place(info)
    dialect = get_dialect(info.conn_type)
    result = RotationResult(str(table), keyring.primary_id)
    moved_from: set[str] = set()
    conn = dialect.connect(info)
    try:
        keys, columns = _checked_columns(dialect, conn, table, contexts, key_columns)
        names = [column.name for column in columns]
        last: tuple[Any, ...] | None = None
        while True:
            dialect.begin_write(conn)
            query = page_query(dialect, table, names, keys, last, batch_size)
            page = pa.Table.from_batches(
                list(dialect.read_batches(conn, query, columns, batch_size)), schema=schema_of(columns)
            )
            if page.num_rows == 0:
                conn.commit()
                break
            try:
                moved_from |= _rotate_page(dialect, conn, table, keys, page, contexts, keyring, result)
                conn.commit()
            except Exception:
                conn.rollback()
                raise
            result.rows_scanned += page.num_rows
            result.pages += 1
            last = tuple(page.column(name)[page.num_rows - 1].as_py() for name in keys)
            logger.info(
                "rotate %s: %d rows scanned, %d values re-encrypted so far",
                table,
                result.rows_scanned,
                result.values_reencrypted,
            )
    finally:
        conn.close()
    result.from_key_ids = sorted(moved_from)
    _rewrap_subject_keys(info, table, keyring, logger)
    return result


def _check_updates_in_place(info: ConnectionInfo) -> None:
    """Refuse targets whose rows cannot be updated in place (rotation rewrites values where they are)."""
    from airflow_provider_sync.errors import TerminalError
    from airflow_provider_sync.targets import target_for

    kind = target_for(info.conn_type)
    if not kind.capabilities.updates_in_place:
        raise TerminalError(
            f"rotate-keys updates rows in place, which {kind.name} targets do not support; re-sync the "
            "table with mode replace instead"
        )


def _rewrap_subject_keys(info: ConnectionInfo, table: TableRef, keyring: Keyring, logger: Any) -> None:
    """Per-subject keys are wrapped by the keyring too: move them to its primary key as well, or dropping
    the old keyring key would make every per-subject value unreadable."""
    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.pipeline.subject_keys import rewrap_subject_keys, subject_key_table_for

    keys_table = subject_key_table_for(str(table))
    dialect = get_dialect(info.conn_type)
    conn = dialect.connect(info)
    try:
        exists = dialect.table_exists(conn, keys_table)
        conn.rollback()
    finally:
        conn.close()
    if exists:
        counts = rewrap_subject_keys(info, keys_table, keyring)
        logger.info("rotate %s: subject keys in %s re-wrapped: %s", table, keys_table, counts)
