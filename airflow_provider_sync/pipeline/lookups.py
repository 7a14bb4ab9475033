"""Reading the reference tables of ``schema_map`` lookups through their connection's dialect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.dialects.types import TableRef

#: Rows per batch while a reference table is read (it is held in memory whole afterwards anyway).
READ_BATCH_ROWS = 50_000


def read_reference_table(info: ConnectionInfo, table: TableRef, columns: Sequence[str]) -> pa.Table:
    """``columns`` of every row of ``table``, typed as the dialect reads them. Raises
    :class:`~airflow_provider_sync.errors.IncompatibleSchemaError` naming the columns the table lacks."""
    import pyarrow as pa

    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.dialects._arrow import schema_of
    from airflow_provider_sync.errors import IncompatibleSchemaError

    dialect = get_dialect(info.conn_type)
    conn = dialect.connect(info)
    try:
        declared = {column.name: column for column in dialect.get_columns(conn, table)}
        missing = [column for column in columns if column not in declared]
        if missing:
            raise IncompatibleSchemaError(
                f"lookup table {str(table)!r} has no column(s) {missing}; it has {sorted(declared)}"
            )
        wanted = [declared[column] for column in columns]
        query = dialect.select_query(table, columns)
        batches = list(dialect.read_batches(conn, query, wanted, READ_BATCH_ROWS))
        conn.rollback()
    finally:
        conn.close()
    return pa.Table.from_batches(batches, schema=schema_of(wanted))
