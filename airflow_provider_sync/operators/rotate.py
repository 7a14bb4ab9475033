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

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

    from airflow_provider_sync.core.keyring import Keyring
    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.dialects.types import Column, TableRef

log = logging.getLogger(__name__)
UNSUPPORTED = frozenset({"clickhouse", "kafka"})


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
    dialect: Dialect, table: TableRef, names: list[str], keys: list[str],
    last: tuple[Any, ...] | None, size: int,
) -> Any:
    from airflow_provider_sync.dialects.types import KeysetBounds

    bounds = KeysetBounds()
    if last is not None:
        bounds = KeysetBounds(after_cursor=last[0], after_keys=tuple(last[1:]) if len(keys) > 1 else None)
    return dialect.keyset_query(table, names, keys[0], keys[1:], bounds, limit=size)


def _update_changed(
    dialect: Dialect, conn: Any, table: TableRef, keys: list[str], column: str,
    page: pa.Table, old: list[Any], new: list[Any],
) -> tuple[int, int]:
    """UPDATE the rows whose value moved; returns (rows written, rows changed by someone else meanwhile)."""
    from airflow_provider_sync.dialects.types import Binder

    key_values = [page.column(name).to_pylist() for name in keys]
    sql, parameters = "", []
    for row, (before, after) in enumerate(zip(old, new, strict=True)):
        if before == after:
            continue
        bind = Binder(dialect.capabilities.param_style)  # placeholders bound in textual order
        assignment = f"{dialect.quote(column)} = {bind(after)}"
        where = " AND ".join(f"{dialect.quote(name)} = {bind(values[row])}"
                             for name, values in zip(keys, key_values, strict=True))
        query = bind.query(
            f"UPDATE {dialect.qualify(table)} SET {assignment} WHERE {where} "
            f"AND {dialect.quote(column)} = {bind(before)}"
        )
        sql = query.sql
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

    from airflow_provider_sync.core.encrypt import reencrypt_array
    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.dialects._arrow import schema_of
    from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError

    logger = logger or log
    if info.conn_type in UNSUPPORTED:
        raise TerminalError(
            f"rotate-keys updates rows in place, which {info.conn_type} targets do not support; re-sync the "
            "table with mode replace instead"
        )
    dialect = get_dialect(info.conn_type)
    result = RotationResult(str(table), keyring.primary_id)
    moved_from: set[str] = set()
    conn = dialect.connect(info)
    try:
        keys = list(key_columns or dialect.get_primary_key(conn, table))
        if not keys:
            raise TerminalError(f"table {table} has no primary key; pass its unique key column(s) with --key")
        declared = {column.name: column for column in dialect.get_columns(conn, table)}
        missing = [name for name in [*keys, *contexts] if name not in declared]
        if missing:
            raise IncompatibleSchemaError(
                f"table {table} has no column(s) {missing}; it has {sorted(declared)}"
            )
        names = [*keys, *[name for name in contexts if name not in keys]]
        columns: list[Column] = [declared[name] for name in names]
        last: tuple[Any, ...] | None = None
        while True:
            dialect.begin_write(conn)
            query = page_query(dialect, table, names, keys, last, batch_size)
            page = pa.Table.from_batches(list(dialect.read_batches(conn, query, columns, batch_size)),
                                         schema=schema_of(columns))
            if page.num_rows == 0:
                conn.commit()
                break
            try:
                for column, context in contexts.items():
                    values = page.column(column).combine_chunks()
                    moved, count, old_ids = reencrypt_array(values, keyring, context)
                    if count:
                        written, skipped = _update_changed(dialect, conn, table, keys, column, page,
                                                           values.to_pylist(), moved.to_pylist())
                        result.values_reencrypted += written
                        result.values_changed_meanwhile += skipped
                        moved_from |= old_ids
                conn.commit()
            except Exception:
                conn.rollback()
                raise
            result.rows_scanned += page.num_rows
            result.pages += 1
            last = tuple(page.column(name)[page.num_rows - 1].as_py() for name in keys)
            logger.info("rotate %s: %d rows scanned, %d values re-encrypted so far",
                        table, result.rows_scanned, result.values_reencrypted)
    finally:
        conn.close()
    result.from_key_ids = sorted(moved_from)
    return result


class RotateKeysOperator(BaseOperator):
    """Re-encrypts a table's encrypted columns under the primary key of a keyring connection.

    ``columns`` maps each encrypted column to its context, or to None for the encrypt step's default
    ``"<table>.<column>"`` (``table`` as written under ``target.table`` in the pipeline file)."""

    template_fields = ("conn_id", "table", "keyring_conn_id")
    ui_color = "#e2e7f7"

    def __init__(
        self, *, conn_id: str, table: str, columns: Mapping[str, str | None], keyring_conn_id: str,
        batch_size: int = 5_000, key_columns: Sequence[str] | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id, self.table, self.keyring_conn_id = conn_id, table, keyring_conn_id
        self.columns = dict(columns)
        self.batch_size, self.key_columns = batch_size, list(key_columns or [])

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk import BaseHook

        from airflow_provider_sync.core.encrypt import field_context
        from airflow_provider_sync.dialects.connection import ConnectionInfo
        from airflow_provider_sync.dialects.types import TableRef
        from airflow_provider_sync.operators.base import split_table_name
        from airflow_provider_sync.operators.steps import keyring_from_connection

        schema, name = split_table_name(self.table)
        contexts = {column: ctx or field_context(self.table, column) for column, ctx in self.columns.items()}
        info = ConnectionInfo.from_airflow(BaseHook.get_connection(self.conn_id))
        result = rotate_table_keys(
            info, TableRef(name, schema), contexts,
            keyring_from_connection(self.keyring_conn_id), batch_size=self.batch_size,
            key_columns=self.key_columns or None, logger=self.log,
        )
        self.log.info("rotation of %s done: %s", self.table, result.to_json())
        return result.to_json()
