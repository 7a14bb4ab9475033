"""Write audit rows through a dialect: its connection, quoting, parameter style and DDL.

The writer uses its own connection and commits every write, so a failure row is kept even when the step's
own transaction is rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.audit.record import AuditRecord
from airflow_provider_sync.audit.schema import audit_schema
from airflow_provider_sync.dialects.types import Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.config.audit import AuditConfig
    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.connection import ConnectionInfo

log = logging.getLogger(__name__)


def audit_table(config: AuditConfig) -> TableRef:
    """The audit table an ``audit:`` section names."""
    return TableRef(config.table, config.schema_)


class AuditWriter:
    """Creates the audit table if missing and appends :class:`AuditRecord` rows to it.

    A table an earlier release created lacks the columns added since (``warnings``, ...); they are added,
    all nullable, before the first write, so upgrading the provider never breaks the trail."""

    def __init__(self, dialect: Dialect, conn: Any, table: TableRef) -> None:
        self.dialect = dialect
        self.conn = conn
        self.table = table
        self._columns_current = False

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
        created = self.dialect.create_table_if_missing(self.conn, self.table, audit_schema())
        self._columns_current = self._columns_current or created
        return created

    def add_missing_columns(self) -> list[str]:
        """Add the audit columns the table lacks, each in its own committed statement (DDL commits by itself
        on some databases); returns their names. Safe against another writer adding them at the same time."""
        present = self._present_columns()
        missing = [field for field in audit_schema() if field.name.lower() not in present]
        for field in missing:
            try:
                self.dialect.begin_write(self.conn)
                self.dialect.execute(self.conn, self.dialect.add_column_sql(self.table, field)).close()
                self.conn.commit()
            except Exception:
                self.conn.rollback()
                if field.name.lower() not in self._present_columns():
                    raise
            else:
                log.info("Added column %s to the audit table %s", field.name, self.table)
        self._columns_current = True
        return [field.name for field in missing]

    def _present_columns(self) -> set[str]:
        columns = {column.name.lower() for column in self.dialect.get_columns(self.conn, self.table)}
        self.conn.commit()  # end the read transaction, so the ALTER does not wait behind our own snapshot
        return columns

    def insert_query(self, record: AuditRecord) -> Query:
        """``INSERT INTO <audit table> (...) VALUES (...)`` for one record, in the dialect's style."""
        values = record.column_values()
        return self.dialect.insert_query(
            self.table, {field.name: self._param(values[field.name], field) for field in audit_schema()}
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
        if not self._columns_current:
            self.add_missing_columns()
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
        query = self.dialect.select_query(
            self.table, [c.name for c in columns], None if run_id is None else {"run_id": run_id},
            order_by=["started_at", "step"],
        )
        batches = list(self.dialect.read_batches(self.conn, query, columns, 1000))
        self.conn.commit()  # end the read transaction: no snapshot or lock held while idle
        if not batches:
            from airflow_provider_sync.dialects._arrow import schema_of

            return schema_of(columns).empty_table()
        return pa.Table.from_batches(batches)
