"""Write audit rows through a dialect: its connection, quoting, parameter style and DDL.

The writer uses its own connection and commits every write, so a failure row is kept even when the step's
own transaction is rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.audit.record import AuditRecord
from airflow_provider_sync.audit.schema import audit_schema
from airflow_provider_sync.dialects.types import Binder, Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.config.audit import AuditConfig
    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.connection import ConnectionInfo



def audit_table(config: AuditConfig) -> TableRef:
    """The audit table an ``audit:`` section names."""
    return TableRef(config.table, config.schema_)


class AuditWriter:
    """Creates the audit table if missing and appends :class:`AuditRecord` rows to it."""

    def __init__(self, dialect: Dialect, conn: Any, table: TableRef) -> None:
        self.dialect = dialect
        self.conn = conn
        self.table = table

    @classmethod
    @contextmanager
    def open(cls, info: ConnectionInfo, table: TableRef, *, create: bool = True) -> Iterator[AuditWriter]:
        """Connect with the dialect of ``info``, make sure the table exists (``create``), and close after."""
        from airflow_provider_sync.dialects import get_dialect

        dialect = get_dialect(info.conn_type)
        conn = dialect.connect(info)
        try:
            writer = cls(dialect, conn, table)
            if create:
                writer.ensure_table()
            yield writer
        finally:
            conn.close()

    def ensure_table(self) -> bool:
        """Create the audit table when it does not exist; True when this call created it."""
        return self.dialect.create_table_if_missing(self.conn, self.table, audit_schema())

    def insert_query(self, record: AuditRecord) -> Query:
        """``INSERT INTO <audit table> (...) VALUES (...)`` for one record, in the dialect's style."""
        schema = audit_schema()
        values = record.column_values()
        bind = Binder(self.dialect.capabilities.param_style)
        placeholders = ", ".join(bind(self._param(values[f.name], f)) for f in schema)
        return bind.query(
            f"INSERT INTO {self.dialect.qualify(self.table)} ({self.dialect.column_list(schema.names)}) "
            f"VALUES ({placeholders})"
        )

    def _param(self, value: Any, field: pa.Field) -> Any:
        if value is None:
            return None
        convert = self.dialect.param_converter(field.type)
        return value if convert is None else convert(value)

    def write(self, *records: AuditRecord) -> int:
        """Insert ``records`` in one transaction and commit it; returns how many were written."""
        if not records:
            return 0
        try:
            self.dialect.begin_write(self.conn)
            for record in records:
                self.dialect.execute(self.conn, self.insert_query(record)).close()
            self.conn.commit()
        except Exception:
            self.conn.rollback()
            raise
        return len(records)

    def read(self, run_id: str | None = None) -> pa.Table:
        """The audit rows (of one run, or all), oldest first, typed as the dialect reads the table back."""
        import pyarrow as pa

        columns = self.dialect.get_columns(self.conn, self.table)
        bind = Binder(self.dialect.capabilities.param_style)
        where = f" WHERE {self.dialect.quote('run_id')} = {bind(run_id)}" if run_id is not None else ""
        order = self.dialect.column_list(["started_at", "step"])
        query = bind.query(
            f"SELECT {self.dialect.column_list([c.name for c in columns])} "
            f"FROM {self.dialect.qualify(self.table)}{where} ORDER BY {order}"
        )
        batches = list(self.dialect.read_batches(self.conn, query, columns, 1000))
        self.conn.commit()  # end the read transaction: no snapshot or lock held while idle
        if not batches:
            from airflow_provider_sync.dialects._arrow import schema_of

            return schema_of(columns).empty_table()
        return pa.Table.from_batches(batches)
